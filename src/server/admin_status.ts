/**
 * What the admin status route reports: the process's view of itself, and
 * the JSON made from it.
 *
 * @module
 */

import type { LastRestart } from "../restart/handover_types.ts";

/** What the status route reports (the process's view of itself). */
export interface AdminStatus {
  /** This process's pid. */
  pid: number;
  /** This process's generation (the first process is 1). */
  generation: number;
  /** When this process started (ms since the epoch). */
  startedAt: number;
  /** When generation 1 started (ms since the epoch). */
  firstStartedAt: number;
  /** Restarts before this generation. */
  restarts: number;
  /** "serving", "spawning", "handshaking", "handing-over" or "exited". */
  phase: string;
  /** Where it listens, formatted (`127.0.0.1:8000`, `unix:/run/app.sock`). */
  listeners: string[];
  /** Requests whose response has not been completely sent yet. */
  inFlight: number;
  /** Open client connections. */
  connections: number;
  /** The outcome of the last restart this generation attempted. */
  lastRestart?: LastRestart;
  /** Under a supervisor (`--workers`): its workers, as it sees them. */
  workers?: unknown[];
}

/** The JSON of `GET {path}/status`. */
export interface AdminStatusBody {
  /** This process's pid. */
  pid: number;
  /** This process's generation. */
  generation: number;
  /** The restart state machine's phase. */
  phase: string;
  /** When this process started (ms since the epoch). */
  startedAt: number;
  /** When generation 1 started (ms since the epoch). */
  firstStartedAt: number;
  /** How long this process has run (ms). */
  uptimeMs: number;
  /** The server's clock when answering (ms since the epoch). */
  now: number;
  /** Restarts before this generation. */
  restarts: number;
  /** Where it listens. */
  listeners: string[];
  /** Requests in flight. */
  inFlight: number;
  /** Open client connections. */
  connections: number;
  /** The last restart this generation attempted, or null. */
  lastRestart: LastRestart | null;
  /** Under a supervisor: its workers (slot, pid, generation, phase, ...). */
  workers?: unknown[];
}

/** The status JSON: the listed fields only, plus the server's clock. */
export function statusBody(status: AdminStatus): AdminStatusBody {
  const now = Date.now();
  return {
    pid: status.pid,
    generation: status.generation,
    phase: status.phase,
    startedAt: status.startedAt,
    firstStartedAt: status.firstStartedAt,
    uptimeMs: Math.max(0, now - status.startedAt),
    now,
    restarts: status.restarts,
    listeners: [...status.listeners],
    inFlight: status.inFlight,
    connections: status.connections,
    lastRestart: status.lastRestart ?? null,
    ...(status.workers ? { workers: status.workers } : {}),
  };
}
