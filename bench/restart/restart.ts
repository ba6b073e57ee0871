/**
 * One restart of a system, timed from outside, the same way for every system:
 * GET /pid (new connection), trigger, then GET /pid on a new connection every
 * few ms until another pid answers (the handover latency), then wait for the
 * trigger command to end and the old pid to exit.
 *
 * @module
 */

import { round } from "../lib/stats.ts";
import { type Endpoint, getPid } from "../lib/http_get.ts";
import { isAlive } from "../lib/pids.ts";
import { epochNow, sleep } from "../lib/time.ts";
import { markSeen } from "./procs.ts";
import { type Steps, stepsOf } from "./steps.ts";
import type { SystemInstance } from "./systems.ts";

/** One restart, as the bench saw it. */
export interface RestartRecord {
  /** 0-based. */
  index: number;
  /** The trigger (epoch ms). */
  atMs: number;
  oldPid: number;
  /** null: no other pid answered in time. */
  newPid: number | null;
  /** Trigger → first GET /pid answered by another pid (ms). */
  handoverMs: number | null;
  /** Trigger → the trigger action was done (signal sent, command exited) (ms). */
  triggerMs: number | null;
  /** Trigger → the old pid had exited (ms); null: not within the watch. */
  oldExitMs: number | null;
  /** GET /pid probes sent after the trigger. */
  probes: number;
  /** Probes that failed, with when (ms after the trigger) and why. */
  probeErrors: { atMs: number; error: string }[];
  /** Where the time went, from what ours printed (steps.ts; empty for the peers). */
  steps: Steps;
  /** Why the restart failed, when it did. */
  error: string | null;
}

/** Timing of the restart probes. */
export interface RestartTiming {
  /** Pause between /pid probes (ms). */
  pollMs: number;
  probeTimeoutMs: number;
  /** Give up when no other pid answers within this (ms). */
  handoverTimeoutMs: number;
  /** How long to wait for the old pid to exit (ms). */
  exitTimeoutMs: number;
}

/** GET /pid, tried up to 3 times. */
export async function currentPid(
  endpoint: Endpoint,
  timing: RestartTiming,
): Promise<number> {
  let last: unknown;
  for (let attempt = 0; attempt < 3; attempt++) {
    try {
      return await getPid(endpoint, timing.probeTimeoutMs);
    } catch (error) {
      last = error;
      await sleep(timing.pollMs);
    }
  }
  throw new Error(`GET /pid failed 3 times: ${last}`);
}

/** Restarts `system` once and follows it to the end. */
export async function restartOnce(
  system: SystemInstance,
  index: number,
  timing: RestartTiming,
): Promise<RestartRecord> {
  const oldPid = await currentPid(system.endpoint, timing);
  markSeen(oldPid);
  const record: RestartRecord = {
    index,
    atMs: epochNow(),
    oldPid,
    newPid: null,
    handoverMs: null,
    triggerMs: null,
    oldExitMs: null,
    probes: 0,
    probeErrors: [],
    steps: {},
    error: null,
  };
  const t0 = performance.now();
  let triggerError: string | null = null;
  const triggered = system.trigger(oldPid).then(
    () => {
      record.triggerMs = round(performance.now() - t0);
    },
    (error) => {
      triggerError = error instanceof Error ? error.message : String(error);
    },
  );
  while (true) {
    record.probes++;
    try {
      const pid = await getPid(system.endpoint, timing.probeTimeoutMs);
      if (pid !== oldPid) {
        record.handoverMs = round(performance.now() - t0);
        record.newPid = pid;
        markSeen(pid);
        break;
      }
    } catch (error) {
      record.probeErrors.push({
        atMs: round(performance.now() - t0),
        error: error instanceof Error ? error.message : String(error),
      });
    }
    if (triggerError !== null) break;
    if (performance.now() - t0 > timing.handoverTimeoutMs) {
      record.error =
        `pid ${oldPid} still answers ${timing.handoverTimeoutMs} ms after the trigger`;
      break;
    }
    await sleep(timing.pollMs);
  }
  await triggered;
  if (triggerError !== null) record.error = `trigger failed: ${triggerError}`;
  while (performance.now() - t0 < timing.exitTimeoutMs) {
    if (!isAlive(oldPid)) {
      record.oldExitMs = round(performance.now() - t0);
      break;
    }
    await sleep(5);
  }
  if (record.oldExitMs === null && record.error === null) {
    record.error =
      `old pid ${oldPid} still runs ${timing.exitTimeoutMs} ms after the trigger`;
  }
  record.steps = stepsOf(system.output(), record.atMs, oldPid, record.newPid);
  return record;
}
