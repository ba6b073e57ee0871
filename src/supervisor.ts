/**
 * The process level: every server in this process, its generation, restarts
 * and shutdown. A restart hands over all servers of the process at once; a
 * shutdown signal drains all of them and exits 0.
 *
 * As a new generation, the process first joins the handover (control channel
 * hello, then the state), and says ready once every inherited socket is
 * served, every server is ready, and every readiness hook has passed.
 *
 * @module
 */

import {
  type GenerationInfo,
  type HandoverSeam,
  type HandoverState,
  type LastRestart,
  Restarter,
  type RestartOptions,
  type RestartResult,
} from "./handover.ts";
import {
  connectControl,
  type ControlPeer,
  openControlServer,
} from "./control.ts";
import { buildCommand, currentCommand, spawnGeneration } from "./spawn.ts";
import { activeListeners, unclaimedInheritedFds } from "./listeners.ts";
import { formatAddr } from "./address.ts";
import {
  DEFAULT_RESTART_SIGNALS,
  DEFAULT_SHUTDOWN_SIGNALS,
  wireSignals,
} from "./signals.ts";
import { logger } from "./log.ts";

const log = logger("supervisor");

/** What the supervisor needs of a server. */
export interface Supervised {
  /** The server's name (keys its handover state). */
  readonly name: string;
  /** Resolves when it serves (and its readiness hook passed). */
  readonly ready: Promise<void>;
  /** Graceful shutdown. */
  shutdown(): Promise<void>;
  /** The app state to hand to the next generation, if any. */
  saveState?(): unknown | Promise<unknown>;
}

/** Process-level options, given through any server's options. */
export interface ProcessOptions {
  /** Signals that drain every server and exit 0; `false`: none. */
  shutdownSignals?: Deno.Signal[] | false;
  /** Signals that restart the process; `false`: none. Default SIGUSR1. */
  restartSignals?: Deno.Signal[] | false;
  /** How long a new generation may take to become ready (ms). Default 30000. */
  startTimeout?: number;
}

/** Facts for status pages and logs. */
export interface ProcessStatus extends GenerationInfo {
  pid: number;
  phase: string;
  lastRestart?: LastRestart;
}

const servers = new Set<Supervised>();
const started = Date.now();
let info: GenerationInfo = {
  generation: 1,
  firstStartedAt: started,
  startedAt: started,
  restarts: 0,
};
let restarter: Restarter | undefined;
let joined: Promise<HandoverState | undefined> | undefined;
let peer: ControlPeer | undefined;
let announced = false;
let stopping = false;
let shutdownSignals = new Set<Deno.Signal>();
let restartSignals = new Set<Deno.Signal>();
let startTimeout: number | undefined;

/**
 * As a new generation: joins the handover once (hello, then receives the
 * state). Resolves to undefined in a first generation.
 *
 * @example
 * ```ts ignore
 * const state = await joinGeneration();
 * if (state) restore(state.app["http"]);
 * ```
 */
export function joinGeneration(): Promise<HandoverState | undefined> {
  joined ??= join();
  return joined;
}

async function join(): Promise<HandoverState | undefined> {
  const channel = await connectControl();
  if (!channel) return undefined;
  peer = channel;
  const message = await channel.receive(60_000);
  if (message.type !== "state") {
    channel.close();
    throw new Error(`control channel: expected state, got ${message.type}`);
  }
  const state = message.state as HandoverState;
  info = {
    generation: state.generation,
    firstStartedAt: state.firstStartedAt,
    startedAt: started,
    restarts: state.restarts,
  };
  log.info("generation {generation} (pid {pid}) joined the handover", {
    generation: info.generation,
    pid: Deno.pid,
  });
  return state;
}

/**
 * Adds a server to the process. Returns the function that removes it.
 *
 * @example
 * ```ts ignore
 * const unregister = registerServer(server, { restartSignals: ["SIGUSR2"] });
 * ```
 */
export function registerServer(
  server: Supervised,
  options: ProcessOptions,
): () => void {
  servers.add(server);
  if (options.startTimeout !== undefined) startTimeout = options.startTimeout;
  restarter?.setTimeouts({ startTimeout });
  const shutdown = options.shutdownSignals === false
    ? []
    : options.shutdownSignals ?? DEFAULT_SHUTDOWN_SIGNALS;
  const restart = options.restartSignals === false
    ? []
    : options.restartSignals ?? DEFAULT_RESTART_SIGNALS;
  shutdownSignals = new Set([...shutdownSignals, ...shutdown]);
  restartSignals = new Set([...restartSignals, ...restart]);
  rewire();
  server.ready.then(() => checkReady(), (error) => reportStartFailure(error));
  return () => {
    servers.delete(server);
    if (servers.size === 0 && !stopping) {
      shutdownSignals.clear();
      restartSignals.clear();
      rewire();
    }
  };
}

function rewire(): void {
  wireSignals([...shutdownSignals], [...restartSignals], {
    shutdown: onShutdownSignal,
    restart: onRestartSignal,
  });
}

/** As a new generation: says ready once everything inherited is served. */
async function checkReady(): Promise<void> {
  if (!peer || announced) return;
  if (unclaimedInheritedFds().length > 0) return;
  for (const server of servers) {
    try {
      await server.ready;
    } catch {
      return;
    }
  }
  if (announced || unclaimedInheritedFds().length > 0) return;
  announced = true;
  await peer.send({ type: "ready", pid: Deno.pid });
  log.info("generation {generation} (pid {pid}) is ready", {
    generation: info.generation,
    pid: Deno.pid,
  });
  followOldGeneration(peer);
}

async function followOldGeneration(channel: ControlPeer): Promise<void> {
  try {
    while (true) {
      const message = await channel.receive(24 * 3600_000);
      if (message.type === "draining") {
        log.info("the previous generation stopped accepting and drains");
      } else if (message.type === "done") {
        log.info("the previous generation has drained");
        break;
      }
    }
  } catch {
    // the old generation is gone: nothing more to learn
  } finally {
    channel.close();
    peer = undefined;
  }
}

function reportStartFailure(error: unknown): void {
  const reason = error instanceof Error ? error.message : String(error);
  if (peer && !announced) {
    peer.send({ type: "fail", reason }).catch(() => {});
  }
}

function onShutdownSignal(signal: Deno.Signal): void {
  if (stopping) {
    log.warn("{signal} again while draining: exiting now", { signal });
    Deno.exit(1);
  }
  stopping = true;
  log.info("{signal}: shutting down {count} server(s) gracefully", {
    signal,
    count: servers.size,
  });
  shutdownAll("by " + signal).then(() => Deno.exit(0));
}

function onRestartSignal(signal: Deno.Signal): void {
  if (stopping) {
    log.warn("{signal} ignored: shutting down", { signal });
    return;
  }
  restartProcess({ trigger: "signal" }).catch(() => {
    // the restarter logged why; this generation keeps serving
  });
}

/**
 * Drains every server of this process, cancelling a restart in progress first.
 *
 * @example
 * ```ts ignore
 * await shutdownAll("by request");
 * ```
 */
export async function shutdownAll(why: string): Promise<void> {
  stopping = true;
  await restarter?.cancel(`cancelled: shutting down ${why}`);
  await Promise.allSettled([...servers].map((server) => server.shutdown()));
}

/**
 * Restarts the whole process: resolves when the new generation serves;
 * rejects, with the reason, when it did not (this one keeps serving).
 *
 * @example
 * ```ts ignore
 * const { pid, generation } = await restartProcess({ trigger: "api" });
 * ```
 */
export function restartProcess(
  options: RestartOptions = {},
): Promise<RestartResult> {
  restarter ??= new Restarter(realSeam(), info, { startTimeout });
  return restarter.restart(options);
}

/**
 * This process's generation, phase and last restart.
 *
 * @example
 * ```ts ignore
 * console.log(processStatus().generation);
 * ```
 */
export function processStatus(): ProcessStatus {
  return {
    ...info,
    pid: Deno.pid,
    phase: restarter?.phase ?? "serving",
    lastRestart: restarter?.lastRestart,
  };
}

function realSeam(): HandoverSeam {
  const restartLog = logger("handover");
  return {
    openControl() {
      return openControlServer({
        onReject(reason: string) {
          restartLog.warn("control channel: refused a connection: {reason}", {
            reason,
          });
        },
      });
    },
    listeners() {
      return activeListeners().map((l) => ({
        fd: l.fd,
        name: l.name,
        addr: formatAddr(l.addr),
      }));
    },
    spawn(fds, env, options) {
      const command = buildCommand(currentCommand(), {
        execPath: options.execPath,
        entry: options.entry,
      });
      return spawnGeneration({ ...command, fds, env });
    },
    async saveAppState() {
      const app: Record<string, unknown> = {};
      for (const server of servers) {
        if (server.saveState) app[server.name] = await server.saveState();
      }
      return app;
    },
    async committed() {
      // systemd: MAINPID= goes here (the systemd issue).
    },
    async drain() {
      stopping = true;
      await Promise.allSettled([...servers].map((server) => server.shutdown()));
    },
    exit(code) {
      Deno.exit(code);
    },
    log(level, message) {
      const extra = { pid: Deno.pid, generation: info.generation };
      if (level === "info") restartLog.info(message, extra);
      else if (level === "warn") restartLog.warn(message, extra);
      else restartLog.error(message, extra);
    },
  };
}
