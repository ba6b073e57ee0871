/**
 * One sock_diag(7) netlink request: which socket holds a loopback TCP
 * connection, for the control channel's ownership check (Linux only: the
 * posix mode never loads it).
 *
 * @module
 */

import { HOST_LITTLE_ENDIAN, lazyBinding } from "./libc.ts";
import { LINUX } from "./constants.ts";

/** Netlink and sock_diag(7) constants (Linux). */
const AF_NETLINK = 16;
const SOCK_RAW = 3;
const { SOCK_CLOEXEC } = LINUX;
const NETLINK_SOCK_DIAG = 4;
const SOCK_DIAG_BY_FAMILY = 20;
const NLM_F_REQUEST = 1;
const NLMSG_ERROR = 2;
const MSG_DONTWAIT = 0x40;
/** struct nlmsghdr. */
const NLMSG_HEADER_BYTES = 16;
/** struct inet_diag_req_v2. */
const INET_DIAG_REQUEST_BYTES = 56;
/** The offset of idiag_inode in struct inet_diag_msg. */
const INET_DIAG_INODE_OFFSET = 68;

/** The calls of the netlink request, in a binding of their own (Linux). */
const NETLINK_SYMBOLS = {
  netlinkSocket: {
    name: "socket",
    parameters: ["i32", "i32", "i32"],
    result: "i32",
  },
  netlinkSend: {
    name: "send",
    parameters: ["i32", "buffer", "usize", "i32"],
    result: "isize",
  },
  netlinkRecv: {
    name: "recv",
    parameters: ["i32", "buffer", "usize", "i32"],
    result: "isize",
  },
  netlinkClose: { name: "close", parameters: ["i32"], result: "i32" },
} as const;

const netlinkCalls = lazyBinding(NETLINK_SYMBOLS);

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
 */
export function loopbackTcpInode(
  localPort: number,
  peerPort: number,
): number | null | undefined {
  const c = netlinkCalls();
  if (!c) return undefined;
  const fd = c.netlinkSocket(
    AF_NETLINK,
    SOCK_RAW | SOCK_CLOEXEC,
    NETLINK_SOCK_DIAG,
  );
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
    view.setUint8(req, LINUX.AF_INET);
    view.setUint8(req + 1, LINUX.IPPROTO_TCP);
    view.setUint32(req + 4, 0xffffffff, le); // every TCP state
    // struct inet_diag_sockid: ports in network order, then the addresses
    view.setUint16(req + 8, localPort, false);
    view.setUint16(req + 10, peerPort, false);
    request.set([127, 0, 0, 1], req + 12);
    request.set([127, 0, 0, 1], req + 28);
    // idiag_cookie: INET_DIAG_NOCOOKIE, no cookie to match
    view.setUint32(req + 48, 0xffffffff, le);
    view.setUint32(req + 52, 0xffffffff, le);
    if (
      Number(c.netlinkSend(fd, request, BigInt(request.length), 0)) !==
        request.length
    ) {
      return undefined;
    }
    // The kernel answers a single-socket request while handling send(2).
    const answer = new Uint8Array(1024);
    const received = Number(
      c.netlinkRecv(fd, answer, BigInt(answer.length), MSG_DONTWAIT),
    );
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
    c.netlinkClose(fd);
  }
}
