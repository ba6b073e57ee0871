/**
 * What a restart of this process needs from the world, as the handover
 * machine's seam: the control listener with the kernel's check of the
 * hello, the spawn of the next generation with this process's command line
 * and listening fds, systemd's MAINPID=, the drain and the exit. What the
 * spawn needs (node:child_process, posix_spawn) is loaded once this
 * generation serves, not on the way to serving.
 *
 * @module
 */

import type { HandoverSeam } from "./handover_types.ts";
import { openControlServer } from "./control_server.ts";
import { socketOwnedBy } from "./socket_owner.ts";
import {
  handoverEnded,
  passedListeners,
  processState,
  releaseProcess,
  saveAppState,
  servers,
} from "./process_state.ts";
import { drainAllNow } from "./shutdown.ts";
import { signalFacts } from "./signals.ts";
import { completeRestarts } from "./complete_restart.ts";
import { trace } from "./trace.ts";
import { inspectorGuardFd } from "../server/inspector_guard.ts";
import { sdNotify } from "../systemd/notify.ts";
import { isLinuxMode } from "../os/platform.ts";
import { keepForeground, keepsForeground } from "../cli/watch_keeper.ts";
import { logger } from "../util/log.ts";

const log = logger("supervisor");

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
export function warmUpRestart(): void {
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

/**
 * The handover machine's way to the OS and to this process's servers.
 * `stopSignals` is called when this process keeps the terminal's foreground
 * after a handover (`--watch`): the signals are passed on from then on.
 */
export function realSeam(hooks: { stopSignals(): void }): HandoverSeam {
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
    listeners: passedListeners,
    spawn(fds, env, options) {
      const { buildCommand, currentCommand, spawnGeneration } = spawning!;
      const current = currentCommand();
      let command = buildCommand(current, {
        execPath: options.execPath,
        entry: options.entry,
      });
      if (processState.carriedAdminToken !== undefined) {
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
    adminToken: () => processState.carriedAdminToken,
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
      processState.handedOver = true;
      processState.stopping = true;
      await drainAllNow();
    },
    exit(code) {
      trace("handover: exit");
      releaseProcess();
      // --watch in a terminal: the first process keeps the foreground (and
      // the CLI waits for afterHandover() until it exits).
      if (code === 0 && keepsForeground()) {
        hooks.stopSignals(); // the keeper passes them on instead
        return void keepForeground();
      }
      handoverEnded.resolve();
      Deno.exit(code);
    },
    log(level, message) {
      const extra = { pid: Deno.pid, generation: processState.info.generation };
      if (level === "info") restartLog.info(message, extra);
      else if (level === "warn") restartLog.warn(message, extra);
      else restartLog.error(message, extra);
    },
  };
}
