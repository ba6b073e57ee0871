/**
 * What the supervisor tells about its workers: systemd's STATUS= line, the
 * pidfile's status file (read by `status` and `reload`), and the view every
 * worker's admin API answers with, so that whichever worker takes an admin
 * request, the answer is the supervisor's.
 *
 * @module
 */

import { sdNotify } from "../systemd/notify.ts";
import { type StatusFile, writePidfile } from "../restart/pidfile.ts";
import { logger } from "../util/log.ts";
import { ADMIN_SERVER_NAME } from "../listen/types.ts";
import { removeSocket } from "../server/admin_listener.ts";
import type { Pool, WorkerStatus } from "./pool.ts";

const log = logger("workers");

/** The status file writes in flight (writePidfile is asynchronous). */
let pidfileWrites: Promise<void> = Promise.resolve();

/**
 * Publishes the pool's state: STATUS= (with `extra` appended), the status
 * file when there is a pidfile, and the view each worker's admin answers.
 */
export function publishStatus(
  pool: Pool,
  startedAt: number,
  extra?: string,
): void {
  const line = statusLine(pool) + (extra ? `; ${extra}` : "");
  sdNotify(`STATUS=${line}`);
  if (pool.options.pidfile) {
    // In order, and all done before the pidfile is removed at the end.
    const pidfile = pool.options.pidfile;
    pidfileWrites = pidfileWrites.then(() => savePidfile(pool, pidfile));
  }
  const view = supervisorStatus(pool, startedAt);
  for (const worker of pool.workers) {
    worker.peer?.send({ type: "view", status: view }).catch(() => {});
  }
}

/** Resolves once every status file write published so far is done. */
export function pidfileWritten(): Promise<void> {
  return pidfileWrites;
}

/** "2/2 workers ready, generation 3". */
export function statusLine(pool: Pool): string {
  const ready = [...pool.workers].filter((w) => w.phase === "ready").length;
  const given = pool.givenUp.size > 0
    ? `, ${pool.givenUp.size} given up after crashes`
    : "";
  return `${ready}/${pool.options.workers} workers ready, generation ` +
    `${pool.generation}${given} (supervisor pid ${Deno.pid})`;
}

/**
 * The workers, for status pages.
 */
export function workerList(pool: Pool): WorkerStatus[] {
  return [...pool.workers].sort((a, b) => a.slot - b.slot).map((w) => ({
    slot: w.slot,
    pid: w.pid,
    generation: w.generation,
    startedAt: w.startedAt,
    phase: w.phase,
    inFlight: w.stats?.inFlight ?? 0,
    served: w.stats?.served ?? 0,
  }));
}

/** The supervisor's status, as a worker's admin API answers it. */
function supervisorStatus(
  pool: Pool,
  startedAt: number,
): Record<string, unknown> {
  const workers = workerList(pool);
  return {
    pid: Deno.pid,
    generation: pool.generation,
    phase: "supervising",
    startedAt,
    firstStartedAt: pool.firstStartedAt,
    restarts: pool.rolls,
    listeners: listenerAddrs(pool),
    inFlight: workers.reduce((n, w) => n + w.inFlight, 0),
    connections: 0,
    ...(pool.lastRoll ? { lastRestart: pool.lastRoll } : {}),
    workers,
    givenUp: [...pool.givenUp],
  };
}

async function savePidfile(pool: Pool, pidfile: string): Promise<void> {
  const status: StatusFile & {
    workers: WorkerStatus[];
    rolls: number;
    givenUp: number[];
  } = {
    pid: Deno.pid,
    generation: pool.generation,
    startedAt: pool.firstStartedAt,
    firstStartedAt: pool.firstStartedAt,
    restarts: pool.rolls,
    rolls: pool.rolls,
    listeners: listenerAddrs(pool),
    ...(adminAddr(pool) ? { admin: adminAddr(pool) } : {}),
    // What `reload` may send: the signals that roll the workers.
    restartSignals: [...pool.options.restartSignals],
    lastRestart: pool.lastRoll,
    workers: workerList(pool),
    givenUp: [...pool.givenUp],
  };
  await writePidfile(pidfile, status).catch((error) => {
    log.error("cannot write pidfile {pidfile}: {error}", { pidfile, error });
  });
}

/** A unix admin socket is bound under a temp name, then renamed into place. */
const TEMP_SUFFIX = /\.[0-9a-f]{16}\.bind$/;

function listenerAddrs(pool: Pool): string[] {
  return pool.listeners.map((l) => l.addr.replace(TEMP_SUFFIX, ""));
}

/** Where the workers' one admin endpoint listens, when it has its own. */
function adminAddr(pool: Pool): string | undefined {
  return pool.listeners.find((l) => l.name === ADMIN_SERVER_NAME)?.addr
    .replace(TEMP_SUFFIX, "");
}

/**
 * Removes the admin API's unix socket path, when the supervisor stops (no
 * worker removes it: each of them is only ever replaced).
 */
export function removeAdminSocket(pool: Pool): void {
  const addr = adminAddr(pool);
  if (!addr?.startsWith("unix:")) return;
  removeSocket(addr.slice("unix:".length));
}
