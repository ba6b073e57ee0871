/**
 * File descriptors Deno does not track: closing them, duplicating them,
 * their flags (O_NONBLOCK, FD_CLOEXEC), through fcntl(2) and dup2(2).
 *
 * @module
 */

import { lazyBinding, libc } from "./libc.ts";
import { libcConstants } from "./constants.ts";

const { F_GETFD, F_SETFD, F_GETFL, F_SETFL, F_DUPFD_CLOEXEC, FD_CLOEXEC } =
  libcConstants;
const { O_NONBLOCK } = libcConstants;

const FD_SYMBOLS = {
  dup2: { parameters: ["i32", "i32"], result: "i32" },
  fcntl: { parameters: ["i32", "i32", "i32"], result: "i32" },
} as const;

/**
 * dup2(2) and fcntl(2), in a binding of their own: the transplant makes
 * these calls on a new generation's way to serving.
 */
const fdCalls = lazyBinding(FD_SYMBOLS);

/**
 * Whether {@linkcode dupFdOver} and friends can make their calls.
 */
export function fdCallsAvailable(): boolean {
  return fdCalls() !== undefined;
}

/**
 * Closes a raw file descriptor that Deno does not track (for example a dup
 * from `fdForIpc()`). Returns false when it could not.
 */
export function closeFd(fd: number): boolean {
  const c = libc();
  return c !== undefined && c.close(fd) === 0;
}

/**
 * Sets O_NONBLOCK on `fd` if it is not set. Returns the flags found before,
 * or -1 when they could not be read.
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
 * Whether `fd` is open in this process (/proc: Linux).
 */
export function isFdOpen(fd: number): boolean {
  try {
    Deno.readLinkSync(`/proc/self/fd/${fd}`);
    return true;
  } catch {
    return false;
  }
}

/**
 * dup2(2): makes `to` refer to the file `from` refers to (closing what `to`
 * was). Returns false when it failed.
 */
export function dupFdOver(from: number, to: number): boolean {
  const calls = fdCalls();
  return calls !== undefined && calls.dup2(from, to) === to;
}

/**
 * A close-on-exec duplicate of `fd` (the lowest free number >= `minimum`),
 * or -1.
 */
export function dupFd(fd: number, minimum = 0): number {
  const calls = fdCalls();
  return calls === undefined ? -1 : calls.fcntl(fd, F_DUPFD_CLOEXEC, minimum);
}

/**
 * Sets O_NONBLOCK on `fd`. Returns false when the flags cannot be read or
 * set.
 */
export function setNonBlocking(fd: number): boolean {
  const calls = fdCalls();
  if (calls === undefined) return false;
  const flags = calls.fcntl(fd, F_GETFL, 0);
  if (flags < 0) return false;
  if ((flags & O_NONBLOCK) !== 0) return true;
  return calls.fcntl(fd, F_SETFL, flags | O_NONBLOCK) === 0;
}

/**
 * Sets or clears FD_CLOEXEC on `fd`. Returns false when `fd` is not open or
 * FFI is not available.
 */
export function setCloseOnExec(fd: number, on: boolean): boolean {
  const calls = fdCalls();
  if (calls === undefined) return false;
  const flags = calls.fcntl(fd, F_GETFD, 0);
  if (flags < 0) return false;
  const wanted = on ? flags | FD_CLOEXEC : flags & ~FD_CLOEXEC;
  return calls.fcntl(fd, F_SETFD, wanted) >= 0;
}
