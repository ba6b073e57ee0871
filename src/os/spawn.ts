/**
 * Starting processes and waiting for them where Deno has no API: a spawn in
 * a new session with chosen fds (posix_spawn(3)), a child's end without
 * reaping it (waitid(2) WNOWAIT), reaping (waitpid(2)), and replacing this
 * process's program (execve(2)). The flags and struct layouts are this OS's
 * (os/constants.ts).
 *
 * @module
 */

import {
  bind,
  cString,
  HOST_LITTLE_ENDIAN,
  lazyBinding,
  libcUnavailableReason,
  pointerArray,
} from "./libc.ts";
import { libcConstants as C } from "./constants.ts";

const SPAWN_SYMBOLS = {
  posix_spawn: {
    parameters: ["buffer", "buffer", "buffer", "buffer", "buffer", "buffer"],
    result: "i32",
  },
  posix_spawn_file_actions_init: { parameters: ["buffer"], result: "i32" },
  posix_spawn_file_actions_adddup2: {
    parameters: ["buffer", "i32", "i32"],
    result: "i32",
  },
  posix_spawn_file_actions_addopen: {
    parameters: ["buffer", "i32", "buffer", "i32", "u32"],
    result: "i32",
  },
  posix_spawn_file_actions_addchdir_np: {
    parameters: ["buffer", "buffer"],
    result: "i32",
    optional: true,
  },
  posix_spawn_file_actions_destroy: { parameters: ["buffer"], result: "i32" },
  posix_spawnattr_init: { parameters: ["buffer"], result: "i32" },
  posix_spawnattr_setflags: { parameters: ["buffer", "i16"], result: "i32" },
  posix_spawnattr_setsigdefault: {
    parameters: ["buffer", "buffer"],
    result: "i32",
  },
  posix_spawnattr_setsigmask: {
    parameters: ["buffer", "buffer"],
    result: "i32",
  },
  posix_spawnattr_destroy: { parameters: ["buffer"], result: "i32" },
  waitpid: { parameters: ["i32", "buffer", "i32"], result: "i32" },
  waitid: { parameters: ["i32", "i32", "buffer", "i32"], result: "i32" },
} as const;

/**
 * posix_spawn_file_actions_t and posix_spawnattr_t take 80 and 336 bytes
 * (glibc), a pointer each (macOS).
 */
const SPAWN_STRUCT_BYTES = 1024;

/** posix_spawn(3) and waitpid(2), in a binding of their own. */
const spawnCalls = lazyBinding(SPAWN_SYMBOLS);

/**
 * Loads posix_spawn(3) and waitpid(2) through FFI ahead of the first spawn
 * (a restart loads it once the generation serves). Returns whether they are
 * available.
 */
export function loadSpawnCalls(): boolean {
  return spawnCalls() !== undefined;
}

/** A sigset_t with every signal of this OS but SIGKILL and SIGSTOP. */
function everyResettableSignal(): Uint8Array<ArrayBuffer> {
  const set = new Uint8Array(C.sigsetBytes);
  for (let signal = 1; signal <= C.signalMax; signal++) {
    if (signal === C.SIGKILL || signal === C.SIGSTOP) continue;
    const bit = signal - 1;
    // sigset_t is an array of unsigned longs (glibc) or one 32-bit word
    // (macOS): bit n of the set is bit n % 64 of long n / 64, whose bytes
    // are in the host's order.
    const byte = HOST_LITTLE_ENDIAN
      ? bit >> 3
      : C.sigsetBytes === 4
      ? 3 - (bit >> 3)
      : (bit >> 6) * 8 + 7 - ((bit & 63) >> 3);
    set[byte] |= 1 << (bit & 7);
  }
  return set;
}

/** What {@linkcode spawnInNewSession} starts. */
export interface SessionSpawn {
  /** The executable's path. */
  path: string;
  /** Its argv, argv[0] included. */
  argv: string[];
  /** Its whole environment. */
  env: Record<string, string>;
  /** dup2(from, to) in the child, in this order (the targets lose FD_CLOEXEC). */
  dups: { from: number; to: number }[];
  /** Fds (0, 1, 2) that get /dev/null in the child instead of this process's. */
  devNull?: number[];
  /** Its working directory; default: this process's. */
  cwd?: string;
}

/**
 * Starts a process with posix_spawn(3) in a new session (setsid, so its pid
 * is its process group), every signal at its default action and none
 * blocked, and the fds `dups` places. posix_spawn does not copy this process
 * (glibc uses vfork semantics), where a fork (what Deno's child_process and a
 * detached Deno.Command do) copies its page tables: milliseconds for a small
 * Deno process, and in proportion to its memory.
 *
 * Returns the pid; undefined when it cannot be done here (no FFI, no
 * POSIX_SPAWN_SETSID, or `cwd` without posix_spawn_file_actions_addchdir_np),
 * so that the caller starts the process another way. Throws when
 * posix_spawn fails.
 */
export function spawnInNewSession(spec: SessionSpawn): number | undefined {
  const calls = spawnCalls();
  if (calls === undefined) return undefined;
  const actions = new Uint8Array(SPAWN_STRUCT_BYTES);
  const attributes = new Uint8Array(SPAWN_STRUCT_BYTES);
  if (calls.posix_spawn_file_actions_init(actions) !== 0) return undefined;
  try {
    if (calls.posix_spawnattr_init(attributes) !== 0) return undefined;
    try {
      const flags = C.POSIX_SPAWN_SETSID | C.POSIX_SPAWN_SETSIGDEF |
        C.POSIX_SPAWN_SETSIGMASK;
      if (
        calls.posix_spawnattr_setflags(attributes, flags) !== 0 ||
        calls.posix_spawnattr_setsigdefault(
            attributes,
            everyResettableSignal(),
          ) !== 0 ||
        calls.posix_spawnattr_setsigmask(
            attributes,
            new Uint8Array(C.sigsetBytes),
          ) !== 0
      ) {
        return undefined; // an old libc without POSIX_SPAWN_SETSID
      }
      for (const { from, to } of spec.dups) {
        const failed = calls.posix_spawn_file_actions_adddup2(
          actions,
          from,
          to,
        );
        if (failed !== 0) {
          throw new Error(`posix_spawn: cannot pass fd ${from} as ${to}`);
        }
      }
      for (const fd of spec.devNull ?? []) {
        const failed = calls.posix_spawn_file_actions_addopen(
          actions,
          fd,
          cString("/dev/null"),
          C.O_RDWR,
          0,
        );
        if (failed !== 0) {
          throw new Error(`posix_spawn: cannot open /dev/null as fd ${fd}`);
        }
      }
      const addchdir = calls.posix_spawn_file_actions_addchdir_np;
      if (spec.cwd !== undefined) {
        if (addchdir === null || addchdir(actions, cString(spec.cwd)) !== 0) {
          return undefined;
        }
      }
      const path = cString(spec.path);
      const argv = spec.argv.map(cString);
      const env = Object.entries(spec.env).map(([key, value]) =>
        cString(`${key}=${value}`)
      );
      const pid = new Int32Array(1);
      const errno = calls.posix_spawn(
        pid,
        path,
        actions,
        attributes,
        pointerArray(argv),
        pointerArray(env),
      );
      if (errno !== 0) {
        throw new Error(`posix_spawn of ${spec.path} failed (errno ${errno})`);
      }
      return pid[0];
    } finally {
      calls.posix_spawnattr_destroy(attributes);
    }
  } finally {
    calls.posix_spawn_file_actions_destroy(actions);
  }
}

/** siginfo_t fits in 128 bytes (Linux: 128; macOS: 104). */
const SIGINFO_BYTES = 128;

/**
 * waitid(2) with WNOWAIT: the pid of a child that has ended but is not
 * reaped yet (`pid`, or any child when omitted); undefined when there is
 * none. The child stays a zombie, so its pid and process group id stay
 * reserved: its group can still be signalled safely, then it is reaped
 * ({@linkcode reapChild}).
 */
export function endedChild(pid?: number): number | undefined {
  const calls = spawnCalls();
  if (calls === undefined) return undefined;
  const info = new Uint8Array(SIGINFO_BYTES);
  const result = calls.waitid(
    pid === undefined ? C.P_ALL : C.P_PID,
    pid ?? 0,
    info,
    C.WEXITED | C.WNOHANG | C.WNOWAIT,
  );
  if (result !== 0) return undefined; // ECHILD: no such child
  const ended = new DataView(info.buffer).getInt32(
    C.siginfoPidOffset,
    HOST_LITTLE_ENDIAN,
  );
  return ended > 0 ? ended : undefined;
}

/** How a child process ended, from waitpid(2). */
export interface ChildExit {
  /** Its exit status, or null when a signal ended it (or it is unknown). */
  code: number | null;
  /** The number of the signal that ended it, or null. */
  signal: number | null;
}

/**
 * waitpid(pid, WNOHANG): reaps child `pid` if it has ended and says how;
 * undefined while it runs. A pid that is not (or no longer) this process's
 * child counts as ended, status unknown.
 */
export function reapChild(pid: number): ChildExit | undefined {
  const calls = spawnCalls();
  if (calls === undefined) return { code: null, signal: null };
  const status = new Int32Array(1);
  const result = calls.waitpid(pid, status, C.WNOHANG);
  if (result === 0) return undefined;
  // Below 0: not this process's child (ECHILD), or reaped elsewhere.
  if (result < 0) return { code: null, signal: null };
  const value = status[0];
  const termSignal = value & 0x7f;
  if (termSignal === 0) return { code: (value >> 8) & 0xff, signal: null };
  return { code: null, signal: termSignal };
}

const EXEC_SYMBOLS = {
  execve: { parameters: ["buffer", "buffer", "buffer"], result: "i32" },
  errno: { name: C.errnoSymbol, parameters: [], result: "pointer" },
} as const;

/**
 * Replaces this process's program with `path` (execve(2)): the same pid, the
 * same fds but those marked close-on-exec (Deno marks its own), signals that
 * are ignored stay ignored, handled ones return to their defaults. Returns
 * only by throwing, when FFI is not available or execve fails.
 */
export function execInPlace(
  path: string,
  argv: string[],
  env: Record<string, string>,
): never {
  const lib = bind(EXEC_SYMBOLS);
  if (lib === null) {
    throw new Error(
      `execve needs FFI (--allow-ffi or -A): ${libcUnavailableReason()}`,
    );
  }
  const args = argv.map(cString);
  const vars = Object.entries(env).map(([key, value]) =>
    cString(`${key}=${value}`)
  );
  lib.symbols.execve(cString(path), pointerArray(args), pointerArray(vars));
  const where = lib.symbols.errno();
  const errno = where ? new Deno.UnsafePointerView(where).getInt32() : -1;
  lib.close();
  throw new Error(`execve ${path} failed (errno ${errno})`);
}
