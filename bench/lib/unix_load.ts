/**
 * A load generator for unix sockets, which wrk cannot reach: `connections`
 * keep-alive (or `Connection: close`) clients, each sending GET / and
 * reading the whole response before the next, for `duration` seconds; a
 * response with `Connection: close` ends its connection, as with wrk.
 * Prints one JSON line: requests, seconds and errors, in the shape of
 * {@linkcode WrkResult} (no latencies).
 *
 *   deno run -A bench/lib/unix_load.ts PATH CONNECTIONS SECONDS [close]
 *
 * @module
 */

import type { WrkResult } from "./wrk.ts";

const encoder = new TextEncoder();
const decoder = new TextDecoder();

/** Runs the load and returns what it counted. */
export async function unixLoad(
  path: string,
  connections: number,
  seconds: number,
  close: boolean,
): Promise<WrkResult> {
  const request = encoder.encode(
    `GET / HTTP/1.1\r\nHost: localhost\r\n${
      close ? "Connection: close\r\n" : ""
    }\r\n`,
  );
  const deadline = performance.now() + seconds * 1000;
  const started = performance.now();
  let requests = 0;
  let bytes = 0;
  const errors = { connect: 0, read: 0, write: 0, timeout: 0, status: 0 };
  async function client(): Promise<void> {
    let conn: Deno.UnixConn | undefined;
    const buffer = new Uint8Array(16 * 1024);
    while (performance.now() < deadline) {
      try {
        conn ??= await Deno.connect({ transport: "unix", path });
      } catch {
        errors.connect++;
        continue;
      }
      try {
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
            if (!text.startsWith("HTTP/1.1 200")) errors.status++;
            // The server ends the connection after this response (it is
            // draining): a new one for the next request, as wrk does.
            if (/^connection: *close/im.test(text.slice(0, end))) {
              closing = true;
            }
          }
        }
        requests++;
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
  return {
    requests,
    seconds: elapsed,
    requestsPerSecond: requests / elapsed,
    bytesRead: bytes,
    latencyMs: { mean: 0, stdev: 0, max: 0, p50: 0, p75: 0, p90: 0, p99: 0 },
    errors,
  };
}

if (import.meta.main) {
  const [path, connections, seconds, mode] = Deno.args;
  const result = await unixLoad(
    path,
    Number(connections),
    Number(seconds),
    mode === "close",
  );
  console.log(JSON.stringify(result));
}
