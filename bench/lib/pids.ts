/**
 * Processes by pid: whether one still runs, and signalling one that may
 * already be gone.
 *
 * @module
 */

import { statFields } from "./proc.ts";

/** Whether `pid` exists and is not a zombie (synchronous). */
export function isAlive(pid: number): boolean {
  let stat: string;
  try {
    stat = Deno.readTextFileSync(`/proc/${pid}/stat`);
  } catch {
    return false;
  }
  const state = statFields(stat)[0];
  return state !== "Z" && state !== "X";
}

/** Sends `signal` to `pid`; false when it is gone. */
export function signalPid(pid: number, signal: Deno.Signal): boolean {
  try {
    Deno.kill(pid, signal);
    return true;
  } catch {
    return false;
  }
}
