/**
 * Linux's socket tables (/proc/net/tcp, tcp6, udp, udp6, unix) and socket
 * inodes (the `socket:[INODE]` links of /proc/PID/fd): what the kernel says
 * about a socket when FFI cannot ask it directly, and who holds a socket.
 *
 * The tables list every socket of the network namespace, so reading them
 * costs time in proportion to the sockets there (TIME_WAIT ones included);
 * callers read them only when the direct calls are not available.
 *
 * @module
 */

import { errorMessage } from "../util/error_message.ts";

/** /proc/net/tcp prints addresses as native-endian 32-bit words. */
const HOST_IS_LITTLE_ENDIAN =
  new Uint8Array(new Uint16Array([1]).buffer)[0] === 1;

/** 127.0.0.1. */
const LOOPBACK = [127, 0, 0, 1];

/**
 * An address column of /proc/net/tcp, tcp6, udp or udp6.
 */
export interface ProcInetAddress {
  /** The IP address in network order: 4 bytes (IPv4) or 16 (IPv6). */
  ip: Uint8Array;
  /** The port. */
  port: number;
}

/**
 * A socket listed in /proc/net/tcp, tcp6, udp or udp6.
 */
export interface ProcInetSocket {
  /** The socket's inode number. */
  inode: number;
  /** The local address. */
  local: ProcInetAddress;
  /** The peer's address; all zeros when not connected. */
  remote: ProcInetAddress;
  /** The TCP state (0x0a is LISTEN); for UDP, 7 (unconnected) or 1. */
  state: number;
}

/**
 * A socket listed in /proc/net/unix.
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
 * Decodes an address column of /proc/net/tcp, tcp6, udp or udp6: the IP as
 * native-endian 32-bit words in hex, a colon, and the port in big-endian hex.
 * Returns undefined when `text` is not such a column.
 */
export function decodeProcInetAddress(
  text: string,
  littleEndian: boolean = HOST_IS_LITTLE_ENDIAN,
): ProcInetAddress | undefined {
  const match = /^([0-9A-Fa-f]{8}|[0-9A-Fa-f]{32}):([0-9A-Fa-f]{4})$/.exec(
    text,
  );
  if (match === null) return undefined;
  const ipHex = match[1];
  const ip = new Uint8Array(ipHex.length / 2);
  const view = new DataView(ip.buffer);
  for (let word = 0; word < ipHex.length / 8; word++) {
    const value = parseInt(ipHex.slice(word * 8, word * 8 + 8), 16);
    view.setUint32(word * 4, value, littleEndian);
  }
  return { ip, port: parseInt(match[2], 16) };
}

/**
 * Parses /proc/net/tcp, tcp6, udp or udp6 into its sockets by inode. Lines
 * that are not socket entries (the header), and entries without an inode
 * (TIME_WAIT), are skipped.
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
    if (fields.length < 10 || !/^\d+:$/.test(fields[0])) continue;
    const local = decodeProcInetAddress(fields[1], littleEndian);
    const remote = decodeProcInetAddress(fields[2], littleEndian);
    const state = /^[0-9A-Fa-f]{2}$/.test(fields[3])
      ? parseInt(fields[3], 16)
      : NaN;
    const inode = /^\d+$/.test(fields[9]) ? Number(fields[9]) : 0;
    if (
      local === undefined || remote === undefined || Number.isNaN(state) ||
      inode === 0
    ) {
      continue;
    }
    sockets.set(inode, { inode, local, remote, state });
  }
  return sockets;
}

/**
 * Parses /proc/net/unix into its sockets by inode. The header is skipped.
 */
export function parseProcNetUnix(text: string): Map<number, ProcUnixSocket> {
  const sockets = new Map<number, ProcUnixSocket>();
  // Num: RefCount Protocol Flags Type St Inode [Path]; the path may contain
  // spaces, so it is everything after the single space following the inode.
  const entry =
    /^\s*[0-9A-Fa-f]+:\s+[0-9A-Fa-f]+\s+[0-9A-Fa-f]+\s+([0-9A-Fa-f]+)\s+([0-9A-Fa-f]+)\s+[0-9A-Fa-f]+\s+(\d+)(?: (.*))?$/;
  for (const line of text.split("\n")) {
    const match = entry.exec(line);
    if (match === null) continue;
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
 * Reads the socket tables of this network namespace. A missing table (IPv6
 * disabled) counts as empty; any other failure throws, naming the file.
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
    if (error instanceof Deno.errors.NotFound) return "";
    throw new Error(`cannot read ${path}: ${errorMessage(error)}`, {
      cause: error,
    });
  }
}

/**
 * The inode of the 127.0.0.1:`localPort` → 127.0.0.1:`peerPort` TCP socket
 * according to /proc/net/tcp, or null when it is not listed (or the table
 * cannot be read).
 */
export function procNetTcpInode(
  localPort: number,
  peerPort: number,
): number | null {
  let table: string;
  try {
    table = Deno.readTextFileSync("/proc/net/tcp");
  } catch {
    return null;
  }
  let inode: number | null = null;
  for (const socket of parseProcNetInet(table).values()) {
    if (
      isLoopback(socket.local, localPort) && isLoopback(socket.remote, peerPort)
    ) {
      inode = socket.inode;
    }
  }
  return inode;
}

function isLoopback(address: ProcInetAddress, port: number): boolean {
  return address.port === port && address.ip.length === 4 &&
    LOOPBACK.every((byte, index) => address.ip[index] === byte);
}

/**
 * Returns the inode of a `socket:[INODE]` link target of /proc/PID/fd, or
 * undefined when the target is something else (a file, a pipe...).
 */
export function parseSocketInode(target: string): number | undefined {
  const match = /^socket:\[(\d+)\]$/.exec(target);
  return match === null ? undefined : Number(match[1]);
}

/**
 * Whether one of the fds of process `pid` is the socket `inode` (false when
 * its /proc/PID/fd cannot be listed).
 */
export function processHoldsSocket(pid: number, inode: number): boolean {
  try {
    for (const entry of Deno.readDirSync(`/proc/${pid}/fd`)) {
      try {
        const target = Deno.readLinkSync(`/proc/${pid}/fd/${entry.name}`);
        if (parseSocketInode(target) === inode) return true;
      } catch {
        // closed meanwhile
      }
    }
  } catch {
    return false;
  }
  return false;
}
