/**
 * When the CLI runs the supervisor instead of serving itself: `--workers N`
 * (or GRACEFUL_WORKERS) above 1, and even with 1 worker as PID 1 (a restart
 * must not end the pid namespace) and in the foreground of a terminal (the
 * command stays in the foreground across restarts, and Ctrl-C stops it all).
 * A worker never supervises.
 *
 * @module
 */

import { platform } from "../os/platform.ts";
import { inForegroundTerminal, isPid1 } from "../os/process.ts";
import { isWorker } from "./worker.ts";

/**
 * The number of workers `--workers` asks for: a positive integer, or "auto",
 * the CPUs this process may run on (its affinity, as `nproc` and
 * `deno serve --parallel` count). Throws a one-line error naming the option.
 */
export function parseWorkers(raw: string | undefined): number {
  if (raw === undefined) return 1;
  if (raw === "auto") return Math.max(1, navigator.hardwareConcurrency);
  if (!/^\d+$/.test(raw) || Number(raw) < 1 || Number(raw) > 1024) {
    throw new TypeError(
      `--workers "${raw}" must be a number of workers (1-1024) or auto`,
    );
  }
  return Number(raw);
}

/**
 * How many workers the supervisor should run, or undefined when this process
 * serves by itself (a worker; one worker outside PID 1 and terminals; or not
 * Linux with no --workers given).
 */
export function supervisedWorkers(raw: string | undefined): number | undefined {
  if (isWorker()) return undefined;
  const workers = parseWorkers(raw);
  const { mode } = platform();
  if (Deno.build.os !== "linux" || mode !== "linux") {
    if (raw === undefined) return undefined;
    throw new Error(
      `--workers (GRACEFUL_WORKERS) needs Linux (pidfd_getfd, waitid); ` +
        (Deno.build.os !== "linux"
          ? `this is ${Deno.build.os}`
          : `this is the ${mode} mode (GRACEFUL_PORTABLE)`),
    );
  }
  if (workers > 1 || isPid1() || inForegroundTerminal()) return workers;
  return undefined;
}
