/**
 * Facts about processes and the calls a supervisor needs that Deno has no
 * API for: whether a pid is alive (zombies are not) and which signals it
 * catches (SigCgt), pidfd_open(2) and pidfd_getfd(2) (take a worker's
 * listening sockets; Linux), execve(2) keeping chosen fds (upgrade in place),
 * and the terminal and PID 1 checks.
 *
 * @module
 */

import { lazyBinding } from "./libc.ts";
import { setCloseOnExec } from "./fd.ts";
import { execInPlace as osExecInPlace } from "./spawn.ts";
import { libcConstants } from "./constants.ts";

const SYMBOLS = {
  syscall: { parameters: ["i64", "i64", "i64", "i64"], result: "i64" },
  close: { parameters: ["i32"], result: "i32" },
  sigprocmask: { parameters: ["i32", "buffer", "buffer"], result: "i32" },
} as const;

const SYS_PIDFD_OPEN = 434;
const SYS_PIDFD_GETFD = 438;

const processCalls = lazyBinding(SYMBOLS);

function calls(): Deno.DynamicLibrary<typeof SYMBOLS>["symbols"] {
  const symbols = processCalls();
  if (!symbols) {
    throw new Error(
      "the supervisor needs FFI (--allow-ffi, or -A) for pidfd_getfd(2) and execve(2)",
    );
  }
  return symbols;
}

/**
 * A copy, in this process, of fd `fd` of process `pid` (pidfd_getfd(2)), with
 * close-on-exec set. Throws an error naming the pid and fd when it fails.
 */
export function takeFd(pid: number, fd: number): number {
  const c = calls();
  const pidfd = Number(c.syscall(BigInt(SYS_PIDFD_OPEN), BigInt(pid), 0n, 0n));
  if (pidfd < 0) {
    throw new Error(`cannot take fd ${fd} of pid ${pid}: pidfd_open failed`);
  }
  try {
    const copy = Number(
      c.syscall(BigInt(SYS_PIDFD_GETFD), BigInt(pidfd), BigInt(fd), 0n),
    );
    if (copy < 0) {
      throw new Error(
        `cannot take fd ${fd} of pid ${pid}: pidfd_getfd failed ` +
          `(Linux >= 5.6 and ptrace rights are needed)`,
      );
    }
    return copy;
  } finally {
    c.close(pidfd);
  }
}

/** sigprocmask(2)'s "set the mask" (Linux 2, macOS 3). */
const SIG_SETMASK = Deno.build.os === "darwin" ? 3 : 2;

/**
 * Replaces this process's program with `argv` (execve(2): same pid, same
 * children), keeping the fds `keep` open (close-on-exec cleared) and no
 * signal blocked. Returns only when it failed: then it throws, and `keep`
 * are close-on-exec again.
 */
export function execInPlace(
  argv: string[],
  env: Record<string, string>,
  keep: number[],
): void {
  const c = calls();
  for (const fd of keep) {
    if (!setCloseOnExec(fd, false)) {
      throw new Error(`cannot keep fd ${fd} across execve: it is not open`);
    }
  }
  c.sigprocmask(SIG_SETMASK, new Uint8Array(libcConstants.sigsetBytes), null);
  try {
    // The one execve binding (./libc.ts; the app-config re-execution uses it).
    osExecInPlace(argv[0], argv, env);
  } finally {
    for (const fd of keep) setCloseOnExec(fd, true);
  }
}

/**
 * Whether this process runs in the foreground of a terminal: stdin is a
 * terminal whose foreground process group is this process's group.
 */
export function inForegroundTerminal(): boolean {
  if (!Deno.stdin.isTerminal()) return false;
  try {
    const stat = Deno.readTextFileSync("/proc/self/stat");
    // After "pid (comm) ": state ppid pgrp session tty_nr tpgid ...
    const fields = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
    return Number(fields[2]) === Number(fields[5]);
  } catch {
    return false;
  }
}

/**
 * Whether this process is PID 1 of its pid namespace (a container's init).
 */
export function isPid1(): boolean {
  return Deno.pid === 1;
}

/**
 * Whether process `pid` is alive and not a zombie: /proc/PID/stat on Linux
 * (PID 1 may not reap orphans, and a zombie answers signals), a signal-0
 * probe elsewhere (where a zombie counts as alive). The probe is Deno.kill's:
 * this module is on every generation's way to serving (watch_keeper.ts
 * imports it), which loads no node: module.
 */
export function isAlive(pid: number): boolean {
  if (Deno.build.os !== "linux") {
    try {
      Deno.kill(pid, 0);
      return true;
    } catch (error) {
      // EPERM: it exists, under another user (as /proc says on Linux).
      return error instanceof Deno.errors.PermissionDenied;
    }
  }
  try {
    const stat = Deno.readTextFileSync(`/proc/${pid}/stat`);
    const state = stat.slice(stat.lastIndexOf(")") + 2).split(" ")[0];
    return state !== "Z" && state !== "X";
  } catch {
    return false;
  }
}

/** Linux's numbers of the signals `reload` may send. */
const LINUX_SIGNAL_NUMBERS: Partial<Record<Deno.Signal, number>> = {
  SIGHUP: 1,
  SIGUSR1: 10,
  SIGUSR2: 12,
};

/**
 * Whether process `pid` has a handler for `signal` (its SigCgt mask in
 * /proc/PID/status: without one, SIGHUP, SIGUSR1 and SIGUSR2 end it).
 * Undefined when that cannot be told: not Linux, no such process, or a
 * signal not listed above.
 */
export function catchesSignal(
  pid: number,
  signal: Deno.Signal,
): boolean | undefined {
  const number = LINUX_SIGNAL_NUMBERS[signal];
  if (Deno.build.os !== "linux" || number === undefined) return undefined;
  let mask: string | undefined;
  try {
    mask = Deno.readTextFileSync(`/proc/${pid}/status`)
      .match(/^SigCgt:\s*([0-9a-f]+)$/m)?.[1];
  } catch {
    return undefined;
  }
  if (mask === undefined) return undefined;
  // Bit n - 1 is signal n.
  return ((BigInt(`0x${mask}`) >> BigInt(number - 1)) & 1n) === 1n;
}
