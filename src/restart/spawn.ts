/**
 * Starting the next generation of this program: a child process that
 * inherits listening sockets as fds 3, 4, ... with `LISTEN_PID`,
 * `LISTEN_FDS` and `LISTEN_FDNAMES` (sd_listen_fds(3)), and no other fd of
 * this process. Its command line comes from command_line.ts.
 *
 * Linux only: it reads `/proc`, and it calls fcntl(2) through FFI
 * (`../os/libc.ts`). Needs `--allow-all` (Deno requires it for `/proc/self`).
 *
 * @module
 */

import { type ChildProcess, spawn } from "node:child_process";
import { closeFd, ensureNonBlocking } from "../os/fd.ts";
import { libc, libcUnavailableReason } from "../os/libc.ts";
import { loadSpawnCalls, spawnInNewSession } from "../os/spawn.ts";
import { libcConstants, LISTEN_FDS_START } from "../os/constants.ts";
import { type Generation, watchGeneration, watchSpawned } from "./child.ts";

const { F_GETFD, F_SETFD, FD_CLOEXEC, F_DUPFD_CLOEXEC } = libcConstants;

/**
 * What the child runs: `/bin/sh -c SCRIPT sh EXECPATH ARGS...`. The shell
 * puts its own pid (which `exec` keeps) in LISTEN_PID and replaces itself
 * with the program.
 *
 * It also unsets DENO_EXTRA_STDIO_FDS, which Deno's child_process sets to the
 * extra stdio fds ("3,4"): a Deno child seeing it keeps a hidden dup of each
 * of those fds for its whole life, so that a listening socket would stay
 * open (clients queued, not refused) after the child closes its listener.
 */
const CHILD_SCRIPT = 'unset DENO_EXTRA_STDIO_FDS; LISTEN_PID=$$ exec "$@"';

/**
 * The same, with SIGHUP ignored across the exec (posix_spawn resets every
 * signal), for a process that started with it ignored (nohup).
 */
const CHILD_SCRIPT_NOHUP = `trap '' HUP; ${CHILD_SCRIPT}`;

/** The variable that names the inspector guard's fd in the child. */
const INSPECTOR_GUARD_ENV = "GRACEFUL_INSPECTOR_FD";

/**
 * A file descriptor to pass to the child, and its LISTEN_FDNAMES name.
 */
export interface PassedFd {
  /** The fd in this process. The child gets it as 3, 4, ... in list order. */
  fd: number;
  /** Its name; no ":" (it separates the names in LISTEN_FDNAMES). */
  name: string;
}

/**
 * Options of {@linkcode spawnGeneration}.
 */
export interface SpawnGenerationOptions {
  /** The executable: a path, or a name looked up in PATH. */
  execPath: string;
  /** Its arguments, without argv[0]. */
  args: string[];
  /** The fds to pass; the child gets them as 3, 4, ... in this order. */
  fds: PassedFd[];
  /**
   * Variables to set on top of this process's environment. LISTEN_PID,
   * LISTEN_FDS and LISTEN_FDNAMES are always set by spawnGeneration.
   */
  env: Record<string, string>;
  /** The child's working directory. Default: this process's. */
  cwd?: string;
  /** Variables of this process's environment the child does not get. */
  unsetEnv?: string[];
  /**
   * The caller reaps the child (a supervisor that signals a child's group
   * before reaping it, so that a reused pid is never hit): posix_spawn only,
   * and `exited` never resolves.
   */
  callerReaps?: boolean;
  /**
   * The inspector guard's fd: passed just after the LISTEN_FDS range (in no
   * count, so that no server and no other sd_listen_fds(3) program takes
   * it), named by GRACEFUL_INSPECTOR_FD.
   */
  inspectorGuard?: number;
  /** Start the child with SIGHUP ignored (this process started so: nohup). */
  ignoreHangup?: boolean;
}

/**
 * Spawns the next generation: `execPath` with `args`, through
 * `/bin/sh -c 'LISTEN_PID=$$ exec "$@"'` so that LISTEN_PID is the child's
 * own pid, with the `fds` as its fds 3, 4, ... in order, LISTEN_FDS set to
 * their count and LISTEN_FDNAMES to their names joined by ":". Any
 * LISTEN_PID in this process's environment is not passed on.
 *
 * The child is in its own process group (and session), so that
 * {@linkcode Generation.killGroup} kills it and everything it started. Its
 * stdin, stdout and stderr are this process's. Apart from those and the
 * passed fds, it inherits no fd: fds this process inherited without
 * FD_CLOEXEC are marked close-on-exec for the moment of the spawn (found in
 * /proc/self/fd, which needs `--allow-all`; without it they reach the child).
 *
 * With FFI, the child is started with posix_spawn(3), which does not copy
 * this process: Deno's child_process (the fallback) forks, which copies this
 * process's page tables, a cost that grows with its memory, on the way to
 * every restart. Its exit is then polled with
 * waitpid(2) every {@linkcode EXIT_POLL_MS} ms while it runs.
 *
 * Deno's child_process clears O_NONBLOCK on the passed sockets, which this
 * process shares with the child; without O_NONBLOCK an accept loop here
 * would block the event loop. It is set again right after the spawn.
 *
 * If `execPath` cannot be run, the shell exits with status 127 (not found)
 * or 126, and `exited` says so.
 *
 * Needs `--allow-run` (for the fallback) and, to pass fds, FFI
 * (`--allow-ffi`; `-A` has both).
 *
 * @param options What to run and which fds to pass.
 * @returns The running child.
 * @throws {Error} Before spawning, when an fd is not an open file descriptor
 * or a name contains ":" (the message names the fd), or when fds are to be
 * passed but FFI is not available.
 */
export function spawnGeneration(options: SpawnGenerationOptions): Generation {
  const { execPath, args, env, cwd, inspectorGuard } = options;
  checkPassedFds(options.fds);
  const script = options.ignoreHangup ? CHILD_SCRIPT_NOHUP : CHILD_SCRIPT;

  const childEnv: Record<string, string> = {
    ...Deno.env.toObject(),
    ...env,
    LISTEN_FDS: String(options.fds.length),
    LISTEN_FDNAMES: options.fds.map((passed) => passed.name).join(":"),
  };
  delete childEnv.LISTEN_PID;
  delete childEnv.DENO_EXTRA_STDIO_FDS;
  for (const name of options.unsetEnv ?? []) delete childEnv[name];
  delete childEnv[INSPECTOR_GUARD_ENV];
  const fds = [...options.fds];
  if (inspectorGuard !== undefined && fdFlags(inspectorGuard) >= 0) {
    childEnv[INSPECTOR_GUARD_ENV] = String(LISTEN_FDS_START + fds.length);
    fds.push({ fd: inspectorGuard, name: "inspector-guard" });
  }

  // Deno's child_process moves each passed fd to its slot with dup2() and
  // then closes the source, one after the other, so a source fd that is
  // itself in the target range (3 to 3 + n - 1, as when passing on inherited
  // fds in another order) would be overwritten or closed before it is moved.
  // Passing copies made above that range avoids it.
  const copies: number[] = [];
  try {
    for (const passed of fds) {
      copies.push(copyFdAbove(passed.fd, LISTEN_FDS_START + fds.length));
    }
    const marked = markInheritableFdsCloseOnExec();
    let child: ChildProcess;
    try {
      const stdio = inheritedStdio();
      const pid = spawnInNewSession({
        path: "/bin/sh",
        argv: ["sh", "-c", script, "sh", execPath, ...args],
        env: childEnv,
        dups: copies.map((copy, index) => ({
          from: copy,
          to: LISTEN_FDS_START + index,
        })),
        devNull: [0, 1, 2].filter((fd) => stdio[fd] === "ignore"),
        cwd,
      });
      if (pid !== undefined) return watchSpawned(pid, options.callerReaps);
      if (options.callerReaps) {
        throw new Error(
          `cannot start ${execPath} for a supervisor: posix_spawn(3) through ` +
            `FFI is not available here`,
        );
      }
      child = spawn(
        "/bin/sh",
        ["-c", script, "sh", execPath, ...args],
        {
          stdio: [...stdio, ...copies],
          env: childEnv,
          cwd,
          detached: true,
        },
      );
    } finally {
      // Right away, before the event loop runs again.
      for (const passed of fds) {
        ensureNonBlocking(passed.fd);
      }
      unmarkCloseOnExec(marked);
    }
    return watchGeneration(child, execPath);
  } finally {
    for (const copy of copies) {
      closeFd(copy);
    }
  }
}

/** The standard streams, and the terminals they can name in /proc. */
const STDIO = [Deno.stdin, Deno.stdout, Deno.stderr] as const;
const TERMINAL_PATH = /^\/dev\/(?:pts\/\d+|tty\w*|console)(?: \(deleted\))?$/;

/**
 * How the next generation gets stdin, stdout and stderr: this process's own,
 * except a terminal that has hung up (it was closed, e.g. the ssh session
 * ended). Writing to that fails with EIO, so the child's first log line
 * would kill it: it gets /dev/null in its place.
 */
function inheritedStdio(): ("inherit" | "ignore")[] {
  return STDIO.map((stream, fd) =>
    isHungUpTerminal(fd, stream.isTerminal()) ? "ignore" : "inherit"
  );
}

/**
 * Whether fd `fd` is a terminal device that no longer works as one: it
 * names a tty in /proc/self/fd but isatty() fails (EIO after a hangup).
 */
export function isHungUpTerminal(fd: number, isTerminal: boolean): boolean {
  if (isTerminal) return false;
  let target: string;
  try {
    target = Deno.readLinkSync(`/proc/self/fd/${fd}`);
  } catch {
    return false; // closed
  }
  return TERMINAL_PATH.test(target);
}

/**
 * Loads what {@linkcode spawnGeneration} needs through FFI (libc, and
 * posix_spawn), so that the first spawn does not: a restart calls it once the
 * generation serves.
 */
export function prepareSpawning(): void {
  libc();
  loadSpawnCalls();
}

/**
 * Throws an error naming the fd when a passed fd is not an open file
 * descriptor or its name cannot be put in LISTEN_FDNAMES. Needs FFI when
 * there is any fd.
 */
function checkPassedFds(fds: readonly PassedFd[]): void {
  for (const { fd, name } of fds) {
    if (!Number.isSafeInteger(fd) || fd < 0) {
      throw new Error(
        `cannot pass fd ${fd} (${JSON.stringify(name)}): ` +
          `a file descriptor is a non-negative integer`,
      );
    }
    if (/[:\0]/.test(name)) {
      throw new Error(
        `cannot pass fd ${fd} with the name ${JSON.stringify(name)}: ` +
          `LISTEN_FDNAMES names cannot contain ":" (the separator) or NUL`,
      );
    }
  }
  if (fds.length === 0) {
    return;
  }
  if (libc() === undefined) {
    throw new Error(
      `cannot pass fds to a new process without FFI (--allow-ffi), ` +
        `needed to keep the shared sockets non-blocking: ` +
        libcUnavailableReason(),
    );
  }
  for (const { fd, name } of fds) {
    if (fdFlags(fd) < 0) {
      throw new Error(
        `cannot pass fd ${fd} (${JSON.stringify(name)}): ` +
          `it is not open in this process`,
      );
    }
  }
}

/**
 * fcntl(fd, F_GETFD): the fd's flags (FD_CLOEXEC), or -1 when it is not
 * open. Uses the fcntl that ../os/libc.ts binds.
 */
function fdFlags(fd: number): number {
  const c = libc();
  return c === undefined ? -1 : c.fcntl(fd, F_GETFD, 0);
}

/** fcntl(fd, F_SETFD, flags). Returns false when it failed. */
function setFdFlags(fd: number, flags: number): boolean {
  const c = libc();
  return c !== undefined && c.fcntl(fd, F_SETFD, flags) === 0;
}

/**
 * fcntl(fd, F_DUPFD_CLOEXEC, lowest): a close-on-exec copy of `fd` numbered
 * `lowest` or more. Throws an error naming `fd` when it fails.
 */
function copyFdAbove(fd: number, lowest: number): number {
  const c = libc();
  const copy = c === undefined ? -1 : c.fcntl(fd, F_DUPFD_CLOEXEC, lowest);
  if (copy < 0) {
    throw new Error(
      `cannot pass fd ${fd}: duplicating it failed (too many open files?)`,
    );
  }
  return copy;
}

/**
 * Sets FD_CLOEXEC on every fd from 3 up that lacks it (fds this process
 * inherited from whoever started it; Deno opens its own with it) and returns
 * them. Returns [] when /proc/self/fd cannot be listed.
 */
function markInheritableFdsCloseOnExec(): number[] {
  const fds: number[] = [];
  try {
    for (const entry of Deno.readDirSync("/proc/self/fd")) {
      const fd = Number(entry.name);
      if (Number.isSafeInteger(fd) && fd >= LISTEN_FDS_START) {
        fds.push(fd);
      }
    }
  } catch {
    return [];
  }
  const marked: number[] = [];
  for (const fd of fds) {
    const flags = fdFlags(fd);
    // -1: the fd was closed meanwhile (such as the one listing the folder).
    if (flags >= 0 && (flags & FD_CLOEXEC) === 0) {
      if (setFdFlags(fd, flags | FD_CLOEXEC)) {
        marked.push(fd);
      }
    }
  }
  return marked;
}

/** Clears FD_CLOEXEC again on the fds that were marked for the spawn. */
function unmarkCloseOnExec(fds: readonly number[]): void {
  for (const fd of fds) {
    const flags = fdFlags(fd);
    if (flags >= 0) {
      setFdFlags(fd, flags & ~FD_CLOEXEC);
    }
  }
}
