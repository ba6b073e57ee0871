/**
 * A load generator for unix sockets, which wrk cannot reach: `connections`
 * keep-alive (or `Connection: close`) clients, each sending GET / and
 * reading the whole response before the next, for `duration` seconds; a
 * response with `Connection: close` ends its connection, as with wrk.
 * Prints one JSON line: requests, seconds and errors, in the shape of
 * {@linkcode WrkResult} (no latencies). Given OUT (and BUCKET_MS, default
 * 10), it also writes the timeline that bench/lib/timeline.lua writes from
 * inside wrk (requests written, answered and non-2xx per bucket) to OUT, and
 * SIGINT ends the run early, as with wrk.
 *
 *   deno run -A bench/lib/unix_load.ts PATH CONNECTIONS SECONDS [close] [OUT [BUCKET_MS]]
 *
 * @module
 */

import { epochNow } from "./time.ts";
import type { LuaTimeline } from "./timeline.ts";
import type { WrkResult } from "./wrk.ts";

/** What else a run may do. */
export interface UnixLoadOptions {
  /** Ends the run early (requests under way are finished). */
  signal?: AbortSignal;
  /** Keeps a timeline in buckets of this many ms. */
  bucketMs?: number;
}

/** A run's counts, and its timeline when one was asked for. */
export interface UnixLoadResult extends WrkResult {
  timeline?: LuaTimeline;
}

/** Counts per time bucket, as `[bucket key, count]` pairs. */
class Buckets {
  #counts = new Map<number, number>();
  constructor(readonly width: number) {}
  add(): void {
    const key = Math.floor(epochNow() / this.width);
    this.#counts.set(key, (this.#counts.get(key) ?? 0) + 1);
  }
  pairs(): [number, number][] {
    return [...this.#counts].sort((a, b) => a[0] - b[0]);
  }
}

const encoder = new TextEncoder();
const decoder = new TextDecoder();

/** Runs the load and returns what it counted. */
export async function unixLoad(
  path: string,
  connections: number,
  seconds: number,
  close: boolean,
  options: UnixLoadOptions = {},
): Promise<UnixLoadResult> {
  const request = encoder.encode(
    `GET / HTTP/1.1\r\nHost: localhost\r\n${
      close ? "Connection: close\r\n" : ""
    }\r\n`,
  );
  const deadline = performance.now() + seconds * 1000;
  const started = performance.now();
  const startedMs = epochNow();
  const width = options.bucketMs ?? 10;
  const sent = new Buckets(width);
  const received = new Buckets(width);
  const non2xx = new Buckets(width);
  const statuses = new Map<number, number>();
  const running = () =>
    performance.now() < deadline && !options.signal?.aborted;
  let requests = 0;
  let bytes = 0;
  const errors = { connect: 0, read: 0, write: 0, timeout: 0, status: 0 };
  async function client(): Promise<void> {
    let conn: Deno.UnixConn | undefined;
    const buffer = new Uint8Array(16 * 1024);
    while (running()) {
      try {
        conn ??= await Deno.connect({ transport: "unix", path });
      } catch {
        errors.connect++;
        continue;
      }
      try {
        sent.add();
        await conn.write(request);
        let text = "";
        let need = -1;
        let closing = close;
        while (need < 0 || text.length < need) {
          const n = await conn.read(buffer);
          if (n === null) throw new Error("closed");
          bytes += n;
          text += decoder.decode(buffer.subarray(0, n));
          const end = text.indexOf("\r\n\r\n");
          if (need < 0 && end >= 0) {
            const length = /content-length: *(\d+)/i.exec(text.slice(0, end));
            need = end + 4 + Number(length?.[1] ?? 0);
            const status = Number(text.slice(9, 12));
            if (!(status >= 200 && status <= 299)) {
              errors.status++;
              non2xx.add();
              statuses.set(status, (statuses.get(status) ?? 0) + 1);
            }
            // The server ends the connection after this response (it is
            // draining): a new one for the next request, as wrk does.
            if (/^connection: *close/im.test(text.slice(0, end))) {
              closing = true;
            }
          }
        }
        requests++;
        received.add();
        if (closing) {
          conn.close();
          conn = undefined;
        }
      } catch {
        errors.read++;
        try {
          conn?.close();
        } catch {
          // already closed
        }
        conn = undefined;
      }
    }
    conn?.close();
  }
  await Promise.all(Array.from({ length: connections }, client));
  const elapsed = (performance.now() - started) / 1000;
  const timeline: LuaTimeline | undefined = options.bucketMs === undefined
    ? undefined
    : {
      bucketMs: width,
      startedMs,
      endedMs: epochNow(),
      sent: sent.pairs(),
      received: received.pairs(),
      non2xx: non2xx.pairs(),
      statuses: [...statuses],
      summary: {
        requests,
        durationUs: Math.round(elapsed * 1e6),
        errors: { ...errors },
      },
    };
  return {
    requests,
    seconds: elapsed,
    requestsPerSecond: requests / elapsed,
    bytesRead: bytes,
    latencyMs: { mean: 0, stdev: 0, max: 0, p50: 0, p75: 0, p90: 0, p99: 0 },
    errors,
    ...(timeline ? { timeline } : {}),
  };
}

if (import.meta.main) {
  const [path, connections, seconds, mode, out, bucketMs] = Deno.args;
  const stop = new AbortController();
  if (out !== undefined) Deno.addSignalListener("SIGINT", () => stop.abort());
  const { timeline, ...result } = await unixLoad(
    path,
    Number(connections),
    Number(seconds),
    mode === "close",
    {
      signal: stop.signal,
      bucketMs: out === undefined ? undefined : Number(bucketMs ?? 10),
    },
  );
  if (out !== undefined) {
    await Deno.writeTextFile(out, JSON.stringify(timeline));
  }
  console.log(JSON.stringify(result));
  Deno.exit(0);
}
