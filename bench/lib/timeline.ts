/**
 * The timeline that `bench/lib/timeline.lua` writes from inside wrk: requests
 * written, responses completed and non-2xx responses per time bucket. This
 * module knows the file's shape; the benches analyse it in their own ways.
 *
 * Times are epoch milliseconds (CLOCK_REALTIME) on both sides: wrk's Lua
 * reads clock_gettime(2) through LuaJIT's FFI, the benches read
 * `performance.timeOrigin + performance.now()`.
 *
 * @module
 */

/** The wrk script, absolute: pass it to wrk with `-s`. */
export const TIMELINE_LUA_PATH: string = decodeURIComponent(
  new URL("./timeline.lua", import.meta.url).pathname,
);

/** wrk's own error counters, as its `done()` hook sees them. */
export interface LuaErrors {
  /** Failed connects. */
  connect: number;
  /** Failed reads. */
  read: number;
  /** Failed writes. */
  write: number;
  /** Responses with status > 399 (wrk's "Non-2xx or 3xx responses"). */
  status: number;
  /** Requests that timed out. */
  timeout: number;
}

/** What timeline.lua writes. Counts are `[bucket key, count]` pairs. */
export interface LuaTimeline {
  /** The bucket width (ms); a key K covers [K × bucketMs, (K+1) × bucketMs). */
  bucketMs: number;
  /** When the first wrk thread started (epoch ms). */
  startedMs: number;
  /** When wrk's `done()` ran (epoch ms). */
  endedMs: number;
  /** Requests written, by bucket. */
  sent: [number, number][];
  /** Responses completed, by bucket. */
  received: [number, number][];
  /** Responses with a status outside 200-299, by bucket. */
  non2xx: [number, number][];
  /** Those statuses, `[status, count]`. */
  statuses: [number, number][];
  /** wrk's own summary: completed requests, the run's length, its errors. */
  summary: { requests: number; durationUs: number; errors: LuaErrors };
}

/** What an analysis of a timeline around restarts needs to know. */
export interface TimelineAnalysisOptions {
  /** When each restart was triggered (epoch ms, the timeline's clock). */
  triggersMs: number[];
  /** The restart window after each trigger (ms). */
  windowMs: number;
  /** Ms after wrk's start that are left out of the steady state (ramp-up). */
  rampMs: number;
  /**
   * How many `request()` calls may be outstanding without a loss: wrk's
   * connection count, plus its thread count (wrk 4.1 makes one more
   * `request()` call per thread than it sends at the start of a run).
   */
  maxOutstanding: number;
}

/** Parses timeline.lua's JSON, checking its shape. */
export function parseTimeline(text: string): LuaTimeline {
  const data = JSON.parse(text) as LuaTimeline;
  for (const key of ["bucketMs", "startedMs", "endedMs"] as const) {
    if (typeof data[key] !== "number" || !Number.isFinite(data[key])) {
      throw new Error(`timeline: ${key} is not a number`);
    }
  }
  for (const key of ["sent", "received", "non2xx", "statuses"] as const) {
    if (!Array.isArray(data[key])) {
      throw new Error(`timeline: ${key} is not an array`);
    }
  }
  return data;
}

/** Reads and parses the timeline that timeline.lua wrote to `path`. */
export async function readTimeline(path: string): Promise<LuaTimeline> {
  return parseTimeline(await Deno.readTextFile(path));
}

/**
 * A timeline's counts as dense arrays: index i is the bucket with key
 * `firstKey + i`, from the bucket in which wrk started to the last bucket
 * with a request or a response.
 */
export interface DenseTimeline {
  /** The bucket width (ms). */
  width: number;
  /** The key of index 0: floor(startedMs / width). */
  firstKey: number;
  /** How many buckets. */
  length: number;
  /** Requests written, by bucket. */
  sent: number[];
  /** Responses completed, by bucket. */
  received: number[];
  /** Responses with a status outside 200-299, by bucket. */
  non2xx: number[];
}

/** Lays out `timeline`'s counts as {@linkcode DenseTimeline} arrays. */
export function denseTimeline(timeline: LuaTimeline): DenseTimeline {
  const width = timeline.bucketMs;
  const firstKey = Math.floor(timeline.startedMs / width);
  const lastKey = Math.max(
    firstKey,
    ...timeline.received.map(([key]) => key),
    ...timeline.sent.map(([key]) => key),
  );
  const length = lastKey - firstKey + 1;
  return {
    width,
    firstKey,
    length,
    sent: denseCounts(timeline.sent, firstKey, length),
    received: denseCounts(timeline.received, firstKey, length),
    non2xx: denseCounts(timeline.non2xx, firstKey, length),
  };
}

/**
 * `[key, count]` pairs as an array of `length` counts, index 0 being
 * `firstKey`; pairs outside that range are left out.
 */
export function denseCounts(
  pairs: [number, number][],
  firstKey: number,
  length: number,
): number[] {
  const values = new Array<number>(length).fill(0);
  for (const [key, count] of pairs) {
    const index = key - firstKey;
    if (index >= 0 && index < length) values[index] += count;
  }
  return values;
}

/** The non-2xx responses by status, keyed by the status as a string. */
export function statusCounts(timeline: LuaTimeline): Record<string, number> {
  return Object.fromEntries(
    timeline.statuses.map(([status, count]) => [String(status), count]),
  );
}
