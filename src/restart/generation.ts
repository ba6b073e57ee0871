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
  RestartError,
  type RestartOptions,
  type RestartResult,
} from "./handover_types.ts";
import { Restarter } from "./handover.ts";
import { connectControl } from "./control_connect.ts";
import type { ControlPeer } from "./control_peer.ts";
import { openControlServer } from "./control_server.ts";
import { socketOwnedBy } from "./socket_owner.ts";
import { activeListeners, unclaimedInheritedFds } from "../listen/registry.ts";
import { fdStoreEnabled, removeUnclaimed } from "../systemd/fd_store.ts";
import { ADMIN_SERVER_NAME } from "../server/admin_listener.ts";
import { formatAddr } from "../listen/address.ts";
import { resolveSignals, signalFacts, wireSignals } from "./signals.ts";
import {
  inspectorGuardFd,
  startInspectorGuard,
} from "../server/inspector_guard.ts";
import { logger, print } from "../util/log.ts";
import {
  monotonicUsec,
  notifying,
  sdNotify,
  watchdogIntervalMs,
} from "../systemd/notify.ts";
import { recordRestart, removePidfile, writePidfile } from "./pidfile.ts";
import { trace } from "./trace.ts";
import { isLinuxMode, portableSignals } from "../os/platform.ts";
import { completeRestarts } from "./complete_restart.ts";
import {
  keepForeground,
  keepsForeground,
  passStop,
} from "../cli/watch_keeper.ts";
import {
  askSupervisorToRoll,
  followSupervisor,
  isWorker,
  requestRoll,
  supervisorSweepsStore,
} from "../workers/worker.ts";
import { errorMessage } from "../util/error_message.ts";

const log = logger("supervisor");

/** What the supervisor needs of a server. */
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

/** Process-level options, given through any server's options. */
export interface ProcessOptions {
  /** Signals that drain every server and exit 0; `false`: none. */
  shutdownSignals?: Deno.Signal[] | false;
  /**
   * Signals that restart the process; `false`: none. Default SIGUSR2,
   * SIGUSR1, and SIGHUP without a controlling terminal.
   */
  restartSignals?: Deno.Signal[] | false;
  /**
   * Hold 127.0.0.1:9229, so that a SIGUSR1 cannot open Deno's V8 inspector
   * there. Default true; `false` for debugging (then SIGUSR1 opens it).
   */
  inspectorGuard?: boolean;
  /** How long a new generation may take to become ready (ms). Default 30000. */
  startTimeout?: number;
  /**
   * Write this pidfile (and `<pidfile>.json`, the status) once ready; every
   * generation rewrites it, and it is removed on shutdown.
   */
  pidfile?: string;
}

/**
 * Totals over every server of this process, for status pages.
 *
 * @example
 * ```ts ignore
 * const { inFlight, listeners } = processTotals();
 * ```
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
function appListeners(): string[] {
  return activeListeners()
    .filter((l) => l.name !== ADMIN_SERVER_NAME)
    .map((l) => formatAddr(l.addr));
}

/**
 * How many servers this process runs (an APP.ts that is a main module has
 * started its own when the CLI imports it).
 *
 * @example
 * ```ts ignore
 * if (serverCount() > 0) console.log("the app serves by itself");
 * ```
 */
export function serverCount(): number {
  return servers.size;
}

/**
 * Drains every server, releases the pidfile and exits 0: a stop that was not
 * asked for by a signal (the admin API).
 *
 * @example
 * ```ts ignore
 * stopProcess("by the admin API");
 * ```
 */
export function stopProcess(why: string): void {
  if (stopping) return;
  log.info("shutting down {count} server(s) gracefully ({why})", {
    count: servers.size,
    why,
  });
  shutdownAll(why).then(() => {
    releaseProcess();
    Deno.exit(0);
  });
}

/** Facts for status pages and logs. */
export interface ProcessStatus extends GenerationInfo {
  /** This process's pid. */
  pid: number;
  /** "serving", "spawning", "handshaking", "handing-over" or "exited". */
  phase: string;
  /** The outcome of the last restart this generation attempted. */
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
let helloWritten: Promise<void> | undefined;
let peer: ControlPeer | undefined;
let announced = false;
let stopping = false;
/** This process handed over to a new generation and drains. */
let handedOver = false;
let shutdownSignals = new Set<Deno.Signal>();
let restartSignals = new Set<Deno.Signal>();
let startTimeout: number | undefined;
let pidfile: string | undefined;
/** As a new generation: the restart that made it (for status pages). */
let madeBy: LastRestart | undefined;
/** The admin token the next generation gets over the control channel. */
let carriedAdminToken: string | undefined;
/** Where the admin API has a listener of its own, for the status file. */
let adminAddress: string | undefined;

/**
 * Records where the admin API listens apart from the app (for the status
 * file and `status`).
 *
 * @example
 * ```ts ignore
 * advertiseAdmin("unix:/run/user/1000/serve-graceful/admin-1234.sock");
 * ```
 */
export function advertiseAdmin(address: string): void {
  adminAddress = address;
}

/**
 * Hands `token` to every later generation over the control channel (in the
 * state), so that it never has to be in their command line; the CLI, which
 * strips `--admin-token` from the next command line, carries its token.
 *
 * @example
 * ```ts ignore
 * carryAdminToken(token);
 * const next = (await joinGeneration())?.adminToken;
 * ```
 */
export function carryAdminToken(token: string | undefined): void {
  carriedAdminToken = token;
}

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
  if (joined === undefined) {
    trace("join: connecting to the control channel");
    const connecting = connectControl();
    helloWritten = connecting.then(() => {}, () => {});
    joined = join(connecting);
  }
  return joined;
}

/**
 * Starts {@linkcode joinGeneration} if needed, and resolves once the hello is
 * written to the previous generation (at once in a first generation; also
 * when connecting failed, which `joinGeneration()` reports). The previous
 * generation checks the hello and collects the state meanwhile, so a new
 * generation should let the hello out before it blocks its event loop
 * (loading modules, say).
 *
 * @example
 * ```ts ignore
 * const state = joinGeneration();
 * await helloSent();
 * await import("./heavy.ts");
 * restore(await state);
 * ```
 */
export function helloSent(): Promise<void> {
  joinGeneration().catch(() => {});
  return helloWritten ?? Promise.resolve();
}

async function join(
  connecting: ReturnType<typeof connectControl>,
): Promise<HandoverState | undefined> {
  const channel = await connecting;
  if (!channel) return undefined;
  trace("join: hello sent");
  peer = channel;
  const message = await channel.receive(60_000);
  trace("join: state received");
  if (message.type !== "state") {
    channel.close();
    throw new Error(`control channel: expected state, got ${message.type}`);
  }
  const state = message.state as HandoverState;
  madeBy = {
    ok: true,
    trigger: state.restart?.trigger ?? "api",
    at: state.restart?.at ?? started,
    durationMs: Date.now() - (state.restart?.at ?? started),
    pid: Deno.pid,
  };
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
  if (options.pidfile !== undefined) pidfile = options.pidfile;
  restarter?.setTimeouts({ startTimeout });
  startInspectorGuard(options.inspectorGuard !== false);
  const { shutdown, restart } = portableSignals(resolveSignals(options));
  shutdownSignals = new Set([...shutdownSignals, ...shutdown]);
  restartSignals = new Set([...restartSignals, ...restart]);
  rewire();
  finishedOf.add(server.finished);
  watchUnhandledStartFailures();
  server.ready.then(() => checkReady(), (error) => onStartFailure(error));
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

/**
 * Says ready once everything inherited is served and every server is ready:
 * to the old generation when there is one (systemd hears READY=1 once the old
 * one has passed on MAINPID=), else straight to systemd.
 */
async function checkReady(): Promise<void> {
  if (announced) return;
  if (waitingForInherited()) return;
  for (const server of servers) {
    try {
      await server.ready;
    } catch {
      return;
    }
  }
  if (announced || waitingForInherited()) return;
  announced = true;
  if (!peer) removeUnclaimed(unclaimedInheritedFds(), activeListeners());
  startWatchdog();
  warmUpRestart();
  // Before the old generation hears "ready": it removes the pidfile on its
  // way out while the file still names it.
  await savePidfile();
  if (peer) {
    if (madeBy) madeBy.durationMs = Date.now() - madeBy.at;
    trace("ready: sending");
    // A worker names its sockets: a supervisor given none takes them.
    await peer.send(
      isWorker()
        ? { type: "ready", pid: Deno.pid, listeners: realSeam().listeners() }
        : { type: "ready", pid: Deno.pid },
    );
    trace("ready: sent");
    log.info("generation {generation} (pid {pid}) is ready", {
      generation: info.generation,
      pid: Deno.pid,
    });
    if (isWorker()) {
      followSupervisor(peer, {
        saveApp: saveAppState,
        inFlight: () => processTotals().inFlight,
        orphaned: () => stopProcess("the supervisor is gone"),
      });
    } else followOldGeneration(peer);
  } else {
    sdNotify(`READY=1\nSTATUS=${statusLine()}`);
  }
}

/**
 * Whether readiness waits for inherited sockets that no server claimed yet.
 * Not in a first generation with systemd's fd store on: sockets stored for
 * a server that is gone would hold it back forever (and the store keeps
 * them across every Restart=); they are removed from the store instead.
 */
function waitingForInherited(): boolean {
  if (unclaimedInheritedFds().length === 0) return false;
  if (supervisorSweepsStore()) return false;
  return peer !== undefined || !fdStoreEnabled();
}

function savePidfile(): Promise<void> {
  // A worker's supervisor writes it.
  if (!pidfile || isWorker()) return Promise.resolve();
  const path = pidfile;
  return writePidfile(path, {
    pid: Deno.pid,
    generation: info.generation,
    startedAt: info.startedAt,
    firstStartedAt: info.firstStartedAt,
    restarts: info.restarts,
    listeners: appListeners(),
    // What `reload` may send: only signals this process restarts on.
    restartSignals: [...restartSignals],
    ...(adminAddress === undefined ? {} : { admin: adminAddress }),
  }).catch((error) => {
    log.error("cannot write pidfile {pidfile}: {error}", {
      pidfile: path,
      error,
    });
  });
}

const handoverEnded = Promise.withResolvers<void>();

/**
 * Resolves at once unless this generation is handing over; then when the
 * handover is complete (just before the process exits). After a failed start
 * it never resolves: the process exits 1 once every server has drained.
 *
 * @example
 * ```ts ignore
 * await server.finished;
 * await afterHandover();
 * ```
 */
export function afterHandover(): Promise<void> {
  if (restarter?.phase === "handing-over") return handoverEnded.promise;
  // A failed start ends the process itself (exit 1) once all servers drained.
  if (failing) return new Promise(() => {});
  return Promise.resolve();
}

/**
 * Releases what this process advertised (the pidfile, if it still names this
 * process). Idempotent; called before this process exits.
 *
 * @example
 * ```ts ignore
 * await server.finished;
 * releaseProcess();
 * ```
 */
export function releaseProcess(): void {
  if (pidfile && !isWorker()) removePidfile(pidfile, Deno.pid);
}

function statusLine(): string {
  const count = [...servers].reduce((n, s) => n + s.addrs.length, 0);
  return `generation ${info.generation} (pid ${Deno.pid}) serving ${count} socket(s)`;
}

let watchdog: ReturnType<typeof setInterval> | undefined;

function startWatchdog(): void {
  const ms = watchdogIntervalMs();
  if (ms === undefined || watchdog !== undefined) return;
  watchdog = setInterval(() => sdNotify("WATCHDOG=1"), Math.max(ms / 2, 10));
  Deno.unrefTimer(watchdog as unknown as number);
}

async function followOldGeneration(channel: ControlPeer): Promise<void> {
  try {
    while (true) {
      const message = await channel.receive(24 * 3600_000);
      if (message.type === "draining") {
        trace("the previous generation drains");
        // The old generation has told systemd MAINPID=<this pid>.
        sdNotify(`READY=1\nSTATUS=${statusLine()}`);
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

/**
 * Every server stops accepting and drains at once (no shutdown delay): after
 * a handover, or a failed start.
 */
async function drainAllNow(): Promise<void> {
  await Promise.allSettled(
    [...servers].map((server) => server.drainForHandover()),
  );
}

/** The `finished` promises of this process's servers. */
const finishedOf = new WeakSet<Promise<unknown>>();
let watchingRejections = false;
let failing = false;

/**
 * A server that failed to start rejects its `finished`. Nobody may be
 * awaiting it: rather than let Deno end the process at once (and with it
 * every request the other servers, or the failed one, had accepted), the
 * failure then ends this process gracefully, as {@linkcode failStart} says.
 */
function watchUnhandledStartFailures(): void {
  if (watchingRejections) return;
  watchingRejections = true;
  globalThis.addEventListener("unhandledrejection", (event) => {
    if (!finishedOf.has(event.promise)) return;
    event.preventDefault();
    failStart(event.reason);
  });
}

/**
 * A server did not start. A new generation cannot become ready without it:
 * it fails the handover, whether or not the app handles the error.
 */
function onStartFailure(error: unknown): void {
  if (peer && !announced) failStart(error);
}

/**
 * Ends this process after a failed start: every server drains what it had
 * accepted (on shared sockets a new generation may have taken requests
 * already), the old generation hears why (it keeps serving), and the
 * process exits 1.
 */
function failStart(error: unknown): void {
  if (failing) return;
  failing = true;
  stopping = true;
  const reason = errorMessage(error);
  log.error("failed to start: {reason}", { reason });
  // (stderr may be gone, a closed terminal: the exit code still says it)
  if (!peer) print(console.error, "error:", error);
  // The old generation hears it first (it waits for this process to exit),
  // then every server drains what it had accepted.
  const told = peer && !announced
    ? peer.send({ type: "fail", reason }).catch(() => {})
    : Promise.resolve();
  told
    .then(drainAllNow)
    .then(() => {
      releaseProcess();
      Deno.exit(1);
    });
}

function onShutdownSignal(signal: Deno.Signal): void {
  if (handedOver && keepsForeground()) {
    // Ctrl-C in the terminal that this process keeps: it is for the serving
    // generation, not a second stop of this drain.
    log.info("{signal}: passed on to the serving generation", { signal });
    passStop();
    return;
  }
  if (stopping) {
    log.warn("{signal} again while draining: exiting now", { signal });
    Deno.exit(1);
  }
  log.info("{signal}: shutting down {count} server(s) gracefully", {
    signal,
    count: servers.size,
  });
  shutdownAll(`by ${signal}`).then(() => {
    releaseProcess();
    Deno.exit(0);
  });
}

function onRestartSignal(signal: Deno.Signal): void {
  if (stopping) {
    log.warn("{signal} ignored: shutting down", { signal });
    return;
  }
  if (isWorker()) {
    try {
      askSupervisorToRoll(signal);
    } catch (error) {
      log.warn("{signal} ignored: {error}", {
        signal,
        error: errorMessage(error),
      });
    }
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
  const drainMs = Math.max(0, ...[...servers].map((s) => s.drainTimeout));
  sdNotify(
    `STOPPING=1\nEXTEND_TIMEOUT_USEC=${(drainMs + 5000) * 1000}\n` +
      `STATUS=draining (shutting down ${why})`,
  );
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
  if (stopping && restarter?.phase !== "handing-over") {
    return Promise.reject(
      new RestartError("this generation is shutting down: no restart"),
    );
  }
  if (isWorker()) {
    // A worker restarts nothing itself: its supervisor rolls every worker.
    return requestRoll(options.trigger ?? "api").then(
      ({ ok, generation, reason }) => {
        if (!ok) throw new RestartError(`rolling restart failed: ${reason}`);
        return { pid: Deno.ppid, generation };
      },
      (error) => {
        throw new RestartError(`rolling restart: ${errorMessage(error)}`);
      },
    );
  }
  restarter ??= new Restarter(realSeam(), info, { startTimeout });
  const fresh = restarter.phase === "serving";
  if (fresh && notifying()) {
    // Not without systemd: the clock reading opens libc, which would cost
    // time on the way to the spawn.
    sdNotify(
      `RELOADING=1\nMONOTONIC_USEC=${monotonicUsec()}\n` +
        `STATUS=restarting: starting generation ${info.generation + 1}`,
    );
  }
  const result = restarter.restart(options);
  if (fresh) {
    result.catch((error) => {
      const last = restarter?.lastRestart;
      if (pidfile && last) recordRestart(pidfile, Deno.pid, last);
      // Ends systemd's reload; this generation keeps serving.
      sdNotify(
        `READY=1\nSTATUS=restart failed, generation ${info.generation} ` +
          `(pid ${Deno.pid}) keeps serving: ${errorMessage(error)}`,
      );
    });
  }
  return result;
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
    lastRestart: restarter?.lastRestart ?? madeBy,
  };
}

/** What a restart loads once this generation serves. */
type Spawning =
  & typeof import("./spawn.ts")
  & typeof import("./command_line.ts");

/** spawn.ts (node:child_process) and command_line.ts, once loaded. */
let spawning: Spawning | undefined;

/** How long after it is ready a generation loads what a restart needs. */
const WARM_UP_DELAY_MS = 250;

async function loadSpawning(): Promise<Spawning> {
  if (spawning === undefined) {
    const [commandLine, spawn] = await Promise.all([
      import("./command_line.ts"),
      import("./spawn.ts"),
    ]);
    spawning = { ...commandLine, ...spawn };
  }
  return spawning;
}

/**
 * Loads what a restart needs (spawn.ts with node:child_process, and libc
 * and posix_spawn through FFI) in the background, once this generation is
 * ready and its own handover is past its critical part, so that a restart
 * spawns the next generation at once instead of loading them first. Not
 * during start-up: that would delay serving, and so every handover.
 */
function warmUpRestart(): void {
  const timer = setTimeout(() => {
    loadSpawning().then((spawn) => spawn.prepareSpawning(), () => {});
  }, WARM_UP_DELAY_MS);
  Deno.unrefTimer(timer);
}

/** The windows mode's restart: every server vacates, and may reoccupy. */
function completeRestartSeam(): Pick<HandoverSeam, "vacate" | "reoccupy"> {
  return {
    async vacate() {
      log.info(
        "complete restart: stopped accepting; in-flight requests finish here",
      );
      await Promise.all([...servers].map((server) => server.vacate?.()));
    },
    async reoccupy() {
      await Promise.all([...servers].map((server) => server.reoccupy?.()));
    },
  };
}

/** The app state of every server, by name (the `handover.save()` hooks). */
async function saveAppState(): Promise<Record<string, unknown>> {
  const app: Record<string, unknown> = {};
  for (const server of servers) {
    if (server.saveState) app[server.name] = await server.saveState();
  }
  return app;
}

function realSeam(): HandoverSeam {
  const restartLog = logger("handover");
  return {
    async openControl() {
      trace("restart: loading spawn.ts");
      await loadSpawning();
      trace("restart: spawn.ts loaded");
      const server = await openControlServer({
        onReject(reason: string) {
          restartLog.warn("control channel: refused a connection: {reason}", {
            reason,
          });
        },
      });
      const port = Number(server.addr.split(":").pop());
      return {
        env: () => server.env(),
        close: () => void server.close(),
        async accept(signal?: AbortSignal) {
          const peer = await server.accept(signal);
          // Outside Linux no sock_diag: the secret and the spawned pid vouch.
          if (!isLinuxMode()) return peer;
          return Object.assign(peer, {
            heldBy: (pid: number) => socketOwnedBy(pid, peer.remotePort, port),
          });
        },
      };
    },
    listeners() {
      return activeListeners().map((l) => ({
        fd: l.fd,
        name: l.name,
        addr: formatAddr(l.addr),
      }));
    },
    spawn(fds, env, options) {
      const { buildCommand, currentCommand, spawnGeneration } = spawning!;
      const current = currentCommand();
      let command = buildCommand(current, {
        execPath: options.execPath,
        entry: options.entry,
      });
      if (carriedAdminToken !== undefined) {
        command = spawning!.withoutAdminToken(command, current.compiled);
      }
      trace("restart: spawning");
      const child = spawnGeneration({
        ...command,
        fds,
        env,
        inspectorGuard: inspectorGuardFd(),
        ignoreHangup: signalFacts().hangupIgnored,
      });
      trace("restart: spawned");
      return child;
    },
    adminToken: () => carriedAdminToken,
    saveAppState,
    committed(child) {
      // Before this process exits: otherwise systemd 252 takes the main
      // process's exit for the service's, and kills the whole cgroup.
      sdNotify(
        `MAINPID=${child.pid}\nSTATUS=handing over to generation ` +
          `${child.generation} (pid ${child.pid})`,
      );
      return Promise.resolve();
    },
    ...(completeRestarts() ? completeRestartSeam() : {}),
    async drain() {
      trace("handover: draining");
      handedOver = true;
      stopping = true;
      await drainAllNow();
    },
    exit(code) {
      trace("handover: exit");
      releaseProcess();
      // --watch in a terminal: the first process keeps the foreground (and
      // the CLI waits for afterHandover() until it exits).
      if (code === 0 && keepsForeground()) {
        shutdownSignals.clear(); // the keeper passes them on instead
        restartSignals.clear();
        rewire();
        return void keepForeground();
      }
      handoverEnded.resolve();
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
