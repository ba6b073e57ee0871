/**
 * Sockets passed by systemd socket activation (sd_listen_fds(3) semantics):
 * the environment says which fds were passed, and the kernel says what they
 * are: getsockopt(2) and getsockname(2) through FFI, when permitted, else
 * Linux's /proc/net tables (which also word every error). The tables list
 * every socket of the network namespace, so reading them takes milliseconds,
 * and tens of them with thousands of sockets in TIME_WAIT; a new generation
 * reads its fds on the way to serving.
 *
 * Reading `/proc/self/fd` needs Deno's `--allow-all`.
 *
 * @module
 */

import type { Addr } from "./types.ts";
import { formatAddr, formatIpv6 } from "./address.ts";
import { libc } from "../os/libc.ts";
import { sockaddrFamily, socketFacts } from "../os/socket.ts";
import { libcConstants, LISTEN_FDS_START } from "../os/constants.ts";
import { isLinuxMode, platform } from "../os/platform.ts";
import { quoteValue } from "../util/quote.ts";

/**
 * A listening socket passed to this process by its service manager.
 *
 * @example Print the inherited sockets
 * ```ts
 * import { type InheritedFd, readListenFds } from "./listen_fds.ts";
 *
 * const inherited: InheritedFd[] = readListenFds();
 * for (const { fd, name, addr } of inherited) {
 *   console.log(fd, name, addr);
 * }
 * ```
 */
export interface InheritedFd {
  /** The file descriptor number (3 for the first socket). */
  fd: number;
  /** Its name from LISTEN_FDNAMES, or "unknown" when none were given. */
  name: string;
  /** Where it listens. */
  addr: Addr;
}

/**
 * The socket activation environment is inconsistent, or a passed fd is not a
 * listening stream socket. The message names the variable or the fd at fault.
 *
 * @example Report a misconfigured unit
 * ```ts
 * import { ListenFdsError, readListenFds } from "./listen_fds.ts";
 *
 * try {
 *   readListenFds();
 * } catch (error) {
 *   if (error instanceof ListenFdsError) {
 *     console.error(`socket activation: ${error.message}`);
 *   }
 *   throw error;
 * }
 * ```
 */
export class ListenFdsError extends Error {
  /**
   * Creates the error.
   *
   * @param message What is wrong, naming the variable or fd.
   * @param options The underlying error, if any, as `cause`.
   */
  constructor(message: string, options?: ErrorOptions) {
    super(message, options);
    this.name = "ListenFdsError";
  }
}

/**
 * The environment {@linkcode readListenFds} reads and cleans; `Deno.env`
 * satisfies it.
 *
 * @example Use a plain map as the environment
 * ```ts
 * import { type ListenFdsEnv, readListenFds } from "./listen_fds.ts";
 *
 * const env: ListenFdsEnv = new Map([["LISTEN_FDS", "0"]]);
 * readListenFds({ env, pid: Deno.pid }); // []
 * ```
 */
export interface ListenFdsEnv {
  /** Returns the value of `key`, or undefined when it is not set. */
  get(key: string): string | undefined;
  /** Removes `key`. */
  delete(key: string): void;
}

/**
 * Options of {@linkcode readListenFds}.
 *
 * @example Read another environment
 * ```ts
 * import { readListenFds, type ReadListenFdsOptions } from "./listen_fds.ts";
 *
 * const options: ReadListenFdsOptions = { env: new Map(), pid: Deno.pid };
 * readListenFds(options); // []
 * ```
 */
export interface ReadListenFdsOptions {
  /** Where to read LISTEN_PID, LISTEN_FDS and LISTEN_FDNAMES. Default: `Deno.env`. */
  env?: ListenFdsEnv;
  /** This process's id, compared with LISTEN_PID. Default: `Deno.pid`. */
  pid?: number;
}

/** systemd's name for an fd when the unit gives none. */
const DEFAULT_FD_NAME = "unknown";

/** The TCP state "LISTEN" in /proc/net/tcp. */
const TCP_LISTEN = 0x0a;

/** SOCK_STREAM in the Type column of /proc/net/unix. */
const SOCK_STREAM = 1;
/** SOCK_DGRAM in the Type column of /proc/net/unix. */
const SOCK_DGRAM = 2;
/** SOCK_SEQPACKET in the Type column of /proc/net/unix. */
const SOCK_SEQPACKET = 5;

/** __SO_ACCEPTCON in the flags of /proc/net/unix: listen() was called. */
const SO_ACCEPTCON = 0x10000;

/** /proc/net/tcp prints addresses as native-endian 32-bit words. */
const HOST_IS_LITTLE_ENDIAN =
  new Uint8Array(new Uint16Array([1]).buffer)[0] === 1;

/**
 * Returns the sockets passed by socket activation, like sd_listen_fds(3) with
 * sd_listen_fds_with_names(3), and removes LISTEN_PID, LISTEN_FDS and
 * LISTEN_FDNAMES from the environment (always, also when it throws), so that
 * child processes do not mistake them for their own.
 *
 * Returns `[]` when LISTEN_FDS is not set, or LISTEN_PID is not set or names
 * another process. Otherwise fds 3 to 3 + LISTEN_FDS - 1 must each be a
 * listening TCP or unix stream socket; their addresses are read from /proc.
 *
 * Needs `--allow-env` and, to inspect the fds, `--allow-all` (Deno requires
 * it for `/proc/self/fd`).
 *
 * @param options Where to read the variables, and this process's id.
 * @returns The passed sockets, in fd order.
 * @throws {ListenFdsError} When a variable is malformed, the names do not match
 * the count, or an fd is not a listening stream socket; the message names the
 * variable or the fd.
 *
 * @example Serve on the sockets systemd passed
 * ```ts
 * import { readListenFds } from "./listen_fds.ts";
 *
 * for (const { fd, name, addr } of readListenFds()) {
 *   console.log(`fd ${fd} (${name}) listens on`, addr);
 * }
 * ```
 */
export function readListenFds(options?: ReadListenFdsOptions): InheritedFd[] {
  const env = options?.env ?? Deno.env;
  const pid = options?.pid ?? Deno.pid;
  let pidText: string | undefined;
  let fdsText: string | undefined;
  let namesText: string | undefined;
  try {
    pidText = env.get("LISTEN_PID");
    fdsText = env.get("LISTEN_FDS");
    namesText = env.get("LISTEN_FDNAMES");
  } finally {
    env.delete("LISTEN_PID");
    env.delete("LISTEN_FDS");
    env.delete("LISTEN_FDNAMES");
  }

  const { count, names } = parseListenEnv(pidText, fdsText, namesText, pid);
  if (!isLinuxMode()) return portableListenFds(count, names);
  checkPassedCount(count);
  // Check the fds one by one, so that a huge LISTEN_FDS fails at the first fd
  // that is not a socket instead of allocating first.
  const inodes: number[] = [];
  for (let index = 0; index < count; index++) {
    inodes.push(readSocketInode(LISTEN_FDS_START + index));
  }
  if (count === 0) {
    return [];
  }
  const fds = inodes.map((_, index) => LISTEN_FDS_START + index);
  const addrs = fds.map(listeningAddressOf);
  if (addrs.every((addr) => addr !== undefined)) {
    return fds.map((fd, index) => ({
      fd,
      name: names === undefined ? DEFAULT_FD_NAME : names[index],
      addr: addrs[index],
    }));
  }
  // No FFI, or a socket that cannot serve: the tables say what it is.
  const tables = readProcNetTables();
  return inodes.map((inode, index) => {
    const fd = LISTEN_FDS_START + index;
    return {
      fd,
      name: names === undefined ? DEFAULT_FD_NAME : names[index],
      addr: classifySocket(fd, inode, tables),
    };
  });
}

/**
 * The passed fds outside Linux: no /proc, so getsockopt(2) and fcntl(2) say
 * what each fd is; Windows passes none.
 */
function portableListenFds(
  count: number,
  names: string[] | undefined,
): InheritedFd[] {
  if (count === 0) return [];
  const { mode } = platform();
  if (mode === "windows") {
    throw new ListenFdsError(
      `LISTEN_FDS is ${count}: socket activation needs inherited fds, which ` +
        `the windows mode does not have; unset LISTEN_FDS`,
    );
  }
  const inherited: InheritedFd[] = [];
  for (let index = 0; index < count; index++) {
    const fd = LISTEN_FDS_START + index;
    const flags = libc()?.fcntl(fd, F_GETFD, 0);
    if (flags === undefined) {
      throw new ListenFdsError(
        `LISTEN_FDS: fd ${fd} cannot be checked without FFI (${mode} mode)`,
      );
    }
    if (flags < 0 || (flags & FD_CLOEXEC) !== 0) {
      throw new ListenFdsError(
        `LISTEN_FDS is ${count} but fd ${fd} is ` +
          `${flags < 0 ? "not open" : "this process's own"}, not inherited`,
      );
    }
    const addr = listeningAddressOf(fd);
    if (addr === undefined) {
      throw new ListenFdsError(
        `LISTEN_FDS: fd ${fd} is not a listening TCP or unix stream socket`,
      );
    }
    inherited.push({
      fd,
      name: names === undefined ? DEFAULT_FD_NAME : names[index],
      addr,
    });
  }
  return inherited;
}

const { F_GETFD, FD_CLOEXEC } = libcConstants;

/** O_CLOEXEC, as the flags in /proc/self/fdinfo show it (octal). */
const O_CLOEXEC = 0o2000000;

/**
 * Throws when fewer than `count` fds from fd 3 on came through exec. The fds
 * a service manager passes are open and not close-on-exec; every fd Deno
 * opens itself is close-on-exec. Without this check, a LISTEN_FDS larger
 * than what was passed would fail naming one of Deno's own fds (an epoll fd,
 * a cache file) as if it had been passed.
 */
function checkPassedCount(count: number): void {
  for (let index = 0; index < count; index++) {
    const fd = LISTEN_FDS_START + index;
    const passed = cameThroughExec(fd);
    if (passed !== false) continue;
    const what = index === 0
      ? "no fd was passed"
      : `only ${index} fd(s) were passed (fd ${LISTEN_FDS_START}` +
        `${index > 1 ? ` to fd ${fd - 1}` : ""})`;
    throw new ListenFdsError(
      `LISTEN_FDS is ${count} but ${what}: fd ${fd} is ` +
        `${describeFd(fd)}, not inherited`,
    );
  }
}

/** false when `fd` is closed or close-on-exec; undefined when unknown. */
function cameThroughExec(fd: number): boolean | undefined {
  let text: string;
  try {
    text = Deno.readTextFileSync(`/proc/self/fdinfo/${fd}`);
  } catch (error) {
    return error instanceof Deno.errors.NotFound ? false : undefined;
  }
  const flags = text.match(/^flags:\s*([0-7]+)\s*$/m);
  if (!flags) return undefined;
  return (parseInt(flags[1], 8) & O_CLOEXEC) === 0;
}

function describeFd(fd: number): string {
  try {
    return `this process's own (${Deno.readLinkSync(`/proc/self/fd/${fd}`)})`;
  } catch {
    return "not open";
  }
}

const { AF_UNIX, AF_INET, AF_INET6, IPPROTO_TCP } = libcConstants;

/**
 * The address of the socket open as `fd` if the kernel says, through
 * getsockopt(2) and getsockname(2), that it is a listening TCP or unix stream
 * socket; undefined when it is something else or FFI is not available.
 */
function listeningAddressOf(fd: number): Addr | undefined {
  const facts = socketFacts(fd);
  if (facts === undefined || !facts.listening) return undefined;
  if (facts.type !== SOCK_STREAM) return undefined;
  if (facts.domain === AF_UNIX) return decodeSockaddr(facts.address);
  if (
    (facts.domain === AF_INET || facts.domain === AF_INET6) &&
    facts.protocol === IPPROTO_TCP
  ) {
    return decodeSockaddr(facts.address);
  }
  return undefined;
}

/**
 * Decodes a sockaddr (sockaddr_in, sockaddr_in6 or sockaddr_un, in the
 * host's byte order for the family) into an address written as the /proc/net
 * tables give it: Deno's IPv6 notation, "@name" for an abstract unix socket
 * (with "@" for every NUL in the name), "" for an unbound one. Returns
 * undefined for another family or a truncated address.
 *
 * @internal Exported for tests.
 *
 * @example Decode an IPv4 address
 * ```ts
 * import { decodeSockaddr } from "./listen_fds.ts";
 *
 * decodeSockaddr(new Uint8Array([2, 0, 0x1f, 0x40, 127, 0, 0, 1]));
 * // { transport: "tcp", hostname: "127.0.0.1", port: 8000 }
 * ```
 */
export function decodeSockaddr(
  bytes: Uint8Array,
  littleEndian: boolean = HOST_IS_LITTLE_ENDIAN,
): Addr | undefined {
  if (bytes.length < 2) return undefined;
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.length);
  const family = sockaddrFamily(bytes, littleEndian);
  if (family === AF_INET && bytes.length >= 8) {
    return {
      transport: "tcp",
      hostname: bytes.subarray(4, 8).join("."),
      port: view.getUint16(2, false),
    };
  }
  if (family === AF_INET6 && bytes.length >= 24) {
    const groups: number[] = [];
    for (let group = 0; group < 8; group++) {
      groups.push(view.getUint16(8 + group * 2, false));
    }
    return {
      transport: "tcp",
      hostname: formatIpv6(groups),
      port: view.getUint16(2, false),
    };
  }
  if (family === AF_UNIX) {
    const name = bytes.subarray(2);
    if (name.length === 0) return { transport: "unix", path: "" };
    if (name[0] === 0) {
      // Abstract: the name is every byte after the NUL, NULs included.
      const shown = name.subarray(1).map((byte) => byte === 0 ? 0x40 : byte);
      return { transport: "unix", path: `@${new TextDecoder().decode(shown)}` };
    }
    const end = name.indexOf(0);
    const path = end < 0 ? name : name.subarray(0, end);
    return { transport: "unix", path: new TextDecoder().decode(path) };
  }
  return undefined;
}

/**
 * What the socket activation variables say, for this process.
 *
 * @internal Exported for tests.
 *
 * @example
 * ```ts
 * import type { ListenEnv } from "./listen_fds.ts";
 *
 * const passed: ListenEnv = { count: 2, names: ["web", "admin"] };
 * ```
 */
export interface ListenEnv {
  /** How many fds were passed (fds 3 to 3 + count - 1); 0 when none. */
  count: number;
  /** One name per fd from LISTEN_FDNAMES, or undefined when it is unset. */
  names: string[] | undefined;
}

/**
 * Interprets LISTEN_PID, LISTEN_FDS and LISTEN_FDNAMES (undefined when unset)
 * for the process `pid`. The count is 0 when the variables are absent or meant
 * for another process. Empty names in LISTEN_FDNAMES become "unknown".
 *
 * @internal Exported for tests.
 *
 * @example Two named fds
 * ```ts
 * import { parseListenEnv } from "./listen_fds.ts";
 *
 * parseListenEnv("42", "2", "web:admin", 42); // { count: 2, names: ["web", "admin"] }
 * ```
 */
export function parseListenEnv(
  pidText: string | undefined,
  fdsText: string | undefined,
  namesText: string | undefined,
  pid: number,
): ListenEnv {
  const none: ListenEnv = { count: 0, names: undefined };
  if (fdsText === undefined || pidText === undefined) {
    return none;
  }
  if (!/^\d+$/.test(pidText) || Number(pidText) === 0) {
    throw new ListenFdsError(
      `LISTEN_PID must be a process id (a positive decimal integer), ` +
        `but it is ${quoteValue(pidText)}`,
    );
  }
  if (Number(pidText) !== pid) {
    return none;
  }
  if (!/^\d+$/.test(fdsText) || !Number.isSafeInteger(Number(fdsText))) {
    throw new ListenFdsError(
      `LISTEN_FDS must be a non-negative decimal integer (the number of ` +
        `sockets passed from fd ${LISTEN_FDS_START} on), but it is ` +
        quoteValue(fdsText),
    );
  }
  const count = Number(fdsText);
  if (namesText === undefined) {
    return { count, names: undefined };
  }
  const names = namesText === "" ? [] : namesText.split(":");
  if (names.length !== count) {
    throw new ListenFdsError(
      `LISTEN_FDNAMES has ${names.length} name(s) ` +
        `(${quoteValue(namesText)}) but LISTEN_FDS is ${count}; ` +
        `systemd sends exactly one name per fd`,
    );
  }
  return {
    count,
    names: names.map((name) => name === "" ? DEFAULT_FD_NAME : name),
  };
}

/**
 * A socket listed in /proc/net/tcp, tcp6, udp or udp6.
 *
 * @internal Exported for tests.
 *
 * @example
 * ```ts
 * import type { ProcInetSocket } from "./listen_fds.ts";
 *
 * const socket: ProcInetSocket = {
 *   inode: 6617,
 *   hostname: "127.0.0.1",
 *   port: 8000,
 *   state: 0x0a,
 * };
 * ```
 */
export interface ProcInetSocket {
  /** The socket's inode number. */
  inode: number;
  /** The local IP address, as Deno prints it. */
  hostname: string;
  /** The local port. */
  port: number;
  /** The TCP state (0x0a is LISTEN); for UDP, 7 (unconnected) or 1. */
  state: number;
}

/**
 * A socket listed in /proc/net/unix.
 *
 * @internal Exported for tests.
 *
 * @example
 * ```ts
 * import type { ProcUnixSocket } from "./listen_fds.ts";
 *
 * const socket: ProcUnixSocket = {
 *   inode: 6621,
 *   type: 1,
 *   flags: 0x10000,
 *   path: "/run/app.sock",
 * };
 * ```
 */
export interface ProcUnixSocket {
  /** The socket's inode number. */
  inode: number;
  /** SOCK_STREAM (1), SOCK_DGRAM (2) or SOCK_SEQPACKET (5). */
  type: number;
  /** The socket flags; 0x10000 (__SO_ACCEPTCON) means listening. */
  flags: number;
  /** The bound path, "@name" for an abstract socket, "" when unbound. */
  path: string;
}

/**
 * The sockets of this network namespace, by inode.
 *
 * @internal Exported for tests.
 *
 * @example
 * ```ts
 * import { type ProcNetTables, readProcNetTables } from "./listen_fds.ts";
 *
 * const tables: ProcNetTables = readProcNetTables();
 * ```
 */
export interface ProcNetTables {
  /** From /proc/net/tcp and /proc/net/tcp6. */
  tcp: Map<number, ProcInetSocket>;
  /** From /proc/net/udp and /proc/net/udp6. */
  udp: Map<number, ProcInetSocket>;
  /** From /proc/net/unix. */
  unix: Map<number, ProcUnixSocket>;
}

/**
 * Decodes a local or remote address column of /proc/net/tcp, tcp6, udp or
 * udp6: the IP as native-endian 32-bit words in hex, a colon, and the port in
 * big-endian hex. Returns undefined when `text` is not such a column.
 *
 * @internal Exported for tests.
 *
 * @example Decode an IPv4 address on a little-endian machine
 * ```ts
 * import { decodeProcInetAddress } from "./listen_fds.ts";
 *
 * decodeProcInetAddress("0100007F:1F40"); // { hostname: "127.0.0.1", port: 8000 }
 * ```
 */
export function decodeProcInetAddress(
  text: string,
  littleEndian: boolean = HOST_IS_LITTLE_ENDIAN,
): { hostname: string; port: number } | undefined {
  const match = /^([0-9A-Fa-f]{8}|[0-9A-Fa-f]{32}):([0-9A-Fa-f]{4})$/.exec(
    text,
  );
  if (match === null) {
    return undefined;
  }
  const ipHex = match[1];
  const port = parseInt(match[2], 16);

  const bytes = new Uint8Array(ipHex.length / 2);
  const view = new DataView(bytes.buffer);
  for (let word = 0; word < ipHex.length / 8; word++) {
    const value = parseInt(ipHex.slice(word * 8, word * 8 + 8), 16);
    view.setUint32(word * 4, value, littleEndian);
  }

  if (bytes.length === 4) {
    return { hostname: bytes.join("."), port };
  }
  const groups: number[] = [];
  for (let group = 0; group < 8; group++) {
    groups.push(view.getUint16(group * 2, false));
  }
  return { hostname: formatIpv6(groups), port };
}

/**
 * Parses /proc/net/tcp, tcp6, udp or udp6 into its sockets by inode. Lines
 * that are not socket entries (the header) are skipped.
 *
 * @internal Exported for tests.
 *
 * @example Parse a listening socket
 * ```ts
 * import { parseProcNetInet } from "./listen_fds.ts";
 *
 * const table = parseProcNetInet(Deno.readTextFileSync("/proc/net/tcp"));
 * ```
 */
export function parseProcNetInet(
  text: string,
  littleEndian: boolean = HOST_IS_LITTLE_ENDIAN,
): Map<number, ProcInetSocket> {
  const sockets = new Map<number, ProcInetSocket>();
  for (const line of text.split("\n")) {
    const fields = line.trim().split(/\s+/);
    // sl, local_address, rem_address, st, tx:rx, tr:when, retrnsmt, uid,
    // timeout, inode, ...
    if (fields.length < 10 || !/^\d+:$/.test(fields[0])) {
      continue;
    }
    const local = decodeProcInetAddress(fields[1], littleEndian);
    const state = /^[0-9A-Fa-f]{2}$/.test(fields[3])
      ? parseInt(fields[3], 16)
      : NaN;
    const inode = /^\d+$/.test(fields[9]) ? Number(fields[9]) : 0;
    if (local === undefined || Number.isNaN(state) || inode === 0) {
      continue;
    }
    sockets.set(inode, { inode, ...local, state });
  }
  return sockets;
}

/**
 * Parses /proc/net/unix into its sockets by inode. The header is skipped.
 *
 * @internal Exported for tests.
 *
 * @example Parse the unix socket table
 * ```ts
 * import { parseProcNetUnix } from "./listen_fds.ts";
 *
 * const table = parseProcNetUnix(Deno.readTextFileSync("/proc/net/unix"));
 * ```
 */
export function parseProcNetUnix(text: string): Map<number, ProcUnixSocket> {
  const sockets = new Map<number, ProcUnixSocket>();
  // Num: RefCount Protocol Flags Type St Inode [Path]; the path may contain
  // spaces, so it is everything after the single space following the inode.
  const entry =
    /^\s*[0-9A-Fa-f]+:\s+[0-9A-Fa-f]+\s+[0-9A-Fa-f]+\s+([0-9A-Fa-f]+)\s+([0-9A-Fa-f]+)\s+[0-9A-Fa-f]+\s+(\d+)(?: (.*))?$/;
  for (const line of text.split("\n")) {
    const match = entry.exec(line);
    if (match === null) {
      continue;
    }
    const inode = Number(match[3]);
    sockets.set(inode, {
      inode,
      type: parseInt(match[2], 16),
      flags: parseInt(match[1], 16),
      path: match[4] ?? "",
    });
  }
  return sockets;
}

/**
 * Returns the inode of a `socket:[INODE]` link target of /proc/self/fd, or
 * undefined when the target is something else (a file, a pipe...).
 *
 * @internal Exported for tests.
 *
 * @example
 * ```ts
 * import { parseSocketInode } from "./listen_fds.ts";
 *
 * parseSocketInode("socket:[6617]"); // 6617
 * parseSocketInode("/etc/hostname"); // undefined
 * ```
 */
export function parseSocketInode(target: string): number | undefined {
  const match = /^socket:\[(\d+)\]$/.exec(target);
  return match === null ? undefined : Number(match[1]);
}

/**
 * Finds the socket with `inode` in `tables` and returns its address if it is a
 * listening TCP or unix stream socket; otherwise throws a ListenFdsError that
 * names `fd` and says what the socket is instead.
 *
 * @internal Exported for tests.
 *
 * @example Classify a listening TCP socket
 * ```ts
 * import { classifySocket, parseProcNetInet } from "./listen_fds.ts";
 *
 * const tcp = parseProcNetInet(
 *   "  1: 0100007F:1F40 00000000:0000 0A 00000000:00000000 00:00000000 " +
 *     "00000000     0        0 6617 1",
 *   true,
 * );
 * const tables = { tcp, udp: new Map(), unix: new Map() };
 * classifySocket(3, 6617, tables); // { transport: "tcp", hostname: "127.0.0.1", port: 8000 }
 * ```
 */
export function classifySocket(
  fd: number,
  inode: number,
  tables: ProcNetTables,
): Addr {
  const tcp = tables.tcp.get(inode);
  if (tcp !== undefined) {
    const addr: Addr = {
      transport: "tcp",
      hostname: tcp.hostname,
      port: tcp.port,
    };
    if (tcp.state !== TCP_LISTEN) {
      throw new ListenFdsError(
        `fd ${fd} is a TCP socket that is not listening (bound to ` +
          `${formatAddr(addr)}, TCP state ${tcpStateName(tcp.state)}); ` +
          `pass a socket on which listen() was called`,
      );
    }
    return addr;
  }

  const unix = tables.unix.get(inode);
  if (unix !== undefined) {
    const where = unix.path === "" ? "unbound" : `bound to ${unix.path}`;
    if (unix.type === SOCK_DGRAM) {
      throw new ListenFdsError(
        `fd ${fd} is a datagram (unix SOCK_DGRAM) socket (${where}); ` +
          `only stream sockets can serve HTTP`,
      );
    }
    if (unix.type === SOCK_SEQPACKET) {
      throw new ListenFdsError(
        `fd ${fd} is a unix SOCK_SEQPACKET socket (${where}); ` +
          `only stream sockets can serve HTTP`,
      );
    }
    if (unix.type !== SOCK_STREAM) {
      throw new ListenFdsError(
        `fd ${fd} is a unix socket of type ${unix.type} (${where}); ` +
          `only stream sockets can serve HTTP`,
      );
    }
    if ((unix.flags & SO_ACCEPTCON) === 0) {
      throw new ListenFdsError(
        `fd ${fd} is a unix stream socket that is not listening (${where}); ` +
          `pass a socket on which listen() was called`,
      );
    }
    return { transport: "unix", path: unix.path };
  }

  const udp = tables.udp.get(inode);
  if (udp !== undefined) {
    throw new ListenFdsError(
      `fd ${fd} is a datagram (UDP) socket (bound to ` +
        `${
          formatAddr({
            transport: "udp",
            hostname: udp.hostname,
            port: udp.port,
          })
        }); ` +
        `only stream sockets can serve HTTP`,
    );
  }

  // A TCP socket that is bound but not listening is in no table either: the
  // kernel lists only listening and connected TCP sockets.
  throw new ListenFdsError(
    `fd ${fd} is a socket of an unsupported kind (socket:[${inode}] is in ` +
      `none of /proc/net/tcp, tcp6, udp, udp6 and unix; a TCP socket that ` +
      `is bound but not listening looks like this too)`,
  );
}

/**
 * Returns the inode of the socket open as `fd` in this process, read from
 * /proc/self/fd; throws a ListenFdsError naming `fd` when it is not open or
 * not a socket.
 *
 * @internal Exported for tests.
 *
 * @example Inspect fd 3
 * ```ts
 * import { ListenFdsError, readSocketInode } from "./listen_fds.ts";
 *
 * try {
 *   console.log(`fd 3 is socket:[${readSocketInode(3)}]`);
 * } catch (error) {
 *   if (!(error instanceof ListenFdsError)) throw error;
 *   console.log(error.message); // e.g. "fd 3 (from LISTEN_FDS) is not open"
 * }
 * ```
 */
export function readSocketInode(fd: number): number {
  let target: string;
  try {
    target = Deno.readLinkSync(`/proc/self/fd/${fd}`);
  } catch (error) {
    if (error instanceof Deno.errors.NotFound) {
      throw new ListenFdsError(`fd ${fd} (from LISTEN_FDS) is not open`, {
        cause: error,
      });
    }
    if (error instanceof Deno.errors.NotCapable) {
      throw new ListenFdsError(
        `cannot inspect fd ${fd} (from LISTEN_FDS): reading ` +
          `/proc/self/fd/${fd} needs Deno's --allow-all permission`,
        { cause: error },
      );
    }
    throw new ListenFdsError(
      `cannot inspect fd ${fd} (from LISTEN_FDS): ${errorMessage(error)}`,
      { cause: error },
    );
  }
  const inode = parseSocketInode(target);
  if (inode === undefined) {
    throw new ListenFdsError(
      `fd ${fd} (from LISTEN_FDS) is not a socket: it is ${target}`,
    );
  }
  return inode;
}

/**
 * Reads the socket tables of this network namespace from /proc/net. A missing
 * table (IPv6 disabled) counts as empty.
 *
 * @internal Exported for tests.
 *
 * @example
 * ```ts
 * import { readProcNetTables } from "./listen_fds.ts";
 *
 * const tables = readProcNetTables();
 * console.log(tables.tcp.size, tables.udp.size, tables.unix.size);
 * ```
 */
export function readProcNetTables(): ProcNetTables {
  const tcp = new Map([
    ...parseProcNetInet(readProcNetFile("tcp")),
    ...parseProcNetInet(readProcNetFile("tcp6")),
  ]);
  const udp = new Map([
    ...parseProcNetInet(readProcNetFile("udp")),
    ...parseProcNetInet(readProcNetFile("udp6")),
  ]);
  const unix = parseProcNetUnix(readProcNetFile("unix"));
  return { tcp, udp, unix };
}

/** Reads /proc/net/`name`, or "" when it does not exist. */
function readProcNetFile(name: string): string {
  const path = `/proc/net/${name}`;
  try {
    return Deno.readTextFileSync(path);
  } catch (error) {
    if (error instanceof Deno.errors.NotFound) {
      return "";
    }
    throw new ListenFdsError(
      `cannot read ${path} to inspect the LISTEN_FDS sockets: ` +
        errorMessage(error),
      { cause: error },
    );
  }
}

/** Names a TCP state of /proc/net/tcp, for error messages. */
function tcpStateName(state: number): string {
  const names: Record<number, string> = {
    0x01: "ESTABLISHED",
    0x02: "SYN_SENT",
    0x03: "SYN_RECV",
    0x04: "FIN_WAIT1",
    0x05: "FIN_WAIT2",
    0x06: "TIME_WAIT",
    0x07: "CLOSE",
    0x08: "CLOSE_WAIT",
    0x09: "LAST_ACK",
    0x0a: "LISTEN",
    0x0b: "CLOSING",
  };
  const hex = state.toString(16).toUpperCase().padStart(2, "0");
  return names[state] === undefined ? hex : `${hex} ${names[state]}`;
}

/** The message of an unknown thrown value. */
function errorMessage(error: unknown): string {
  return error instanceof Error ? error.message : String(error);
}
