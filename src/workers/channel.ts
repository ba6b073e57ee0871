/**
 * A worker's control channel across the supervisor's execve (./upgrade.ts):
 * the old image finds the fd of its end of each worker's connection, the
 * fd stays open through the execve, and the new image takes the connection
 * up again. The worker sees no change: its channel never closes, so it can
 * still ask for a roll (admin API, `server.restart()`) and still gets the
 * supervisor's status, whatever the roll after the execve does.
 *
 * Deno cannot make a Deno.Conn of an fd; node:net can make a socket of one,
 * and {@linkcode SocketConn} gives it the reads and writes the channel's
 * framing uses.
 *
 * @module
 */

import { Socket } from "node:net";
import { decodeSockaddr } from "../listen/sockaddr.ts";
import { openFds } from "../engine/fds.ts";
import { socketNames } from "../os/socket.ts";
import { setCloseOnExec } from "../os/fd.ts";
import { type LineConn, LineReader } from "../restart/control_lines.ts";
import { type AcceptedPeer, OldSidePeer } from "../restart/control_peer.ts";
import {
  DEFAULT_RECEIVE_TIMEOUT_MS,
  LOOPBACK,
  MAX_LINE_BYTES,
  NEW_TO_OLD_TYPES,
  OLD_TO_NEW_TYPES,
} from "../restart/control_protocol.ts";

/**
 * The fd of this process's end of `peer`'s connection: the socket from the
 * control listener's port on 127.0.0.1 to the worker's port. Undefined when
 * there is none (the connection has closed).
 */
export function channelFd(peer: AcceptedPeer): number | undefined {
  for (const { fd, target } of openFds()) {
    if (!target.startsWith("socket:")) continue;
    const names = socketNames(fd);
    if (names?.peer === undefined) continue;
    const local = decodeSockaddr(names.local);
    const remote = decodeSockaddr(names.peer);
    if (
      local && "port" in local && local.hostname === LOOPBACK &&
      local.port === peer.localPort && remote && "port" in remote &&
      remote.port === peer.remotePort
    ) {
      return fd;
    }
  }
  return undefined;
}

/**
 * The channel to worker `pid` over `fd`, a connection the previous image
 * accepted and authenticated (its hello was checked then). The fd becomes
 * close-on-exec again, so that no worker started later inherits it.
 */
export function adoptChannel(fd: number, pid: number): AcceptedPeer {
  setCloseOnExec(fd, true);
  const conn = new SocketConn(
    new Socket({ fd, readable: true, writable: true }),
  );
  return new OldSidePeer(conn, new LineReader(conn, MAX_LINE_BYTES), pid, {
    maxLineBytes: MAX_LINE_BYTES,
    receiveTimeoutMs: DEFAULT_RECEIVE_TIMEOUT_MS,
    receives: NEW_TO_OLD_TYPES,
    sends: OLD_TO_NEW_TYPES,
  });
}

/** A node:net socket as the connection the channel's framing reads. */
class SocketConn implements LineConn {
  readonly localAddr: Deno.NetAddr;
  readonly remoteAddr: Deno.NetAddr;
  readonly #socket: Socket;
  readonly #chunks: AsyncIterator<Uint8Array>;
  /** What the last chunk had beyond the last read's buffer. */
  #rest: Uint8Array = new Uint8Array(0);

  constructor(socket: Socket) {
    this.#socket = socket;
    this.#chunks = socket[Symbol.asyncIterator]();
    this.localAddr = netAddr(socket.localAddress, socket.localPort);
    this.remoteAddr = netAddr(socket.remoteAddress, socket.remotePort);
  }

  async read(buffer: Uint8Array): Promise<number | null> {
    if (this.#rest.length === 0) {
      const next = await this.#chunks.next();
      if (next.done) return null;
      this.#rest = next.value;
    }
    const count = Math.min(buffer.length, this.#rest.length);
    buffer.set(this.#rest.subarray(0, count));
    this.#rest = this.#rest.subarray(count);
    return count;
  }

  write(bytes: Uint8Array): Promise<number> {
    return new Promise((resolve, reject) => {
      this.#socket.write(bytes, (error) => {
        if (error) reject(error);
        else resolve(bytes.length);
      });
    });
  }

  close(): void {
    this.#socket.destroy();
  }
}

function netAddr(
  hostname: string | undefined,
  port: number | undefined,
): Deno.NetAddr {
  return { transport: "tcp", hostname: hostname ?? LOOPBACK, port: port ?? 0 };
}
