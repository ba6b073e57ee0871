/**
 * The process-wide listener registry: sockets inherited through LISTEN_FDS,
 * sockets opened here, which server claimed which, and what a new generation
 * must inherit.
 *
 * Claiming rules, for a server with a name and a list of addresses:
 * 1. inherited fds whose LISTEN_FDNAMES name equals the server's name, and
 *    only those (the unit file, or the previous generation, decided);
 * 2. otherwise, inherited fds whose address matches one of its addresses,
 *    and any address not covered is opened here. Port 0 (any free port)
 *    matches any port on that host, but only under socket activation: after
 *    a restart every fd is named for the server that held it, and a server
 *    new in this generation must not take another server's socket;
 * 3. otherwise, when it asked for no address at all, every inherited fd that
 *    no other server claimed, or, when there is none, the fallback address.
 *
 * Every listener is backed by a real fd, so that a restart can pass it on.
 *
 * @module
 */

import net from "node:net";
import type { Addr, Listener } from "./types.ts";
import { addrMatches, formatAddr, type ListenSpec } from "./address.ts";
import { type InheritedFd, readListenFds } from "./listen_fds.ts";
import { closeFd } from "./os.ts";
import { configDecides, storeListeners } from "./fd_store.ts";

let inherited: InheritedFd[] | undefined;
const claimed = new Set<number>();
const active = new Set<Listener>();

/**
 * The sockets passed to this process through LISTEN_FDS (read, validated and
 * removed from the environment on first call).
 *
 * @example
 * ```ts ignore
 * for (const { fd, name, addr } of inheritedFds()) console.log(fd, name, addr);
 * ```
 */
export function inheritedFds(): readonly InheritedFd[] {
  inherited ??= readListenFds();
  return inherited;
}

/**
 * Every listener currently open in this process, in claim order: what a new
 * generation inherits.
 *
 * @example
 * ```ts ignore
 * const fds = activeListeners().map((l) => l.fd);
 * ```
 */
export function activeListeners(): Listener[] {
  return [...active];
}

/**
 * Inherited sockets that no server has claimed yet.
 *
 * @example
 * ```ts ignore
 * if (unclaimedInheritedFds().length === 0) console.log("all served");
 * ```
 */
export function unclaimedInheritedFds(): InheritedFd[] {
  return inheritedFds().filter((f) => !claimed.has(f.fd));
}

/** What a server asks for. */
export interface ListenerRequest {
  /** The server's name; inherited fds with this LISTEN_FDNAMES name are its own. */
  name: string;
  /** This process is a restarted generation (its fds are named by server). */
  restarted?: boolean;
  /** Explicit addresses; empty means "whatever was inherited, else `fallback`". */
  specs: ListenSpec[];
  /** The address to open when nothing is specified and nothing was inherited. */
  fallback: ListenSpec;
}

/**
 * Claims inherited sockets and opens the rest, following the module's rules.
 * `onListening` is called for each listener in the same microtask in which it
 * starts listening, so that no connection can arrive before an engine is
 * attached to it. On failure, every listener it opened is closed again and the
 * error names the address or fd.
 *
 * @example
 * ```ts ignore
 * const listeners = await acquireListeners({
 *   name: "web",
 *   specs: [],
 *   fallback: { transport: "tcp", hostname: "0.0.0.0", port: 8000 },
 * }, (listener) => attachEngine(listener));
 * ```
 */
export async function acquireListeners(
  request: ListenerRequest,
  onListening: (listener: Listener) => void,
): Promise<Listener[]> {
  const fds = inheritedFds().filter((f) => !claimed.has(f.fd));
  // After a restart from systemd's fd store, the addresses asked for decide.
  let mine = configDecides(request)
    ? []
    : fds.filter((f) => f.name === request.name);
  const toOpen: ListenSpec[] = [];
  if (mine.length > 0) {
    // Sockets named for this server are authoritative: the unit file (or the
    // previous generation) decided where this server listens.
  } else if (request.specs.length > 0) {
    for (const spec of request.specs) {
      const anyPort = spec.transport === "tcp" && spec.port === 0;
      const match = request.restarted && anyPort
        ? undefined
        : fds.find((f) => addrMatches(spec, f.addr));
      if (match) mine.push(match);
      else toOpen.push(spec);
    }
  } else {
    mine = fds;
    if (mine.length === 0) toOpen.push(request.fallback);
  }
  // Claim before the first await, so that servers starting concurrently
  // never pick the same fds.
  for (const fd of mine) claimed.add(fd.fd);
  const opened: Listener[] = [];
  try {
    for (const fd of mine) {
      const listener = await adoptFd(fd, request.name);
      opened.push(listener);
      onListening(listener);
    }
    for (const spec of toOpen) {
      const listener = await openSpec(spec, request.name);
      opened.push(listener);
      onListening(listener);
    }
    // systemd's fd store (when on) keeps the sockets opened here across
    // restarts and crashes.
    storeListeners(opened);
  } catch (error) {
    for (const listener of opened) releaseListener(listener);
    throw error;
  }
  for (const listener of opened) active.add(listener);
  return opened;
}

/**
 * Forgets a listener: closes its node server (if still open) and the dup fd
 * a self-opened listener holds. Inherited fds are closed with their server.
 *
 * @example
 * ```ts ignore
 * releaseListener(listener);
 * ```
 */
export function releaseListener(listener: Listener): void {
  if (!active.delete(listener) && listener.fd < 0) return;
  if (listener.server.listening) listener.server.close();
  if (!listener.inherited && listener.fd >= 0) closeFd(listener.fd);
  listener.fd = -1;
}

async function adoptFd(fd: InheritedFd, name: string): Promise<Listener> {
  const server = net.createServer();
  try {
    await listen(server, { fd: fd.fd });
  } catch (error) {
    throw new Error(
      `cannot listen on fd ${fd.fd} (${fd.name}, ${formatAddr(fd.addr)}) ` +
        `from LISTEN_FDS: ${messageOf(error)}`,
      { cause: error },
    );
  }
  return { name, fd: fd.fd, addr: fd.addr, inherited: true, server };
}

async function openSpec(spec: ListenSpec, name: string): Promise<Listener> {
  const server = net.createServer();
  try {
    if (spec.transport === "unix") {
      await listen(server, { path: spec.path });
    } else {
      await listen(server, {
        host: spec.hostname,
        port: spec.port,
        ipv6Only: spec.hostname.includes(":") && spec.hostname !== "::",
      });
    }
  } catch (error) {
    throw new Error(
      `cannot listen on ${formatAddr(spec)}: ${messageOf(error)}`,
      { cause: error },
    );
  }
  // deno-lint-ignore no-explicit-any
  const fd = (server as any)._handle?.fdForIpc?.() ?? -1;
  if (typeof fd !== "number" || fd < 0) {
    server.close();
    throw new Error(
      `cannot get the fd of the socket listening on ${formatAddr(spec)}`,
    );
  }
  return { name, fd, addr: addrOf(server, spec), inherited: false, server };
}

function listen(
  server: net.Server,
  options: net.ListenOptions | { fd: number },
) {
  return new Promise<void>((resolve, reject) => {
    function onError(error: Error) {
      server.off("listening", onListening);
      reject(error);
    }
    function onListening() {
      server.off("error", onError);
      resolve();
    }
    server.once("error", onError);
    server.once("listening", onListening);
    server.listen(options as net.ListenOptions);
  });
}

function addrOf(server: net.Server, spec: ListenSpec): Addr {
  const address = server.address();
  if (typeof address === "string") return { transport: "unix", path: address };
  if (address === null) {
    return spec.transport === "unix"
      ? { transport: "unix", path: spec.path }
      : { transport: "tcp", hostname: spec.hostname, port: spec.port };
  }
  return { transport: "tcp", hostname: address.address, port: address.port };
}

function messageOf(error: unknown): string {
  return error instanceof Error ? error.message : String(error);
}
