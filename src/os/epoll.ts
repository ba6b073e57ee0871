/**
 * epoll_ctl(2), for the native engine's transplant (Linux only: the posix
 * and windows modes never load this binding).
 *
 * @module
 */

import { HOST_LITTLE_ENDIAN, lazyBinding } from "./libc.ts";
import { fdCallsAvailable } from "./fd.ts";

const EPOLL_SYMBOLS = {
  epoll_ctl: { parameters: ["i32", "i32", "i32", "buffer"], result: "i32" },
} as const;

/** epoll_ctl(2) operations. */
const EPOLL_CTL_ADD = 1;
const EPOLL_CTL_DEL = 2;

const epollCalls = lazyBinding(EPOLL_SYMBOLS);

/**
 * Whether the calls the transplant makes (dup2, fcntl, epoll_ctl) are
 * available (FFI permitted, libc found).
 */
export function engineCallsAvailable(): boolean {
  return fdCallsAvailable() && epollCalls() !== undefined;
}

/**
 * epoll_ctl(EPOLL_CTL_ADD): registers `fd` in the epoll instance `epollFd`
 * with the event mask and the 64-bit user data given. Returns false when it
 * failed.
 */
export function epollAdd(
  epollFd: number,
  fd: number,
  registration: { events: number; data: bigint },
): boolean {
  const calls = epollCalls();
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
 */
export function epollDelete(epollFd: number, fd: number): boolean {
  const calls = epollCalls();
  if (calls === undefined) return false;
  return calls.epoll_ctl(epollFd, EPOLL_CTL_DEL, fd, new Uint8Array(16)) === 0;
}
