import { assertEquals } from "../../tests/assert.ts";
import { constantsFor, DARWIN, LINUX } from "./constants.ts";
import { sockaddrFamily } from "./socket.ts";

Deno.test("constants: the darwin table holds the macOS SDK's values", () => {
  const {
    libcPaths,
    errnoSymbol,
    SO_DOMAIN,
    SO_PROTOCOL,
    ...numbers
  } = DARWIN;
  assertEquals(libcPaths, ["/usr/lib/libSystem.B.dylib"]);
  assertEquals(errnoSymbol, "__error"); // sys/errno.h: extern int *__error(void)
  // sys/socket.h defines neither SO_DOMAIN nor SO_PROTOCOL.
  assertEquals([SO_DOMAIN, SO_PROTOCOL], [undefined, undefined]);
  assertEquals(numbers, {
    // sys/socket.h
    SOL_SOCKET: 0xffff,
    SO_TYPE: 0x1008,
    SO_ACCEPTCONN: 0x0002,
    AF_UNIX: 1,
    AF_INET: 2,
    AF_INET6: 30,
    SOCK_STREAM: 1,
    SOCK_DGRAM: 2,
    SOCK_NONBLOCK: 0, // not in sys/socket.h: set by fcntl instead
    SOCK_CLOEXEC: 0,
    SHUT_RDWR: 2,
    sockaddrHasLength: true, // struct sockaddr { __uint8_t sa_len; ... }
    // netinet/in.h
    IPPROTO_TCP: 6,
    // sys/un.h: char sun_path[104]
    sunPathBytes: 104,
    // sys/fcntl.h
    F_GETFD: 1,
    F_SETFD: 2,
    F_GETFL: 3,
    F_SETFL: 4,
    F_DUPFD_CLOEXEC: 67,
    FD_CLOEXEC: 1,
    O_NONBLOCK: 0x0004,
    O_RDWR: 0x0002,
    // sys/spawn.h
    POSIX_SPAWN_SETSIGDEF: 0x0004,
    POSIX_SPAWN_SETSIGMASK: 0x0008,
    POSIX_SPAWN_SETSID: 0x0400,
    // sys/signal.h: typedef __uint32_t sigset_t; NSIG 32; SIGSTOP 17
    sigsetBytes: 4,
    signalMax: 31,
    SIGKILL: 9,
    SIGSTOP: 17,
    // sys/wait.h: WNOHANG 0x01, WEXITED 0x04, WNOWAIT 0x20; idtype_t
    WNOHANG: 0x01,
    WEXITED: 0x04,
    WNOWAIT: 0x20,
    P_ALL: 0,
    P_PID: 1,
    // sys/signal.h: siginfo_t { int si_signo, si_errno, si_code; pid_t si_pid }
    siginfoPidOffset: 12,
  });
});

Deno.test("constants: a table for Linux and macOS only; no FFI elsewhere", () => {
  assertEquals(constantsFor("linux"), LINUX);
  assertEquals(constantsFor("darwin"), DARWIN);
  assertEquals(constantsFor("windows"), undefined);
  assertEquals(constantsFor("freebsd"), undefined);
});

Deno.test("sockaddrFamily: BSD's length byte, Linux's two-byte family", () => {
  // sockaddr_in6 as macOS lays it out: sin6_len 28, sin6_family AF_INET6.
  assertEquals(
    sockaddrFamily(new Uint8Array([28, 30, 0, 80]), true, DARWIN),
    30,
  );
  assertEquals(sockaddrFamily(new Uint8Array([10, 0, 0, 80]), true, LINUX), 10);
  assertEquals(sockaddrFamily(new Uint8Array([0, 10]), false, LINUX), 10);
  assertEquals(sockaddrFamily(new Uint8Array([1]), true, DARWIN), undefined);
});
