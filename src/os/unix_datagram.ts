/**
 * What sd_notify(3) needs: one datagram to a unix socket, with fds attached
 * (SCM_RIGHTS), and CLOCK_MONOTONIC; struct layouts of a 64-bit Linux
 * (systemd runs there only).
 *
 * @module
 */

import {
  addressOf,
  HOST_LITTLE_ENDIAN,
  lazyBinding,
  libcUnavailableReason,
} from "./libc.ts";
import { LINUX } from "./constants.ts";

const NOTIFY_SYMBOLS = {
  socket: { parameters: ["i32", "i32", "i32"], result: "i32" },
  sendmsg: { parameters: ["i32", "buffer", "i32"], result: "isize" },
  close: { parameters: ["i32"], result: "i32" },
  clock_gettime: { parameters: ["i32", "buffer"], result: "i32" },
} as const;

/**
 * socket(2), sendmsg(2), close(2) and clock_gettime(2), in a binding of their
 * own: what sd_notify(3) needs, and all a new generation loads to say ready.
 */
const notifyCalls = lazyBinding(NOTIFY_SYMBOLS);

/**
 * Why {@linkcode sendUnixDatagram} and {@linkcode monotonicClockUsec} cannot
 * make their calls (empty when they can, or before the first try).
 */
export function notifyCallsUnavailableReason(): string {
  return notifyCalls() === undefined ? libcUnavailableReason() : "";
}

const { AF_UNIX, SOCK_DGRAM, SOCK_CLOEXEC, SOL_SOCKET } = LINUX;
const SCM_RIGHTS = 1;
const CLOCK_MONOTONIC = 1;
/** struct msghdr, struct iovec and struct cmsghdr on a 64-bit Linux. */
const MSGHDR_BYTES = 56;
const IOVEC_BYTES = 16;
const CMSGHDR_BYTES = 16;

/**
 * Sends one datagram to the unix socket at `address` (a sockaddr_un, as
 * socket.ts's `unixSockaddr` encodes it) from a fresh socket, with `fds`
 * attached as SCM_RIGHTS when there are any: what sd_pid_notify_with_fds(3)
 * does. Returns 0 when it was sent, -1 when socket(2) or sendmsg(2)
 * failed, and undefined when FFI is not available
 * ({@linkcode notifyCallsUnavailableReason} says why).
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
