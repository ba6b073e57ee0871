/**
 * A spawned generation as a child process in its own process group: its
 * exit (waitpid(2) polling for a posix_spawn child, node's events for the
 * fallback), and signals to its whole group while its pid is still its own.
 *
 * @module
 */

import type { ChildProcess } from "node:child_process";
import { endedChild, reapChild } from "../os/spawn.ts";

/**
 * How a generation ended: its exit code, or the signal that killed it.
 */
export interface GenerationExit {
  /** The exit status, or null when a signal ended it. */
  code: number | null;
  /** The signal that ended it, or null when it exited. */
  signal: string | null;
}

/**
 * A spawned generation: a child process in its own process group.
 */
export interface Generation {
  /** The child's pid, which is also its process group id. */
  pid: number;
  /**
   * Resolves when the child has exited and been reaped; it never rejects.
   * While unref()'d, it resolves only if this process is still running.
   */
  exited: Promise<GenerationExit>;
  /**
   * Sends `signal` (default SIGKILL) to the child's whole process group, so
   * that what it started dies with it. Does nothing once the child is reaped
   * (its pid, and so the group id, may then belong to another process).
   */
  killGroup(signal?: Deno.Signal): void;
  /** Lets this process exit without waiting for the child, which keeps running. */
  unref(): void;
}

/**
 * How often (ms) the exit of a child started with posix_spawn is checked
 * (waitpid(2) with WNOHANG), while it runs.
 */
export const EXIT_POLL_MS = 10;

/** Wraps a child started with posix_spawn as a {@linkcode Generation}. */
export function watchSpawned(pid: number, callerReaps = false): Generation {
  const { promise: exited, resolve } = Promise.withResolvers<
    GenerationExit
  >();
  // Once reaped, the pid (and so the group id) may be reused: never signal
  // it again. Until then it is reserved, a zombie's too.
  let reaped = false;
  const timer = callerReaps ? undefined : setInterval(() => {
    // Ended but a zombie still: what it left running in its group is killed
    // before the pid (and so the group id) is freed.
    if (endedChild(pid) !== undefined) killProcessGroup(pid, "SIGKILL");
    const exit = reapChild(pid);
    if (exit === undefined) return;
    reaped = true;
    clearInterval(timer);
    resolve({
      code: exit.code,
      signal: exit.signal === null ? null : signalName(exit.signal),
    });
  }, EXIT_POLL_MS);
  return generation(pid, exited, () => reaped, () => {
    if (timer !== undefined) Deno.unrefTimer(timer);
  });
}

/** Linux's signal numbers, and their names. */
const SIGNAL_NAMES: readonly string[] = [
  "",
  "SIGHUP",
  "SIGINT",
  "SIGQUIT",
  "SIGILL",
  "SIGTRAP",
  "SIGABRT",
  "SIGBUS",
  "SIGFPE",
  "SIGKILL",
  "SIGUSR1",
  "SIGSEGV",
  "SIGUSR2",
  "SIGPIPE",
  "SIGALRM",
  "SIGTERM",
  "SIGSTKFLT",
  "SIGCHLD",
  "SIGCONT",
  "SIGSTOP",
  "SIGTSTP",
  "SIGTTIN",
  "SIGTTOU",
  "SIGURG",
  "SIGXCPU",
  "SIGXFSZ",
  "SIGVTALRM",
  "SIGPROF",
  "SIGWINCH",
  "SIGIO",
  "SIGPWR",
  "SIGSYS",
];

/**
 * The name of signal `signal` ("SIGKILL"), or "SIG" and its number.
 */
export function signalName(signal: number): string {
  return SIGNAL_NAMES[signal] || `SIG${signal}`;
}

/** Wraps a child spawned by Deno's child_process as a {@linkcode Generation}. */
export function watchGeneration(
  child: ChildProcess,
  execPath: string,
): Generation {
  const { promise: exited, resolve } = Promise.withResolvers<
    GenerationExit
  >();
  // When the spawn itself fails, pid is undefined and the reason comes later
  // as an "error" event, which would be thrown without a listener.
  child.on("error", () => {});
  // node's "exit" comes after the reap: from then on the pid may be reused.
  let reaped = false;
  child.on("exit", (code, signal) => {
    reaped = true;
    resolve({ code, signal });
  });
  const pid = child.pid;
  if (pid === undefined) {
    throw new Error(
      `cannot start /bin/sh to run ${execPath} (out of processes or memory?)`,
    );
  }
  return generation(pid, exited, () => reaped, () => child.unref());
}

/**
 * The {@linkcode Generation} of the child `pid`: its group is signalled only
 * until it is reaped, since its pid (and so the group id) may then be reused.
 */
function generation(
  pid: number,
  exited: Promise<GenerationExit>,
  reaped: () => boolean,
  unref: () => void,
): Generation {
  return {
    pid,
    exited,
    killGroup(signal: Deno.Signal = "SIGKILL"): void {
      if (!reaped()) killProcessGroup(pid, signal);
    },
    unref,
  };
}

/**
 * Sends `signal` to the process group `pgid`; does nothing when no process
 * of that group is left.
 */
function killProcessGroup(pgid: number, signal: Deno.Signal): void {
  try {
    Deno.kill(-pgid, signal);
  } catch (error) {
    if (!(error instanceof Deno.errors.NotFound)) {
      throw error;
    }
  }
}
