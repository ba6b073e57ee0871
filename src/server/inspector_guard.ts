/**
 * The SIGUSR1 inspector guard.
 *
 * Deno 2.9.2 and later open the V8 inspector on 127.0.0.1:9229 whenever the
 * process gets SIGUSR1 (once its runtime has run for about half a second),
 * even when the app handles SIGUSR1 itself, and whoever reaches that port
 * first runs code as this process's user. Deno cannot open it while a
 * listening socket holds 127.0.0.1:9229: it prints `Failed to start inspector
 * server: Failed to start inspector server at "127.0.0.1:9229"` and goes on.
 *
 * So every generation holds such a socket. The first one binds it when its
 * first server starts (the CLI: before it loads the app). Each next
 * generation inherits it, as the fd just after the LISTEN_FDS range, named by
 * GRACEFUL_INSPECTOR_FD, so it is never released during a handover. Outside
 * that range it is in no sd_listen_fds(3) count: no server claims it, and a
 * next program that is not serveGraceful never sees it as a listener (it only
 * keeps the port held).
 *
 * The guard accepts and closes at once: a client (chrome://inspect polling
 * 9229, a curious `curl`) gets an empty reply instead of hanging in a full
 * backlog, and it costs nothing while nobody connects.
 *
 * When another process holds the port, Deno cannot open the inspector either.
 * The guard says so once, and retries in case the port is freed; meanwhile, a
 * SIGUSR1 also closes any inspector that does appear, as soon as it appears.
 *
 * The guard stands aside when the process runs with --inspect (the inspector
 * is wanted, and holds its port itself), and when it is turned off
 * (`inspectorGuard: false`, `--no-inspector-guard`,
 * GRACEFUL_NO_INSPECTOR_GUARD=1): then an inherited guard is closed, so that
 * SIGUSR1 does open the inspector, for debugging.
 *
 * @module
 */

import inspector from "node:inspector";
import net from "node:net";
import { closeFd } from "../os/fd.ts";
import { socketFacts } from "../os/socket.ts";
import { decodeSockaddr } from "../listen/sockaddr.ts";
import { logger } from "../util/log.ts";

const log = logger("inspector");

/** Where Deno opens the inspector on SIGUSR1. */
export const INSPECTOR_HOST = "127.0.0.1";
/** Where Deno opens the inspector on SIGUSR1. */
export const INSPECTOR_PORT = 9229;
/** The variable that names the inherited guard's fd. */
export const GUARD_FD_ENV = "GRACEFUL_INSPECTOR_FD";
/** The variable that turns the guard off (1, true or yes). */
export const GUARD_OFF_ENV = "GRACEFUL_NO_INSPECTOR_GUARD";

/** How often a guard that could not bind tries again (ms). */
const RETRY_MS = 2000;

/**
 * Where the guard is: not started; off (turned off, or --inspect); holding
 * the port; or waiting for it (another process holds it).
 */
export type GuardState = "unstarted" | "off" | "held" | "waiting";

let state: GuardState = "unstarted";
let server: net.Server | undefined;
/** The fd to pass on: the inherited one, or a dup of the bound socket's. */
let guardFd = -1;
let ownsDup = false;
let retry: ReturnType<typeof setTimeout> | undefined;
let warnedTaken = false;
let warnedSignal = false;
/** Resolved once the first attempt is over (held, failed and retrying, off). */
const firstAttempt = Promise.withResolvers<void>();

/**
 * Starts the guard once per process (later calls only turn it off, when
 * `enabled` is false). Never throws: a guard that cannot bind logs why and
 * retries.
 */
export function startInspectorGuard(enabled = true): void {
  if (state !== "unstarted") {
    if (!enabled && state !== "off") {
      stopGuard();
      log.info("inspector guard turned off: SIGUSR1 opens the inspector");
    }
    return;
  }
  const inherited = takeInheritedFd();
  const wanted = inspectorWanted();
  if (!enabled || guardOffByEnv() || wanted) {
    state = "off";
    firstAttempt.resolve();
    if (inherited !== undefined) closeFd(inherited);
    if (!wanted) {
      log.warn(
        "inspector guard off: a SIGUSR1 opens the V8 inspector on " +
          "{host}:{port}, where any local user can run code in this process",
        { host: INSPECTOR_HOST, port: INSPECTOR_PORT },
      );
    }
    return;
  }
  state = "waiting";
  if (inherited !== undefined) adopt(inherited);
  else bind();
}

/**
 * Resolves once the guard's first attempt is over: it holds 127.0.0.1:9229,
 * or it is off, or another process holds the port (it retries). A process
 * that passes the guard on (a supervisor to its workers) waits for this, so
 * that its first children get it too.
 */
export function inspectorGuardSettled(): Promise<void> {
  if (state === "unstarted") return Promise.resolve();
  return firstAttempt.promise;
}

/** What the guard is doing. */
export function inspectorGuardState(): GuardState {
  return state;
}

/**
 * The guard's fd, for the next generation; undefined when it holds nothing.
 */
export function inspectorGuardFd(): number | undefined {
  return state === "held" && guardFd >= 0 ? guardFd : undefined;
}

/**
 * Called on every SIGUSR1. While the guard holds the port, Deno cannot open
 * the inspector. When it waits for the port, any inspector that does appear
 * is closed as soon as it does (a few ms; a racing client can win that).
 */
export function onInspectorSignal(): void {
  if (state === "held") {
    if (!warnedSignal) {
      warnedSignal = true;
      log.info(
        "SIGUSR1: the inspector guard holds {host}:{port}, so Deno cannot " +
          'open the inspector (it says "Failed to start inspector server")',
        { host: INSPECTOR_HOST, port: INSPECTOR_PORT },
      );
    }
    return;
  }
  if (state !== "waiting") return;
  if (!warnedSignal) {
    warnedSignal = true;
    log.warn(
      "SIGUSR1 while the inspector guard does not hold {host}:{port}: " +
        "closing any inspector Deno opens at once. Prefer SIGUSR2, the CLI " +
        "reload or the admin API",
      { host: INSPECTOR_HOST, port: INSPECTOR_PORT },
    );
  }
  let tries = 0;
  const timer = setInterval(() => {
    tries++;
    if (inspector.url()) {
      inspector.close();
      clearInterval(timer);
    } else if (tries > 1000) {
      clearInterval(timer);
    }
  }, 1);
}

/** Whether this process was started with an --inspect flag (then it stays). */
export function inspectorWanted(cmdline: string[] = readCmdline()): boolean {
  return cmdline.some((arg) => /^--inspect(-brk|-wait)?(=|$)/.test(arg));
}

function readCmdline(): string[] {
  try {
    return Deno.readTextFileSync("/proc/self/cmdline").split("\0");
  } catch {
    return [];
  }
}

function guardOffByEnv(): boolean {
  return /^(1|true|yes)$/i.test(Deno.env.get(GUARD_OFF_ENV) ?? "");
}

/**
 * The fd GRACEFUL_INSPECTOR_FD names, if it is a socket listening on
 * 127.0.0.1:9229. The variable is removed either way, so that the app's own
 * children do not see it.
 */
function takeInheritedFd(): number | undefined {
  const raw = Deno.env.get(GUARD_FD_ENV);
  if (raw === undefined) return undefined;
  Deno.env.delete(GUARD_FD_ENV);
  const fd = Number(raw);
  if (!/^\d+$/.test(raw) || fd < 3) {
    log.warn("{variable}={value} is not an fd number: ignored", {
      variable: GUARD_FD_ENV,
      value: raw.slice(0, 40),
    });
    return undefined;
  }
  const facts = socketFacts(fd);
  const addr = facts?.listening ? decodeSockaddr(facts.address) : undefined;
  if (
    addr?.transport !== "tcp" || addr.hostname !== INSPECTOR_HOST ||
    addr.port !== INSPECTOR_PORT
  ) {
    log.warn(
      "{variable}={fd} is not a socket listening on {host}:{port}: ignored",
      {
        variable: GUARD_FD_ENV,
        fd,
        host: INSPECTOR_HOST,
        port: INSPECTOR_PORT,
      },
    );
    return undefined;
  }
  return fd;
}

function newServer(): net.Server {
  // Accept and close: the guard serves nothing.
  return net.createServer((socket) => socket.destroy());
}

function adopt(fd: number): void {
  const guard = newServer();
  listenOn(guard, { fd }).then(() => {
    if (state === "off") return void guard.close();
    server = guard;
    guardFd = fd;
    ownsDup = false;
    state = "held";
    firstAttempt.resolve();
  }, (error) => {
    closeFd(fd);
    log.warn("cannot keep the inherited inspector guard (fd {fd}): {error}", {
      fd,
      error: String(error),
    });
    bind();
  });
}

function bind(): void {
  if (state !== "waiting") return;
  const guard = newServer();
  listenOn(guard, {
    host: INSPECTOR_HOST,
    port: INSPECTOR_PORT,
    backlog: 16,
    exclusive: true,
  }).then(() => {
    // deno-lint-ignore no-explicit-any
    const fd = (guard as any)._handle?.fdForIpc?.() ?? -1;
    if (state === "off" || typeof fd !== "number" || fd < 0) {
      guard.close();
      if (state !== "off") retryLater();
      firstAttempt.resolve();
      return;
    }
    server = guard;
    guardFd = fd;
    ownsDup = true;
    state = "held";
    firstAttempt.resolve();
    if (warnedTaken) {
      log.info("inspector guard: now holds {host}:{port}", {
        host: INSPECTOR_HOST,
        port: INSPECTOR_PORT,
      });
    }
  }, (error) => {
    if (!warnedTaken) {
      warnedTaken = true;
      // (Who holds it is for `ss`: /proc/net/tcp lists every socket of the
      // namespace, megabytes on a busy host, for one log line.)
      log.warn(
        "inspector guard: cannot hold {host}:{port} ({error}; `ss -ltnp " +
          "'sport = :{port}'` says who does). While another process holds " +
          "it, Deno cannot open the inspector on SIGUSR1 either; retrying " +
          "every {seconds} s in case it is freed",
        {
          host: INSPECTOR_HOST,
          port: INSPECTOR_PORT,
          error: (error as { code?: string }).code ?? String(error),
          seconds: RETRY_MS / 1000,
        },
      );
    }
    retryLater();
    firstAttempt.resolve();
  });
}

function retryLater(): void {
  if (retry !== undefined) return;
  const timer = setTimeout(() => {
    retry = undefined;
    bind();
  }, RETRY_MS);
  retry = timer;
  Deno.unrefTimer(timer as unknown as number);
}

function listenOn(
  guard: net.Server,
  options: net.ListenOptions | { fd: number },
): Promise<void> {
  return new Promise((resolve, reject) => {
    const onError = (error: Error) => {
      guard.off("listening", onListening);
      reject(error);
    };
    const onListening = () => {
      guard.off("error", onError);
      guard.on("error", (error) => {
        log.warn("inspector guard: {error}", { error: String(error) });
      });
      guard.unref();
      resolve();
    };
    guard.once("error", onError);
    guard.once("listening", onListening);
    guard.listen(options as net.ListenOptions);
  });
}

function stopGuard(): void {
  state = "off";
  if (retry !== undefined) clearTimeout(retry);
  retry = undefined;
  server?.close();
  server = undefined;
  if (ownsDup && guardFd >= 0) closeFd(guardFd);
  guardFd = -1;
}
