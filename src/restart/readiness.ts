/**
 * When this generation is ready, and what happens then: it says so once
 * every inherited socket is served and every server is ready (to the
 * previous generation when there is one, else to systemd), writes the
 * pidfile and starts the watchdog. A server that fails to start instead
 * fails the handover, and this process drains and exits 1.
 *
 * @module
 */

import {
  appListeners,
  passedListeners,
  processState,
  processTotals,
  releaseProcess,
  saveAppState,
  servers,
  statusLine,
} from "./process_state.ts";
import { drainAllNow, stopProcess } from "./shutdown.ts";
import { followOldGeneration } from "./join.ts";
import { warmUpRestart } from "./restart_seam.ts";
import { writePidfile } from "./pidfile.ts";
import { trace } from "./trace.ts";
import { activeListeners, unclaimedInheritedFds } from "../listen/registry.ts";
import { fdStoreEnabled, removeUnclaimed } from "../systemd/fd_store.ts";
import { sdNotify, watchdogIntervalMs } from "../systemd/notify.ts";
import {
  followSupervisor,
  isWorker,
  supervisorSweepsStore,
} from "../workers/worker.ts";
import { logger, print } from "../util/log.ts";
import { errorMessage } from "../util/error_message.ts";

const log = logger("supervisor");

/**
 * Says ready once everything inherited is served and every server is ready:
 * to the old generation when there is one (systemd hears READY=1 once the old
 * one has passed on MAINPID=), else straight to systemd.
 */
export async function checkReady(): Promise<void> {
  if (processState.announced) return;
  if (waitingForInherited()) return;
  for (const server of servers) {
    try {
      await server.ready;
    } catch {
      return;
    }
  }
  if (processState.announced || waitingForInherited()) return;
  processState.announced = true;
  if (!processState.peer) {
    removeUnclaimed(unclaimedInheritedFds(), activeListeners());
  }
  startWatchdog();
  warmUpRestart();
  // Before the old generation hears "ready": it removes the pidfile on its
  // way out while the file still names it.
  await savePidfile();
  const peer = processState.peer;
  if (peer) {
    if (processState.madeBy) {
      processState.madeBy.durationMs = Date.now() - processState.madeBy.at;
    }
    trace("ready: sending");
    // A worker names its sockets: a supervisor given none takes them.
    await peer.send(
      isWorker()
        ? { type: "ready", pid: Deno.pid, listeners: passedListeners() }
        : { type: "ready", pid: Deno.pid },
    );
    trace("ready: sent");
    log.info("generation {generation} (pid {pid}) is ready", {
      generation: processState.info.generation,
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
  return processState.peer !== undefined || !fdStoreEnabled();
}

function savePidfile(): Promise<void> {
  // A worker's supervisor writes it.
  if (!processState.pidfile || isWorker()) return Promise.resolve();
  const path = processState.pidfile;
  const { info, adminAddress } = processState;
  return writePidfile(path, {
    pid: Deno.pid,
    generation: info.generation,
    startedAt: info.startedAt,
    firstStartedAt: info.firstStartedAt,
    restarts: info.restarts,
    listeners: appListeners(),
    // What `reload` may send: only signals this process restarts on.
    restartSignals: [...processState.restartSignals],
    ...(adminAddress === undefined ? {} : { admin: adminAddress }),
  }).catch((error) => {
    log.error("cannot write pidfile {pidfile}: {error}", {
      pidfile: path,
      error,
    });
  });
}

let watchdog: ReturnType<typeof setInterval> | undefined;

function startWatchdog(): void {
  const ms = watchdogIntervalMs();
  if (ms === undefined || watchdog !== undefined) return;
  watchdog = setInterval(() => sdNotify("WATCHDOG=1"), Math.max(ms / 2, 10));
  Deno.unrefTimer(watchdog as unknown as number);
}

/** The `finished` promises of this process's servers. */
const finishedOf = new WeakSet<Promise<unknown>>();
let watchingRejections = false;

/**
 * Watches a server's `finished`: a server that failed to start rejects it.
 * Nobody may be awaiting it: rather than let Deno end the process at once
 * (and with it every request the other servers, or the failed one, had
 * accepted), the failure then ends this process gracefully, as
 * {@linkcode failStart} says.
 */
export function watchStartFailures(finished: Promise<unknown>): void {
  finishedOf.add(finished);
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
export function onStartFailure(error: unknown): void {
  if (processState.peer && !processState.announced) failStart(error);
}

/**
 * Ends this process after a failed start: every server drains what it had
 * accepted (on shared sockets a new generation may have taken requests
 * already), the old generation hears why (it keeps serving), and the
 * process exits 1.
 */
function failStart(error: unknown): void {
  if (processState.failing) return;
  processState.failing = true;
  processState.stopping = true;
  const reason = errorMessage(error);
  log.error("failed to start: {reason}", { reason });
  const peer = processState.peer;
  // (stderr may be gone, a closed terminal: the exit code still says it)
  if (!peer) print(console.error, "error:", error);
  // The old generation hears it first (it waits for this process to exit),
  // then every server drains what it had accepted.
  const told = peer && !processState.announced
    ? peer.send({ type: "fail", reason }).catch(() => {})
    : Promise.resolve();
  told
    .then(drainAllNow)
    .then(() => {
      releaseProcess();
      Deno.exit(1);
    });
}
