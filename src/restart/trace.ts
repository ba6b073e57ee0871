/**
 * An opt-in timeline of start-ups and restarts, for finding where a handover
 * spends its time: with `GRACEFUL_TRACE=1` in the environment, every step
 * writes one line to stderr,
 *
 *   graceful-trace pid=1234 t=1732260000123.456 restart signal
 *
 * where `t` is wall-clock ms (`performance.timeOrigin + performance.now()`),
 * comparable between the old and the new generation. Off by default, and
 * then a call costs one boolean test.
 *
 * @module
 */

/** The environment variable that turns the timeline on. */
export const TRACE_ENV = "GRACEFUL_TRACE";

const enabled = readEnabled();
const encoder = new TextEncoder();

if (enabled) {
  // The first of this program's modules to run: how long after the runtime
  // came up (timeOrigin) the module graph started evaluating.
  writeLine(performance.timeOrigin, "runtime up (timeOrigin)");
  trace("first module evaluated");
}

function readEnabled(): boolean {
  try {
    return /^(1|true|yes)$/i.test(Deno.env.get(TRACE_ENV) ?? "");
  } catch {
    return false; // no --allow-env: no timeline
  }
}

/**
 * Writes one timeline line for `event` to stderr when `GRACEFUL_TRACE=1`.
 */
export function trace(event: string): void {
  if (!enabled) return;
  writeLine(performance.timeOrigin + performance.now(), event);
}

function writeLine(at: number, event: string): void {
  const line = `graceful-trace pid=${Deno.pid} t=${at.toFixed(3)} ${event}\n`;
  try {
    Deno.stderr.writeSync(encoder.encode(line));
  } catch {
    // stderr closed: nothing to report to
  }
}

/**
 * Whether the timeline is on (`GRACEFUL_TRACE=1`).
 */
export function tracing(): boolean {
  return enabled;
}
