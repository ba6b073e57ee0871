/**
 * Whether the process that says hello on the control channel really holds
 * its end of the connection: the kernel names the socket (sock_diag(7), or
 * /proc/net/tcp where netlink is not available), and /proc/PID/fd says who
 * holds it.
 *
 * @module
 */

import { loopbackTcpInode } from "../os/sock_diag.ts";
import { processHoldsSocket, procNetTcpInode } from "../os/proc_net.ts";

/**
 * Whether process `pid` holds the TCP socket whose local port on 127.0.0.1
 * is `localPort` and whose peer is port `peerPort`: the hello's pid claim,
 * checked against the kernel, so that a same-user process that read the
 * secret cannot pose as the new generation. The kernel names the socket's
 * inode (a sock_diag(7) lookup by address, or, where netlink is not
 * available, /proc/net/tcp), and /proc/PID/fd says whether `pid` holds it.
 */
export function socketOwnedBy(
  pid: number,
  localPort: number,
  peerPort: number,
): boolean {
  let inode = loopbackTcpInode(localPort, peerPort);
  if (inode === undefined) inode = procNetTcpInode(localPort, peerPort);
  if (inode === null || inode === 0) return false;
  return processHoldsSocket(pid, inode);
}
