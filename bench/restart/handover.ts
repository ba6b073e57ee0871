/**
 * One restart, timed from outside: GET /pid, send the restart signal to that
 * pid, then GET /pid on a fresh connection every few ms until another pid
 * answers. The old pid is then watched until it has exited.
 *
 * @module
 */

import { getPid } from "../lib/http_get.ts";
import { isAlive } from "../lib/pids.ts";
import { epochNow, sleep } from "../lib/time.ts";

/** One restart, as the bench saw it. */
export interface HandoverRecord {
  /** 0-based. */
  index: number;
  signal: Deno.Signal;
  oldPid: number;
  /** null: no other pid answered in time (the restart is stuck or failed). */
  newPid: number | null;
  /** When the signal was sent (epoch ms, CLOCK_REALTIME). */
  signalAtMs: number;
  /** From the signal to the first GET /pid answered by another pid (ms); null: none did. */
  latencyMs: number | null;
  /** GET /pid probes sent after the signal. */
  probes: number;
  /** Probes that failed (socket error, timeout, bad answer), with why. */
  probeErrors: { sinceSignalMs: number; error: string }[];
  /** From the signal until the old pid had exited (ms); null: it had not within the watch. */
  oldExitMs: number | null;
  /** The server's own "new generation N ready (pid P) in M ms" figure. */
  serverReadyMs: number | null;
  /**
   * When the new generation logged its milestones, in ms after the signal
   * (from the log timestamps, ms resolution): joined the handover, listening,
   * ready.
   */
  phasesMs: {
    joined: number | null;
    listening: number | null;
    ready: number | null;
  };
}

/** How to restart. */
export interface RestartOptions {
  port: number;
  signal: Deno.Signal;
  /** Pause between probes (ms). */
  pollMs: number;
  /** One probe's timeout (ms). */
  probeTimeoutMs: number;
  /** Give up when no other pid answers within this (ms). */
  timeoutMs: number;
  /** How long to watch the old pid for its exit (ms). */
  exitWatchMs: number;
}

/** A restart whose handover is done, and the old pid's exit still to come. */
export interface PendingRestart {
  record: HandoverRecord;
  /** Resolves once the old pid has exited (and fills `record.oldExitMs`). */
  oldExit: Promise<void>;
}

/** No other pid answered in time; `record` says what was seen until then. */
export class HandoverTimeoutError extends Error {
  /** The restart so far (newPid and latencyMs null). */
  readonly record: HandoverRecord;

  constructor(message: string, record: HandoverRecord) {
    super(message);
    this.name = "HandoverTimeoutError";
    this.record = record;
  }
}

/**
 * Restarts the server on `options.port` once; resolves when another pid
 * answers. Throws when the current pid cannot be learned, or no other pid
 * answers within `options.timeoutMs`.
 */
export async function restartOnce(
  index: number,
  options: RestartOptions,
): Promise<PendingRestart> {
  const probeErrors: { sinceSignalMs: number; error: string }[] = [];
  const oldPid = await currentPid(options, probeErrors);
  const signalAtMs = epochNow();
  const t0 = performance.now();
  Deno.kill(oldPid, options.signal);
  let probes = 0;
  let newPid = oldPid;
  let latencyMs = 0;
  const record: HandoverRecord = {
    index,
    signal: options.signal,
    oldPid,
    newPid: null,
    signalAtMs,
    latencyMs: null,
    probes,
    probeErrors,
    oldExitMs: null,
    serverReadyMs: null,
    phasesMs: { joined: null, listening: null, ready: null },
  };
  while (true) {
    probes++;
    try {
      const pid = await getPid(options.port, options.probeTimeoutMs);
      if (pid !== oldPid) {
        latencyMs = performance.now() - t0;
        newPid = pid;
        break;
      }
    } catch (error) {
      probeErrors.push({
        sinceSignalMs: Math.round(performance.now() - t0),
        error: error instanceof Error ? error.message : String(error),
      });
    }
    if (performance.now() - t0 > options.timeoutMs) {
      throw new Error(
        `restart ${
          index + 1
        }: pid ${oldPid} still answers ${options.timeoutMs} ms after ${options.signal}`,
      );
    }
    await sleep(options.pollMs);
  }
  record.newPid = newPid;
  record.latencyMs = Math.round(latencyMs * 10) / 10;
  record.probes = probes;
  return { record, oldExit: watchExit(record, t0, options.exitWatchMs) };
}

async function currentPid(
  options: RestartOptions,
  probeErrors: { sinceSignalMs: number; error: string }[],
): Promise<number> {
  let lastError: unknown;
  for (let attempt = 0; attempt < 3; attempt++) {
    try {
      return await getPid(options.port, options.probeTimeoutMs);
    } catch (error) {
      lastError = error;
      probeErrors.push({
        sinceSignalMs: -1,
        error: `before the signal: ${
          error instanceof Error ? error.message : String(error)
        }`,
      });
      await sleep(options.pollMs);
    }
  }
  throw new Error(`GET /pid failed 3 times before the signal: ${lastError}`);
}

async function watchExit(
  record: HandoverRecord,
  t0: number,
  watchMs: number,
): Promise<void> {
  while (performance.now() - t0 < watchMs) {
    if (!isAlive(record.oldPid)) {
      record.oldExitMs = Math.round(performance.now() - t0);
      return;
    }
    await sleep(10);
  }
}
