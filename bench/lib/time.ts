/**
 * Waiting, and the wall clock the benches share with wrk's Lua timeline.
 *
 * @module
 */

/**
 * The time as epoch ms with sub-ms resolution (CLOCK_REALTIME based: the
 * clock of `Date.now()` and of `bench/lib/timeline.lua`).
 */
export function epochNow(): number {
  return performance.timeOrigin + performance.now();
}

/** Resolves after `ms` milliseconds (at once when `ms` ≤ 0). */
export function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, Math.max(0, ms)));
}

/** Blocks the thread for `ms` (for synchronous clean-up paths). */
export function sleepSync(ms: number): void {
  Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, ms);
}

/**
 * Resolves true once `check()` holds (polled every `everyMs`), or false when
 * it still does not after `timeoutMs`.
 */
export async function waitUntil(
  check: () => boolean,
  timeoutMs: number,
  everyMs: number,
): Promise<boolean> {
  const deadline = performance.now() + timeoutMs;
  while (!check()) {
    if (performance.now() >= deadline) return false;
    await sleep(everyMs);
  }
  return true;
}
