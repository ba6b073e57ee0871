/**
 * The thin seam to the operating system: the few libc calls Deno has no API
 * for, made through FFI (`--allow-ffi`, included in `-A`).
 *
 * Everything here degrades: when FFI is not permitted, {@linkcode libc}
 * returns `undefined` and callers say what they cannot do.
 *
 * @module
 */

import { errorMessage } from "../util/error_message.ts";

const O_NONBLOCK = 0o4000;
const F_GETFL = 3;
const F_SETFL = 4;

const SYMBOLS = {
  close: { parameters: ["i32"], result: "i32" },
  fcntl: { parameters: ["i32", "i32", "i32"], result: "i32" },
  socket: { parameters: ["i32", "i32", "i32"], result: "i32" },
  send: { parameters: ["i32", "buffer", "usize", "i32"], result: "isize" },
  recv: { parameters: ["i32", "buffer", "usize", "i32"], result: "isize" },
} as const;

/** The libc functions this module uses. */
export interface Libc {
  /** close(2). */
  close(fd: number): number;
  /** fcntl(2) with an int argument. */
  fcntl(fd: number, command: number, arg: number): number;
  /** socket(2). */
  socket(domain: number, type: number, protocol: number): number;
  /** send(2) of the whole buffer. */
  send(fd: number, data: Uint8Array<ArrayBuffer>, flags: number): number;
  /** recv(2) into the whole buffer. */
  recv(fd: number, buffer: Uint8Array<ArrayBuffer>, flags: number): number;
}

let cached: Libc | null | undefined;
let whyNot = "";

/**
 * Opens libc through FFI once. Returns `undefined` when FFI is not permitted
 * or libc cannot be loaded; {@linkcode libcUnavailableReason} says why.
 *
 * @example
 * ```ts ignore
 * libc()?.close(fd);
 * ```
 */
export function libc(): Libc | undefined {
  if (cached !== undefined) return cached ?? undefined;
  try {
    const lib = Deno.dlopen(libcPath(), SYMBOLS);
    const symbols = lib.symbols;
    cached = {
      close: (fd) => symbols.close(fd),
      fcntl: (fd, command, arg) => symbols.fcntl(fd, command, arg),
      socket: (domain, type, protocol) =>
        symbols.socket(domain, type, protocol),
      send: (fd, data, flags) =>
        Number(symbols.send(fd, data, BigInt(data.length), flags)),
      recv: (fd, buffer, flags) =>
        Number(symbols.recv(fd, buffer, BigInt(buffer.length), flags)),
    };
  } catch (error) {
    whyNot = errorMessage(error);
    cached = null;
  }
  return cached ?? undefined;
}

/**
 * Why {@linkcode libc} returned `undefined` (empty when it did not).
 *
 * @example
 * ```ts ignore
 * if (!libc()) console.warn(libcUnavailableReason());
 * ```
 */
export function libcUnavailableReason(): string {
  return whyNot;
}

/**
 * The path of libc on this machine (for Deno.dlopen).
 *
 * @example
 * ```ts ignore
 * Deno.dlopen(libcPath(), { getpid: { parameters: [], result: "i32" } });
 * ```
 */
export function libcPath(): string {
  for (
    const path of [
      "/lib/x86_64-linux-gnu/libc.so.6",
      "/lib/aarch64-linux-gnu/libc.so.6",
      "/usr/lib/libc.so.6",
      "/lib64/libc.so.6",
    ]
  ) {
    try {
      Deno.statSync(path);
      return path;
    } catch {
      // try the next one
    }
  }
  return "libc.so.6";
}

/**
 * Closes a raw file descriptor that Deno does not track (for example a dup
 * from `fdForIpc()`). Returns false when it could not.
 *
 * @example
 * ```ts ignore
 * closeFd(dupFd);
 * ```
 */
export function closeFd(fd: number): boolean {
  const c = libc();
  return c !== undefined && c.close(fd) === 0;
}

/**
 * Sets O_NONBLOCK on `fd` if it is not set. Returns the flags found before,
 * or -1 when they could not be read.
 *
 * @example
 * ```ts ignore
 * ensureNonBlocking(3);
 * ```
 */
export function ensureNonBlocking(fd: number): number {
  const c = libc();
  if (!c) return -1;
  const flags = c.fcntl(fd, F_GETFL, 0);
  if (flags >= 0 && (flags & O_NONBLOCK) === 0) {
    c.fcntl(fd, F_SETFL, flags | O_NONBLOCK);
  }
  return flags;
}

/**
 * Whether `fd` is open in this process.
 *
 * @example
 * ```ts
 * import { isFdOpen } from "./libc.ts";
 * console.log(isFdOpen(0));
 * ```
 */
export function isFdOpen(fd: number): boolean {
  try {
    Deno.readLinkSync(`/proc/self/fd/${fd}`);
    return true;
  } catch {
    return false;
  }
}

/** C structs are in the host's byte order. */
const HOST_LITTLE_ENDIAN = new Uint8Array(new Uint16Array([1]).buffer)[0] === 1;

/** getsockopt(2) and socket(2) constants (Linux). */
const SOL_SOCKET = 1;
const SO_TYPE = 3;
const SO_ACCEPTCONN = 30;
const SO_PROTOCOL = 38;
const SO_DOMAIN = 39;
const SOCK_CLOEXEC = 0o2000000;

const SOCKET_SYMBOLS = {
  getsockopt: {
    parameters: ["i32", "i32", "i32", "buffer", "buffer"],
    result: "i32",
  },
  getsockname: { parameters: ["i32", "buffer", "buffer"], result: "i32" },
} as const;

let socketLib: Deno.DynamicLibrary<typeof SOCKET_SYMBOLS> | null | undefined;

/**
 * getsockopt(2) and getsockname(2), in a binding of their own: a new
 * generation needs only them on its way to serving, and every bound symbol
 * adds to the load (about 1 ms for these two, 2 ms for all of libc's here).
 */
function socketCalls():
  | Deno.DynamicLibrary<typeof SOCKET_SYMBOLS>["symbols"]
  | undefined {
  if (socketLib === undefined) {
    try {
      socketLib = Deno.dlopen(libcPath(), SOCKET_SYMBOLS);
    } catch {
      socketLib = null;
    }
  }
  return socketLib?.symbols;
}

/** What getsockopt(2) and getsockname(2) say about a socket. */
export interface SocketFacts {
  /** SO_DOMAIN: AF_UNIX (1), AF_INET (2), AF_INET6 (10)... */
  domain: number;
  /** SO_TYPE: SOCK_STREAM (1), SOCK_DGRAM (2), SOCK_SEQPACKET (5)... */
  type: number;
  /** SO_PROTOCOL: IPPROTO_TCP (6) for a TCP socket. */
  protocol: number;
  /** SO_ACCEPTCONN: whether listen(2) was called. */
  listening: boolean;
  /** getsockname(2): the local address, as the raw sockaddr bytes. */
  address: Uint8Array;
}

/**
 * Asks the kernel directly (getsockopt(2), getsockname(2)) what the socket
 * open as `fd` is: microseconds, where the /proc/net tables take
 * milliseconds (they list every socket of the network namespace). Returns
 * undefined when FFI is not available or `fd` is not a socket.
 *
 * @example
 * ```ts ignore
 * const facts = socketFacts(3);
 * if (facts?.listening) console.log("fd 3 listens");
 * ```
 */
export function socketFacts(fd: number): SocketFacts | undefined {
  const calls = socketCalls();
  if (!calls) return undefined;
  const { getsockopt, getsockname } = calls;
  const value = new Uint8Array(4);
  const length = new Uint8Array(4);
  const lengthView = new DataView(length.buffer);
  function intOption(name: number): number | undefined {
    lengthView.setUint32(0, 4, HOST_LITTLE_ENDIAN);
    if (getsockopt(fd, SOL_SOCKET, name, value, length) !== 0) {
      return undefined;
    }
    return new DataView(value.buffer).getInt32(0, HOST_LITTLE_ENDIAN);
  }
  const domain = intOption(SO_DOMAIN);
  const type = intOption(SO_TYPE);
  const protocol = intOption(SO_PROTOCOL);
  const listening = intOption(SO_ACCEPTCONN);
  if (
    domain === undefined || type === undefined || protocol === undefined ||
    listening === undefined
  ) {
    return undefined;
  }
  // sockaddr_storage: 128 bytes holds every address family.
  const address = new Uint8Array(128);
  lengthView.setUint32(0, address.length, HOST_LITTLE_ENDIAN);
  if (getsockname(fd, address, length) !== 0) return undefined;
  const size = Math.min(
    lengthView.getUint32(0, HOST_LITTLE_ENDIAN),
    address.length,
  );
  return {
    domain,
    type,
    protocol,
    listening: listening !== 0,
    address: address.subarray(0, size),
  };
}

/** Netlink and sock_diag(7) constants (Linux). */
const AF_INET = 2;
const AF_NETLINK = 16;
const SOCK_RAW = 3;
const NETLINK_SOCK_DIAG = 4;
const SOCK_DIAG_BY_FAMILY = 20;
const NLM_F_REQUEST = 1;
const NLMSG_ERROR = 2;
const IPPROTO_TCP = 6;
const MSG_DONTWAIT = 0x40;
/** struct nlmsghdr. */
const NLMSG_HEADER_BYTES = 16;
/** struct inet_diag_req_v2. */
const INET_DIAG_REQUEST_BYTES = 56;
/** The offset of idiag_inode in struct inet_diag_msg. */
const INET_DIAG_INODE_OFFSET = 68;

/**
 * The inode of the TCP socket whose local address is 127.0.0.1:`localPort`
 * and whose peer is 127.0.0.1:`peerPort`, looked up in the kernel with one
 * sock_diag(7) netlink request (what `ss` uses): a direct lookup by address,
 * where /proc/net/tcp lists every socket of the namespace (milliseconds with
 * a few hundred sockets, tens of them with thousands in TIME_WAIT).
 *
 * Returns null when the kernel has no such socket, and undefined when the
 * lookup cannot be made here (no FFI, netlink refused): then use
 * /proc/net/tcp.
 *
 * @example
 * ```ts ignore
 * const inode = loopbackTcpInode(conn.localAddr.port, conn.remoteAddr.port);
 * ```
 */
export function loopbackTcpInode(
  localPort: number,
  peerPort: number,
): number | null | undefined {
  const c = libc();
  if (!c) return undefined;
  const fd = c.socket(AF_NETLINK, SOCK_RAW | SOCK_CLOEXEC, NETLINK_SOCK_DIAG);
  if (fd < 0) return undefined;
  try {
    const request = new Uint8Array(
      NLMSG_HEADER_BYTES + INET_DIAG_REQUEST_BYTES,
    );
    const view = new DataView(request.buffer);
    const le = HOST_LITTLE_ENDIAN;
    // struct nlmsghdr
    view.setUint32(0, request.length, le);
    view.setUint16(4, SOCK_DIAG_BY_FAMILY, le);
    view.setUint16(6, NLM_F_REQUEST, le);
    view.setUint32(8, 1, le); // sequence number
    // struct inet_diag_req_v2: family, protocol, ext, pad, states
    const req = NLMSG_HEADER_BYTES;
    view.setUint8(req, AF_INET);
    view.setUint8(req + 1, IPPROTO_TCP);
    view.setUint32(req + 4, 0xffffffff, le); // every TCP state
    // struct inet_diag_sockid: ports in network order, then the addresses
    view.setUint16(req + 8, localPort, false);
    view.setUint16(req + 10, peerPort, false);
    request.set([127, 0, 0, 1], req + 12);
    request.set([127, 0, 0, 1], req + 28);
    // idiag_cookie: INET_DIAG_NOCOOKIE, no cookie to match
    view.setUint32(req + 48, 0xffffffff, le);
    view.setUint32(req + 52, 0xffffffff, le);
    if (c.send(fd, request, 0) !== request.length) return undefined;
    // The kernel answers a single-socket request while handling send(2).
    const answer = new Uint8Array(1024);
    const received = c.recv(fd, answer, MSG_DONTWAIT);
    if (received < NLMSG_HEADER_BYTES) return undefined;
    const reply = new DataView(answer.buffer, 0, received);
    const type = reply.getUint16(4, le);
    if (type === NLMSG_ERROR) {
      // ENOENT: no such socket. Anything else: the lookup is refused here.
      const errno = -reply.getInt32(NLMSG_HEADER_BYTES, le);
      return errno === 2 ? null : undefined;
    }
    const inodeAt = NLMSG_HEADER_BYTES + INET_DIAG_INODE_OFFSET;
    if (type !== SOCK_DIAG_BY_FAMILY || received < inodeAt + 4) {
      return undefined;
    }
    return reply.getUint32(inodeAt, le);
  } finally {
    c.close(fd);
  }
}

const SPAWN_SYMBOLS = {
  posix_spawn: {
    parameters: ["buffer", "buffer", "buffer", "buffer", "buffer", "buffer"],
    result: "i32",
  },
  posix_spawn_file_actions_init: { parameters: ["buffer"], result: "i32" },
  posix_spawn_file_actions_adddup2: {
    parameters: ["buffer", "i32", "i32"],
    result: "i32",
  },
  posix_spawn_file_actions_addopen: {
    parameters: ["buffer", "i32", "buffer", "i32", "u32"],
    result: "i32",
  },
  posix_spawn_file_actions_addchdir_np: {
    parameters: ["buffer", "buffer"],
    result: "i32",
    optional: true,
  },
  posix_spawn_file_actions_destroy: { parameters: ["buffer"], result: "i32" },
  posix_spawnattr_init: { parameters: ["buffer"], result: "i32" },
  posix_spawnattr_setflags: { parameters: ["buffer", "i16"], result: "i32" },
  posix_spawnattr_setsigdefault: {
    parameters: ["buffer", "buffer"],
    result: "i32",
  },
  posix_spawnattr_setsigmask: {
    parameters: ["buffer", "buffer"],
    result: "i32",
  },
  posix_spawnattr_destroy: { parameters: ["buffer"], result: "i32" },
  waitpid: { parameters: ["i32", "buffer", "i32"], result: "i32" },
  waitid: { parameters: ["i32", "i32", "buffer", "i32"], result: "i32" },
} as const;

/** posix_spawnattr_setflags(3) flags (glibc and musl). */
const POSIX_SPAWN_SETSIGDEF = 0x04;
const POSIX_SPAWN_SETSIGMASK = 0x08;
const POSIX_SPAWN_SETSID = 0x80;
/** posix_spawn_file_actions_t and posix_spawnattr_t take 80 and 336 bytes. */
const SPAWN_STRUCT_BYTES = 1024;
/** sigset_t: 1024 bits. */
const SIGSET_BYTES = 128;
const SIGKILL = 9;
const SIGSTOP = 19;
/** The highest signal number (SIGRTMAX). */
const SIGNAL_MAX = 64;
const WNOHANG = 1;

let spawnLib: Deno.DynamicLibrary<typeof SPAWN_SYMBOLS> | null | undefined;

/** posix_spawn(3) and waitpid(2), in a binding of their own. */
function spawnCalls():
  | Deno.DynamicLibrary<typeof SPAWN_SYMBOLS>["symbols"]
  | undefined {
  if (spawnLib === undefined) {
    try {
      spawnLib = Deno.dlopen(libcPath(), SPAWN_SYMBOLS);
    } catch {
      spawnLib = null;
    }
  }
  return spawnLib?.symbols;
}

/**
 * Loads posix_spawn(3) and waitpid(2) through FFI ahead of the first spawn
 * (a restart loads it once the generation serves). Returns whether they are
 * available.
 *
 * @example
 * ```ts ignore
 * loadSpawnCalls();
 * ```
 */
export function loadSpawnCalls(): boolean {
  return spawnCalls() !== undefined;
}

const encoder = new TextEncoder();

/**
 * A NUL-terminated copy of `text`.
 *
 * @example
 * ```ts ignore
 * const path = cString("/bin/sh");
 * ```
 */
export function cString(text: string): Uint8Array<ArrayBuffer> {
  return encoder.encode(`${text}\0`);
}

/**
 * A NULL-terminated array of pointers to `strings` (which must stay alive).
 *
 * @example
 * ```ts ignore
 * const argv = pointerArray(["sh", "-c", "true"].map(cString));
 * ```
 */
export function pointerArray(
  strings: Uint8Array<ArrayBuffer>[],
): BigUint64Array<ArrayBuffer> {
  const array = new BigUint64Array(strings.length + 1);
  strings.forEach((string, index) => {
    array[index] = BigInt(
      Deno.UnsafePointer.value(Deno.UnsafePointer.of(string)),
    );
  });
  return array;
}

/** A sigset_t with every signal from 1 to SIGRTMAX but SIGKILL and SIGSTOP. */
function everyResettableSignal(): Uint8Array<ArrayBuffer> {
  const set = new Uint8Array(SIGSET_BYTES);
  for (let signal = 1; signal <= SIGNAL_MAX; signal++) {
    if (signal === SIGKILL || signal === SIGSTOP) continue;
    const bit = signal - 1;
    // sigset_t is an array of unsigned longs: bit n of the set is bit n % 64
    // of long n / 64, whose bytes are in the host's order.
    const byte = HOST_LITTLE_ENDIAN
      ? bit >> 3
      : (bit >> 6) * 8 + 7 - ((bit & 63) >> 3);
    set[byte] |= 1 << (bit & 7);
  }
  return set;
}

/** open(2) flag: read and write. */
const O_RDWR = 2;

/** What {@linkcode spawnInNewSession} starts. */
export interface SessionSpawn {
  /** The executable's path. */
  path: string;
  /** Its argv, argv[0] included. */
  argv: string[];
  /** Its whole environment. */
  env: Record<string, string>;
  /** dup2(from, to) in the child, in this order (the targets lose FD_CLOEXEC). */
  dups: { from: number; to: number }[];
  /** Fds (0, 1, 2) that get /dev/null in the child instead of this process's. */
  devNull?: number[];
  /** Its working directory; default: this process's. */
  cwd?: string;
}

/**
 * Starts a process with posix_spawn(3) in a new session (setsid, so its pid
 * is its process group), every signal at its default action and none
 * blocked, and the fds `dups` places. posix_spawn does not copy this process
 * (glibc uses vfork semantics), where a fork (what Deno's child_process and a
 * detached Deno.Command do) copies its page tables: milliseconds for a small
 * Deno process, and in proportion to its memory.
 *
 * Returns the pid; undefined when it cannot be done here (no FFI, no
 * POSIX_SPAWN_SETSID, or `cwd` without posix_spawn_file_actions_addchdir_np),
 * so that the caller starts the process another way. Throws when
 * posix_spawn fails.
 *
 * @example
 * ```ts ignore
 * const pid = spawnInNewSession({
 *   path: "/bin/sh",
 *   argv: ["sh", "-c", "exec sleep 1"],
 *   env: {},
 *   dups: [],
 * });
 * ```
 */
export function spawnInNewSession(spec: SessionSpawn): number | undefined {
  const calls = spawnCalls();
  if (calls === undefined) return undefined;
  const actions = new Uint8Array(SPAWN_STRUCT_BYTES);
  const attributes = new Uint8Array(SPAWN_STRUCT_BYTES);
  if (calls.posix_spawn_file_actions_init(actions) !== 0) return undefined;
  try {
    if (calls.posix_spawnattr_init(attributes) !== 0) return undefined;
    try {
      const flags = POSIX_SPAWN_SETSID | POSIX_SPAWN_SETSIGDEF |
        POSIX_SPAWN_SETSIGMASK;
      if (
        calls.posix_spawnattr_setflags(attributes, flags) !== 0 ||
        calls.posix_spawnattr_setsigdefault(
            attributes,
            everyResettableSignal(),
          ) !== 0 ||
        calls.posix_spawnattr_setsigmask(
            attributes,
            new Uint8Array(SIGSET_BYTES),
          ) !== 0
      ) {
        return undefined; // an old libc without POSIX_SPAWN_SETSID
      }
      for (const { from, to } of spec.dups) {
        const failed = calls.posix_spawn_file_actions_adddup2(
          actions,
          from,
          to,
        );
        if (failed !== 0) {
          throw new Error(`posix_spawn: cannot pass fd ${from} as ${to}`);
        }
      }
      for (const fd of spec.devNull ?? []) {
        const failed = calls.posix_spawn_file_actions_addopen(
          actions,
          fd,
          cString("/dev/null"),
          O_RDWR,
          0,
        );
        if (failed !== 0) {
          throw new Error(`posix_spawn: cannot open /dev/null as fd ${fd}`);
        }
      }
      const addchdir = calls.posix_spawn_file_actions_addchdir_np;
      if (spec.cwd !== undefined) {
        if (addchdir === null || addchdir(actions, cString(spec.cwd)) !== 0) {
          return undefined;
        }
      }
      const path = cString(spec.path);
      const argv = spec.argv.map(cString);
      const env = Object.entries(spec.env).map(([key, value]) =>
        cString(`${key}=${value}`)
      );
      const pid = new Int32Array(1);
      const errno = calls.posix_spawn(
        pid,
        path,
        actions,
        attributes,
        pointerArray(argv),
        pointerArray(env),
      );
      if (errno !== 0) {
        throw new Error(`posix_spawn of ${spec.path} failed (errno ${errno})`);
      }
      return pid[0];
    } finally {
      calls.posix_spawnattr_destroy(attributes);
    }
  } finally {
    calls.posix_spawn_file_actions_destroy(actions);
  }
}

const P_ALL = 0;
const P_PID = 1;
const WEXITED = 4;
const WNOWAIT = 0x01000000;
/** siginfo_t is 128 bytes; si_pid is at 16 (x86_64 and aarch64). */
const SIGINFO_BYTES = 128;
const SI_PID_OFFSET = 16;

/**
 * waitid(2) with WNOWAIT: the pid of a child that has ended but is not
 * reaped yet (`pid`, or any child when omitted); undefined when there is
 * none. The child stays a zombie, so its pid and process group id stay
 * reserved: its group can still be signalled safely, then it is reaped
 * ({@linkcode reapChild}).
 *
 * @example
 * ```ts ignore
 * if (endedChild(pid)) { Deno.kill(-pid, "SIGKILL"); reapChild(pid); }
 * ```
 */
export function endedChild(pid?: number): number | undefined {
  const calls = spawnCalls();
  if (calls === undefined) return undefined;
  const info = new Uint8Array(SIGINFO_BYTES);
  const result = calls.waitid(
    pid === undefined ? P_ALL : P_PID,
    pid ?? 0,
    info,
    WEXITED | WNOHANG | WNOWAIT,
  );
  if (result !== 0) return undefined; // ECHILD: no such child
  const ended = new DataView(info.buffer).getInt32(SI_PID_OFFSET, true);
  return ended > 0 ? ended : undefined;
}

/** How a child process ended, from waitpid(2). */
export interface ChildExit {
  /** Its exit status, or null when a signal ended it (or it is unknown). */
  code: number | null;
  /** The number of the signal that ended it, or null. */
  signal: number | null;
}

/**
 * waitpid(pid, WNOHANG): reaps child `pid` if it has ended and says how;
 * undefined while it runs. A pid that is not (or no longer) this process's
 * child counts as ended, status unknown.
 *
 * @example
 * ```ts ignore
 * const exit = reapChild(pid);
 * if (exit) console.log(exit.code, exit.signal);
 * ```
 */
export function reapChild(pid: number): ChildExit | undefined {
  const calls = spawnCalls();
  if (calls === undefined) return { code: null, signal: null };
  const status = new Int32Array(1);
  const result = calls.waitpid(pid, status, WNOHANG);
  if (result === 0) return undefined;
  // Below 0: not this process's child (ECHILD), or reaped elsewhere.
  if (result < 0) return { code: null, signal: null };
  const value = status[0];
  const termSignal = value & 0x7f;
  if (termSignal === 0) return { code: (value >> 8) & 0xff, signal: null };
  return { code: null, signal: termSignal };
}

const NOTIFY_SYMBOLS = {
  socket: { parameters: ["i32", "i32", "i32"], result: "i32" },
  sendmsg: { parameters: ["i32", "buffer", "i32"], result: "isize" },
  close: { parameters: ["i32"], result: "i32" },
  clock_gettime: { parameters: ["i32", "buffer"], result: "i32" },
} as const;

let notifyLib: Deno.DynamicLibrary<typeof NOTIFY_SYMBOLS> | null | undefined;
let notifyWhyNot = "";

/**
 * socket(2), sendmsg(2), close(2) and clock_gettime(2), in a binding of their
 * own: what sd_notify(3) needs, and all a new generation loads to say ready.
 */
function notifyCalls():
  | Deno.DynamicLibrary<typeof NOTIFY_SYMBOLS>["symbols"]
  | undefined {
  if (notifyLib === undefined) {
    try {
      notifyLib = Deno.dlopen(libcPath(), NOTIFY_SYMBOLS);
    } catch (error) {
      notifyWhyNot = errorMessage(error);
      notifyLib = null;
    }
  }
  return notifyLib?.symbols;
}

/**
 * Why {@linkcode sendUnixDatagram} and {@linkcode monotonicClockUsec} cannot
 * make their calls (empty when they can, or before the first try).
 *
 * @example
 * ```ts ignore
 * if (sendUnixDatagram(address, data) === undefined) {
 *   console.warn(notifyCallsUnavailableReason());
 * }
 * ```
 */
export function notifyCallsUnavailableReason(): string {
  return notifyWhyNot;
}

const AF_UNIX = 1;
const SOCK_DGRAM = 2;
const SCM_RIGHTS = 1;
const CLOCK_MONOTONIC = 1;
/** struct msghdr, struct iovec and struct cmsghdr on a 64-bit Linux. */
const MSGHDR_BYTES = 56;
const IOVEC_BYTES = 16;
const CMSGHDR_BYTES = 16;

/** The address of `buffer`'s first byte, as a C pointer value. */
function addressOf(buffer: Uint8Array<ArrayBuffer>): bigint {
  return BigInt(Deno.UnsafePointer.value(Deno.UnsafePointer.of(buffer)));
}

/**
 * Sends one datagram to the unix socket at `address` (a sockaddr_un, as
 * notify.ts's `sockaddrUn` encodes it) from a fresh socket, with `fds`
 * attached as SCM_RIGHTS when there are any: what sd_pid_notify_with_fds(3)
 * does. Returns 0 when it was sent, -1 when socket(2) or sendmsg(2)
 * failed, and undefined when FFI is not available
 * ({@linkcode notifyCallsUnavailableReason} says why).
 *
 * @example
 * ```ts ignore
 * sendUnixDatagram(sockaddrUn("/run/notify"), bytes("FDSTORE=1"), [3]);
 * ```
 */
export function sendUnixDatagram(
  address: Uint8Array<ArrayBuffer>,
  data: Uint8Array<ArrayBuffer>,
  fds: readonly number[] = [],
): number | undefined {
  const calls = notifyCalls();
  if (!calls) return undefined;
  const le = HOST_LITTLE_ENDIAN;
  const iovec = new Uint8Array(IOVEC_BYTES);
  const iov = new DataView(iovec.buffer);
  iov.setBigUint64(0, data.length > 0 ? addressOf(data) : 0n, le);
  iov.setBigUint64(8, BigInt(data.length), le);
  // CMSG_SPACE(4 * n): the header, then the fds, padded to 8 bytes.
  const fdBytes = 4 * fds.length;
  const control = new Uint8Array(
    fds.length > 0 ? CMSGHDR_BYTES + Math.ceil(fdBytes / 8) * 8 : 0,
  );
  if (fds.length > 0) {
    const cmsg = new DataView(control.buffer);
    cmsg.setBigUint64(0, BigInt(CMSGHDR_BYTES + fdBytes), le); // CMSG_LEN
    cmsg.setInt32(8, SOL_SOCKET, le);
    cmsg.setInt32(12, SCM_RIGHTS, le);
    fds.forEach((fd, i) => cmsg.setInt32(CMSGHDR_BYTES + 4 * i, fd, le));
  }
  const header = new Uint8Array(MSGHDR_BYTES);
  const msg = new DataView(header.buffer);
  msg.setBigUint64(0, addressOf(address), le); // msg_name
  msg.setUint32(8, address.length, le); // msg_namelen
  msg.setBigUint64(16, addressOf(iovec), le); // msg_iov
  msg.setBigUint64(24, 1n, le); // msg_iovlen
  msg.setBigUint64(32, control.length > 0 ? addressOf(control) : 0n, le);
  msg.setBigUint64(40, BigInt(control.length), le); // msg_controllen
  const fd = calls.socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
  if (fd < 0) return -1;
  try {
    const sent = calls.sendmsg(fd, header, 0) as bigint;
    return sent < 0n ? -1 : 0;
  } finally {
    calls.close(fd);
  }
}

/**
 * clock_gettime(CLOCK_MONOTONIC) in µs; undefined when FFI is not available.
 *
 * @example
 * ```ts ignore
 * const now = monotonicClockUsec();
 * ```
 */
export function monotonicClockUsec(): bigint | undefined {
  const calls = notifyCalls();
  if (!calls) return undefined;
  const timespec = new BigInt64Array(2);
  if (calls.clock_gettime(CLOCK_MONOTONIC, new Uint8Array(timespec.buffer))) {
    return undefined;
  }
  return timespec[0] * 1_000_000n + timespec[1] / 1000n;
}

const EXEC_SYMBOLS = {
  execve: { parameters: ["buffer", "buffer", "buffer"], result: "i32" },
  __errno_location: { parameters: [], result: "pointer" },
} as const;

/**
 * Replaces this process's program with `path` (execve(2)): the same pid, the
 * same fds but those marked close-on-exec (Deno marks its own), signals that
 * are ignored stay ignored, handled ones return to their defaults. Returns
 * only by throwing, when FFI is not available or execve fails.
 *
 * @example
 * ```ts ignore
 * execInPlace(Deno.execPath(), [Deno.execPath(), "run", "main.ts"], Deno.env.toObject());
 * ```
 */
export function execInPlace(
  path: string,
  argv: string[],
  env: Record<string, string>,
): never {
  let lib;
  try {
    lib = Deno.dlopen(libcPath(), EXEC_SYMBOLS);
  } catch (error) {
    const message = errorMessage(error);
    throw new Error(`execve needs FFI (--allow-ffi or -A): ${message}`);
  }
  const args = argv.map(cString);
  const vars = Object.entries(env).map(([key, value]) =>
    cString(`${key}=${value}`)
  );
  lib.symbols.execve(cString(path), pointerArray(args), pointerArray(vars));
  const where = lib.symbols.__errno_location();
  const errno = where ? new Deno.UnsafePointerView(where).getInt32() : -1;
  lib.close();
  throw new Error(`execve ${path} failed (errno ${errno})`);
}

const ENGINE_SYMBOLS = {
  dup2: { parameters: ["i32", "i32"], result: "i32" },
  fcntl: { parameters: ["i32", "i32", "i32"], result: "i32" },
  epoll_ctl: { parameters: ["i32", "i32", "i32", "buffer"], result: "i32" },
} as const;

const PEER_SYMBOLS = {
  getpeername: { parameters: ["i32", "buffer", "buffer"], result: "i32" },
} as const;

const STOP_SYMBOLS = {
  close: { parameters: ["i32"], result: "i32" },
  shutdown: { parameters: ["i32", "i32"], result: "i32" },
  socket: { parameters: ["i32", "i32", "i32"], result: "i32" },
  bind: { parameters: ["i32", "buffer", "u32"], result: "i32" },
  listen: { parameters: ["i32", "i32"], result: "i32" },
} as const;

let engineLib: Deno.DynamicLibrary<typeof ENGINE_SYMBOLS> | null | undefined;
let peerLib: Deno.DynamicLibrary<typeof PEER_SYMBOLS> | null | undefined;
let stopLib: Deno.DynamicLibrary<typeof STOP_SYMBOLS> | null | undefined;

/** Opens a binding once; null (with the reason kept) when it cannot be. */
function bind<S extends Deno.ForeignLibraryInterface>(
  symbols: S,
): Deno.DynamicLibrary<S> | null {
  try {
    return Deno.dlopen(libcPath(), symbols);
  } catch (error) {
    whyNot = errorMessage(error);
    return null;
  }
}

/**
 * The calls the transplant makes on a new generation's way to serving
 * (dup2, fcntl, epoll_ctl), in a binding of their own; the calls needed
 * later (the peer's name, shutdown, making sockets) come in bindings of
 * their own, loaded when first used. (The first binding a process opens
 * also pays FFI's one-time set-up, a few ms here.)
 */
function engineCalls():
  | Deno.DynamicLibrary<typeof ENGINE_SYMBOLS>["symbols"]
  | undefined {
  if (engineLib === undefined) engineLib = bind(ENGINE_SYMBOLS);
  return engineLib?.symbols;
}

/** getpeername(2): the accepted-connection count and the self-check. */
function peerCalls():
  | Deno.DynamicLibrary<typeof PEER_SYMBOLS>["symbols"]
  | undefined {
  if (peerLib === undefined) peerLib = bind(PEER_SYMBOLS);
  return peerLib?.symbols;
}

/** shutdown(2), and what makes a socket: cutting, stopping, unix paths. */
function stopCalls():
  | Deno.DynamicLibrary<typeof STOP_SYMBOLS>["symbols"]
  | undefined {
  if (stopLib === undefined) stopLib = bind(STOP_SYMBOLS);
  return stopLib?.symbols;
}

/**
 * Whether the calls {@linkcode dupFdOver}, {@linkcode epollAdd} and friends
 * make are available (FFI permitted, libc found).
 *
 * @example
 * ```ts ignore
 * if (!engineCallsAvailable()) console.warn(libcUnavailableReason());
 * ```
 */
export function engineCallsAvailable(): boolean {
  return engineCalls() !== undefined;
}

/**
 * dup2(2): makes `to` refer to the file `from` refers to (closing what `to`
 * was). Returns false when it failed.
 *
 * @example
 * ```ts ignore
 * dupFdOver(inheritedFd, placeholderFd);
 * ```
 */
export function dupFdOver(from: number, to: number): boolean {
  const calls = engineCalls();
  return calls !== undefined && calls.dup2(from, to) === to;
}

/** fcntl(2) F_DUPFD_CLOEXEC. */
const F_DUPFD_CLOEXEC = 1030;

/**
 * A close-on-exec duplicate of `fd` (the lowest free number >= `minimum`),
 * or -1.
 *
 * @example
 * ```ts ignore
 * const copy = dupFd(3);
 * ```
 */
export function dupFd(fd: number, minimum = 0): number {
  const calls = engineCalls();
  return calls === undefined ? -1 : calls.fcntl(fd, F_DUPFD_CLOEXEC, minimum);
}

/**
 * Sets O_NONBLOCK on `fd` with the engine's binding. Returns false when the
 * flags cannot be read or set.
 *
 * @example
 * ```ts ignore
 * setNonBlocking(3);
 * ```
 */
export function setNonBlocking(fd: number): boolean {
  const calls = engineCalls();
  if (calls === undefined) return false;
  const flags = calls.fcntl(fd, F_GETFL, 0);
  if (flags < 0) return false;
  if ((flags & O_NONBLOCK) !== 0) return true;
  return calls.fcntl(fd, F_SETFL, flags | O_NONBLOCK) === 0;
}

/** epoll_ctl(2) operations. */
const EPOLL_CTL_ADD = 1;
const EPOLL_CTL_DEL = 2;

/**
 * epoll_ctl(EPOLL_CTL_ADD): registers `fd` in the epoll instance `epollFd`
 * with the event mask and the 64-bit user data given. Returns false when it
 * failed.
 *
 * @example
 * ```ts ignore
 * epollAdd(epollFd, fd, 0x8000201d, 0x55d0c0ffee00n);
 * ```
 */
export function epollAdd(
  epollFd: number,
  fd: number,
  registration: { events: number; data: bigint },
): boolean {
  const calls = engineCalls();
  if (calls === undefined) return false;
  // struct epoll_event is packed on x86-64 (12 bytes), and 16 bytes with the
  // data aligned to 8 elsewhere.
  const packed = Deno.build.arch === "x86_64";
  const event = new Uint8Array(16);
  const view = new DataView(event.buffer);
  view.setUint32(0, registration.events, HOST_LITTLE_ENDIAN);
  view.setBigUint64(packed ? 4 : 8, registration.data, HOST_LITTLE_ENDIAN);
  return calls.epoll_ctl(epollFd, EPOLL_CTL_ADD, fd, event) === 0;
}

/**
 * epoll_ctl(EPOLL_CTL_DEL). Returns false when it failed (not registered).
 *
 * @example
 * ```ts ignore
 * epollDelete(epollFd, fd);
 * ```
 */
export function epollDelete(epollFd: number, fd: number): boolean {
  const calls = engineCalls();
  if (calls === undefined) return false;
  return calls.epoll_ctl(epollFd, EPOLL_CTL_DEL, fd, new Uint8Array(16)) === 0;
}

function socketName(
  call: (fd: number, address: Uint8Array, length: Uint8Array) => number,
  fd: number,
): Uint8Array | undefined {
  const address = new Uint8Array(128);
  const length = new Uint8Array(4);
  const lengthView = new DataView(length.buffer);
  lengthView.setUint32(0, address.length, HOST_LITTLE_ENDIAN);
  if (call(fd, address, length) !== 0) return undefined;
  const size = Math.min(
    lengthView.getUint32(0, HOST_LITTLE_ENDIAN),
    address.length,
  );
  return address.subarray(0, size);
}

/**
 * getsockname(2) and getpeername(2) of `fd`, as raw sockaddr bytes (peer
 * undefined when not connected); undefined when `fd` is not a socket.
 *
 * @example
 * ```ts ignore
 * const names = socketNames(5);
 * ```
 */
export function socketNames(
  fd: number,
): { local: Uint8Array; peer: Uint8Array | undefined } | undefined {
  const names = socketCalls();
  const peers = peerCalls();
  if (names === undefined || peers === undefined) return undefined;
  const local = socketName(names.getsockname, fd);
  if (local === undefined) return undefined;
  return { local, peer: socketName(peers.getpeername, fd) };
}

/** shutdown(2) how: both directions. */
const SHUT_RDWR = 2;

/**
 * shutdown(fd, SHUT_RDWR): cuts a connection whose fd the runtime owns; its
 * next read sees the end, its next write fails, and it closes the fd itself.
 *
 * @example
 * ```ts ignore
 * shutdownSocket(7);
 * ```
 */
export function shutdownSocket(fd: number): boolean {
  const calls = stopCalls();
  return calls !== undefined && calls.shutdown(fd, SHUT_RDWR) === 0;
}

const SOCK_STREAM = 1;
const SOCK_NONBLOCK = 0o4000;

/**
 * A listening unix socket on an address the kernel picks in the abstract
 * namespace (autobind), non-blocking, close-on-exec: something that can
 * stand in for a listening socket and never gets a connection from a
 * client that does not know the name. Returns its fd, or -1.
 *
 * @example
 * ```ts ignore
 * const fd = inertListeningSocket();
 * ```
 */
export function inertListeningSocket(): number {
  const calls = stopCalls();
  if (calls === undefined) return -1;
  const fd = calls.socket(
    AF_UNIX,
    SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC,
    0,
  );
  if (fd < 0) return -1;
  // sizeof(sa_family_t) alone asks for autobind.
  const address = new Uint8Array(2);
  new DataView(address.buffer).setUint16(0, AF_UNIX, HOST_LITTLE_ENDIAN);
  if (calls.bind(fd, address, 2) !== 0 || calls.listen(fd, 1) !== 0) {
    calls.close(fd);
    return -1;
  }
  return fd;
}

/** The length of sockaddr_un's sun_path (Linux). */
const SUN_PATH_BYTES = 108;

/**
 * A unix stream socket listening on `path` (non-blocking, close-on-exec), by
 * socket(2), bind(2) and listen(2): Deno.listen's unix listener removes its
 * path when it closes, which a socket passed on to the next generation must
 * survive. Returns the fd, or a string saying which call failed.
 *
 * @example
 * ```ts ignore
 * const fd = listenUnix("/run/app.sock");
 * ```
 */
export function listenUnix(path: string, backlog = 511): number | string {
  const calls = stopCalls();
  if (calls === undefined) return `no FFI (${libcUnavailableReason()})`;
  const name = encoder.encode(path);
  if (name.length >= SUN_PATH_BYTES) {
    return `the path is longer than ${SUN_PATH_BYTES - 1} bytes`;
  }
  const address = new Uint8Array(2 + SUN_PATH_BYTES);
  new DataView(address.buffer).setUint16(0, AF_UNIX, HOST_LITTLE_ENDIAN);
  address.set(name, 2);
  const fd = calls.socket(
    AF_UNIX,
    SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC,
    0,
  );
  if (fd < 0) return "socket(2) failed";
  if (calls.bind(fd, address, 2 + name.length + 1) !== 0) {
    calls.close(fd);
    return "bind(2) failed";
  }
  if (calls.listen(fd, backlog) !== 0) {
    calls.close(fd);
    return "listen(2) failed";
  }
  return fd;
}
