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

import type { Addr, Listener } from "./types.ts";
import { addrMatches, formatAddr, type ListenSpec } from "./address.ts";
import { type InheritedFd, readListenFds } from "./listen_fds.ts";
import { closeFd, dupFd } from "../os/fd.ts";
import { listenUnix } from "../os/socket.ts";
import { listeningFdFor } from "../engine/fds.ts";
import { configDecides, storeListeners } from "../systemd/fd_store.ts";
import { errorMessage } from "../util/error_message.ts";
import { opensOwnAddresses } from "../os/platform.ts";

let inherited: InheritedFd[] | undefined;
const claimed = new Set<number>();
const active = new Set<Listener>();

/**
 * The sockets passed to this process through LISTEN_FDS (read, validated and
 * removed from the environment on first call).
 */
export function inheritedFds(): readonly InheritedFd[] {
  inherited ??= readListenFds();
  return inherited;
}

/**
 * Every listener currently open in this process, in claim order: what a new
 * generation inherits.
 */
export function activeListeners(): Listener[] {
  return [...active];
}

/**
 * Inherited sockets that no server has claimed yet.
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
 * `onListening` is called for each listener once it listens (connections
 * wait in the kernel's queue until an engine accepts). On failure, every
 * listener it opened is closed again and the error names the address or fd.
 */
export function acquireListeners(
  request: ListenerRequest,
  onListening: (listener: Listener) => void = () => {},
): Promise<Listener[]> {
  try {
    return Promise.resolve(acquireNow(request, onListening));
  } catch (error) {
    return Promise.reject(error);
  }
}

function acquireNow(
  request: ListenerRequest,
  onListening: (listener: Listener) => void,
): Listener[] {
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
  // Claim at once, so that servers starting concurrently never pick the
  // same fds.
  for (const fd of mine) claimed.add(fd.fd);
  const opened: Listener[] = [];
  try {
    for (const fd of mine) {
      const listener = adoptFd(fd, request.name);
      opened.push(listener);
      onListening(listener);
    }
    for (const spec of toOpen) {
      const listener = opensOwnAddresses()
        ? { name: request.name, fd: -1, addr: { ...spec }, inherited: false }
        : openSpec(spec, request.name);
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
 * Forgets a listener: closes its fd (the inherited one, or the duplicate a
 * self-opened listener holds). The engine that served it has stopped
 * accepting on its own copy by then.
 */
export function releaseListener(listener: Listener): void {
  if (!active.delete(listener) && listener.fd < 0) return;
  if (listener.fd >= 0) closeFd(listener.fd);
  listener.fd = -1;
}

function adoptFd(fd: InheritedFd, name: string): Listener {
  return { name, fd: fd.fd, addr: fd.addr, inherited: true };
}

/**
 * Opens a listening socket with Deno.listen (no node:net on the way to
 * serving), and keeps a close-on-exec duplicate of its fd: the listener is
 * that fd, which an engine serves and a restart passes on.
 */
function openSpec(spec: ListenSpec, name: string): Listener {
  if (spec.transport === "unix") return openUnix(spec.path, name);
  let listener: Deno.Listener;
  try {
    listener = Deno.listen({ hostname: spec.hostname, port: spec.port });
  } catch (error) {
    throw new Error(
      `cannot listen on ${formatAddr(spec)}: ${errorMessage(error)}`,
      { cause: error },
    );
  }
  try {
    const addr = addrOf(listener.addr);
    const own = listeningFdFor(addr);
    const fd = own === undefined ? -1 : dupFd(own);
    if (fd < 0) {
      throw new Error(
        `cannot get the fd of the socket listening on ${formatAddr(spec)}`,
      );
    }
    return { name, fd, addr, inherited: false };
  } finally {
    listener.close();
  }
}

/**
 * A unix socket is opened through os.ts: Deno.listen's would remove the path
 * when it closes, under a socket that lives on in the next generation.
 */
function openUnix(path: string, name: string): Listener {
  const fail = (reason: string) =>
    new Error(`cannot listen on unix:${path}: ${reason}`);
  if (path.startsWith("@")) return openAbstract(path, name, fail);
  let exists = false;
  try {
    Deno.lstatSync(path);
    exists = true;
  } catch (error) {
    if (!(error instanceof Deno.errors.NotFound)) {
      throw fail(errorMessage(error));
    }
  }
  if (exists) throw fail("address in use (the path exists)");
  const dir = path.slice(0, Math.max(path.lastIndexOf("/"), 1));
  try {
    if (!Deno.statSync(dir).isDirectory) {
      throw fail(`${dir} is not a directory`);
    }
  } catch (error) {
    if (error instanceof Deno.errors.NotFound) {
      throw fail(`no such directory: ${dir}`);
    }
    throw error;
  }
  const fd = listenUnix(path);
  if (typeof fd === "string") throw fail(fd);
  return { name, fd, addr: { transport: "unix", path }, inherited: false };
}

/**
 * An abstract unix socket ("@name"): no file, so nothing to check first; a
 * name in use is bind(2)'s EADDRINUSE.
 */
function openAbstract(
  path: string,
  name: string,
  fail: (reason: string) => Error,
): Listener {
  if (path === "@") throw fail("the abstract socket name is empty");
  const fd = listenUnix(path);
  if (typeof fd === "string") throw fail(fd);
  return { name, fd, addr: { transport: "unix", path }, inherited: false };
}

/** The address as getsockname(2) and the LISTEN_FDS reader write it. */
function addrOf(addr: Deno.Addr): Addr {
  if (addr.transport === "unix") return { transport: "unix", path: addr.path };
  const { hostname, port } = addr as Deno.NetAddr;
  return { transport: "tcp", hostname, port };
}
