/**
 * The one owner of the process level's shared state: the servers of this
 * process, its generation, where its restart stands, and what it
 * advertises. The modules of the process level (generation, join,
 * readiness, shutdown, restart_seam) read and change it here; each keeps to
 * itself only what no other reads.
 *
 * @module
 */

import type { GenerationInfo, LastRestart } from "./handover_types.ts";
import type { Restarter } from "./handover.ts";
import type { ControlPeer } from "./control_peer.ts";
import { activeListeners } from "../listen/registry.ts";
import { ADMIN_SERVER_NAME } from "../server/admin_listener.ts";
import { formatAddr } from "../listen/address.ts";
import { removePidfile } from "./pidfile.ts";
import { isWorker } from "../workers/worker.ts";

/** What the process level needs of a server. */
export interface Supervised {
  /** The server's name (keys its handover state). */
  readonly name: string;
  /** Resolves when it serves (and its readiness hook passed). */
  readonly ready: Promise<void>;
  /** Resolves when it has shut down; rejects when it failed to start. */
  readonly finished: Promise<void>;
  /** Graceful shutdown (health turns 503 first, for `shutdownDelay`). */
  shutdown(): Promise<void>;
  /** Stop accepting and drain because the next generation took over. */
  drainForHandover(): Promise<void>;
  /** A complete restart: stop accepting and drain, keeping the server. */
  vacate?(): Promise<void>;
  /** Listen again after a failed complete restart. */
  reoccupy?(): Promise<void>;
  /** The app state to hand to the next generation, if any. */
  saveState?(): unknown | Promise<unknown>;
  /** The longest its drain may take (ms), for systemd's stop timeout. */
  readonly drainTimeout: number;
  /** What it serves, for status lines. */
  readonly addrs: readonly unknown[];
  /** Requests being served. */
  readonly inFlight: number;
  /** Open client connections. */
  readonly connections: number;
}

/** The process level's mutable state; see {@linkcode processState}. */
export interface ProcessState {
  /** This generation's facts. */
  info: GenerationInfo;
  /** The restart machine, once a restart was asked for. */
  restarter: Restarter | undefined;
  /** As a new generation: the channel to the previous one, until it is done. */
  peer: ControlPeer | undefined;
  /** Readiness was announced (to the previous generation or to systemd). */
  announced: boolean;
  /** Shutting down (or draining after a handover): no restart any more. */
  stopping: boolean;
  /** This process handed over to a new generation and drains. */
  handedOver: boolean;
  /** A server failed to start: this process drains and exits 1. */
  failing: boolean;
  /** Signals that drain every server and exit 0. */
  shutdownSignals: Set<Deno.Signal>;
  /** Signals that restart the process. */
  restartSignals: Set<Deno.Signal>;
  /** How long a new generation may take to become ready (ms). */
  startTimeout: number | undefined;
  /** The pidfile to write once ready. */
  pidfile: string | undefined;
  /** As a new generation: the restart that made it (for status pages). */
  madeBy: LastRestart | undefined;
  /** The admin token the next generation gets over the control channel. */
  carriedAdminToken: string | undefined;
  /** Where the admin API has a listener of its own, for the status file. */
  adminAddress: string | undefined;
}

/** Every server of this process. */
export const servers = new Set<Supervised>();

/** When this process started (ms since the epoch). */
export const started = Date.now();

/** The process level's state. */
export const processState: ProcessState = {
  info: {
    generation: 1,
    firstStartedAt: started,
    startedAt: started,
    restarts: 0,
  },
  restarter: undefined,
  peer: undefined,
  announced: false,
  stopping: false,
  handedOver: false,
  failing: false,
  shutdownSignals: new Set(),
  restartSignals: new Set(),
  startTimeout: undefined,
  pidfile: undefined,
  madeBy: undefined,
  carriedAdminToken: undefined,
  adminAddress: undefined,
};

/** Resolved when a handover is complete, just before this process exits. */
export const handoverEnded: PromiseWithResolvers<void> = Promise
  .withResolvers<void>();

/**
 * Totals over every server of this process, for status pages.
 */
export function processTotals(): {
  inFlight: number;
  connections: number;
  listeners: string[];
} {
  let inFlight = 0;
  let connections = 0;
  for (const server of servers) {
    inFlight += server.inFlight;
    connections += server.connections;
  }
  return { inFlight, connections, listeners: appListeners() };
}

/** Where the app listens (the admin API's own listener is not the app's). */
export function appListeners(): string[] {
  return activeListeners()
    .filter((l) => l.name !== ADMIN_SERVER_NAME)
    .map((l) => formatAddr(l.addr));
}

/** Every listening socket of this process: the fds a restart passes on. */
export function passedListeners(): {
  fd: number;
  name: string;
  addr: string;
}[] {
  return activeListeners().map((l) => ({
    fd: l.fd,
    name: l.name,
    addr: formatAddr(l.addr),
  }));
}

/**
 * How many servers this process runs (an APP.ts that is a main module has
 * started its own when the CLI imports it).
 */
export function serverCount(): number {
  return servers.size;
}

/** The STATUS= line for systemd. */
export function statusLine(): string {
  const count = [...servers].reduce((n, s) => n + s.addrs.length, 0);
  return `generation ${processState.info.generation} (pid ${Deno.pid}) serving ${count} socket(s)`;
}

/** The app state of every server, by name (the `handover.save()` hooks). */
export async function saveAppState(): Promise<Record<string, unknown>> {
  const app: Record<string, unknown> = {};
  for (const server of servers) {
    if (server.saveState) app[server.name] = await server.saveState();
  }
  return app;
}

/**
 * Releases what this process advertised (the pidfile, if it still names this
 * process). Idempotent; called before this process exits.
 */
export function releaseProcess(): void {
  if (processState.pidfile && !isWorker()) {
    removePidfile(processState.pidfile, Deno.pid);
  }
}
