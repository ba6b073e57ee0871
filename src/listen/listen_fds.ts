/**
 * Sockets passed by systemd socket activation (sd_listen_fds(3) semantics):
 * the environment says which fds were passed (listen_env.ts), and the
 * kernel says what they are (socket_kind.ts). Only fds that came through
 * exec count, so that a LISTEN_FDS too large never names one of Deno's own.
 *
 * Reading `/proc/self/fd` needs Deno's `--allow-all`.
 *
 * @module
 */

import type { Addr } from "./types.ts";
import {
  DEFAULT_FD_NAME,
  ListenFdsError,
  parseListenEnv,
} from "./listen_env.ts";
import { classifySocket, listeningAddressOf } from "./socket_kind.ts";
import { libc } from "../os/libc.ts";
import { libcConstants, LISTEN_FDS_START } from "../os/constants.ts";
import { isLinuxMode, platform } from "../os/platform.ts";
import {
  parseSocketInode,
  type ProcNetTables,
  readProcNetTables,
} from "../os/proc_net.ts";
import { errorMessage } from "../util/error_message.ts";

/**
 * A listening socket passed to this process by its service manager.
 */
export interface InheritedFd {
  /** The file descriptor number (3 for the first socket). */
  fd: number;
  /** Its name from LISTEN_FDNAMES, or "unknown" when none were given. */
  name: string;
  /** Where it listens. */
  addr: Addr;
}

/**
 * The environment {@linkcode readListenFds} reads and cleans; `Deno.env`
 * satisfies it.
 */
export interface ListenFdsEnv {
  /** Returns the value of `key`, or undefined when it is not set. */
  get(key: string): string | undefined;
  /** Removes `key`. */
  delete(key: string): void;
}

/**
 * Options of {@linkcode readListenFds}.
 */
export interface ReadListenFdsOptions {
  /** Where to read LISTEN_PID, LISTEN_FDS and LISTEN_FDNAMES. Default: `Deno.env`. */
  env?: ListenFdsEnv;
  /** This process's id, compared with LISTEN_PID. Default: `Deno.pid`. */
  pid?: number;
}

/**
 * Returns the sockets passed by socket activation, like sd_listen_fds(3) with
 * sd_listen_fds_with_names(3), and removes LISTEN_PID, LISTEN_FDS and
 * LISTEN_FDNAMES from the environment (always, also when it throws), so that
 * child processes do not mistake them for their own.
 *
 * Returns `[]` when LISTEN_FDS is not set, or LISTEN_PID is not set or names
 * another process. Otherwise fds 3 to 3 + LISTEN_FDS - 1 must each be a
 * listening TCP or unix stream socket; their addresses are read from /proc.
 *
 * Needs `--allow-env` and, to inspect the fds, `--allow-all` (Deno requires
 * it for `/proc/self/fd`).
 *
 * @param options Where to read the variables, and this process's id.
 * @returns The passed sockets, in fd order.
 * @throws {ListenFdsError} When a variable is malformed, the names do not match
 * the count, or an fd is not a listening stream socket; the message names the
 * variable or the fd.
 */
export function readListenFds(options?: ReadListenFdsOptions): InheritedFd[] {
  const env = options?.env ?? Deno.env;
  const pid = options?.pid ?? Deno.pid;
  let pidText: string | undefined;
  let fdsText: string | undefined;
  let namesText: string | undefined;
  try {
    pidText = env.get("LISTEN_PID");
    fdsText = env.get("LISTEN_FDS");
    namesText = env.get("LISTEN_FDNAMES");
  } finally {
    env.delete("LISTEN_PID");
    env.delete("LISTEN_FDS");
    env.delete("LISTEN_FDNAMES");
  }

  const { count, names } = parseListenEnv(pidText, fdsText, namesText, pid);
  if (!isLinuxMode()) return portableListenFds(count, names);
  checkPassedCount(count);
  // Check the fds one by one, so that a huge LISTEN_FDS fails at the first fd
  // that is not a socket instead of allocating first.
  const inodes: number[] = [];
  for (let index = 0; index < count; index++) {
    inodes.push(readSocketInode(LISTEN_FDS_START + index));
  }
  if (count === 0) {
    return [];
  }
  const fds = inodes.map((_, index) => LISTEN_FDS_START + index);
  const addrs = fds.map(listeningAddressOf);
  if (addrs.every((addr) => addr !== undefined)) {
    return fds.map((fd, index) => ({
      fd,
      name: names === undefined ? DEFAULT_FD_NAME : names[index],
      addr: addrs[index],
    }));
  }
  // No FFI, or a socket that cannot serve: the tables say what it is.
  const tables = procNetTables();
  return inodes.map((inode, index) => {
    const fd = LISTEN_FDS_START + index;
    return {
      fd,
      name: names === undefined ? DEFAULT_FD_NAME : names[index],
      addr: classifySocket(fd, inode, tables),
    };
  });
}

/**
 * The passed fds outside Linux: no /proc, so getsockopt(2) and fcntl(2) say
 * what each fd is; Windows passes none.
 */
function portableListenFds(
  count: number,
  names: string[] | undefined,
): InheritedFd[] {
  if (count === 0) return [];
  const { mode } = platform();
  if (mode === "windows") {
    throw new ListenFdsError(
      `LISTEN_FDS is ${count}: socket activation needs inherited fds, which ` +
        `the windows mode does not have; unset LISTEN_FDS`,
    );
  }
  const inherited: InheritedFd[] = [];
  for (let index = 0; index < count; index++) {
    const fd = LISTEN_FDS_START + index;
    const flags = libc()?.fcntl(fd, F_GETFD, 0);
    if (flags === undefined) {
      throw new ListenFdsError(
        `LISTEN_FDS: fd ${fd} cannot be checked without FFI (${mode} mode)`,
      );
    }
    if (flags < 0 || (flags & FD_CLOEXEC) !== 0) {
      throw new ListenFdsError(
        `LISTEN_FDS is ${count} but fd ${fd} is ` +
          `${flags < 0 ? "not open" : "this process's own"}, not inherited`,
      );
    }
    const addr = listeningAddressOf(fd);
    if (addr === undefined) {
      throw new ListenFdsError(
        `LISTEN_FDS: fd ${fd} is not a listening TCP or unix stream socket`,
      );
    }
    inherited.push({
      fd,
      name: names === undefined ? DEFAULT_FD_NAME : names[index],
      addr,
    });
  }
  return inherited;
}

const { F_GETFD, FD_CLOEXEC } = libcConstants;

/** O_CLOEXEC, as the flags in /proc/self/fdinfo show it (octal). */
const O_CLOEXEC = 0o2000000;

/**
 * Throws when fewer than `count` fds from fd 3 on came through exec. The fds
 * a service manager passes are open and not close-on-exec; every fd Deno
 * opens itself is close-on-exec. Without this check, a LISTEN_FDS larger
 * than what was passed would fail naming one of Deno's own fds (an epoll fd,
 * a cache file) as if it had been passed.
 */
function checkPassedCount(count: number): void {
  for (let index = 0; index < count; index++) {
    const fd = LISTEN_FDS_START + index;
    const passed = cameThroughExec(fd);
    if (passed !== false) continue;
    const what = index === 0
      ? "no fd was passed"
      : `only ${index} fd(s) were passed (fd ${LISTEN_FDS_START}` +
        `${index > 1 ? ` to fd ${fd - 1}` : ""})`;
    throw new ListenFdsError(
      `LISTEN_FDS is ${count} but ${what}: fd ${fd} is ` +
        `${describeFd(fd)}, not inherited`,
    );
  }
}

/** false when `fd` is closed or close-on-exec; undefined when unknown. */
function cameThroughExec(fd: number): boolean | undefined {
  let text: string;
  try {
    text = Deno.readTextFileSync(`/proc/self/fdinfo/${fd}`);
  } catch (error) {
    return error instanceof Deno.errors.NotFound ? false : undefined;
  }
  const flags = text.match(/^flags:\s*([0-7]+)\s*$/m);
  if (!flags) return undefined;
  return (parseInt(flags[1], 8) & O_CLOEXEC) === 0;
}

function describeFd(fd: number): string {
  try {
    return `this process's own (${Deno.readLinkSync(`/proc/self/fd/${fd}`)})`;
  } catch {
    return "not open";
  }
}

/**
 * Returns the inode of the socket open as `fd` in this process, read from
 * /proc/self/fd; throws a ListenFdsError naming `fd` when it is not open or
 * not a socket.
 *
 * @internal Exported for tests.
 */
export function readSocketInode(fd: number): number {
  let target: string;
  try {
    target = Deno.readLinkSync(`/proc/self/fd/${fd}`);
  } catch (error) {
    if (error instanceof Deno.errors.NotFound) {
      throw new ListenFdsError(`fd ${fd} (from LISTEN_FDS) is not open`, {
        cause: error,
      });
    }
    if (error instanceof Deno.errors.NotCapable) {
      throw new ListenFdsError(
        `cannot inspect fd ${fd} (from LISTEN_FDS): reading ` +
          `/proc/self/fd/${fd} needs Deno's --allow-all permission`,
        { cause: error },
      );
    }
    throw new ListenFdsError(
      `cannot inspect fd ${fd} (from LISTEN_FDS): ${errorMessage(error)}`,
      { cause: error },
    );
  }
  const inode = parseSocketInode(target);
  if (inode === undefined) {
    throw new ListenFdsError(
      `fd ${fd} (from LISTEN_FDS) is not a socket: it is ${target}`,
    );
  }
  return inode;
}

/** The /proc/net tables, or a ListenFdsError that says which could not be read. */
function procNetTables(): ProcNetTables {
  try {
    return readProcNetTables();
  } catch (error) {
    throw new ListenFdsError(
      `${errorMessage(error)} (to inspect the LISTEN_FDS sockets)`,
      { cause: error },
    );
  }
}
