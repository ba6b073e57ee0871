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
 * backlog, and it costs nothing while nobody connects. It binds with
 * Deno.listen and accepts with an unref'd Deno listener, so that no
 * generation loads node:net on its way to serving. Deno.listen sets
 * SO_REUSEADDR, which on Linux still lets no other socket bind an address
 * that a socket listens on: Deno's SIGUSR1 inspector fails as it did with
 * node:net. An inherited guard is put under a Deno.listen the way the
 * native engine serves an inherited socket (engine/transplant.ts); where
 * that cannot be done (no FFI, no /proc), the fd is only held, which is
 * what keeps the inspector out.
 *
 * When another process holds the port, Deno cannot open the inspector either.
 * The guard retries in case the port is freed, and says so once if it is
 * still taken at the first retry; meanwhile, a SIGUSR1 also closes any
 * inspector that does appear, as soon as it appears.
 *
 * The guard stands aside when the process runs with --inspect (the inspector
 * is wanted, and holds its port itself), and when it is turned off
 * (`inspectorGuard: false`, `--no-inspector-guard`,
 * GRACEFUL_NO_INSPECTOR_GUARD=1): then an inherited guard is closed, so that
 * SIGUSR1 does open the inspector, for debugging.
 *
 * @module
 */

import { closeFd } from "../os/fd.ts";
import { socketFacts } from "../os/socket.ts";
import { decodeSockaddr } from "../listen/sockaddr.ts";
import { listeningFdFor } from "../engine/fds.ts";
import { swapListener, transplantUnavailable } from "../engine/transplant.ts";
import { logger } from "../util/log.ts";
import { errorMessage } from "../util/error_message.ts";

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
/** The listener that accepts and closes; closing it closes its fd. */
let listener: Deno.Listener | undefined;
/** The fd to pass on: the listener's, or an inherited one only held. */
let guardFd = -1;
/** An inherited fd held without a listener: closed when the guard stops. */
let heldFd = -1;
let retry: ReturnType<typeof setTimeout> | undefined;
/** Failed attempts to bind the port; said (once) at the second. */
let failedBinds = 0;
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
  // Loaded here only: nothing else needs node:inspector, and a generation
  // whose guard holds the port never does.
  import("node:inspector").then(({ default: inspector }) => {
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
  }, (error) => {
    log.warn("inspector guard: cannot load node:inspector: {error}", {
      error: errorMessage(error),
    });
  });
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

/**
 * Holds the inherited guard `fd`, and has a Deno listener accept from it:
 * a placeholder on 127.0.0.1:0 whose fd becomes the guard's (then the
 * inherited fd is closed: one fd, which a restart passes on).
 */
function adopt(fd: number): void {
  state = "held";
  guardFd = fd;
  heldFd = fd;
  firstAttempt.resolve();
  const why = transplantUnavailable();
  if (why !== undefined) {
    log.debug("inspector guard: holding fd {fd} without accepting ({why})", {
      fd,
      why,
    });
    return;
  }
  let placeholder: Deno.Listener | undefined;
  try {
    placeholder = Deno.listen({ hostname: INSPECTOR_HOST, port: 0 });
    const { port } = placeholder.addr as Deno.NetAddr;
    const swapped = swapListener(fd, {
      transport: "tcp",
      hostname: INSPECTOR_HOST,
      port,
    });
    closeFd(fd);
    heldFd = -1;
    guardFd = swapped.fd;
    listener = placeholder;
    acceptAndClose(placeholder);
  } catch (error) {
    placeholder?.close();
    // Still held: the inspector stays out; a client waits in the backlog.
    log.info(
      "inspector guard: holds fd {fd}, but cannot accept on it: {error}",
      { fd, error: errorMessage(error) },
    );
  }
}

function bind(): void {
  if (state !== "waiting") return;
  let bound: Deno.Listener;
  try {
    bound = Deno.listen({ hostname: INSPECTOR_HOST, port: INSPECTOR_PORT });
  } catch (error) {
    // Said at the first retry, not at once: a port freed within that time
    // needs no word, and a process that stops at once on bad input says its
    // error alone.
    failedBinds++;
    if (failedBinds === 2) {
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
          error: (error as { code?: string }).code ?? errorMessage(error),
          seconds: RETRY_MS / 1000,
        },
      );
    }
    retryLater();
    firstAttempt.resolve();
    return;
  }
  // The runtime's own fd, passed on as it is (a restart copies it into the
  // next generation). Without it (no FFI) the port is still held here.
  guardFd = listeningFdFor({
    transport: "tcp",
    hostname: INSPECTOR_HOST,
    port: INSPECTOR_PORT,
  }) ?? -1;
  listener = bound;
  state = "held";
  firstAttempt.resolve();
  acceptAndClose(bound);
  if (failedBinds > 1) {
    log.info("inspector guard: now holds {host}:{port}", {
      host: INSPECTOR_HOST,
      port: INSPECTOR_PORT,
    });
  }
}

/**
 * Accepts and closes until `guard` is closed, without keeping the process
 * alive.
 */
async function acceptAndClose(guard: Deno.Listener): Promise<void> {
  guard.unref();
  while (listener === guard) {
    let conn: Deno.Conn;
    try {
      conn = await guard.accept();
    } catch (error) {
      if (listener !== guard || error instanceof Deno.errors.BadResource) {
        return;
      }
      // Out of fds, say: the socket still holds the port meanwhile.
      log.warn("inspector guard: {error}", { error: errorMessage(error) });
      await new Promise((resolve) => {
        Deno.unrefTimer(setTimeout(resolve, RETRY_MS));
      });
      continue;
    }
    try {
      conn.close();
    } catch {
      // closed by the peer already
    }
  }
}

function retryLater(): void {
  if (retry !== undefined) return;
  const timer = setTimeout(() => {
    retry = undefined;
    bind();
  }, RETRY_MS);
  retry = timer;
  Deno.unrefTimer(timer);
}

function stopGuard(): void {
  state = "off";
  if (retry !== undefined) clearTimeout(retry);
  retry = undefined;
  const open = listener;
  listener = undefined;
  open?.close();
  if (heldFd >= 0) closeFd(heldFd);
  heldFd = -1;
  guardFd = -1;
}
