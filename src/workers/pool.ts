/**
 * The supervisor's state, shared by ./supervisor.ts and ./roll.ts.
 *
 * @module
 */

import type { LastRestart, RestartTrigger } from "../restart/handover_types.ts";
import { monotonicUsec, sdNotify } from "../systemd/notify.ts";
import type { Reaper } from "./reaper.ts";
import type { WorkerProcess } from "./spawn_worker.ts";

/** Options of `runSupervisor` (./supervisor.ts). */
export interface SupervisorOptions {
  /** How many workers. */
  workers: number;
  /** Signals that roll the workers. Default SIGUSR1. */
  restartSignals: Deno.Signal[];
  /**
   * The admin token each worker gets in its handover state (never in its
   * command line: `--admin-token` is stripped from the workers').
   */
  adminToken?: string;
  /** Whether the workers serve the admin API (`--admin`). */
  admin?: boolean;
  /** How long a worker may take to be ready (ms). Default 30000. */
  startTimeout?: number;
  /** The workers' drain timeout (ms), for the stop deadline. Default 30000. */
  drainTimeout?: number;
  /** Write this pidfile (and its status file) with the supervisor's pid. */
  pidfile?: string;
  /** Crashes of one slot within `crashWindowMs` before it is given up. Default 5. */
  crashLimit?: number;
  /** Default 60000. */
  crashWindowMs?: number;
  /**
   * Called once every worker is ready, with the roll trigger (for --watch);
   * what it returns is closed when the supervisor stops.
   */
  onReady?: (
    roll: (trigger: RestartTrigger) => Promise<void>,
  ) => Promise<{ close(): void }>;
}

/** One worker as the status lists it. */
export interface WorkerStatus {
  slot: number;
  pid: number;
  generation: number;
  startedAt: number;
  phase: string;
  /** Requests being served (as of its last report, at most 1 s old). */
  inFlight: number;
  /** Requests it has served. */
  served: number;
}

/** The supervisor's state. */
export interface Pool {
  readonly options: SupervisorOptions;
  readonly reaper: Reaper;
  /** The shared sockets, in order, with their names and addresses. */
  listeners: { fd: number; name: string; addr: string }[];
  /** Running workers by slot (a slot may have two during its roll step). */
  workers: Set<WorkerProcess>;
  /** The generation new workers get. */
  generation: number;
  /** Rolls that completed. */
  rolls: number;
  readonly firstStartedAt: number;
  lastRoll?: LastRestart;
  /** Slots given up after too many crashes. */
  givenUp: Set<number>;
  /** Recent crash times by slot. */
  crashes: Map<number, number[]>;
  /** Called when no worker is left and none will be replaced. */
  allGone(): void;
  stopping: AbortController;
  /** Starts a worker for `slot` with `app` state; resolves once ready. */
  start(
    slot: number,
    trigger: RestartTrigger,
    app?: Record<string, unknown>,
  ): Promise<WorkerProcess>;
  /** Tells a worker to drain and exit; resolves once it has. */
  retire(worker: WorkerProcess): Promise<void>;
  /** Rolls every worker (set by the supervisor). */
  roll(
    trigger: RestartTrigger,
    options?: {
      last?: WorkerProcess;
      settled?: (error?: Error) => void;
    },
  ): Promise<void>;
  /** Writes the status (pidfile) and systemd's STATUS=. */
  publish(extra?: string): void;
}

/**
 * RELOADING=1 for systemd at the start of a roll.
 */
export function announceRoll(generation: number): void {
  sdNotify(
    `RELOADING=1\nMONOTONIC_USEC=${monotonicUsec()}\n` +
      `STATUS=rolling restart to generation ${generation}`,
  );
}
