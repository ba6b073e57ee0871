/**
 * The thin seam to the operating system: the few libc calls Deno has no API
 * for, made through FFI (`--allow-ffi`, included in `-A`).
 *
 * Everything here degrades: when FFI is not permitted, {@linkcode libc}
 * returns `undefined` and callers say what they cannot do.
 *
 * @module
 */

const O_NONBLOCK = 0o4000;
const F_GETFL = 3;
const F_SETFL = 4;

const SYMBOLS = {
  close: { parameters: ["i32"], result: "i32" },
  fcntl: { parameters: ["i32", "i32", "i32"], result: "i32" },
} as const;

/** The libc functions this module uses. */
export interface Libc {
  /** close(2). */
  close(fd: number): number;
  /** fcntl(2) with an int argument. */
  fcntl(fd: number, command: number, arg: number): number;
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
    cached = {
      close: (fd) => lib.symbols.close(fd),
      fcntl: (fd, command, arg) => lib.symbols.fcntl(fd, command, arg),
    };
  } catch (error) {
    whyNot = error instanceof Error ? error.message : String(error);
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

function libcPath(): string {
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
 * import { isFdOpen } from "./os.ts";
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
