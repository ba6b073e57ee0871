/**
 * What the transplant engine reads about this process's own fds: which fd is
 * a listening socket with a given address, how the runtime registered it in
 * its epoll instance (/proc/self/fdinfo), and which connected sockets were
 * accepted from a listener. Linux only; everything here is read from /proc
 * and through the socket calls of os/libc.ts.
 *
 * @module
 */

import type { Addr } from "../listen/types.ts";
import { decodeSockaddr } from "../listen/sockaddr.ts";
import { parseSocketInode } from "../os/proc_net.ts";
import { socketFacts, socketNames } from "../os/socket.ts";

/** One fd of /proc/self/fd and what its link names. */
interface OpenFd {
  fd: number;
  target: string;
}

/** Every fd open in this process, with its /proc/self/fd link target. */
export function openFds(): OpenFd[] {
  const fds: OpenFd[] = [];
  for (const entry of Deno.readDirSync("/proc/self/fd")) {
    const fd = Number(entry.name);
    try {
      fds.push({ fd, target: Deno.readLinkSync(`/proc/self/fd/${fd}`) });
    } catch {
      // closed while listing (it was /proc/self/fd itself, or a race)
    }
  }
  return fds;
}

/** Whether two addresses name the same socket address. */
export function sameAddr(a: Addr, b: Addr): boolean {
  if ("path" in a || "path" in b) {
    return "path" in a && "path" in b && a.path === b.path;
  }
  return a.port === b.port && a.hostname === b.hostname;
}

/**
 * The fd of the listening socket bound to `addr` (as getsockname(2) gives
 * it), or undefined. `exclude` skips an fd already known (the inherited one
 * when the placeholder has the same address).
 */
export function listeningFdFor(
  addr: Addr,
  exclude: readonly number[] = [],
): number | undefined {
  for (const fd of socketFdCandidates()) {
    if (exclude.includes(fd)) continue;
    const facts = socketFacts(fd);
    if (!facts?.listening) continue;
    const found = decodeSockaddr(facts.address);
    if (found !== undefined && sameAddr(found, addr)) return fd;
  }
  return undefined;
}

/** How many fd numbers are asked when /proc/self/fd cannot be read. */
const FD_SCAN_LIMIT = 1024;

/**
 * The fds that may be sockets: the socket links of /proc/self/fd or, where
 * it cannot be read (the posix mode, a process denied /proc), every fd
 * number below {@linkcode FD_SCAN_LIMIT}, which getsockopt(2) then sorts.
 */
function socketFdCandidates(): number[] {
  try {
    return openFds()
      .filter((open) => open.target.startsWith("socket:"))
      .map((open) => open.fd);
  } catch {
    return Array.from({ length: FD_SCAN_LIMIT }, (_, fd) => fd);
  }
}

/** One line of an epoll fd's /proc/self/fdinfo: a registered fd. */
export interface EpollRegistration {
  /** The epoll instance's fd in this process. */
  epollFd: number;
  /** The registered fd. */
  fd: number;
  /** The event mask (EPOLLIN | EPOLLET...). */
  events: number;
  /** The 64-bit user data (the runtime's token). */
  data: bigint;
  /** The inode of the file registered (the socket's). */
  inode: number;
}

const TFD_LINE =
  /^tfd:\s*(\d+)\s+events:\s*([0-9a-f]+)\s+data:\s*([0-9a-f]+)\s+pos:\s*\d+\s+ino:\s*([0-9a-f]+)/gm;

/**
 * The registration of `fd` in one of this process's epoll instances, as
 * /proc/self/fdinfo lists it; undefined when no instance has it.
 */
export function epollRegistrationOf(
  fd: number,
): EpollRegistration | undefined {
  for (const open of openFds()) {
    if (open.target !== "anon_inode:[eventpoll]") continue;
    let info: string;
    try {
      info = Deno.readTextFileSync(`/proc/self/fdinfo/${open.fd}`);
    } catch {
      continue;
    }
    for (const match of info.matchAll(TFD_LINE)) {
      if (Number(match[1]) !== fd) continue;
      return {
        epollFd: open.fd,
        fd,
        events: parseInt(match[2], 16),
        data: BigInt(`0x${match[3]}`),
        inode: parseInt(match[4], 16),
      };
    }
  }
  return undefined;
}

/** The inode of the socket open as `fd`, or undefined. */
export function socketInodeOf(fd: number): number | undefined {
  try {
    return parseSocketInode(Deno.readLinkSync(`/proc/self/fd/${fd}`));
  } catch {
    return undefined;
  }
}

/** Whether an accepted socket's local address belongs to `listening`. */
function acceptedFrom(local: Addr, listening: Addr): boolean {
  if ("path" in listening || "path" in local) {
    return sameAddr(local, listening);
  }
  if (local.port !== listening.port) return false;
  const wildcard = listening.hostname === "0.0.0.0" ||
    listening.hostname === "::";
  return wildcard || local.hostname === listening.hostname;
}

/**
 * The fds of the connected sockets in this process that were accepted from
 * the listener bound to `listening`: their local address is the listener's
 * (a client's is not, but for a unix client, which has none).
 */
export function acceptedFds(listening: Addr): number[] {
  const fds: number[] = [];
  for (const { fd, target } of openFds()) {
    if (!target.startsWith("socket:")) continue;
    const names = socketNames(fd);
    if (names?.peer === undefined) continue;
    const local = decodeSockaddr(names.local);
    if (local === undefined) continue;
    if ("path" in local && local.path === "") continue; // a unix client
    if (acceptedFrom(local, listening)) fds.push(fd);
  }
  return fds;
}
