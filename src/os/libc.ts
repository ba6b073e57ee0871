/**
 * The one FFI seam: where libc is, how a set of its functions is bound, and
 * the few helpers every binding shares (C strings, pointers, byte order).
 * Every Deno.dlopen of the module goes through {@linkcode bind}, on the libc
 * of this OS (glibc's libc.so.6 on Linux, libSystem on macOS) with the
 * constants of os/constants.ts.
 *
 * Everything here degrades: when FFI is not permitted, or the OS has no
 * table, a binding is `undefined` and callers say what they cannot do.
 * Each concern binds only the symbols it needs, when first used: every bound
 * symbol adds to a new generation's way to serving.
 *
 * @module
 */

import { constantsFor } from "./constants.ts";
import { errorMessage } from "../util/error_message.ts";

let whyNot = "";
const bound = new Set<string>();

/**
 * Binds `symbols` of this OS's libc. Returns null, keeping the reason for
 * {@linkcode libcUnavailableReason}, when FFI is not permitted, the OS has
 * no constant table, or libc cannot be loaded.
 */
export function bind<S extends Deno.ForeignLibraryInterface>(
  symbols: S,
): Deno.DynamicLibrary<S> | null {
  if (constantsFor(Deno.build.os) === undefined) {
    whyNot = `no libc constants for ${Deno.build.os}`;
    return null;
  }
  try {
    const lib = Deno.dlopen(libcPath(), symbols);
    for (const name of Object.keys(symbols)) bound.add(name);
    return lib;
  } catch (error) {
    whyNot = errorMessage(error);
    return null;
  }
}

/**
 * A binding made on first use, once: the function returns its symbols, or
 * undefined when {@linkcode bind} could not make it.
 */
export function lazyBinding<S extends Deno.ForeignLibraryInterface>(
  symbols: S,
): () => Deno.DynamicLibrary<S>["symbols"] | undefined {
  let lib: Deno.DynamicLibrary<S> | null | undefined;
  return () => {
    if (lib === undefined) lib = bind(symbols);
    return lib?.symbols;
  };
}

/**
 * The names of every symbol this process has bound so far (the keys of the
 * bindings' symbol tables): what a mode is seen to load.
 */
export function boundSymbols(): string[] {
  return [...bound];
}

/**
 * Why a binding could not be made (empty before the first failure).
 */
export function libcUnavailableReason(): string {
  return whyNot;
}

/**
 * The path of this OS's libc (for Deno.dlopen): the first of its table's
 * paths that exists, else the last (a name the loader searches for).
 */
export function libcPath(): string {
  const paths = constantsFor(Deno.build.os)?.libcPaths ?? ["libc.so.6"];
  for (const path of paths) {
    try {
      Deno.statSync(path);
      return path;
    } catch {
      // try the next one (macOS keeps libSystem in the dyld cache only)
    }
  }
  return paths[paths.length - 1];
}

const SYMBOLS = {
  close: { parameters: ["i32"], result: "i32" },
  fcntl: { parameters: ["i32", "i32", "i32"], result: "i32" },
  socket: { parameters: ["i32", "i32", "i32"], result: "i32" },
  send: { parameters: ["i32", "buffer", "usize", "i32"], result: "isize" },
  recv: { parameters: ["i32", "buffer", "usize", "i32"], result: "isize" },
} as const;

/** The general libc functions: fds and plain sockets. */
export interface Libc {
  /** close(2). */
  close(fd: number): number;
  /** fcntl(2) with an int argument. */
  fcntl(fd: number, command: number, arg: number): number;
  /** socket(2). */
  socket(domain: number, type: number, protocol: number): number;
  /** send(2) of the whole buffer. */
  send(fd: number, data: Uint8Array<ArrayBuffer>, flags: number): number;
  /** recv(2) into the whole buffer. */
  recv(fd: number, buffer: Uint8Array<ArrayBuffer>, flags: number): number;
}

let cached: Libc | null | undefined;

/**
 * The general binding, made once; `undefined` when it cannot be
 * ({@linkcode libcUnavailableReason} says why).
 */
export function libc(): Libc | undefined {
  if (cached === undefined) {
    const symbols = bind(SYMBOLS)?.symbols;
    cached = symbols === undefined ? null : {
      close: (fd) => symbols.close(fd),
      fcntl: (fd, command, arg) => symbols.fcntl(fd, command, arg),
      socket: (domain, type, protocol) =>
        symbols.socket(domain, type, protocol),
      send: (fd, data, flags) =>
        Number(symbols.send(fd, data, BigInt(data.length), flags)),
      recv: (fd, buffer, flags) =>
        Number(symbols.recv(fd, buffer, BigInt(buffer.length), flags)),
    };
  }
  return cached ?? undefined;
}

/** C structs are in the host's byte order. */
export const HOST_LITTLE_ENDIAN =
  new Uint8Array(new Uint16Array([1]).buffer)[0] === 1;

const encoder = new TextEncoder();

/**
 * A NUL-terminated copy of `text`.
 */
export function cString(text: string): Uint8Array<ArrayBuffer> {
  return encoder.encode(`${text}\0`);
}

/**
 * The address of `buffer`'s first byte, as a C pointer value.
 */
export function addressOf(buffer: Uint8Array<ArrayBuffer>): bigint {
  return BigInt(Deno.UnsafePointer.value(Deno.UnsafePointer.of(buffer)));
}

/**
 * A NULL-terminated array of pointers to `strings` (which must stay alive).
 */
export function pointerArray(
  strings: Uint8Array<ArrayBuffer>[],
): BigUint64Array<ArrayBuffer> {
  const array = new BigUint64Array(strings.length + 1);
  strings.forEach((string, index) => {
    array[index] = addressOf(string);
  });
  return array;
}
