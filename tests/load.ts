/**
 * Load for restart tests: wrk, running until it is stopped (SIGINT, after
 * which it prints its report), so that every restart a test makes falls
 * inside the load window by construction, whatever the machine's speed.
 *
 * @module
 */

import { assert, assertEquals } from "./assert.ts";

/** What wrk reported. */
export interface LoadReport {
  /** Completed requests. */
  requests: number;
  /** connect + read + write + timeout errors. */
  socketErrors: number;
  /** Responses with a status other than 2xx or 3xx. */
  non2xx: number;
  /** wrk's whole report. */
  text: string;
}

/** Options of {@linkcode Load.start}. */
export interface LoadOptions {
  /** Send `Connection: close` on every request (default: keep-alive). */
  connectionClose?: boolean;
  /** Concurrent connections (default 20). */
  connections?: number;
}

/** wrk against one URL until `stop()`. */
export class Load {
  readonly #child: Deno.ChildProcess;
  readonly #output: Promise<Deno.CommandOutput>;
  #exited = false;

  private constructor(child: Deno.ChildProcess) {
    this.#child = child;
    this.#output = child.output();
    this.#output.finally(() => this.#exited = true).catch(() => {});
  }

  /** Starts wrk on `url`. */
  static start(url: string, options: LoadOptions = {}): Load {
    const child = new Deno.Command("wrk", {
      args: [
        "-t1",
        `-c${options.connections ?? 20}`,
        // An upper bound only: stop() ends it.
        "-d600s",
        ...(options.connectionClose ? ["-H", "Connection: close"] : []),
        url,
      ],
      stdin: "null",
      stdout: "piped",
      stderr: "piped",
    }).spawn();
    return new Load(child);
  }

  /** Throws unless wrk is still running: the load window is open. */
  assertRunning(when: string): void {
    assert(!this.#exited, `wrk had ended ${when}`);
  }

  /** Stops wrk (SIGINT) and returns its report. */
  async stop(): Promise<LoadReport> {
    this.assertRunning("before stop()");
    this.#child.kill("SIGINT");
    const out = await this.#output;
    const text = new TextDecoder().decode(out.stdout) +
      new TextDecoder().decode(out.stderr);
    assertEquals(out.code, 0, text);
    return parseWrk(text);
  }

  /** Kills wrk if it still runs; for finally blocks. */
  async kill(): Promise<void> {
    try {
      this.#child.kill("SIGKILL");
    } catch {
      // ended already
    }
    await this.#output.catch(() => {});
  }
}

/** Reads wrk's report. */
export function parseWrk(text: string): LoadReport {
  const requests = text.match(/(\d+) requests in /);
  assert(requests, `no request count in wrk's report:\n${text}`);
  const errors = text.match(
    /Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)/,
  );
  const non2xx = text.match(/Non-2xx or 3xx responses: (\d+)/);
  assert(errors || !/Socket errors/.test(text), `unparsed:\n${text}`);
  assert(non2xx || !/Non-2xx/.test(text), `unparsed:\n${text}`);
  return {
    requests: Number(requests[1]),
    socketErrors: errors
      ? errors.slice(1).reduce((sum, n) => sum + Number(n), 0)
      : 0,
    non2xx: non2xx ? Number(non2xx[1]) : 0,
    text,
  };
}

/**
 * Asserts that nothing failed and that at least `minimum` requests
 * completed (a count: the window was load, not idle).
 */
export function assertNoFailures(report: LoadReport, minimum: number): void {
  assertEquals(
    [report.socketErrors, report.non2xx],
    [0, 0],
    `failed requests:\n${report.text}`,
  );
  assert(
    report.requests >= minimum,
    `${report.requests} requests completed, fewer than ${minimum}:\n${report.text}`,
  );
}
