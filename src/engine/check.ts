/**
 * The transplant engine's self-check: before the server counts on a
 * transplanted listener, it proves that this process's Deno.serve accepts on
 * the real socket.
 *
 * 1. The registration: the runtime's fd is in its epoll instance with the
 *    events and the token it had, and names the real socket's inode
 *    (/proc/self/fdinfo).
 * 2. An accept only this process can show: it connects to its own socket,
 *    and waits until a socket accepted from that listener appears in its own
 *    fd table. During a handover the old generation accepts on the same
 *    queue and may take a connection: so {@linkcode BURST} are opened at
 *    once, and another burst after {@linkcode RECONNECT_MS}, doubling up
 *    to {@linkcode RECONNECT_MAX_MS}, until this
 *    process shows one, up to {@linkcode CHECK_LIMIT_MS}. No request is
 *    sent, so no application (here or in the old generation) sees one.
 *
 * Where the process cannot connect to its own socket (a private network
 * namespace, an address it cannot reach, an abstract unix name), the
 * registration decides. It decides too in a new generation, before it is
 * ready: the old one, idle, wins the race for every connection this
 * process makes (it is woken while this one is still in connect()), so the
 * accept check would keep both generations accepting for tens of ms. There
 * the accept check runs once the old one has stopped accepting
 * ({@linkcode checkTransplant} with `after`).
 *
 * `GRACEFUL_ENGINE_CHECK=fail` in the environment makes the check fail, so
 * that the fallback to the node engine can be run on purpose (CI does).
 *
 * @module
 */

import type { Addr } from "../listen/types.ts";
import type { TransplantBinding } from "./transplant.ts";
import { acceptedFds, epollRegistrationOf, socketInodeOf } from "./fds.ts";

/** The environment variable that, set to "fail", fails every check. */
export const CHECK_ENV = "GRACEFUL_ENGINE_CHECK";

/** Connections opened at once. */
export const BURST = 4;
/** How long unanswered connections wait before more are opened (ms). */
export const RECONNECT_MS = 20;
/** The longest pause between bursts (ms). */
export const RECONNECT_MAX_MS = 1000;
/** How long the check may take in all (ms). */
export const CHECK_LIMIT_MS = 5000;

/** What the check found. */
export interface CheckResult {
  /** Undefined when it passed; otherwise why it failed. */
  failure: string | undefined;
  /** How it passed: "accept" (its own accept seen) or "registration". */
  proof: "accept" | "registration" | undefined;
  /** Why only the registration was checked. */
  note?: string;
}

/**
 * Checks one transplanted listener; never throws.
 */
export async function checkTransplant(
  binding: TransplantBinding,
  options: {
    registrationOnly?: boolean;
    limitMs?: number;
    /** Stops the accept check (the server is shutting down). */
    signal?: AbortSignal;
  } = {},
): Promise<CheckResult> {
  if (forcedToFail()) {
    return { failure: `${CHECK_ENV}=fail is set`, proof: undefined };
  }
  const registered = checkRegistration(binding);
  if (registered !== undefined) {
    return { failure: registered, proof: undefined };
  }
  if (options.registrationOnly) {
    return {
      failure: undefined,
      proof: "registration",
      note: "the old generation shares the accept queue; the accept check " +
        "follows its drain",
    };
  }
  const target = connectTarget(binding.listener.addr);
  if (typeof target === "string") {
    return { failure: undefined, proof: "registration", note: target };
  }
  try {
    return await checkAccept(
      binding.listener.addr,
      target,
      options.limitMs ?? CHECK_LIMIT_MS,
      options.signal,
    );
  } catch (error) {
    return { failure: `the check failed: ${error}`, proof: undefined };
  }
}

function forcedToFail(): boolean {
  try {
    return Deno.env.get(CHECK_ENV) === "fail";
  } catch {
    return false;
  }
}

/** Undefined when the runtime's fd is registered as before, on the real socket. */
function checkRegistration(binding: TransplantBinding): string | undefined {
  const now = epollRegistrationOf(binding.fd);
  const before = binding.registration;
  if (now === undefined) {
    return `fd ${binding.fd} is not in the runtime's epoll instance`;
  }
  if (now.data !== before.data || now.events !== before.events) {
    return `fd ${binding.fd} is registered with another token or events`;
  }
  const inode = socketInodeOf(binding.listener.fd);
  if (inode === undefined || now.inode !== inode) {
    return `the epoll entry of fd ${binding.fd} is not the socket of fd ` +
      `${binding.listener.fd}`;
  }
  return undefined;
}

/** Where to connect to reach the listener, or why it cannot be reached. */
function connectTarget(
  addr: Addr,
): Deno.ConnectOptions | Deno.UnixConnectOptions | string {
  if ("path" in addr) {
    if (addr.path === "" || addr.path.startsWith("@")) {
      return "an abstract or unnamed unix socket cannot be connected to by path";
    }
    return { transport: "unix", path: addr.path };
  }
  const hostname = addr.hostname === "0.0.0.0"
    ? "127.0.0.1"
    : addr.hostname === "::"
    ? "::1"
    : addr.hostname;
  return { transport: "tcp", hostname, port: addr.port };
}

async function checkAccept(
  addr: Addr,
  target: Deno.ConnectOptions | Deno.UnixConnectOptions,
  limitMs: number,
  signal: AbortSignal | undefined,
): Promise<CheckResult> {
  const clients: Deno.Conn[] = [];
  const deadline = Date.now() + limitMs;
  try {
    let pause = RECONNECT_MS;
    while (Date.now() < deadline) {
      if (signal?.aborted) {
        return {
          failure: undefined,
          proof: "registration",
          note: "the server stopped before its accept check ended",
        };
      }
      const burst = await Promise.allSettled(
        Array.from(
          { length: BURST },
          () => Deno.connect(target as Deno.ConnectOptions),
        ),
      );
      for (const result of burst) {
        if (result.status === "fulfilled") clients.push(result.value);
      }
      if (clients.length === 0) {
        const error = (burst[0] as PromiseRejectedResult).reason;
        return {
          failure: undefined,
          proof: "registration",
          note: `cannot connect to itself (${error})`,
        };
      }
      const next = Date.now() + pause;
      const poll = Math.max(1, pause / 20);
      pause = Math.min(pause * 2, RECONNECT_MAX_MS);
      while (Date.now() < next && !signal?.aborted) {
        if (acceptedFds(addr).length > 0) {
          return { failure: undefined, proof: "accept" };
        }
        // Connections the old generation took are of no use: close them.
        if (clients.length > BURST * 8) closeAll(clients.splice(0, BURST));
        await new Promise((resolve) => setTimeout(resolve, poll));
      }
    }
    return {
      failure: `no connection was accepted in ${limitMs} ms`,
      proof: undefined,
    };
  } finally {
    closeAll(clients);
  }
}

function closeAll(clients: Deno.Conn[]): void {
  for (const client of clients) {
    try {
      client.close();
    } catch {
      // closed by the peer already
    }
  }
}
