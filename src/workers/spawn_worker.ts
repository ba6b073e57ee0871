/**
 * Starts one worker and walks it to ready: a one-time control channel, the
 * spawn with the shared sockets (sd_listen_fds semantics: fds 3.., and
 * LISTEN_PID = the worker's pid), the hello (checked against the kernel's
 * view of who holds the connection), the state (with the app state of the
 * worker it replaces), and ready. A worker that fails on the way is stopped
 * (its group: SIGTERM, then SIGKILL) and reaped before the error is thrown.
 *
 * @module
 */

import type { AcceptedPeer } from "../restart/control_peer.ts";
import type { NewToOldMessage } from "../restart/control_messages.ts";
import { openControlServer } from "../restart/control_server.ts";
import { socketOwnedBy } from "../restart/socket_owner.ts";
import { FAILED_CHILD_GRACE_MS } from "../restart/handover.ts";
import type { HandoverState } from "../restart/handover_types.ts";
import {
  buildCommand,
  currentCommand,
  withoutAdminToken,
} from "../restart/command_line.ts";
import type { GenerationExit } from "../restart/child.ts";
import { type PassedFd, spawnGeneration } from "../restart/spawn.ts";
import { inspectorGuardFd } from "../server/inspector_guard.ts";
import { signalFacts } from "../restart/signals.ts";
import type { Reaper } from "./reaper.ts";
import {
  WORKER_ENV,
  WORKER_SECRET_ENV,
  WORKER_STORE_ENV,
  WORKER_SUPERVISOR_ENV,
} from "./worker.ts";
import { fdStoreEnabled } from "../systemd/fd_store.ts";
import { errorMessage } from "../util/error_message.ts";

/** One random secret for every worker of this supervisor. */
const SHARED_SECRET = Array.from(
  crypto.getRandomValues(new Uint8Array(32)),
  (byte) => byte.toString(16).padStart(2, "0"),
).join("");

/** Only the supervisor talks to systemd. */
const SUPERVISOR_ONLY_ENV = ["NOTIFY_SOCKET", "WATCHDOG_USEC", "WATCHDOG_PID"];

/** A worker process. */
export interface WorkerProcess {
  /** Its slot, 1..N: a replacement takes the slot of the worker it replaces. */
  slot: number;
  /** The roll that started it (the first workers are generation 1). */
  generation: number;
  pid: number;
  /** When it was spawned (ms since the epoch). */
  startedAt: number;
  /** Resolves once it has ended and been reaped. */
  exited: Promise<GenerationExit>;
  /**
   * The control channel, open while it runs (kept across the supervisor's
   * execve); none for an adopted worker whose channel could not be kept.
   */
  peer?: AcceptedPeer;
  /** An adopted worker's app state, as the previous image collected it. */
  adoptedApp?: Record<string, unknown>;
  /** "ready", then "draining" once told to leave. */
  phase: "ready" | "draining";
  /** Its listening sockets (its own fd numbers), as its ready said. */
  listeners?: { fd: number; name: string; addr: string }[];
  /** Its request counts, as it last said. */
  stats?: { inFlight: number; served: number };
  /** Waits for its answer to a "save" request. */
  saved?: PromiseWithResolvers<Record<string, unknown>>;
}

/** What {@linkcode spawnWorker} needs. */
export interface SpawnWorkerOptions {
  slot: number;
  /** The state given to the worker (generation, listeners, app state...). */
  state: HandoverState;
  /** The sockets to pass, in order. */
  fds: PassedFd[];
  reaper: Reaper;
  /** How long it may take to be ready (ms). */
  startTimeout: number;
  /** Aborted when the supervisor shuts down. */
  signal?: AbortSignal;
}

/**
 * Spawns a worker and resolves once it is ready; rejects with the reason it
 * did not become ready (it is gone by then).
 */
export async function spawnWorker(
  options: SpawnWorkerOptions,
): Promise<WorkerProcess> {
  const { slot, state, fds, reaper } = options;
  const control = await openControlServer();
  const port = Number(control.addr.split(":").pop());
  const current = currentCommand();
  // The token reaches the worker in its state, not in its command line.
  const command = withoutAdminToken(
    buildCommand(current),
    current.compiled,
  );
  let pid: number;
  try {
    pid = spawnGeneration({
      ...command,
      fds,
      env: {
        ...control.env(),
        [WORKER_ENV]: String(slot),
        [WORKER_SECRET_ENV]: SHARED_SECRET,
        [WORKER_SUPERVISOR_ENV]: String(Deno.pid),
        // A first start's unclaimed stored sockets are the supervisor's.
        ...(state.generation === 1 && fdStoreEnabled()
          ? { [WORKER_STORE_ENV]: "1" }
          : {}),
      },
      unsetEnv: SUPERVISOR_ONLY_ENV,
      callerReaps: true,
      // The supervisor's: no worker binds 127.0.0.1:9229 (or races for it).
      inspectorGuard: inspectorGuardFd(),
      ignoreHangup: signalFacts().hangupIgnored,
    }).pid;
  } catch (error) {
    control.close();
    throw error;
  }
  const startedAt = Date.now();
  const exited = reaper.watch(pid);
  const ended = exited.then((exit) => {
    throw new Error(`worker ${slot} (pid ${pid}) exited ${describeExit(exit)}`);
  });
  ended.catch(() => {});
  const abort = new AbortController();
  const timer = setTimeout(
    () => abort.abort(new Error(`not ready within ${options.startTimeout} ms`)),
    options.startTimeout,
  );
  const cancel = () => abort.abort(new Error("cancelled: shutting down"));
  options.signal?.addEventListener("abort", cancel, { once: true });
  const aborted = new Promise<never>((_, reject) => {
    abort.signal.addEventListener("abort", () => reject(abort.signal.reason));
  });
  aborted.catch(() => {});
  let peer: AcceptedPeer | undefined;
  try {
    peer = await Promise.race([control.accept(abort.signal), ended, aborted]);
    if (peer.pid !== pid || !socketOwnedBy(pid, peer.remotePort, port)) {
      throw new Error(`the hello did not come from worker pid ${pid}`);
    }
    await peer.send({ type: "state", state });
    const message: NewToOldMessage = await Promise.race([
      peer.receive(Infinity),
      ended,
      aborted,
    ]);
    if (message.type === "fail") throw new Error(message.reason);
    if (message.type !== "ready") {
      throw new Error(`expected ready, got ${message.type}`);
    }
    return {
      slot,
      generation: state.generation,
      pid,
      startedAt,
      exited,
      peer,
      phase: "ready",
      listeners: message.listeners,
    };
  } catch (error) {
    peer?.close();
    control.close();
    await stopFailed(reaper, pid, exited);
    const reason = errorMessage(error);
    throw new Error(`worker ${slot} (pid ${pid}) did not start: ${reason}`, {
      cause: error,
    });
  } finally {
    clearTimeout(timer);
    options.signal?.removeEventListener("abort", cancel);
  }
}

/** SIGTERM to a failed worker's group, SIGKILL after the grace; reaped. */
async function stopFailed(
  reaper: Reaper,
  pid: number,
  exited: Promise<GenerationExit>,
): Promise<void> {
  reaper.signal(pid, "SIGTERM", true);
  const timer = setTimeout(
    () => reaper.signal(pid, "SIGKILL", true),
    FAILED_CHILD_GRACE_MS,
  );
  await exited;
  clearTimeout(timer);
}

/**
 * "with status 1", "by SIGKILL".
 */
export function describeExit(exit: GenerationExit): string {
  return exit.signal ? `by ${exit.signal}` : `with status ${exit.code}`;
}
