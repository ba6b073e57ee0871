/**
 * What kind of socket an inherited fd is: a listening TCP or unix stream
 * socket (its address), or else an error that names the fd and says what it
 * is instead. The kernel answers through getsockopt(2) and getsockname(2)
 * when FFI is permitted; otherwise, and to word every error, the /proc/net
 * tables do.
 *
 * @module
 */

import type { Addr } from "./types.ts";
import { formatAddr } from "./address.ts";
import { ListenFdsError } from "./listen_env.ts";
import {
  AF_INET,
  AF_INET6,
  AF_UNIX,
  decodeSockaddr,
  formatIp,
} from "./sockaddr.ts";
import { socketFacts } from "../os/socket.ts";
import { libcConstants } from "../os/constants.ts";
import type { ProcNetTables } from "../os/proc_net.ts";

/** The TCP state "LISTEN" in /proc/net/tcp. */
const TCP_LISTEN = 0x0a;

/** SOCK_STREAM, as getsockopt(2) and the Type column of /proc/net/unix give it. */
const SOCK_STREAM = 1;
/** SOCK_DGRAM in the Type column of /proc/net/unix. */
const SOCK_DGRAM = 2;
/** SOCK_SEQPACKET in the Type column of /proc/net/unix. */
const SOCK_SEQPACKET = 5;

/** __SO_ACCEPTCON in the flags of /proc/net/unix: listen() was called. */
const SO_ACCEPTCON = 0x10000;

const { IPPROTO_TCP } = libcConstants;

/**
 * The address of the socket open as `fd` if the kernel says, through
 * getsockopt(2) and getsockname(2), that it is a listening TCP or unix stream
 * socket; undefined when it is something else or FFI is not available.
 */
export function listeningAddressOf(fd: number): Addr | undefined {
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
 * Finds the socket with `inode` in `tables` and returns its address if it is a
 * listening TCP or unix stream socket; otherwise throws a ListenFdsError that
 * names `fd` and says what the socket is instead.
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
      hostname: formatIp(tcp.local.ip),
      port: tcp.local.port,
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
            hostname: formatIp(udp.local.ip),
            port: udp.local.port,
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
