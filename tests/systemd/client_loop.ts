/**
 * A client loop for the systemd tests: a new connection every few ms (at
 * most `concurrency` at once), each one request with `connection: close`,
 * counting what a client sees: answered, refused, or failed otherwise (reset,
 * no response), and the longest it waited to connect and to be answered.
 *
 * @module
 */

import { rawExchange } from "../http_client.ts";

/** What the clients saw. */
export interface LoopStats {
  /** Connections attempted. */
  attempts: number;
  /** Answered with 200. */
  ok: number;
  /** connect(2) refused (ECONNREFUSED): nobody held the port. */
  refused: number;
  /** Anything else (reset, no or a bad response), the first few described. */
  failed: number;
  failures: string[];
  /** The longest connect(2) took (ms). */
  maxConnectMs: number;
  /** The longest from connect(2) to the whole response (ms). */
  maxAnswerMs: number;
}

/** A running loop. */
export interface ClientLoop {
  /** Stops starting connections, waits for the open ones, and reports. */
  stop(): Promise<LoopStats>;
  /**
   * Resolves once `count` more connections were answered; rejects, with
   * what the clients saw, when that takes longer than `netMs`.
   */
  answered(count: number, netMs?: number): Promise<void>;
}

const REQUEST = "GET / HTTP/1.1\r\nHost: test\r\nConnection: close\r\n\r\n";

/** Starts the loop against 127.0.0.1:`port`. */
export function clientLoop(
  port: number,
  options: { intervalMs?: number; concurrency?: number } = {},
): ClientLoop {
  const intervalMs = options.intervalMs ?? 5;
  const concurrency = options.concurrency ?? 64;
  const stats: LoopStats = {
    attempts: 0,
    ok: 0,
    refused: 0,
    failed: 0,
    failures: [],
    maxConnectMs: 0,
    maxAnswerMs: 0,
  };
  const open = new Set<Promise<void>>();
  const waiters: { at: number; resolve: () => void }[] = [];
  let running = true;

  function fail(what: string): void {
    stats.failed++;
    if (stats.failures.length < 5) stats.failures.push(what);
  }

  async function one(): Promise<void> {
    stats.attempts++;
    const started = performance.now();
    let conn: Deno.TcpConn;
    try {
      conn = await Deno.connect({ hostname: "127.0.0.1", port });
    } catch (error) {
      if (error instanceof Deno.errors.ConnectionRefused) stats.refused++;
      else fail(`connect: ${(error as Error).message}`);
      return;
    }
    stats.maxConnectMs = Math.max(
      stats.maxConnectMs,
      performance.now() - started,
    );
    try {
      const [response] = await rawExchange(conn, REQUEST, {
        count: 1,
        timeoutMs: 120_000,
      });
      if (response?.status === 200) {
        stats.ok++;
        for (const waiter of waiters.filter((w) => stats.ok >= w.at)) {
          waiters.splice(waiters.indexOf(waiter), 1);
          waiter.resolve();
        }
      } else {
        fail(response ? `status ${response.status}` : "no response");
      }
    } catch (error) {
      fail(`exchange: ${(error as Error).message}`);
    }
    stats.maxAnswerMs = Math.max(
      stats.maxAnswerMs,
      performance.now() - started,
    );
  }

  const loop = (async () => {
    while (running) {
      if (open.size < concurrency) {
        const attempt = one().finally(() => open.delete(attempt));
        open.add(attempt);
      }
      await new Promise((resolve) => setTimeout(resolve, intervalMs));
    }
  })();

  return {
    async stop() {
      running = false;
      await loop;
      await Promise.all(open);
      return stats;
    },
    answered(count: number, netMs = 120_000) {
      const { promise, resolve, reject } = Promise.withResolvers<void>();
      // A net against a hang, not a measurement.
      const timer = setTimeout(() => {
        reject(
          new Error(`${count} answers not seen: ${JSON.stringify(stats)}`),
        );
      }, netMs);
      waiters.push({
        at: stats.ok + count,
        resolve: () => {
          clearTimeout(timer);
          resolve();
        },
      });
      return promise;
    },
  };
}
