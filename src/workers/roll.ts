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

import type { RestartTrigger } from "../handover.ts";
import { logger } from "../log.ts";
import { sdNotify } from "../notify.ts";
import type { WorkerProcess } from "./spawn_worker.ts";
import { announceRoll, type Pool } from "./pool.ts";

const log = logger("workers");

/** How long an old worker may take to send its app state (ms). */
const SAVE_TIMEOUT_MS = 10_000;

/**
 * Rolls every worker to a new generation; rejects with the first failure.
 *
 * @example
 * ```ts ignore
 * await rollWorkers(pool, "signal");
 * ```
 */
export async function rollWorkers(
  pool: Pool,
  trigger: RestartTrigger,
): Promise<void> {
  const at = Date.now();
  const previous = pool.generation;
  pool.generation = previous + 1;
  announceRoll(pool.generation);
  log.info("rolling restart ({trigger}) to generation {generation}", {
    trigger,
    generation: pool.generation,
  });
  const old = [...pool.workers].sort((a, b) => a.slot - b.slot);
  try {
    for (const worker of old) {
      if (pool.stopping.signal.aborted) throw new Error("shutting down");
      if (!pool.workers.has(worker)) continue; // crashed meanwhile: replaced
      const app = await saveApp(worker);
      await pool.start(worker.slot, trigger, app);
      await pool.retire(worker);
    }
  } catch (error) {
    const reason = (error as Error).message;
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
    throw error;
  }
  pool.rolls++;
  pool.lastRoll = {
    ok: true,
    trigger,
    at,
    durationMs: Date.now() - at,
    pid: Deno.pid,
  };
  log.info("rolling restart to generation {generation} done", {
    generation: pool.generation,
  });
  pool.publish();
  sdNotify("READY=1");
}

/** The old worker's app state (empty when it does not answer in time). */
async function saveApp(
  worker: WorkerProcess,
): Promise<Record<string, unknown>> {
  try {
    await worker.peer.send({ type: "save" });
    const message = await worker.peer.receive(SAVE_TIMEOUT_MS);
    if (message.type === "saved") return message.app;
  } catch (error) {
    log.warn("worker {slot} (pid {pid}) gave no app state: {error}", {
      slot: worker.slot,
      pid: worker.pid,
      error: (error as Error).message,
    });
  }
  return {};
}
