/**
 * Processes by pid: whether one still runs, and signalling one that may
 * already be gone.
 *
 * @module
 */

/** Whether `pid` exists and has not ended (tests/proc.ts: the one reader). */
export { alive as isAlive } from "../../tests/proc.ts";

/** Sends `signal` to `pid`; false when it is gone. */
export function signalPid(pid: number, signal: Deno.Signal): boolean {
  try {
    Deno.kill(pid, signal);
    return true;
  } catch {
    return false;
  }
}
