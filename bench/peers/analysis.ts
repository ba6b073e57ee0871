/**
 * Reads a timeline.lua timeline: the steady rate outside the restart windows, the
 * throughput in the window after each restart trigger, the longest time
 * without a response, non-2xx answers, requests written and never answered,
 * and a 100 ms series for the chart.
 *
 * Times in the result are ms relative to `originMs` (the first trigger).
 *
 * @module
 */

import { mean, median, round } from "../lib/stats.ts";
import type { LuaTimeline } from "./load.ts";

/** Throughput after one trigger. */
export interface WindowStat {
  /** The trigger, ms after the origin. */
  atMs: number;
  /** Responses completed in [trigger, trigger + window). */
  responses: number;
  /** Their rate (req/s). */
  rps: number;
  /** rps ÷ steady rps. */
  ratio: number;
  /** The lowest rate over any 100 ms of the window (req/s). */
  worst100msRps: number;
  /** The longest run without any response inside the window (ms). */
  gapMs: number;
}

/** One 100 ms bucket of the series. */
export interface SeriesPoint {
  /** Bucket start, ms after the origin. */
  atMs: number;
  responses: number;
  non2xx: number;
  /** Requests that were written and never answered (see `lost`). */
  lost: number;
}

/** What a timeline says. */
export interface TimelineAnalysis {
  /** The origin of every time below (epoch ms). */
  originMs: number;
  bucketMs: number;
  windowMs: number;
  /** wrk's run, from its first request to done() (ms). */
  runMs: number;
  written: number;
  responses: number;
  /**
   * The steady rate (req/s): the median of the 100 ms buckets after the ramp
   * that lie outside every restart window (robust to short disturbances from
   * other processes on the machine).
   */
  steadyRps: number;
  /** How many 100 ms buckets that median is over. */
  steadyBuckets: number;
  /** The mean rate before the first trigger, after the ramp (req/s). */
  leadRps: number;
  /** How long that lead segment was (ms). */
  leadMs: number;
  windows: WindowStat[];
  /** Mean window rps ÷ steady rps. */
  windowRatio: number;
  worstWindowRatio: number;
  /** The lowest 100 ms rate inside any window ÷ steady rps. */
  worst100msRatio: number;
  /** The longest run without a response after the ramp (ms), and when it began. */
  longestGap: { ms: number; atMs: number };
  non2xx: number;
  statuses: Record<string, number>;
  /**
   * Requests written and never answered: at most one request per connection
   * is outstanding, so (written − answered) rising above the connection count
   * (+ threads: wrk 4.1 calls request() once more per thread at its start)
   * marks a lost request, in the bucket where it shows. wrk's socket-error
   * counts stay the authority on how many failed; this says when.
   */
  lost: {
    total: number;
    atEnd: number;
    events: { atMs: number; count: number }[];
  };
  /** 100 ms buckets from wrk's start. */
  series: SeriesPoint[];
}

/** How to read a timeline. */
export interface AnalysisOptions {
  /** Restart triggers (epoch ms). */
  triggersMs: number[];
  windowMs: number;
  /** Left out at wrk's start (ms). */
  rampMs: number;
  /** Connections + threads. */
  maxOutstanding: number;
}

/** Analyses `timeline` around the triggers. */
export function analyzeTimeline(
  timeline: LuaTimeline,
  options: AnalysisOptions,
): TimelineAnalysis {
  const width = timeline.bucketMs;
  const firstKey = Math.floor(timeline.startMs / width);
  const keys = [
    ...timeline.written.map(([key]) => key),
    ...timeline.answered.map(([key]) => key),
  ];
  const lastKey = Math.max(firstKey, ...keys);
  const length = lastKey - firstKey + 1;
  const answered = dense(timeline.answered, firstKey, length);
  const written = dense(timeline.written, firstKey, length);
  const non2xx = dense(timeline.non2xx, firstKey, length);
  const base = firstKey * width;
  const originMs = options.triggersMs[0] ?? timeline.startMs;
  /** Index of the first whole bucket at or after epoch ms `at`. */
  const indexAt = (at: number) => Math.ceil((at - base) / width);

  const rampEnd = indexAt(timeline.startMs + options.rampMs);
  const steadyEnd = options.triggersMs.length > 0
    ? Math.floor((options.triggersMs[0] - base) / width)
    : length - 1;
  const leadBuckets = Math.max(0, steadyEnd - rampEnd);
  const leadRps = leadBuckets > 0
    ? sum(answered, rampEnd, steadyEnd) / (leadBuckets * width / 1000)
    : NaN;

  const per100 = Math.round(100 / width);
  const perWindow = Math.round(options.windowMs / width);
  const outside: number[] = [];
  for (let at = rampEnd; at + per100 <= length - 1; at += per100) {
    const from = base + at * width;
    const to = from + 100;
    const inWindow = options.triggersMs.some((t) =>
      from < t + options.windowMs && to > t
    );
    if (!inWindow) outside.push(sum(answered, at, at + per100) * 10);
  }
  const steadyRps = median(outside);
  const windows = options.triggersMs.map((trigger) => {
    const from = indexAt(trigger);
    const to = Math.min(length, from + perWindow);
    const responses = sum(answered, from, to);
    const seconds = Math.max(1, to - from) * width / 1000;
    let worst = Infinity;
    for (let at = from; at + per100 <= to; at++) {
      worst = Math.min(worst, sum(answered, at, at + per100) * (1000 / 100));
    }
    return {
      atMs: round(trigger - originMs),
      responses,
      rps: round(responses / seconds),
      ratio: round(responses / seconds / steadyRps, 3),
      worst100msRps: worst === Infinity ? 0 : worst,
      gapMs: zeroRun(answered, from, to).buckets * width,
    };
  });

  const firstAnswer = Math.max(rampEnd, answered.findIndex((n) => n > 0));
  const gap = zeroRun(answered, firstAnswer, length - 1);

  const lostPerBucket = new Array<number>(length).fill(0);
  const events: { atMs: number; count: number }[] = [];
  let outstanding = 0;
  let worstExcess = 0;
  for (let i = 0; i < length; i++) {
    outstanding += written[i] - answered[i];
    const excess = outstanding - options.maxOutstanding;
    if (excess > worstExcess) {
      lostPerBucket[i] = excess - worstExcess;
      events.push({
        atMs: round(base + i * width - originMs),
        count: excess - worstExcess,
      });
      worstExcess = excess;
    }
  }

  const series: SeriesPoint[] = [];
  const seriesStart = Math.floor((base - originMs) / 100) * 100;
  for (let i = 0; i < length; i++) {
    // A 10 ms bucket goes to the 100 ms bucket that holds its middle.
    const at = base + i * width + width / 2 - originMs;
    const slot = Math.floor((at - seriesStart) / 100);
    while (series.length <= slot) {
      series.push({
        atMs: seriesStart + series.length * 100,
        responses: 0,
        non2xx: 0,
        lost: 0,
      });
    }
    series[slot].responses += answered[i];
    series[slot].non2xx += non2xx[i];
    series[slot].lost += lostPerBucket[i];
  }

  // Only whole 100 ms buckets inside wrk's run.
  const whole = series.filter((point) =>
    point.atMs >= timeline.startMs - originMs &&
    point.atMs + 100 <= timeline.endMs - originMs
  );
  series.length = 0;
  series.push(...whole);

  const ratios = windows.map((w) => w.ratio);
  const meanWindowRps = mean(windows.map((w) => w.rps));
  return {
    originMs,
    bucketMs: width,
    windowMs: options.windowMs,
    runMs: round(timeline.endMs - timeline.startMs),
    written: sum(written, 0, length),
    responses: sum(answered, 0, length),
    steadyRps: round(steadyRps),
    steadyBuckets: outside.length,
    leadRps: round(leadRps),
    leadMs: leadBuckets * width,
    windows,
    windowRatio: round(meanWindowRps / steadyRps, 3),
    worstWindowRatio: ratios.length > 0 ? Math.min(...ratios) : NaN,
    worst100msRatio: windows.length > 0
      ? round(Math.min(...windows.map((w) => w.worst100msRps)) / steadyRps, 3)
      : NaN,
    longestGap: {
      ms: gap.buckets * width,
      atMs: round(base + gap.start * width - originMs),
    },
    non2xx: sum(non2xx, 0, length),
    statuses: Object.fromEntries(
      timeline.statuses.map(([status, count]) => [String(status), count]),
    ),
    lost: {
      total: worstExcess,
      atEnd: outstanding,
      events,
    },
    series,
  };
}

function dense(
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

function sum(values: number[], from: number, to: number): number {
  let total = 0;
  for (let i = Math.max(0, from); i < Math.min(values.length, to); i++) {
    total += values[i];
  }
  return total;
}

function zeroRun(
  values: number[],
  from: number,
  to: number,
): { start: number; buckets: number } {
  let best = { start: Math.max(0, from), buckets: 0 };
  let runStart = -1;
  for (let i = Math.max(0, from); i < Math.min(values.length, to); i++) {
    if (values[i] === 0) {
      if (runStart === -1) runStart = i;
      if (i - runStart + 1 > best.buckets) {
        best = { start: runStart, buckets: i - runStart + 1 };
      }
    } else {
      runStart = -1;
    }
  }
  return best;
}
