/**
 * The supervisor: one process that holds the listening sockets, loads no app
 * code, and runs N workers on them (all accept on the same sockets: the
 * kernel's queue is shared, so a worker that exits loses no queued
 * connection). It reaps every child, forwards shutdown signals, replaces
 * crashed workers with backoff, rolls restarts worker by worker, and is the
 * only process that talks to systemd.
 *
 * The sockets come from LISTEN_FDS; when none are inherited, the first
 * worker opens them (the supervisor cannot know where a main module listens
 * without loading it) and the supervisor takes copies (pidfd_getfd) for
 * every later worker.
 *
 * The supervisor holds the inspector guard (127.0.0.1:9229) and passes the
 * one socket to every worker and across its own execve (./upgrade.ts).
 * With systemd's fd store on, the supervisor stores the sockets (../systemd/workers_fd_store.ts).
 *
 * @module
 */

import { formatAddr } from "../listen/address.ts";
import type {
  HandoverState,
  RestartTrigger,
} from "../restart/handover_types.ts";
import { inspectorGuardSettled } from "../server/inspector_guard.ts";
import { inheritedFds } from "../listen/registry.ts";
import { logger } from "../util/log.ts";
import { sdNotify, watchdogIntervalMs } from "../systemd/notify.ts";
import { removePidfile } from "../restart/pidfile.ts";
import { ADMIN_SERVER_NAME } from "../listen/types.ts";
import { resolveSignals, wireSignals } from "../restart/signals.ts";
import type { PassedFd } from "../restart/spawn.ts";
import { takeFd } from "../os/process.ts";
import { closeFd } from "../os/fd.ts";
import type { AcceptedPeer } from "../restart/control_peer.ts";
import { adoptChannel } from "./channel.ts";
import { Reaper } from "./reaper.ts";
import {
  describeExit,
  spawnWorker,
  type WorkerProcess,
} from "./spawn_worker.ts";
import { type RollOptions, rollWorkers } from "./roll.ts";
import { removeUnclaimedBy, storeOpened } from "../systemd/workers_fd_store.ts";
import {
  takeUpgradeState,
  upgradeInPlace,
  type UpgradeState,
} from "./upgrade.ts";
import { announceRoll, type Pool, type SupervisorOptions } from "./pool.ts";
import { errorMessage } from "../util/error_message.ts";
import {
  pidfileWritten,
  publishStatus,
  removeAdminSocket,
  statusLine,
} from "./status.ts";
export type { SupervisorOptions, WorkerStatus } from "./pool.ts";

const log = logger("workers");

/**
 * Runs the supervisor until it is stopped; resolves to the exit status: 0
 * after a clean shutdown, 1 when the workers could not be kept running.
 */
export async function runSupervisor(
  options: SupervisorOptions,
): Promise<number> {
  const upgrade = takeUpgradeState();
  // A token from GRACEFUL_ADMIN_TOKEN is gone from the new image's
  // environment: the previous image hands it over.
  options = {
    ...options,
    adminToken: options.adminToken ?? upgrade?.adminToken,
  };
  const pool = createPool(options, upgrade);
  // The adopted workers are watched before anything is reaped: one that
  // died meanwhile (a zombie since) must be reaped as the worker it is, not
  // as an unknown orphan whose watch never ends.
  if (upgrade) adoptWorkers(pool, upgrade);
  pool.reaper.start();
  const finished = Promise.withResolvers<number>();
  let started = false;
  let rolling: Promise<void> | undefined;
  let rollAgain = false;
  const roll = (
    trigger: RestartTrigger,
    options?: RollOptions,
  ): Promise<void> => {
    if (rolling && options?.settled) {
      options.settled(new Error("a rolling restart is already in progress"));
    }
    rolling ??= rollWorkers(pool, trigger, options).finally(() => {
      rolling = undefined;
      if (rollAgain && !pool.stopping.signal.aborted) {
        rollAgain = false;
        restartOnSignal();
      }
    });
    return rolling;
  };
  pool.roll = roll;
  // A terminal that hangs up (closed, ssh gone) stops the command.
  // (resolveSignals: in a terminal, unless SIGHUP restarts.)
  const shutdownSignals = resolveSignals({
    restartSignals: options.restartSignals,
  }).shutdown;
  wireSignals(shutdownSignals, options.restartSignals, {
    shutdown: (signal) => {
      if (pool.stopping.signal.aborted) {
        log.warn("{signal} again while stopping: killing the workers", {
          signal,
        });
        for (const w of pool.workers) {
          pool.reaper.signal(w.pid, "SIGKILL", true);
        }
        finished.resolve(1);
        return;
      }
      log.info("{signal}: stopping {count} worker(s) gracefully", {
        signal,
        count: pool.workers.size,
      });
      stopAll(pool).then((code) => finished.resolve(code));
    },
    restart: (signal) => {
      if (pool.stopping.signal.aborted) return;
      if (!started) {
        // Not lost: a reload sent as the command starts runs once the
        // workers are up.
        log.info("{signal}: restarting once the workers are up", { signal });
        restartWhenStarted = true;
        return;
      }
      restartOnSignal();
    },
  });
  let restartWhenStarted = false;
  const restartOnSignal = () => {
    if (rolling) {
      // The roll in progress may already have started the workers this
      // signal asks for anew (a second `reload` right after the first one
      // returned, while the last old worker drains): one more roll follows.
      rollAgain = true;
      return;
    }
    // The reload starts now, for systemd: before the execve, whose new
    // image rolls the workers.
    announceRoll(pool.generation + 1);
    // The supervisor upgrades its own code first (execve, same pid); the
    // new image rolls the workers. Without execve, the workers only.
    upgradeInPlace(pool, "signal").catch((error) => {
      log.warn("no supervisor upgrade ({error}): rolling the workers", {
        error: errorMessage(error),
      });
      roll("signal").catch(() => {}); // logged and published by the roll
    });
  };
  const watchdog = startWatchdog();
  // The first workers get the guard's socket, so none binds its own.
  await inspectorGuardSettled();
  try {
    if (!upgrade) await startAll(pool);
  } catch (error) {
    log.error("{error}", { error: errorMessage(error) });
    await stopAll(pool);
    finished.resolve(1);
  }
  pool.allGone = () => finished.resolve(1);
  let extra: { close(): void } | undefined;
  started = true;
  if (!pool.stopping.signal.aborted) {
    // An upgraded image is mid-reload: the roll that follows says READY=1
    // when it ends, as systemd's RELOADING=1 (sent on the signal) expects.
    sdNotify(
      upgrade
        ? `STATUS=${statusLine(pool)}`
        : `READY=1\nSTATUS=${statusLine(pool)}`,
    );
    pool.publish();
    extra = await options.onReady?.(roll);
    // The roll that made this image: the workers now.
    if (upgrade) roll(upgrade.trigger).catch(() => {});
    else if (restartWhenStarted) restartOnSignal();
  }
  const code = await finished.promise;
  extra?.close();
  clearInterval(watchdog);
  wireSignals([], [], { shutdown() {}, restart() {} });
  pool.reaper.stop();
  await pidfileWritten();
  if (options.pidfile) removePidfile(options.pidfile, Deno.pid);
  removeAdminSocket(pool);
  return code;
}

function createPool(
  options: SupervisorOptions,
  upgrade: UpgradeState | undefined,
): Pool {
  const startedAt = Date.now();
  let storeSwept = false;
  const pool: Pool = {
    options,
    reaper: new Reaper((pid) => log.debug("reaped orphan {pid}", { pid })),
    listeners: upgrade?.listeners ?? inheritedFds().map((f) => ({
      fd: f.fd,
      name: f.name,
      addr: formatAddr(f.addr),
    })),
    workers: new Set(),
    generation: upgrade?.generation ?? 1,
    rolls: upgrade?.rolls ?? 0,
    firstStartedAt: upgrade?.firstStartedAt ?? startedAt,
    lastRoll: upgrade?.lastRoll,
    givenUp: new Set(upgrade?.givenUp ?? []),
    crashes: new Map(),
    allGone() {},
    roll: () => Promise.reject(new Error("not running")),
    stopping: new AbortController(),
    async start(slot, trigger, app = {}) {
      const state: HandoverState = {
        generation: pool.generation,
        firstStartedAt: startedAt,
        restarts: pool.rolls,
        listeners: pool.listeners,
        app,
        restart: { trigger, at: Date.now() },
        ...(options.adminToken === undefined
          ? {}
          : { adminToken: options.adminToken }),
      };
      const worker = await spawnWorker({
        slot,
        state,
        fds: passedFds(pool),
        reaper: pool.reaper,
        startTimeout: options.startTimeout ?? 30_000,
        signal: pool.stopping.signal,
      });
      if (pool.listeners.length === 0) {
        adoptListeners(pool, worker);
        // Only the supervisor talks to systemd: it stores its copies.
        storeOpened(pool.listeners);
      } else if (adoptAdminListener(pool, worker)) {
        storeOpened(pool.listeners.filter((l) => l.name === ADMIN_SERVER_NAME));
      } else if (!upgrade && pool.workers.size === 0 && !storeSwept) {
        storeSwept = true;
        removeUnclaimedBy(inheritedFds(), worker.listeners ?? []);
      }
      pool.workers.add(worker);
      worker.exited.then(() => onExit(pool, worker));
      followWorker(pool, worker);
      log.info("worker {slot} (pid {pid}, generation {generation}) is ready", {
        slot,
        pid: worker.pid,
        generation: worker.generation,
      });
      return worker;
    },
    async retire(worker) {
      worker.phase = "draining";
      pool.reaper.signal(worker.pid, "SIGTERM");
      const exit = await worker.exited;
      worker.peer?.close();
      pool.workers.delete(worker);
      log.info("worker {slot} (pid {pid}) drained and exited {how}", {
        slot: worker.slot,
        pid: worker.pid,
        how: describeExit(exit),
      });
    },
    publish(extra) {
      publishStatus(pool, startedAt, extra);
    },
  };
  return pool;
}

function passedFds(pool: Pool): PassedFd[] {
  return pool.listeners.map((l) => ({ fd: l.fd, name: l.name }));
}

/** The first worker opened the sockets: take copies for the next ones. */
function adoptListeners(pool: Pool, worker: WorkerProcess): void {
  pool.listeners = (worker.listeners ?? []).map((l) => ({
    ...l,
    fd: takeFd(worker.pid, l.fd),
  }));
  if (pool.listeners.length === 0) {
    throw new Error(
      `worker ${worker.slot} (pid ${worker.pid}) serves no socket`,
    );
  }
}

/**
 * The admin API's own listener, opened by the first worker when the app's
 * sockets were inherited: the supervisor takes a copy, so that every later
 * worker shares that one endpoint. The inherited sockets are renamed for the
 * servers that claimed them in that worker (as a restart names them), so
 * that a later worker's app server, which asks for no address, does not
 * take the admin's socket too. Whether it adopted one.
 */
function adoptAdminListener(pool: Pool, worker: WorkerProcess): boolean {
  if (pool.listeners.some((l) => l.name === ADMIN_SERVER_NAME)) return false;
  const reported = worker.listeners ?? [];
  const admin = reported.find((l) => l.name === ADMIN_SERVER_NAME);
  if (admin === undefined) return false;
  pool.listeners = [
    ...pool.listeners.map((l) => ({
      ...l,
      name: reported.find((r) => r.addr === l.addr)?.name ?? l.name,
    })),
    { ...admin, fd: takeFd(worker.pid, admin.fd) },
  ];
  return true;
}

/** The new image takes the previous image's workers over, with their channels. */
function adoptWorkers(pool: Pool, upgrade: UpgradeState): void {
  for (const { channel, app, ...adopted } of upgrade.workers) {
    const worker: WorkerProcess = {
      ...adopted,
      exited: pool.reaper.watch(adopted.pid),
      phase: "ready",
      peer: channel === undefined ? undefined : takeChannel(channel, adopted),
      adoptedApp: app,
    };
    pool.workers.add(worker);
    worker.exited.then(() => onExit(pool, worker));
    if (worker.peer) followWorker(pool, worker);
  }
  log.info(
    "supervisor upgraded in place (pid {pid}): {count} worker(s) adopted",
    {
      pid: Deno.pid,
      count: pool.workers.size,
    },
  );
}

/** The channel kept across the execve, or none when it cannot be taken up. */
function takeChannel(
  fd: number,
  worker: { slot: number; pid: number },
): AcceptedPeer | undefined {
  try {
    return adoptChannel(fd, worker.pid);
  } catch (error) {
    closeFd(fd);
    log.warn("worker {slot} (pid {pid}): its channel is lost: {error}", {
      ...worker,
      error: errorMessage(error),
    });
    return undefined;
  }
}

async function startAll(pool: Pool): Promise<void> {
  const slots = Array.from({ length: pool.options.workers }, (_, i) => i + 1);
  if (pool.listeners.length === 0 || pool.options.admin) {
    // The first worker opens the sockets (or the admin's own one); the
    // others share them.
    await pool.start(slots.shift()!, "api");
  }
  await Promise.all(slots.map((slot) => pool.start(slot, "api")));
}

/** Every worker drains; resolves to the exit status. */
async function stopAll(pool: Pool): Promise<number> {
  pool.stopping.abort();
  const drainMs = pool.options.drainTimeout ?? 30_000;
  sdNotify(
    `STOPPING=1\nEXTEND_TIMEOUT_USEC=${(drainMs + 5000) * 1000}\n` +
      `STATUS=stopping ${pool.workers.size} worker(s)`,
  );
  const workers = [...pool.workers];
  // A worker that drains (retired by a roll) was told already: a second
  // SIGTERM would make it exit at once, cutting its requests.
  for (const w of workers) {
    if (w.phase !== "draining") pool.reaper.signal(w.pid, "SIGTERM");
  }
  let killed = false;
  const timer = setTimeout(() => {
    killed = true;
    for (const w of workers) pool.reaper.signal(w.pid, "SIGKILL", true);
  }, drainMs + 5000);
  await Promise.all(workers.map((w) => w.exited));
  clearTimeout(timer);
  log.info("every worker has exited");
  return killed ? 1 : 0;
}

/** Answers a worker's messages on its control channel while it runs. */
async function followWorker(pool: Pool, worker: WorkerProcess): Promise<void> {
  const peer = worker.peer!;
  try {
    while (true) {
      const message = await peer.receive(Infinity);
      if (message.type === "saved") worker.saved?.resolve(message.app);
      else if (message.type === "stats") {
        worker.stats = { inFlight: message.inFlight, served: message.served };
        pool.publish();
      } else if (message.type === "roll") {
        const trigger = (["admin", "api", "watch"] as const).find((t) =>
          t === message.trigger
        ) ?? "api";
        pool.roll(trigger, {
          last: worker,
          settled: (error) => {
            peer.send({
              type: "rolled",
              ok: error === undefined,
              generation: pool.generation,
              ...(error ? { reason: error.message } : {}),
            }).catch(() => {});
          },
        }).catch(() => {}); // logged and published by the roll
      }
    }
  } catch {
    // the channel ended: the worker exited
  }
}

/** A worker exited: unasked, it is replaced (with backoff). */
function onExit(pool: Pool, worker: WorkerProcess): void {
  if (worker.phase === "draining" || pool.stopping.signal.aborted) return;
  worker.peer?.close();
  pool.workers.delete(worker);
  worker.exited.then((exit) => {
    log.error("worker {slot} (pid {pid}) crashed (exited {how})", {
      slot: worker.slot,
      pid: worker.pid,
      how: describeExit(exit),
    });
    replaceSlot(pool, worker.slot);
  });
}

/**
 * Starts a new worker in a slot whose worker crashed, after a backoff that
 * doubles with each recent crash; gives the slot up after `crashLimit`
 * crashes (a failed start counts) within `crashWindowMs`.
 */
async function replaceSlot(pool: Pool, slot: number): Promise<void> {
  const limit = pool.options.crashLimit ?? 5;
  const windowMs = pool.options.crashWindowMs ?? 60_000;
  while (!pool.stopping.signal.aborted) {
    const now = Date.now();
    const recent = (pool.crashes.get(slot) ?? []).filter((at) =>
      now - at < windowMs
    );
    recent.push(now);
    pool.crashes.set(slot, recent);
    if (recent.length >= limit) {
      pool.givenUp.add(slot);
      const why = `worker ${slot} crashed ${recent.length} times within ` +
        `${windowMs} ms: not replaced any more`;
      log.error("{why}", { why });
      pool.publish(why);
      if (pool.workers.size === 0) pool.allGone();
      return;
    }
    pool.publish(`worker ${slot} crashed; replacing it`);
    const backoff = Math.min(100 * 2 ** (recent.length - 1), 5000);
    await new Promise((resolve) => setTimeout(resolve, backoff));
    if (pool.stopping.signal.aborted) return;
    try {
      await pool.start(slot, "api");
      pool.publish();
      return;
    } catch (error) {
      log.error("{error}", { error: errorMessage(error) });
    }
  }
}

function startWatchdog(): ReturnType<typeof setInterval> | undefined {
  const ms = watchdogIntervalMs();
  if (ms === undefined) return undefined;
  return setInterval(() => sdNotify("WATCHDOG=1"), Math.max(ms / 2, 10));
}
