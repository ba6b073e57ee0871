/**
 * The process level: every server in this process, its generation, restarts
 * and shutdown. A restart hands over all servers of the process at once; a
 * shutdown signal drains all of them and exits 0.
 *
 * As a new generation, the process first joins the handover (join.ts), and
 * says ready once every inherited socket is served, every server is ready,
 * and every readiness hook has passed (readiness.ts). The state all of them
 * share is in process_state.ts.
 *
 * @module
 */

import type {
  GenerationInfo,
  LastRestart,
  RestartOptions,
  RestartResult,
} from "./handover_types.ts";
import { RestartError } from "./handover_types.ts";
import { Restarter } from "./handover.ts";
import {
  handoverEnded,
  processState,
  releaseProcess,
  servers,
  type Supervised,
} from "./process_state.ts";
import { shutdownAll } from "./shutdown.ts";
import { checkReady, onStartFailure, watchStartFailures } from "./readiness.ts";
import { realSeam } from "./restart_seam.ts";
import { resolveSignals, wireSignals } from "./signals.ts";
import { recordRestart } from "./pidfile.ts";
import { startInspectorGuard } from "../server/inspector_guard.ts";
import { monotonicUsec, notifying, sdNotify } from "../systemd/notify.ts";
import { portableSignals } from "../os/platform.ts";
import { keepsForeground, passStop } from "../cli/watch_keeper.ts";
import {
  askSupervisorToRoll,
  isWorker,
  requestRoll,
} from "../workers/worker.ts";
import { logger } from "../util/log.ts";
import { errorMessage } from "../util/error_message.ts";

const log = logger("supervisor");

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

/** Facts for status pages and logs. */
export interface ProcessStatus extends GenerationInfo {
  /** This process's pid. */
  pid: number;
  /** "serving", "spawning", "handshaking", "handing-over" or "exited". */
  phase: string;
  /** The outcome of the last restart this generation attempted. */
  lastRestart?: LastRestart;
}

/**
 * Records where the admin API listens apart from the app (for the status
 * file and `status`).
 */
export function advertiseAdmin(address: string): void {
  processState.adminAddress = address;
}

/**
 * Hands `token` to every later generation over the control channel (in the
 * state), so that it never has to be in their command line; the CLI, which
 * strips `--admin-token` from the next command line, carries its token.
 */
export function carryAdminToken(token: string | undefined): void {
  processState.carriedAdminToken = token;
}

/**
 * Adds a server to the process. Returns the function that removes it.
 */
export function registerServer(
  server: Supervised,
  options: ProcessOptions,
): () => void {
  servers.add(server);
  if (options.startTimeout !== undefined) {
    processState.startTimeout = options.startTimeout;
  }
  if (options.pidfile !== undefined) processState.pidfile = options.pidfile;
  processState.restarter?.setTimeouts({
    startTimeout: processState.startTimeout,
  });
  startInspectorGuard(options.inspectorGuard !== false);
  const { shutdown, restart } = portableSignals(resolveSignals(options));
  processState.shutdownSignals = new Set([
    ...processState.shutdownSignals,
    ...shutdown,
  ]);
  processState.restartSignals = new Set([
    ...processState.restartSignals,
    ...restart,
  ]);
  rewire();
  watchStartFailures(server.finished);
  server.ready.then(() => checkReady(), (error) => onStartFailure(error));
  return () => {
    servers.delete(server);
    if (servers.size === 0 && !processState.stopping) {
      stopSignals();
    }
  };
}

function rewire(): void {
  wireSignals([...processState.shutdownSignals], [
    ...processState.restartSignals,
  ], {
    shutdown: onShutdownSignal,
    restart: onRestartSignal,
  });
}

/** Listens for no signal any more. */
function stopSignals(): void {
  processState.shutdownSignals.clear();
  processState.restartSignals.clear();
  rewire();
}

/**
 * Resolves at once unless this generation is handing over; then when the
 * handover is complete (just before the process exits). After a failed start
 * it never resolves: the process exits 1 once every server has drained.
 */
export function afterHandover(): Promise<void> {
  if (processState.restarter?.phase === "handing-over") {
    return handoverEnded.promise;
  }
  // A failed start ends the process itself (exit 1) once all servers drained.
  if (processState.failing) return new Promise(() => {});
  return Promise.resolve();
}

function onShutdownSignal(signal: Deno.Signal): void {
  if (processState.handedOver && keepsForeground()) {
    // Ctrl-C in the terminal that this process keeps: it is for the serving
    // generation, not a second stop of this drain.
    log.info("{signal}: passed on to the serving generation", { signal });
    passStop();
    return;
  }
  if (processState.stopping) {
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
  if (processState.stopping) {
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
 * Restarts the whole process: resolves when the new generation serves;
 * rejects, with the reason, when it did not (this one keeps serving).
 */
export function restartProcess(
  options: RestartOptions = {},
): Promise<RestartResult> {
  if (
    processState.stopping && processState.restarter?.phase !== "handing-over"
  ) {
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
  processState.restarter ??= new Restarter(
    realSeam({ stopSignals }),
    processState.info,
    {
      startTimeout: processState.startTimeout,
    },
  );
  const restarter = processState.restarter;
  const fresh = restarter.phase === "serving";
  if (fresh && notifying()) {
    // Not without systemd: the clock reading opens libc, which would cost
    // time on the way to the spawn.
    sdNotify(
      `RELOADING=1\nMONOTONIC_USEC=${monotonicUsec()}\n` +
        `STATUS=restarting: starting generation ${
          processState.info.generation + 1
        }`,
    );
  }
  const result = restarter.restart(options);
  if (fresh) {
    result.catch((error) => {
      const last = restarter.lastRestart;
      if (processState.pidfile && last) {
        recordRestart(processState.pidfile, Deno.pid, last);
      }
      // Ends systemd's reload; this generation keeps serving.
      sdNotify(
        `READY=1\nSTATUS=restart failed, generation ${processState.info.generation} ` +
          `(pid ${Deno.pid}) keeps serving: ${errorMessage(error)}`,
      );
    });
  }
  return result;
}

/**
 * This process's generation, phase and last restart.
 */
export function processStatus(): ProcessStatus {
  return {
    ...processState.info,
    pid: Deno.pid,
    phase: processState.restarter?.phase ?? "serving",
    lastRestart: processState.restarter?.lastRestart ?? processState.madeBy,
  };
}
