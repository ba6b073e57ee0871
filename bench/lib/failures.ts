/**
 * Failed requests of a wrk run under restarts, by kind: wrk's socket errors
 * and the non-2xx responses that timeline.lua counted.
 *
 * @module
 */

import type { WrkErrors } from "./wrk.ts";

/** Failed requests, by kind. */
export interface RequestFailures {
  /** wrk's socket errors: failed connects, … */
  connect: number;
  /** … reads, … */
  read: number;
  /** … writes, … */
  write: number;
  /** … and requests that timed out. */
  timeout: number;
  /** Responses outside 200–299, counted in Lua. */
  non2xx: number;
}

/**
 * The failures of a run from wrk's error counts and the non-2xx responses
 * (wrk's own `status` count is left out: it counts only status ≥ 400).
 */
export function requestFailures(
  errors: WrkErrors,
  non2xx: number,
): RequestFailures {
  return {
    connect: errors.connect,
    read: errors.read,
    write: errors.write,
    timeout: errors.timeout,
    non2xx,
  };
}

/** How many requests failed in all. */
export function failureCount(failures: RequestFailures): number {
  return failures.connect + failures.read + failures.write +
    failures.timeout + failures.non2xx;
}
