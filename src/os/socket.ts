/**
 * What the kernel says about a socket (getsockopt(2), getsockname(2),
 * getpeername(2)), and the few sockets made here (a unix listener whose path
 * outlives this process, an inert placeholder), with this OS's constants
 * and sockaddr layout: BSD's begins with a length byte and a one-byte
 * family, Linux's with a two-byte family.
 *
 * @module
 */

import {
  HOST_LITTLE_ENDIAN,
  lazyBinding,
  libcUnavailableReason,
} from "./libc.ts";
import { type LibcConstants, libcConstants } from "./constants.ts";
import { setCloseOnExec, setNonBlocking } from "./fd.ts";

const C = libcConstants;

const SOCKET_SYMBOLS = {
  getsockopt: {
    parameters: ["i32", "i32", "i32", "buffer", "buffer"],
    result: "i32",
  },
  getsockname: { parameters: ["i32", "buffer", "buffer"], result: "i32" },
} as const;

const PEER_SYMBOLS = {
  getpeername: { parameters: ["i32", "buffer", "buffer"], result: "i32" },
} as const;

const MAKE_SYMBOLS = {
  close: { parameters: ["i32"], result: "i32" },
  shutdown: { parameters: ["i32", "i32"], result: "i32" },
  socket: { parameters: ["i32", "i32", "i32"], result: "i32" },
  bind: { parameters: ["i32", "buffer", "u32"], result: "i32" },
  listen: { parameters: ["i32", "i32"], result: "i32" },
} as const;

/** getsockopt(2) and getsockname(2): all a new generation needs of them. */
const socketCalls = lazyBinding(SOCKET_SYMBOLS);

/** getpeername(2): the accepted-connection count and the self-check. */
const peerCalls = lazyBinding(PEER_SYMBOLS);

/** shutdown(2), and what makes a socket: cutting, stopping, unix paths. */
const makeCalls = lazyBinding(MAKE_SYMBOLS);

/** What getsockopt(2) and getsockname(2) say about a socket. */
export interface SocketFacts {
  /** SO_DOMAIN (or the address's family where there is none): AF_UNIX... */
  domain: number;
  /** SO_TYPE: SOCK_STREAM (1), SOCK_DGRAM (2), SOCK_SEQPACKET (5)... */
  type: number;
  /**
   * SO_PROTOCOL: IPPROTO_TCP (6) for a TCP socket. Where the OS has no
   * SO_PROTOCOL (macOS), IPPROTO_TCP for an IP stream socket, else 0.
   */
  protocol: number;
  /** SO_ACCEPTCONN: whether listen(2) was called. */
  listening: boolean;
  /** getsockname(2): the local address, as the raw sockaddr bytes. */
  address: Uint8Array;
}

/**
 * The address family of a raw sockaddr, read as `layout`'s OS lays it out;
 * undefined when it is too short.
 */
export function sockaddrFamily(
  bytes: Uint8Array,
  littleEndian: boolean = HOST_LITTLE_ENDIAN,
  layout: LibcConstants = C,
): number | undefined {
  if (bytes.length < 2) return undefined;
  if (layout.sockaddrHasLength) return bytes[1];
  return new DataView(bytes.buffer, bytes.byteOffset, 2)
    .getUint16(0, littleEndian);
}

function socketName(
  call: (fd: number, address: Uint8Array, length: Uint8Array) => number,
  fd: number,
): Uint8Array | undefined {
  // sockaddr_storage: 128 bytes holds every address family.
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
 * Asks the kernel directly (getsockopt(2), getsockname(2)) what the socket
 * open as `fd` is: microseconds, where the /proc/net tables take
 * milliseconds (they list every socket of the network namespace). Returns
 * undefined when FFI is not available or `fd` is not a socket.
 */
export function socketFacts(fd: number): SocketFacts | undefined {
  const calls = socketCalls();
  if (!calls) return undefined;
  const value = new Uint8Array(4);
  const length = new Uint8Array(4);
  const lengthView = new DataView(length.buffer);
  function intOption(name: number): number | undefined {
    lengthView.setUint32(0, 4, HOST_LITTLE_ENDIAN);
    if (calls!.getsockopt(fd, C.SOL_SOCKET, name, value, length) !== 0) {
      return undefined;
    }
    return new DataView(value.buffer).getInt32(0, HOST_LITTLE_ENDIAN);
  }
  const type = intOption(C.SO_TYPE);
  const listening = intOption(C.SO_ACCEPTCONN);
  if (type === undefined || listening === undefined) return undefined;
  const address = socketName(calls.getsockname, fd);
  if (address === undefined) return undefined;
  const domain = C.SO_DOMAIN === undefined
    ? sockaddrFamily(address)
    : intOption(C.SO_DOMAIN);
  const ip = domain === C.AF_INET || domain === C.AF_INET6;
  const protocol = C.SO_PROTOCOL === undefined
    ? (ip && type === C.SOCK_STREAM ? C.IPPROTO_TCP : 0)
    : intOption(C.SO_PROTOCOL);
  if (domain === undefined || protocol === undefined) return undefined;
  return { domain, type, protocol, listening: listening !== 0, address };
}

/**
 * getsockname(2) and getpeername(2) of `fd`, as raw sockaddr bytes (peer
 * undefined when not connected); undefined when `fd` is not a socket.
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

/**
 * shutdown(fd, SHUT_RDWR): cuts a connection whose fd the runtime owns; its
 * next read sees the end, its next write fails, and it closes the fd itself.
 */
export function shutdownSocket(fd: number): boolean {
  const calls = makeCalls();
  return calls !== undefined && calls.shutdown(fd, C.SHUT_RDWR) === 0;
}

/**
 * A non-blocking, close-on-exec unix stream socket: by socket(2)'s flags,
 * or by fcntl(2) where the OS has none (macOS). Returns its fd, or -1.
 */
function unixStreamSocket(
  calls: Deno.DynamicLibrary<typeof MAKE_SYMBOLS>["symbols"],
): number {
  const fd = calls.socket(
    C.AF_UNIX,
    C.SOCK_STREAM | C.SOCK_NONBLOCK | C.SOCK_CLOEXEC,
    0,
  );
  if (fd < 0 || C.SOCK_NONBLOCK !== 0) return fd;
  if (!setNonBlocking(fd) || !setCloseOnExec(fd, true)) {
    calls.close(fd);
    return -1;
  }
  return fd;
}

/**
 * The sockaddr_un of a unix socket address as it is written and shown: a
 * path (NUL-terminated); "@name", Linux's abstract namespace (a NUL, then the
 * name, and an address exactly that long: a trailing NUL would be part of the
 * name); or "" (the family alone, which asks bind(2) for autobind). sun_len is
 * set where the OS has it. The caller checks the length against
 * `sunPathBytes`.
 */
export function unixSockaddr(path: string): Uint8Array<ArrayBuffer> {
  const abstract = path.startsWith("@");
  const name = new TextEncoder().encode(abstract ? `\0${path.slice(1)}` : path);
  const address = new Uint8Array(
    2 + name.length + (abstract || path === "" ? 0 : 1),
  );
  if (C.sockaddrHasLength) {
    address[0] = address.length;
    address[1] = C.AF_UNIX;
  } else {
    new DataView(address.buffer).setUint16(0, C.AF_UNIX, HOST_LITTLE_ENDIAN);
  }
  address.set(name, 2);
  return address;
}

/**
 * A listening unix socket on an address the kernel picks in the abstract
 * namespace (autobind; Linux only), non-blocking, close-on-exec: something
 * that can stand in for a listening socket and never gets a connection from
 * a client that does not know the name. Returns its fd, or -1.
 */
export function inertListeningSocket(): number {
  const calls = makeCalls();
  if (calls === undefined || C.sockaddrHasLength) return -1;
  const fd = unixStreamSocket(calls);
  if (fd < 0) return -1;
  const address = unixSockaddr("");
  if (
    calls.bind(fd, address, address.length) !== 0 || calls.listen(fd, 1) !== 0
  ) {
    calls.close(fd);
    return -1;
  }
  return fd;
}

/**
 * A unix stream socket listening on `path` ("@name" for an abstract one, as
 * getsockname(2) is shown), non-blocking, close-on-exec, by socket(2), bind(2)
 * and listen(2): Deno.listen's unix listener removes its
 * path when it closes, which a socket passed on to the next generation must
 * survive. Returns the fd, or a string saying which call failed.
 */
export function listenUnix(path: string, backlog = 511): number | string {
  const calls = makeCalls();
  if (calls === undefined) return `no FFI (${libcUnavailableReason()})`;
  const abstract = path.startsWith("@");
  if (abstract && C.sockaddrHasLength) {
    return "abstract unix sockets are Linux only";
  }
  const address = unixSockaddr(path);
  if (address.length - 2 > C.sunPathBytes) {
    return `the path is longer than ${C.sunPathBytes - 1} bytes`;
  }
  const fd = unixStreamSocket(calls);
  if (fd < 0) return "socket(2) failed";
  if (calls.bind(fd, address, address.length) !== 0) {
    calls.close(fd);
    return abstract ? "bind(2) failed (is the name in use?)" : "bind(2) failed";
  }
  if (calls.listen(fd, backlog) !== 0) {
    calls.close(fd);
    return "listen(2) failed";
  }
  return fd;
}
