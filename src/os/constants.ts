/**
 * The libc constants and struct layouts the FFI seam needs, one table per
 * OS: the numbers differ between Linux (glibc, musl) and macOS (libSystem),
 * and a call made with the other OS's number is a different call.
 *
 * Only what a mode uses outside Linux is in the tables (sockets, fds,
 * posix_spawn, waitid); sock_diag(7), epoll and sd_notify's calls are
 * Linux's alone and keep their constants beside them. An OS with no table
 * (FreeBSD, Windows) gets no FFI at all ({@linkcode constantsFor} returns
 * undefined, and os/libc.ts refuses to bind).
 *
 * @module
 */

/** SD_LISTEN_FDS_START: the first fd a service manager passes. */
export const LISTEN_FDS_START = 3;

/** What one OS's headers say. */
export interface LibcConstants {
  /** The path to Deno.dlopen. */
  libcPaths: readonly string[];
  /** The function that returns the address of `errno`. */
  errnoSymbol: "__errno_location" | "__error";
  /** getsockopt(2) level and options; undefined where the OS lacks one. */
  SOL_SOCKET: number;
  SO_TYPE: number;
  SO_ACCEPTCONN: number;
  SO_PROTOCOL: number | undefined;
  SO_DOMAIN: number | undefined;
  /** Address families and socket types. */
  AF_UNIX: number;
  AF_INET: number;
  AF_INET6: number;
  SOCK_STREAM: number;
  SOCK_DGRAM: number;
  /** socket(2) type flags; 0 where the OS has none (then fcntl sets them). */
  SOCK_NONBLOCK: number;
  SOCK_CLOEXEC: number;
  IPPROTO_TCP: number;
  SHUT_RDWR: number;
  /** A sockaddr starts with a length byte (BSD) before a one-byte family. */
  sockaddrHasLength: boolean;
  /** sizeof(sockaddr_un.sun_path). */
  sunPathBytes: number;
  /** fcntl(2) commands and flags, open(2) flags. */
  F_GETFD: number;
  F_SETFD: number;
  F_GETFL: number;
  F_SETFL: number;
  F_DUPFD_CLOEXEC: number;
  FD_CLOEXEC: number;
  O_NONBLOCK: number;
  O_RDWR: number;
  /** posix_spawnattr_setflags(3) flags. */
  POSIX_SPAWN_SETSIGDEF: number;
  POSIX_SPAWN_SETSIGMASK: number;
  POSIX_SPAWN_SETSID: number;
  /** sizeof(sigset_t), and the highest signal number in it. */
  sigsetBytes: number;
  signalMax: number;
  SIGKILL: number;
  SIGSTOP: number;
  /** waitpid(2) and waitid(2). */
  WNOHANG: number;
  WEXITED: number;
  WNOWAIT: number;
  P_ALL: number;
  P_PID: number;
  /** The offset of si_pid in siginfo_t. */
  siginfoPidOffset: number;
}

/**
 * Linux (x86_64 and aarch64), from glibc's and the kernel's UAPI headers:
 * asm-generic/socket.h, bits/socket.h, asm-generic/fcntl.h, spawn.h,
 * bits/waitflags.h, bits/siginfo-consts.h, asm-generic/signal.h.
 */
export const LINUX: LibcConstants = {
  libcPaths: [
    "/lib/x86_64-linux-gnu/libc.so.6",
    "/lib/aarch64-linux-gnu/libc.so.6",
    "/usr/lib/libc.so.6",
    "/lib64/libc.so.6",
    "libc.so.6",
  ],
  errnoSymbol: "__errno_location",
  SOL_SOCKET: 1,
  SO_TYPE: 3,
  SO_ACCEPTCONN: 30,
  SO_PROTOCOL: 38,
  SO_DOMAIN: 39,
  AF_UNIX: 1,
  AF_INET: 2,
  AF_INET6: 10,
  SOCK_STREAM: 1,
  SOCK_DGRAM: 2,
  SOCK_NONBLOCK: 0o4000,
  SOCK_CLOEXEC: 0o2000000,
  IPPROTO_TCP: 6,
  SHUT_RDWR: 2,
  sockaddrHasLength: false,
  sunPathBytes: 108,
  F_GETFD: 1,
  F_SETFD: 2,
  F_GETFL: 3,
  F_SETFL: 4,
  F_DUPFD_CLOEXEC: 1030,
  FD_CLOEXEC: 1,
  O_NONBLOCK: 0o4000,
  O_RDWR: 2,
  POSIX_SPAWN_SETSIGDEF: 0x04,
  POSIX_SPAWN_SETSIGMASK: 0x08,
  POSIX_SPAWN_SETSID: 0x80,
  sigsetBytes: 128,
  signalMax: 64,
  SIGKILL: 9,
  SIGSTOP: 19,
  WNOHANG: 1,
  WEXITED: 4,
  WNOWAIT: 0x01000000,
  P_ALL: 0,
  P_PID: 1,
  siginfoPidOffset: 16,
};

/**
 * macOS (x86_64 and arm64), from the macOS SDK's headers (xnu's bsd/ tree):
 * sys/socket.h (SOL_SOCKET 0xffff, SO_TYPE 0x1008, SO_ACCEPTCONN 0x0002, no
 * SO_DOMAIN nor SO_PROTOCOL, no SOCK_NONBLOCK nor SOCK_CLOEXEC, AF_INET6 30,
 * struct sockaddr's sa_len), sys/un.h (sun_path[104]), sys/fcntl.h
 * (O_NONBLOCK 0x0004, F_DUPFD_CLOEXEC 67), sys/spawn.h (POSIX_SPAWN_SETSID
 * 0x0400), sys/wait.h (WNOWAIT 0x20, P_PID 1), sys/signal.h (SIGSTOP 17,
 * sigset_t a __uint32_t, NSIG 32; siginfo_t's si_pid after three ints), and
 * sys/errno.h (`__error()`).
 */
export const DARWIN: LibcConstants = {
  libcPaths: ["/usr/lib/libSystem.B.dylib"],
  errnoSymbol: "__error",
  SOL_SOCKET: 0xffff,
  SO_TYPE: 0x1008,
  SO_ACCEPTCONN: 0x0002,
  SO_PROTOCOL: undefined,
  SO_DOMAIN: undefined,
  AF_UNIX: 1,
  AF_INET: 2,
  AF_INET6: 30,
  SOCK_STREAM: 1,
  SOCK_DGRAM: 2,
  SOCK_NONBLOCK: 0,
  SOCK_CLOEXEC: 0,
  IPPROTO_TCP: 6,
  SHUT_RDWR: 2,
  sockaddrHasLength: true,
  sunPathBytes: 104,
  F_GETFD: 1,
  F_SETFD: 2,
  F_GETFL: 3,
  F_SETFL: 4,
  F_DUPFD_CLOEXEC: 67,
  FD_CLOEXEC: 1,
  O_NONBLOCK: 0x0004,
  O_RDWR: 0x0002,
  POSIX_SPAWN_SETSIGDEF: 0x0004,
  POSIX_SPAWN_SETSIGMASK: 0x0008,
  POSIX_SPAWN_SETSID: 0x0400,
  sigsetBytes: 4,
  signalMax: 31,
  SIGKILL: 9,
  SIGSTOP: 17,
  WNOHANG: 0x01,
  WEXITED: 0x04,
  WNOWAIT: 0x20,
  P_ALL: 0,
  P_PID: 1,
  siginfoPidOffset: 12,
};

/**
 * The table for `os`, or undefined when the seam has none (then no FFI).
 */
export function constantsFor(
  os: typeof Deno.build.os,
): LibcConstants | undefined {
  if (os === "linux") return LINUX;
  if (os === "darwin") return DARWIN;
  return undefined;
}

/**
 * This OS's table (Linux's where there is none: os/libc.ts binds nothing
 * there, so no number of it is used).
 */
export const libcConstants: LibcConstants = constantsFor(Deno.build.os) ??
  LINUX;
