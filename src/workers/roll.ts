/**
 * The rolling restart: worker by worker, ask the old worker for its app
 * state, start its replacement with that state, wait until it is ready, and
 * only then drain the old one (and wait for its exit: memory peaks at N+1
 * workers). There are never fewer than N ready workers. The first failure
 * stops the roll: the workers not yet replaced keep serving, and the failure
 * is reported (status file, systemd STATUS=, the trigger's promise).
 *
 * @module
 */

import type { RestartTrigger } from "../restart/handover_types.ts";
import { logger } from "../util/log.ts";
import { sdNotify } from "../systemd/notify.ts";
import type { WorkerProcess } from "./spawn_worker.ts";
import { announceRoll, type Pool } from "./pool.ts";
import { errorMessage } from "../util/error_message.ts";

const log = logger("workers");

/** How long an old worker may take to send its app state (ms). */
const SAVE_TIMEOUT_MS = 10_000;

/**
 * Rolls every worker to a new generation; rejects with the first failure.
 */
export async function rollWorkers(
  pool: Pool,
  trigger: RestartTrigger,
  options: RollOptions = {},
): Promise<void> {
  const at = Date.now();
  const previous = pool.generation;
  pool.generation = previous + 1;
  announceRoll(pool.generation);
  log.info("rolling restart ({trigger}) to generation {generation}", {
    trigger,
    generation: pool.generation,
  });
  const old = [...pool.workers].sort((a, b) =>
    Number(a === options.last) - Number(b === options.last) || a.slot - b.slot
  );
  try {
    // A new version may fix what made slots crash: they get a worker again.
    for (const slot of [...pool.givenUp]) {
      await pool.start(slot, trigger);
      pool.givenUp.delete(slot);
      pool.crashes.delete(slot);
    }
    for (const [index, worker] of old.entries()) {
      if (pool.stopping.signal.aborted) throw new Error("shutting down");
      if (!pool.workers.has(worker)) continue; // crashed meanwhile: replaced
      const app = await saveApp(worker);
      await pool.start(worker.slot, trigger, app);
      if (index === old.length - 1) succeeded(pool, trigger, at, options);
      await pool.retire(worker);
    }
    if (old.length === 0) succeeded(pool, trigger, at, options);
  } catch (error) {
    const reason = errorMessage(error);
    pool.generation = previous;
    pool.lastRoll = {
      ok: false,
      trigger,
      at,
      durationMs: Date.now() - at,
      reason,
    };
    log.error(
      "rolling restart failed, the old workers keep serving: {reason}",
      {
        reason,
      },
    );
    pool.publish(`rolling restart failed: ${reason}`);
    sdNotify("READY=1");
    options.settled?.(error as Error);
    throw error;
  }
  log.info("rolling restart to generation {generation} done", {
    generation: pool.generation,
  });
  pool.publish();
}

/** What {@linkcode rollWorkers} may be told. */
export interface RollOptions {
  /**
   * The worker to roll last (the one that asked: its answer goes out before
   * it is told to drain).
   */
  last?: WorkerProcess;
  /** Called with the outcome once it is known (before the last drain). */
  settled?: (error?: Error) => void;
}

/** Every replacement is ready: the roll has succeeded (the last drain follows). */
function succeeded(
  pool: Pool,
  trigger: RestartTrigger,
  at: number,
  options: RollOptions,
): void {
  pool.rolls++;
  pool.lastRoll = {
    ok: true,
    trigger,
    at,
    durationMs: Date.now() - at,
    pid: Deno.pid,
  };
  pool.publish();
  sdNotify("READY=1");
  options.settled?.();
}

/**
 * The old worker's app state (empty when it does not answer in time).
 */
export async function saveApp(
  worker: WorkerProcess,
): Promise<Record<string, unknown>> {
  if (!worker.peer) return worker.adoptedApp ?? {};
  // The worker's reader (./supervisor.ts) resolves `saved`.
  worker.saved = Promise.withResolvers();
  const timer = setTimeout(
    () => worker.saved?.reject(new Error(`no answer in ${SAVE_TIMEOUT_MS} ms`)),
    SAVE_TIMEOUT_MS,
  );
  try {
    await worker.peer.send({ type: "save" });
    return await worker.saved.promise;
  } catch (error) {
    log.warn("worker {slot} (pid {pid}) gave no app state: {error}", {
      slot: worker.slot,
      pid: worker.pid,
      error: errorMessage(error),
    });
    return {};
  } finally {
    clearTimeout(timer);
    worker.saved = undefined;
  }
}
