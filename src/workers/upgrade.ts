/**
 * The supervisor's own code upgrade: on a roll asked by a signal (`reload`,
 * `systemctl reload`), the supervisor writes its own state to a private
 * file and replaces its program by execve(2) with the same command line: the
 * same pid (MAINPID and PID 1 do not change), the listening sockets and each
 * worker's control connection kept open (./channel.ts), the workers still
 * its children. The new image adopts the workers with their channels, then
 * rolls them, each replacement getting the app state its old worker gives
 * then. A worker whose channel cannot be kept has its app state collected
 * before the execve; it keeps serving (its parent is unchanged) until the
 * roll replaces it.
 *
 * A new supervisor image that cannot start ends the process, and with it
 * the workers (they drain once they see their parent change).
 *
 * @module
 */

import type { LastRestart, RestartTrigger } from "../restart/handover_types.ts";
import { GUARD_FD_ENV, inspectorGuardFd } from "../server/inspector_guard.ts";
import { logger } from "../util/log.ts";
import { currentCommand } from "../restart/command_line.ts";
import type { Pool } from "./pool.ts";
import type { WorkerProcess } from "./spawn_worker.ts";
import { execInPlace } from "../os/process.ts";
import { saveApp } from "./roll.ts";
import { channelFd } from "./channel.ts";
import { errorMessage } from "../util/error_message.ts";

const log = logger("workers");

/** Where the new image finds the old image's state (a file path). */
export const UPGRADE_ENV = "GRACEFUL_SUPERVISOR_STATE";

/** What a supervisor image hands to the next. */
export interface UpgradeState {
  generation: number;
  rolls: number;
  firstStartedAt: number;
  lastRoll?: LastRestart;
  givenUp: number[];
  listeners: { fd: number; name: string; addr: string }[];
  workers: {
    slot: number;
    pid: number;
    generation: number;
    startedAt: number;
    /** The fd of its control connection, kept open across the execve. */
    channel?: number;
    /** Its app state, when it has no channel to be asked through later. */
    app?: Record<string, unknown>;
  }[];
  trigger: RestartTrigger;
  /** The workers' admin token (GRACEFUL_ADMIN_TOKEN is read once). */
  adminToken?: string;
}

/**
 * Saves the state and execs the supervisor's program in place. Returns only
 * when that failed (it throws why; this image keeps supervising).
 */
export async function upgradeInPlace(
  pool: Pool,
  trigger: RestartTrigger,
): Promise<void> {
  // Only a worker whose channel cannot be kept is asked now: the others are
  // asked by the new image's roll, so that save() runs once per roll.
  const apps = new Map<WorkerProcess, Record<string, unknown>>();
  for (const worker of pool.workers) {
    if (keptChannel(worker) === undefined) {
      apps.set(worker, await saveApp(worker));
    }
  }
  const path = await Deno.makeTempFile({ prefix: "graceful-supervisor-" });
  // From here to the execve nothing awaits: each fd looked up stays the
  // connection it is (none is closed, and its number reused, meanwhile),
  // and a worker that exits is not reaped by this image (it stays a zombie,
  // which the new image reaps as the adopted worker it is), so every worker
  // handed over is still this process's child.
  const workers: UpgradeState["workers"] = [...pool.workers]
    .sort((a, b) => a.slot - b.slot).map((worker) => {
      const channel = keptChannel(worker);
      return {
        slot: worker.slot,
        pid: worker.pid,
        generation: worker.generation,
        startedAt: worker.startedAt,
        ...(channel === undefined
          ? { app: apps.get(worker) ?? {} }
          : { channel }),
      };
    });
  const state: UpgradeState = {
    generation: pool.generation,
    rolls: pool.rolls,
    firstStartedAt: pool.firstStartedAt,
    lastRoll: pool.lastRoll,
    givenUp: [...pool.givenUp],
    listeners: pool.listeners,
    workers,
    trigger,
    ...(pool.options.adminToken === undefined
      ? {}
      : { adminToken: pool.options.adminToken }),
  };
  Deno.writeTextFileSync(path, JSON.stringify(state), { mode: 0o600 });
  const { execPath, args } = currentCommand();
  log.info("upgrading the supervisor in place (execve, pid {pid})", {
    pid: Deno.pid,
  });
  // The inspector guard stays held across the execve: the new image adopts
  // it (GRACEFUL_INSPECTOR_FD) before it could open the inspector.
  const guard = inspectorGuardFd();
  try {
    execInPlace(
      [execPath, ...args],
      {
        ...Deno.env.toObject(),
        [UPGRADE_ENV]: path,
        ...(guard === undefined ? {} : { [GUARD_FD_ENV]: String(guard) }),
      },
      [
        ...pool.listeners.map((l) => l.fd),
        ...workers.flatMap((w) => w.channel === undefined ? [] : [w.channel]),
        ...(guard === undefined ? [] : [guard]),
      ],
    );
  } catch (error) {
    await Deno.remove(path).catch(() => {});
    throw error;
  }
}

/** The fd of `worker`'s control connection, when it can be kept. */
function keptChannel(worker: WorkerProcess): number | undefined {
  return worker.peer === undefined ? undefined : channelFd(worker.peer);
}

/**
 * In a new supervisor image: the state the previous image left (read once;
 * the file and the variable are removed), or undefined.
 */
export function takeUpgradeState(): UpgradeState | undefined {
  const path = Deno.env.get(UPGRADE_ENV);
  if (!path) return undefined;
  Deno.env.delete(UPGRADE_ENV);
  try {
    return JSON.parse(Deno.readTextFileSync(path));
  } catch (error) {
    throw new Error(
      `${UPGRADE_ENV}=${path}: cannot read the previous supervisor's state: ` +
        errorMessage(error),
    );
  } finally {
    try {
      Deno.removeSync(path);
    } catch {
      // gone already
    }
  }
}
