import {
  assert,
  assertEquals,
  assertMatch,
  assertThrows,
} from "../../tests/assert.ts";
import {
  classifySocket,
  decodeProcInetAddress,
  decodeSockaddr,
  type InheritedFd,
  ListenFdsError,
  parseListenEnv,
  parseProcNetInet,
  parseProcNetUnix,
  parseSocketInode,
  type ProcNetTables,
  readListenFds,
  readProcNetTables,
  readSocketInode,
} from "./listen_fds.ts";
import { socketFacts } from "../os/socket.ts";
import {
  has,
  IPV6,
  PYTHON,
  SOCKET_ACTIVATE as SOCKET_ACTIVATE_TOOL,
} from "../../tests/capabilities.ts";

// ---------------------------------------------------------------------------
// Pure functions, on fixed /proc text
// ---------------------------------------------------------------------------

const PROC_NET_TCP = [
  "  sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode",
  "   0: 00000000:07E8 00000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 1593 1 000000004d1daf8a 100 0 0 10 0",
  "   1: 0100007F:B813 00000000:0000 0A 00000000:00000001 00:00000000 00000000     0        0 6617 2 000000005ca919ea 100 0 0 10 0",
  "   2: 0100007F:B813 0100007F:B2F8 01 00000000:00000000 00:00000000 00000000     0        0 0 1 00000000e62bac29 20 0 0 10 -1",
  "   3: 0100007F:B2F8 0100007F:B813 01 00000000:00000000 00:00000000 00000000     0        0 4989 2 000000007be3fb3b 20 0 0 10 -1",
  "   4: 0A00020F:1F90 00000000:0000 07 00000000:00000000 00:00000000 00000000     0        0 5000 2 000000007be3fb3b 20 0 0 10 -1",
  "",
].join("\n");

const PROC_NET_TCP6 = [
  "  sl  local_address                         remote_address                        st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode",
  "   0: 00000000000000000000000001000000:B814 00000000000000000000000000000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 6620 1 00000000e5bab00a 100 0 0 10 0",
  "   1: 00000000000000000000000000000000:0050 00000000000000000000000000000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 6621 1 00000000e5bab00a 100 0 0 10 0",
  "   2: 0000000000000000FFFF00000100007F:1F90 00000000000000000000000000000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 6622 1 00000000e5bab00a 100 0 0 10 0",
  "   3: B80D01200000000000000000FF000000:01BB 00000000000000000000000000000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 6623 1 00000000e5bab00a 100 0 0 10 0",
  "",
].join("\n");

const PROC_NET_UDP = [
  "   sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode ref pointer drops",
  "  123: 3500007F:0035 00000000:0000 07 00000000:00000000 00:00000000 00000000   101        0 7100 2 0000000000000000 0",
  "",
].join("\n");

const PROC_NET_UNIX = [
  "Num       RefCount Protocol Flags    Type St Inode Path",
  "0000000000000000: 00000002 00000000 00010000 0001 01  6621 /run/app.sock",
  "0000000000000000: 00000002 00000000 00010000 0001 01 31337 @abstract-name",
  "0000000000000000: 00000003 00000000 00000000 0001 03  1590",
  "0000000000000000: 00000002 00000000 00000000 0002 01  7000 /run/systemd/notify",
  "0000000000000000: 00000002 00000000 00010000 0005 01  7001 /run/seq.sock",
  "0000000000000000: 00000002 00000000 00000000 0001 01  7002 /run/bound only.sock",
  "0000000000000000: 00000002 00000000 00010000 0001 01  7003 /tmp/my dir/a b.sock",
  "",
].join("\n");

/** Tables built from the fixtures above. */
function fixtureTables(): ProcNetTables {
  return {
    tcp: new Map([
      ...parseProcNetInet(PROC_NET_TCP, true),
      ...parseProcNetInet(PROC_NET_TCP6, true),
    ]),
    udp: parseProcNetInet(PROC_NET_UDP, true),
    unix: parseProcNetUnix(PROC_NET_UNIX),
  };
}

Deno.test("decodeProcInetAddress decodes IPv4 (little-endian words)", () => {
  assertEquals(decodeProcInetAddress("0100007F:1F40", true), {
    hostname: "127.0.0.1",
    port: 8000,
  });
  assertEquals(decodeProcInetAddress("00000000:0050", true), {
    hostname: "0.0.0.0",
    port: 80,
  });
  assertEquals(decodeProcInetAddress("0A00020F:FFFF", true), {
    hostname: "15.2.0.10",
    port: 65535,
  });
  assertEquals(decodeProcInetAddress("0100007f:b813", true), {
    hostname: "127.0.0.1",
    port: 47123,
  });
});

Deno.test("decodeProcInetAddress decodes IPv4 on big-endian hosts", () => {
  assertEquals(decodeProcInetAddress("7F000001:0050", false), {
    hostname: "127.0.0.1",
    port: 80,
  });
});

Deno.test("decodeProcInetAddress decodes IPv6 in Deno's notation", () => {
  const cases: [string, string][] = [
    ["00000000000000000000000001000000", "::1"],
    ["00000000000000000000000000000000", "::"],
    ["0000000000000000FFFF00000100007F", "::ffff:127.0.0.1"],
    ["B80D01200000000000000000FF000000", "2001:db8::ff"],
    ["B80D01200000000000000000000000FF", "2001:db8::ff00:0"],
    ["000080FE000000000000000001000000", "fe80::1"],
    ["B80D0120000000002E8A000034737003", "2001:db8::8a2e:370:7334"],
    ["01000000020000000300000004000000", "0:1:0:2:0:3:0:4"],
  ];
  for (const [hex, hostname] of cases) {
    assertEquals(decodeProcInetAddress(`${hex}:01BB`, true), {
      hostname,
      port: 443,
    });
  }
  assertEquals(
    decodeProcInetAddress("20010DB8000000000000000000000001:0050", false),
    { hostname: "2001:db8::1", port: 80 },
  );
});

Deno.test("decodeProcInetAddress rejects other text", () => {
  assertEquals(decodeProcInetAddress("local_address"), undefined);
  assertEquals(decodeProcInetAddress("0100007F"), undefined);
  assertEquals(decodeProcInetAddress("0100007:1F40"), undefined);
  assertEquals(decodeProcInetAddress("0100007G:1F40"), undefined);
  assertEquals(decodeProcInetAddress("0100007F:1F4"), undefined);
});

Deno.test("parseProcNetInet reads inode, local address and state", () => {
  const tcp = parseProcNetInet(PROC_NET_TCP, true);
  assertEquals(tcp.size, 4); // the header and the inode-0 entry are skipped
  assertEquals(tcp.get(6617), {
    inode: 6617,
    hostname: "127.0.0.1",
    port: 47123,
    state: 0x0a,
  });
  assertEquals(tcp.get(1593), {
    inode: 1593,
    hostname: "0.0.0.0",
    port: 2024,
    state: 0x0a,
  });
  assertEquals(tcp.get(4989)?.state, 0x01);

  const tcp6 = parseProcNetInet(PROC_NET_TCP6, true);
  assertEquals(tcp6.get(6620), {
    inode: 6620,
    hostname: "::1",
    port: 47124,
    state: 0x0a,
  });
  assertEquals(tcp6.get(6621)?.hostname, "::");
  assertEquals(tcp6.get(6622)?.hostname, "::ffff:127.0.0.1");

  const udp = parseProcNetInet(PROC_NET_UDP, true);
  assertEquals(udp.get(7100), {
    inode: 7100,
    hostname: "127.0.0.53",
    port: 53,
    state: 0x07,
  });
  assertEquals(parseProcNetInet("").size, 0);
});

Deno.test("parseProcNetUnix reads type, flags and path", () => {
  const unix = parseProcNetUnix(PROC_NET_UNIX);
  assertEquals(unix.size, 7);
  assertEquals(unix.get(6621), {
    inode: 6621,
    type: 1,
    flags: 0x10000,
    path: "/run/app.sock",
  });
  assertEquals(unix.get(31337)?.path, "@abstract-name");
  assertEquals(unix.get(1590)?.path, "");
  assertEquals(unix.get(7000)?.type, 2);
  assertEquals(unix.get(7001)?.type, 5);
  assertEquals(unix.get(7002)?.flags, 0);
  assertEquals(unix.get(7003)?.path, "/tmp/my dir/a b.sock");
});

Deno.test("parseSocketInode accepts only socket:[INODE]", () => {
  assertEquals(parseSocketInode("socket:[6617]"), 6617);
  assertEquals(parseSocketInode("/etc/hostname"), undefined);
  assertEquals(parseSocketInode("pipe:[6888]"), undefined);
  assertEquals(parseSocketInode("anon_inode:[eventpoll]"), undefined);
  assertEquals(parseSocketInode("socket:[]"), undefined);
});

Deno.test("classifySocket returns the address of listening stream sockets", () => {
  const tables = fixtureTables();
  assertEquals(classifySocket(3, 6617, tables), {
    transport: "tcp",
    hostname: "127.0.0.1",
    port: 47123,
  });
  assertEquals(classifySocket(4, 6620, tables), {
    transport: "tcp",
    hostname: "::1",
    port: 47124,
  });
  assertEquals(classifySocket(5, 6621, tables), {
    transport: "tcp",
    hostname: "::",
    port: 80,
  });
  assertEquals(classifySocket(6, 31337, tables), {
    transport: "unix",
    path: "@abstract-name",
  });
  assertEquals(classifySocket(7, 7003, tables), {
    transport: "unix",
    path: "/tmp/my dir/a b.sock",
  });
});

/** Asserts that `fn` throws a ListenFdsError matching `pattern`; returns it. */
function assertListenFdsError(fn: () => unknown, pattern: RegExp): Error {
  const error = assertThrows(fn);
  assert(
    error instanceof ListenFdsError,
    `expected a ListenFdsError, got ${error}`,
  );
  assertEquals(error.name, "ListenFdsError");
  assertMatch(error.message, pattern);
  return error;
}

Deno.test("classifySocket rejects sockets that cannot serve HTTP", () => {
  const tables = fixtureTables();
  assertListenFdsError(
    () => classifySocket(3, 4989, tables),
    /^fd 3 is a TCP socket that is not listening \(bound to 127\.0\.0\.1:45816, TCP state 01 ESTABLISHED\)/,
  );
  assertListenFdsError(
    () => classifySocket(4, 5000, tables),
    /^fd 4 is a TCP socket that is not listening .*state 07 CLOSE/,
  );
  assertListenFdsError(
    () => classifySocket(5, 7100, tables),
    /^fd 5 is a datagram \(UDP\) socket \(bound to 127\.0\.0\.53:53\); only stream sockets can serve HTTP$/,
  );
  assertListenFdsError(
    () => classifySocket(6, 7000, tables),
    /^fd 6 is a datagram \(unix SOCK_DGRAM\) socket \(bound to \/run\/systemd\/notify\); only stream sockets/,
  );
  assertListenFdsError(
    () => classifySocket(7, 7001, tables),
    /^fd 7 is a unix SOCK_SEQPACKET socket .*only stream sockets/,
  );
  assertListenFdsError(
    () => classifySocket(8, 7002, tables),
    /^fd 8 is a unix stream socket that is not listening \(bound to \/run\/bound only\.sock\)/,
  );
  assertListenFdsError(
    () => classifySocket(9, 1590, tables),
    /^fd 9 is a unix stream socket that is not listening \(unbound\)/,
  );
  assertListenFdsError(
    () => classifySocket(10, 424242, tables),
    /^fd 10 is a socket of an unsupported kind \(socket:\[424242\]/,
  );
});

Deno.test("parseListenEnv: absent or foreign variables give no fds", () => {
  const none = { count: 0, names: undefined };
  assertEquals(parseListenEnv(undefined, undefined, undefined, 42), none);
  assertEquals(parseListenEnv("42", undefined, "web", 42), none);
  assertEquals(parseListenEnv(undefined, "2", "a:b", 42), none);
  assertEquals(parseListenEnv("41", "2", "a:b", 42), none);
  // Meant for another process: not validated further.
  assertEquals(parseListenEnv("41", "abc", "a", 42), none);
  // No fd at all.
  assertEquals(parseListenEnv("42", "0", undefined, 42), none);
  assertEquals(parseListenEnv("42", "0", "", 42), { count: 0, names: [] });
});

Deno.test("parseListenEnv returns the count and one name per fd", () => {
  assertEquals(parseListenEnv("42", "2", "web:admin", 42), {
    count: 2,
    names: ["web", "admin"],
  });
  assertEquals(parseListenEnv("42", "3", undefined, 42), {
    count: 3,
    names: undefined,
  });
  assertEquals(parseListenEnv("42", "1", "http", 42), {
    count: 1,
    names: ["http"],
  });
  assertEquals(parseListenEnv("42", "3", "a::c", 42), {
    count: 3,
    names: ["a", "unknown", "c"],
  });
  // A huge count is only a number here; readListenFds fails at the first fd.
  assertEquals(parseListenEnv("42", "1073741824", undefined, 42), {
    count: 1073741824,
    names: undefined,
  });
});

Deno.test("parseListenEnv rejects malformed LISTEN_PID and LISTEN_FDS", () => {
  for (const value of ["abc", "-1", "0", "", "1.5", " 42"]) {
    assertListenFdsError(
      () => parseListenEnv(value, "1", undefined, 42),
      new RegExp(`^LISTEN_PID must be .* but it is ${JSON.stringify(value)}`),
    );
  }
  for (
    const value of ["abc", "-1", "", "1.0", "+1", "0x2", "99999999999999999"]
  ) {
    assertListenFdsError(
      () => parseListenEnv("42", value, undefined, 42),
      new RegExp(
        `^LISTEN_FDS must be a non-negative decimal integer .* but it is ` +
          JSON.stringify(value).replace(/[+.]/g, "\\$&"),
      ),
    );
  }
});

Deno.test("parseListenEnv rejects a LISTEN_FDNAMES count mismatch", () => {
  assertListenFdsError(
    () => parseListenEnv("42", "2", "web", 42),
    /^LISTEN_FDNAMES has 1 name\(s\) \("web"\) but LISTEN_FDS is 2/,
  );
  assertListenFdsError(
    () => parseListenEnv("42", "1", "a:b:c", 42),
    /^LISTEN_FDNAMES has 3 name\(s\) \("a:b:c"\) but LISTEN_FDS is 1/,
  );
  assertListenFdsError(
    () => parseListenEnv("42", "1", "", 42),
    /^LISTEN_FDNAMES has 0 name\(s\) \(""\) but LISTEN_FDS is 1/,
  );
  assertListenFdsError(
    () => parseListenEnv("42", "0", "web", 42),
    /^LISTEN_FDNAMES has 1 name\(s\) .* LISTEN_FDS is 0/,
  );
});

// ---------------------------------------------------------------------------
// readListenFds in this process: environment handling
// ---------------------------------------------------------------------------

/** A map-backed environment holding `vars`. */
function mapEnv(vars: Record<string, string>): Map<string, string> {
  return new Map(Object.entries(vars));
}

const LISTEN_VARS = ["LISTEN_PID", "LISTEN_FDS", "LISTEN_FDNAMES"];

/** Asserts that no LISTEN_* variable is left in `env`. */
function assertCleaned(env: Map<string, string>): void {
  for (const key of LISTEN_VARS) {
    assert(!env.has(key), `${key} was not removed`);
  }
}

Deno.test("readListenFds returns [] and cleans the env when not activated", () => {
  const env = mapEnv({ LISTEN_PID: "42", LISTEN_FDNAMES: "x", OTHER: "1" });
  assertEquals(readListenFds({ env, pid: 42 }), []);
  assertCleaned(env);
  assertEquals(env.get("OTHER"), "1");

  const empty = mapEnv({});
  assertEquals(readListenFds({ env: empty, pid: 42 }), []);
  assertEquals(empty.size, 0);
});

Deno.test("readListenFds ignores variables meant for another process", () => {
  const env = mapEnv({
    LISTEN_PID: "41",
    LISTEN_FDS: "1",
    LISTEN_FDNAMES: "web",
  });
  assertEquals(readListenFds({ env, pid: 42 }), []);
  assertCleaned(env);

  const noPid = mapEnv({ LISTEN_FDS: "1" });
  assertEquals(readListenFds({ env: noPid, pid: 42 }), []);
  assertCleaned(noPid);
});

Deno.test("readListenFds cleans the env when it throws", () => {
  const cases: [Record<string, string>, RegExp][] = [
    [{ LISTEN_PID: "abc", LISTEN_FDS: "1" }, /^LISTEN_PID .*"abc"/],
    [{ LISTEN_PID: "42", LISTEN_FDS: "abc" }, /^LISTEN_FDS .*"abc"/],
    [{ LISTEN_PID: "42", LISTEN_FDS: "-1" }, /^LISTEN_FDS .*"-1"/],
    [
      { LISTEN_PID: "42", LISTEN_FDS: "2", LISTEN_FDNAMES: "web" },
      /^LISTEN_FDNAMES /,
    ],
    // fd 3 of this process was not passed (it is one of Deno's own, or
    // closed); a huge count must fail there rather than allocate.
    [
      { LISTEN_PID: "42", LISTEN_FDS: String(2 ** 40) },
      /^LISTEN_FDS is 1099511627776 but no fd was passed: fd 3 is /,
    ],
  ];
  for (const [vars, pattern] of cases) {
    const env = mapEnv(vars);
    assertListenFdsError(() => readListenFds({ env, pid: 42 }), pattern);
    assertCleaned(env);
  }
});

Deno.test("readListenFds defaults to Deno.env and Deno.pid", () => {
  Deno.env.set("LISTEN_PID", String(Deno.pid + 1));
  Deno.env.set("LISTEN_FDS", "1");
  Deno.env.set("LISTEN_FDNAMES", "web");
  try {
    assertEquals(readListenFds(), []);
    for (const key of LISTEN_VARS) {
      assertEquals(Deno.env.get(key), undefined);
    }
  } finally {
    for (const key of LISTEN_VARS) {
      Deno.env.delete(key);
    }
  }
});

// ---------------------------------------------------------------------------
// Inspecting real sockets of this process
// ---------------------------------------------------------------------------

/** The fd of this process whose /proc/self/fd link is `socket:[inode]`. */
function fdOfInode(inode: number): number {
  for (const entry of Deno.readDirSync("/proc/self/fd")) {
    let target: string;
    try {
      target = Deno.readLinkSync(`/proc/self/fd/${entry.name}`);
    } catch {
      continue; // closed meanwhile (the directory's own fd)
    }
    if (target === `socket:[${inode}]`) {
      return Number(entry.name);
    }
  }
  throw new Error(`no fd of this process is socket:[${inode}]`);
}

/** The inode of the TCP socket of this process on `port` in `state`. */
function tcpInode(tables: ProcNetTables, port: number, state: number): number {
  for (const socket of tables.tcp.values()) {
    if (socket.port === port && socket.state === state) {
      return socket.inode;
    }
  }
  throw new Error(`no TCP socket on port ${port} in state ${state}`);
}

/** Inspects fd `fd` the way readListenFds does. */
function inspect(fd: number): Deno.NetAddr | Deno.UnixAddr {
  return classifySocket(fd, readSocketInode(fd), readProcNetTables());
}

/** True when this host can listen on ::1. */
/** Whether ::1 can be bound (strict mode: fails without; capabilities.ts). */
function hasIpv6(): boolean {
  return has(IPV6);
}

Deno.test("real listeners: /proc gives the addresses Deno reports", () => {
  const hostnames = ["127.0.0.1", "0.0.0.0"];
  if (hasIpv6()) {
    hostnames.push("::1", "::", "::ffff:127.0.0.1");
  }
  for (const hostname of hostnames) {
    const listener = Deno.listen({ hostname, port: 0 });
    try {
      const inode = tcpInode(readProcNetTables(), listener.addr.port, 0x0a);
      const fd = fdOfInode(inode);
      assertEquals(readSocketInode(fd), inode);
      assertEquals(inspect(fd), { ...listener.addr });
    } finally {
      listener.close();
    }
  }
});

Deno.test("real listeners: unix socket path", () => {
  const dir = Deno.makeTempDirSync();
  const path = `${dir}/listen fds.sock`;
  const listener = Deno.listen({ transport: "unix", path });
  try {
    const tables = readProcNetTables();
    const entry = [...tables.unix.values()].find((s) => s.path === path);
    assert(entry !== undefined, `${path} is not in /proc/net/unix`);
    const fd = fdOfInode(entry.inode);
    assertEquals(inspect(fd), { transport: "unix", path });
  } finally {
    listener.close();
    Deno.removeSync(dir, { recursive: true });
  }
});

Deno.test("decodeSockaddr decodes sockaddr_in, sockaddr_in6 and sockaddr_un", () => {
  assertEquals(
    decodeSockaddr(new Uint8Array([2, 0, 0x1f, 0x40, 127, 0, 0, 1]), true),
    { transport: "tcp", hostname: "127.0.0.1", port: 8000 },
  );
  assertEquals(
    decodeSockaddr(new Uint8Array([0, 2, 0x1f, 0x40, 10, 0, 2, 15]), false),
    { transport: "tcp", hostname: "10.0.2.15", port: 8000 },
  );
  const in6 = new Uint8Array(28);
  in6.set([10, 0, 0x01, 0xbb]);
  in6.set([0x20, 0x01, 0x0d, 0xb8], 8);
  in6[23] = 1;
  assertEquals(decodeSockaddr(in6, true), {
    transport: "tcp",
    hostname: "2001:db8::1",
    port: 443,
  });
  const encoder = new TextEncoder();
  const path = encoder.encode("/run/my app.sock\0");
  assertEquals(decodeSockaddr(new Uint8Array([1, 0, ...path]), true), {
    transport: "unix",
    path: "/run/my app.sock",
  });
  const abstract = encoder.encode("\0name\0with nul");
  assertEquals(decodeSockaddr(new Uint8Array([1, 0, ...abstract]), true), {
    transport: "unix",
    path: "@name@with nul",
  });
  assertEquals(decodeSockaddr(new Uint8Array([1, 0]), true), {
    transport: "unix",
    path: "",
  });
  assertEquals(decodeSockaddr(new Uint8Array([17, 0, 1, 2]), true), undefined);
  assertEquals(decodeSockaddr(new Uint8Array([2, 0, 1]), true), undefined);
});

function tablesHave(tables: ProcNetTables, inode: number): boolean {
  return tables.tcp.has(inode) || tables.unix.has(inode) ||
    tables.udp.has(inode);
}

Deno.test("real listeners: getsockname and /proc give the same address", () => {
  const dir = Deno.makeTempDirSync();
  const listeners: Deno.Listener[] = [
    Deno.listen({ hostname: "127.0.0.1", port: 0 }),
    Deno.listen({ hostname: "0.0.0.0", port: 0 }),
    Deno.listen({ transport: "unix", path: `${dir}/kernel fds.sock` }),
  ];
  if (hasIpv6()) {
    for (const hostname of ["::1", "::", "::ffff:127.0.0.1"]) {
      listeners.push(Deno.listen({ hostname, port: 0 }));
    }
  }
  try {
    let tables = readProcNetTables();
    let checked = 0;
    for (const entry of Deno.readDirSync("/proc/self/fd")) {
      const fd = Number(entry.name);
      let inode: number;
      try {
        inode = readSocketInode(fd);
      } catch {
        continue; // not a socket, or closed meanwhile
      }
      const facts = socketFacts(fd);
      if (!facts?.listening) continue;
      // /proc/net/tcp is read page by page, not at once: while other
      // processes open and close sockets (a second copy of the suite), a
      // line can be missed. Read the tables again before calling it a
      // mismatch.
      for (let read = 1; read < 5 && !tablesHave(tables, inode); read++) {
        tables = readProcNetTables();
      }
      assertEquals(
        decodeSockaddr(facts.address),
        classifySocket(fd, inode, tables),
      );
      checked++;
    }
    assert(checked >= listeners.length, `only ${checked} listeners checked`);
  } finally {
    for (const listener of listeners) listener.close();
    Deno.removeSync(dir, { recursive: true });
  }
});

Deno.test("real sockets: a connected TCP socket is not listening", async () => {
  const listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const client = await Deno.connect({
    hostname: "127.0.0.1",
    port: listener.addr.port,
  });
  const server = await listener.accept();
  try {
    const tables = readProcNetTables();
    const fd = fdOfInode(tcpInode(tables, client.localAddr.port, 0x01));
    assertListenFdsError(
      () => inspect(fd),
      new RegExp(
        `^fd ${fd} is a TCP socket that is not listening \\(bound to ` +
          `127\\.0\\.0\\.1:${client.localAddr.port}, TCP state 01 ESTABLISHED`,
      ),
    );
  } finally {
    client.close();
    server.close();
    listener.close();
  }
});

Deno.test("real fds: not open, and not a socket", () => {
  assertListenFdsError(
    () => readSocketInode(1 << 30),
    new RegExp(`^fd ${1 << 30} \\(from LISTEN_FDS\\) is not open$`),
  );
  const dir = Deno.makeTempDirSync();
  const file = Deno.openSync(`${dir}/file`, { write: true, create: true });
  try {
    let fd = -1;
    for (const entry of Deno.readDirSync("/proc/self/fd")) {
      try {
        if (
          Deno.readLinkSync(`/proc/self/fd/${entry.name}`) === `${dir}/file`
        ) {
          fd = Number(entry.name);
        }
      } catch {
        // closed meanwhile
      }
    }
    assertListenFdsError(
      () => readSocketInode(fd),
      new RegExp(
        `^fd ${fd} \\(from LISTEN_FDS\\) is not a socket: it is ${dir}/file$`,
      ),
    );
  } finally {
    file.close();
    Deno.removeSync(dir, { recursive: true });
  }
});

// ---------------------------------------------------------------------------
// Real processes: tests/fixtures/print_listen_fds.ts under socket activation
// ---------------------------------------------------------------------------

const FIXTURE =
  new URL("../../tests/fixtures/print_listen_fds.ts", import.meta.url).pathname;
const DENO = Deno.execPath();
const FIXTURE_COMMAND = [DENO, "run", "--no-config", "-A", FIXTURE];
const SOCKET_ACTIVATE = "/usr/bin/systemd-socket-activate";
const NO_LISTEN_VARS = {
  LISTEN_PID: null,
  LISTEN_FDS: null,
  LISTEN_FDNAMES: null,
};

/** What the fixture prints: its pid, the fds (on success) and the LISTEN_* left. */
interface FixtureOutput {
  pid: number;
  fds?: InheritedFd[];
  env: Record<string, string | null>;
}

/** A finished run of the fixture. */
interface FixtureRun {
  code: number;
  stdout: string;
  stderr: string;
  /** The last stdout line, parsed. */
  output: FixtureOutput;
  /** The stdout lines before it. */
  before: string[];
}

/** Whether `command --version` runs and succeeds (so the tool is installed). */
// Each skips its tests without the tool (strict mode: fails; capabilities.ts).
const HAS_SOCKET_ACTIVATE = has(SOCKET_ACTIVATE_TOOL);
const HAS_PYTHON = has(PYTHON);

/** This process's environment without LISTEN_*, plus `extra`. */
function childEnv(extra: Record<string, string> = {}): Record<string, string> {
  const env = Deno.env.toObject();
  for (const key of LISTEN_VARS) {
    delete env[key];
  }
  return { ...env, NO_COLOR: "1", ...extra };
}

/** Parses a finished run of the fixture. */
function parseRun(
  command: string[],
  code: number,
  stdoutBytes: Uint8Array,
  stderrBytes: Uint8Array,
): FixtureRun {
  const stdout = new TextDecoder().decode(stdoutBytes);
  const stderr = new TextDecoder().decode(stderrBytes);
  const lines = stdout.trim().split("\n");
  const last = lines.pop() ?? "";
  let output: FixtureOutput;
  try {
    output = JSON.parse(last);
  } catch {
    throw new Error(
      `${command.join(" ")} printed no JSON (exit ${code}).\n` +
        `stdout: ${stdout}\nstderr: ${stderr}`,
    );
  }
  return { code, stdout, stderr, output, before: lines };
}

/** Runs `command` to completion with a clean environment plus `env`. */
async function run(
  command: string[],
  env: Record<string, string> = {},
): Promise<FixtureRun> {
  const { code, stdout, stderr } = await new Deno.Command(command[0], {
    args: command.slice(1),
    env: childEnv(env),
    clearEnv: true,
    stdin: "null",
    stdout: "piped",
    stderr: "piped",
    signal: AbortSignal.timeout(60_000),
  }).output();
  return parseRun(command, code, stdout, stderr);
}

/** A port that was free a moment ago on `hostname`. */
function freePort(hostname: string): number {
  const listener = Deno.listen({ hostname, port: 0 });
  const port = listener.addr.port;
  listener.close();
  return port;
}

/**
 * Runs the fixture under systemd-socket-activate, which binds `listen(ports)`,
 * waits for a first connection, then execs the fixture with LISTEN_FDS set.
 * The ports are chosen free; when another process takes one first, it retries
 * with new ones.
 */
async function runSocketActivated(
  listen: (v4Port: number, v6Port: number) => string[],
  fdnames: string | undefined,
): Promise<{ run: FixtureRun; v4Port: number; v6Port: number }> {
  for (let attempt = 1;; attempt++) {
    const v4Port = freePort("127.0.0.1");
    const v6Port = hasIpv6() ? freePort("::1") : 0;
    const args = listen(v4Port, v6Port).flatMap((addr) => ["-l", addr]);
    if (fdnames !== undefined) {
      args.push(`--fdname=${fdnames}`);
    }
    const command = [SOCKET_ACTIVATE, ...args, ...FIXTURE_COMMAND];
    const child = new Deno.Command(command[0], {
      args: command.slice(1),
      env: childEnv(),
      clearEnv: true,
      stdin: "null",
      stdout: "piped",
      stderr: "piped",
      signal: AbortSignal.timeout(60_000),
    }).spawn();
    let exited = false;
    const outputPromise = child.output();
    outputPromise.then(() => exited = true, () => exited = true);

    // Trigger the exec with a connection, once the sockets are bound.
    let trigger: Deno.TcpConn | undefined;
    while (!exited && trigger === undefined) {
      try {
        trigger = await Deno.connect({ hostname: "127.0.0.1", port: v4Port });
      } catch {
        await new Promise((resolve) => setTimeout(resolve, 20));
      }
    }
    const { code, stdout, stderr } = await outputPromise;
    trigger?.close();

    const stderrText = new TextDecoder().decode(stderr);
    if (code !== 0 && /Address already in use/.test(stderrText)) {
      if (attempt < 10) {
        continue;
      }
    }
    return {
      run: parseRun(command, code, stdout, stderr),
      v4Port,
      v6Port,
    };
  }
}

Deno.test({
  name: "systemd-socket-activate: TCP, IPv6 and unix sockets with names",
  ignore: !HAS_SOCKET_ACTIVATE,
  async fn() {
    const dir = await Deno.makeTempDir();
    const abstract = `@listen-fds-test-${crypto.randomUUID()}`;
    const ipv6 = hasIpv6();
    try {
      const { run, v4Port, v6Port } = await runSocketActivated(
        (v4, v6) => [
          `127.0.0.1:${v4}`,
          ...(ipv6 ? [`[::1]:${v6}`] : []),
          `${dir}/app.sock`,
          abstract,
        ],
        ipv6 ? "web:admin:local:hidden" : "web:local:hidden",
      );
      assertEquals(run.code, 0, run.stderr);
      const expected: InheritedFd[] = [
        {
          fd: 3,
          name: "web",
          addr: { transport: "tcp", hostname: "127.0.0.1", port: v4Port },
        },
      ];
      if (ipv6) {
        expected.push({
          fd: 4,
          name: "admin",
          addr: { transport: "tcp", hostname: "::1", port: v6Port },
        });
      }
      expected.push(
        {
          fd: expected.length + 3,
          name: "local",
          addr: { transport: "unix", path: `${dir}/app.sock` },
        },
        {
          fd: expected.length + 4,
          name: "hidden",
          addr: { transport: "unix", path: abstract },
        },
      );
      assertEquals(run.output.fds, expected);
      assertEquals(run.output.env, NO_LISTEN_VARS);
    } finally {
      await Deno.remove(dir, { recursive: true });
    }
  },
});

Deno.test({
  name: "systemd-socket-activate: names default to unknown",
  ignore: !HAS_SOCKET_ACTIVATE,
  async fn() {
    const { run, v4Port } = await runSocketActivated(
      (v4) => [`127.0.0.1:${v4}`],
      undefined,
    );
    assertEquals(run.code, 0, run.stderr);
    assertEquals(run.output.fds, [
      {
        fd: 3,
        name: "unknown",
        addr: { transport: "tcp", hostname: "127.0.0.1", port: v4Port },
      },
    ]);
    assertEquals(run.output.env, NO_LISTEN_VARS);
  },
});

Deno.test({
  name: "systemd-socket-activate: a datagram socket is refused",
  ignore: !HAS_SOCKET_ACTIVATE || !HAS_PYTHON,
  async fn() {
    // With -d the tool passes a unix SOCK_DGRAM socket, and execs the
    // program when the first datagram arrives.
    const dir = await Deno.makeTempDir();
    try {
      const path = `${dir}/dgram.sock`;
      const command = [SOCKET_ACTIVATE, "-d", "-l", path, ...FIXTURE_COMMAND];
      const child = new Deno.Command(command[0], {
        args: command.slice(1),
        env: childEnv(),
        clearEnv: true,
        stdin: "null",
        stdout: "piped",
        stderr: "piped",
        signal: AbortSignal.timeout(60_000),
      }).spawn();
      let exited = false;
      const outputPromise = child.output();
      outputPromise.then(() => exited = true, () => exited = true);
      while (!exited) {
        try {
          await sendDatagram(path);
          break;
        } catch {
          await new Promise((resolve) => setTimeout(resolve, 20));
        }
      }
      const { code, stdout, stderr } = await outputPromise;
      const run = parseRun(command, code, stdout, stderr);
      assertEquals(run.code, 1);
      assertMatch(
        run.stderr,
        /ListenFdsError: fd 3 is a datagram \(unix SOCK_DGRAM\) socket \(bound to .*dgram\.sock\); only stream sockets can serve HTTP/,
      );
      assertEquals(run.output.env, NO_LISTEN_VARS);
    } finally {
      await Deno.remove(dir, { recursive: true });
    }
  },
});

/** Sends one datagram to the unix socket at `path`, with python3. */
async function sendDatagram(path: string): Promise<void> {
  const { success } = await new Deno.Command("python3", {
    args: [
      "-c",
      "import socket, sys\n" +
      "s = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)\n" +
      "s.sendto(b'x', sys.argv[1])\n",
      path,
    ],
    stdout: "null",
    stderr: "null",
  }).output();
  if (!success) {
    throw new Error(`could not send a datagram to ${path}`);
  }
}

/**
 * A python3 program that opens the fds described by the JSON in argv[1] as
 * fds 3, 4, ..., prints their addresses as a JSON line, sets the LISTEN_*
 * variables given there ("$PID" becomes its own pid, which the exec'ed
 * program keeps), and execs argv[2:].
 */
const PYTHON_LAUNCHER = `
import fcntl, json, os, socket, sys

config = json.loads(sys.argv[1])
command = sys.argv[2:]
families = {"4": socket.AF_INET, "6": socket.AF_INET6, "unix": socket.AF_UNIX}
types = {
    "stream": socket.SOCK_STREAM,
    "dgram": socket.SOCK_DGRAM,
    "seqpacket": socket.SOCK_SEQPACKET,
}
keep = []
held = []
addrs = []
for spec in config["fds"]:
    if spec["kind"] == "file":
        fd = os.open(spec["path"], os.O_RDONLY)
        addrs.append(None)
    elif spec["kind"] == "pipe":
        fd, write_end = os.pipe()
        keep.append(write_end)
        addrs.append(None)
    else:
        s = socket.socket(families[spec["family"]], types[spec["kind"]])
        keep.append(s)
        if spec["family"] == "unix":
            path = spec["path"]
            s.bind("\\0" + path[1:] if path.startswith("@") else path)
            addrs.append(path)
        else:
            s.bind((spec["host"], 0))
            addrs.append(list(s.getsockname()[:2]))
        if spec.get("listen"):
            s.listen()
        fd = s.fileno()
    held.append(fcntl.fcntl(fd, fcntl.F_DUPFD_CLOEXEC, 100))
for index, fd in enumerate(held):
    os.dup2(fd, 3 + index, inheritable=True)
env = dict(os.environ)
for key, value in config["env"].items():
    env[key] = value.replace("$PID", str(os.getpid()))
print(json.dumps(addrs), flush=True)
os.execvpe(command[0], command, env)
`;

/** What python opens as fd 3, 4, ... */
type PythonFd =
  | {
    kind: "stream" | "dgram" | "seqpacket";
    family: "4" | "6";
    host: string;
    listen?: boolean;
  }
  | {
    kind: "stream" | "dgram" | "seqpacket";
    family: "unix";
    path: string;
    listen?: boolean;
  }
  | { kind: "file"; path: string }
  | { kind: "pipe" };

/**
 * Runs `command` (default: the fixture) with `fds` opened by python as fds
 * 3, 4, ... and `env` set; returns the run and the fds' addresses (for IP
 * sockets [host, port], for unix ones the path).
 */
async function runWithFds(
  fds: PythonFd[],
  env: Record<string, string>,
  command: string[] = FIXTURE_COMMAND,
): Promise<{ run: FixtureRun; addrs: (string | [string, number] | null)[] }> {
  const result = await run([
    "python3",
    "-c",
    PYTHON_LAUNCHER,
    JSON.stringify({ fds, env }),
    ...command,
  ]);
  assertEquals(result.before.length, 1, result.stdout + result.stderr);
  return { run: result, addrs: JSON.parse(result.before[0]) };
}

/** Asserts a failed fixture run whose error matches `pattern`, env cleaned. */
function assertFailed(run: FixtureRun, pattern: RegExp): void {
  assertEquals(run.code, 1, run.stdout + run.stderr);
  assertMatch(run.stderr, pattern);
  assertEquals(run.output.env, NO_LISTEN_VARS);
}

Deno.test({
  name: "python-passed sockets: listening TCP, IPv6 wildcard and unix",
  ignore: !HAS_PYTHON,
  async fn() {
    const dir = await Deno.makeTempDir();
    const abstract = `@listen-fds-test-${crypto.randomUUID()}`;
    const ipv6 = hasIpv6();
    try {
      const fds: PythonFd[] = [
        { kind: "stream", family: "4", host: "127.0.0.1", listen: true },
        { kind: "stream", family: "unix", path: `${dir}/a.sock`, listen: true },
        { kind: "stream", family: "unix", path: abstract, listen: true },
      ];
      if (ipv6) {
        fds.push({ kind: "stream", family: "6", host: "::", listen: true });
      }
      const { run, addrs } = await runWithFds(fds, {
        LISTEN_PID: "$PID",
        LISTEN_FDS: String(fds.length),
      });
      assertEquals(run.code, 0, run.stderr);
      const [v4Host, v4Port] = addrs[0] as [string, number];
      const expected: InheritedFd[] = [
        {
          fd: 3,
          name: "unknown",
          addr: { transport: "tcp", hostname: v4Host, port: v4Port },
        },
        {
          fd: 4,
          name: "unknown",
          addr: { transport: "unix", path: `${dir}/a.sock` },
        },
        { fd: 5, name: "unknown", addr: { transport: "unix", path: abstract } },
      ];
      if (ipv6) {
        const [, v6Port] = addrs[3] as [string, number];
        expected.push({
          fd: 6,
          name: "unknown",
          addr: { transport: "tcp", hostname: "::", port: v6Port },
        });
      }
      assertEquals(run.output.fds, expected);
      assertEquals(run.output.env, NO_LISTEN_VARS);
    } finally {
      await Deno.remove(dir, { recursive: true });
    }
  },
});

Deno.test({
  name: "python-passed sockets: UDP is refused",
  ignore: !HAS_PYTHON,
  async fn() {
    const { run, addrs } = await runWithFds(
      [{ kind: "dgram", family: "4", host: "127.0.0.1" }],
      { LISTEN_PID: "$PID", LISTEN_FDS: "1", LISTEN_FDNAMES: "web" },
    );
    const [, port] = addrs[0] as [string, number];
    assertFailed(
      run,
      new RegExp(
        `ListenFdsError: fd 3 is a datagram \\(UDP\\) socket \\(bound to ` +
          `127\\.0\\.0\\.1:${port}\\); only stream sockets can serve HTTP`,
      ),
    );
  },
});

Deno.test({
  name: "python-passed sockets: UDP over IPv6 is refused",
  ignore: !HAS_PYTHON || !hasIpv6(),
  async fn() {
    const { run } = await runWithFds(
      [{ kind: "dgram", family: "6", host: "::1" }],
      { LISTEN_PID: "$PID", LISTEN_FDS: "1" },
    );
    assertFailed(run, /fd 3 is a datagram \(UDP\) socket \(bound to \[::1\]:/);
  },
});

Deno.test({
  name: "python-passed sockets: a bound TCP socket that is not listening",
  ignore: !HAS_PYTHON,
  async fn() {
    // Linux lists only listening and connected TCP sockets in /proc/net/tcp,
    // so a merely bound one cannot be told from other unlisted kinds.
    const { run } = await runWithFds(
      [
        { kind: "stream", family: "4", host: "127.0.0.1", listen: true },
        { kind: "stream", family: "4", host: "127.0.0.1" },
      ],
      { LISTEN_PID: "$PID", LISTEN_FDS: "2", LISTEN_FDNAMES: "ok:bad" },
    );
    assertFailed(
      run,
      /ListenFdsError: fd 4 is a socket of an unsupported kind \(socket:\[\d+\] is in none of .*; a TCP socket that is bound but not listening looks like this too\)/,
    );
  },
});

Deno.test({
  name: "python-passed sockets: unix datagram, seqpacket and unlistened",
  ignore: !HAS_PYTHON,
  async fn() {
    const dir = await Deno.makeTempDir();
    try {
      const cases: [PythonFd, RegExp][] = [
        [
          { kind: "dgram", family: "unix", path: `${dir}/d.sock` },
          /fd 3 is a datagram \(unix SOCK_DGRAM\) socket \(bound to .*\/d\.sock\); only stream sockets can serve HTTP/,
        ],
        [
          {
            kind: "seqpacket",
            family: "unix",
            path: `${dir}/s.sock`,
            listen: true,
          },
          /fd 3 is a unix SOCK_SEQPACKET socket \(bound to .*\/s\.sock\); only stream sockets can serve HTTP/,
        ],
        [
          { kind: "stream", family: "unix", path: `${dir}/b.sock` },
          /fd 3 is a unix stream socket that is not listening \(bound to .*\/b\.sock\)/,
        ],
      ];
      for (const [fd, pattern] of cases) {
        const { run } = await runWithFds([fd], {
          LISTEN_PID: "$PID",
          LISTEN_FDS: "1",
        });
        assertFailed(run, pattern);
      }
    } finally {
      await Deno.remove(dir, { recursive: true });
    }
  },
});

Deno.test({
  name: "python-passed fds: a pipe is not a socket",
  ignore: !HAS_PYTHON,
  async fn() {
    const { run } = await runWithFds([{ kind: "pipe" }], {
      LISTEN_PID: "$PID",
      LISTEN_FDS: "1",
    });
    assertFailed(
      run,
      /ListenFdsError: fd 3 \(from LISTEN_FDS\) is not a socket: it is pipe:\[\d+\]/,
    );
  },
});

Deno.test({
  name: "python-passed fds: LISTEN_FDS=2 with only one fd passed",
  ignore: !HAS_PYTHON,
  async fn() {
    const { run } = await runWithFds(
      [{ kind: "stream", family: "4", host: "127.0.0.1", listen: true }],
      { LISTEN_PID: "$PID", LISTEN_FDS: "2" },
    );
    // fd 4 is either closed or one of Deno's own (an epoll fd, a cache file):
    // the count is reported first, never fd 4 as if it had been passed.
    assertFailed(
      run,
      /ListenFdsError: LISTEN_FDS is 2 but only 1 fd\(s\) were passed \(fd 3\): fd 4 is (not open|this process's own \(.+\)), not inherited/,
    );
  },
});

Deno.test({
  name: "python-passed fds: malformed variables name the variable",
  ignore: !HAS_PYTHON,
  async fn() {
    const listening: PythonFd[] = [
      { kind: "stream", family: "4", host: "127.0.0.1", listen: true },
    ];
    const cases: [Record<string, string>, RegExp][] = [
      [
        { LISTEN_PID: "$PID", LISTEN_FDS: "abc" },
        /ListenFdsError: LISTEN_FDS must be a non-negative decimal integer .* but it is "abc"/,
      ],
      [
        { LISTEN_PID: "$PID", LISTEN_FDS: "-1" },
        /ListenFdsError: LISTEN_FDS must be a non-negative decimal integer .* but it is "-1"/,
      ],
      [
        { LISTEN_PID: "$PID", LISTEN_FDS: "1", LISTEN_FDNAMES: "a:b" },
        /ListenFdsError: LISTEN_FDNAMES has 2 name\(s\) \("a:b"\) but LISTEN_FDS is 1/,
      ],
      [
        { LISTEN_PID: "x$PID", LISTEN_FDS: "1" },
        /ListenFdsError: LISTEN_PID must be a process id .* but it is "x\d+"/,
      ],
    ];
    for (const [env, pattern] of cases) {
      const { run } = await runWithFds(listening, env);
      assertFailed(run, pattern);
    }
  },
});

Deno.test({
  name: "python-passed fds: LISTEN_PID of another process gives []",
  ignore: !HAS_PYTHON,
  async fn() {
    const { run } = await runWithFds(
      [{ kind: "stream", family: "4", host: "127.0.0.1", listen: true }],
      { LISTEN_PID: String(Deno.pid), LISTEN_FDS: "1", LISTEN_FDNAMES: "web" },
    );
    assertEquals(run.code, 0, run.stderr);
    assertEquals(run.output.fds, []);
    assertEquals(run.output.env, NO_LISTEN_VARS);
  },
});

Deno.test({
  name: "python-passed fds: without --allow-all the error says so",
  ignore: !HAS_PYTHON,
  async fn() {
    const { run } = await runWithFds(
      [{ kind: "stream", family: "4", host: "127.0.0.1", listen: true }],
      { LISTEN_PID: "$PID", LISTEN_FDS: "1" },
      [DENO, "run", "--no-config", "--allow-env", "--allow-read", FIXTURE],
    );
    assertFailed(
      run,
      /ListenFdsError: cannot inspect fd 3 \(from LISTEN_FDS\): reading \/proc\/self\/fd\/3 needs Deno's --allow-all permission/,
    );
  },
});

Deno.test("sh-passed fd: a regular file is not a socket", async () => {
  const dir = await Deno.makeTempDir();
  try {
    const file = `${dir}/regular file`;
    await Deno.writeTextFile(file, "not a socket\n");
    const result = await run([
      "/bin/sh",
      "-c",
      'export LISTEN_PID=$$ LISTEN_FDS=1; exec "$@" 3<"$0"',
      file,
      ...FIXTURE_COMMAND,
    ]);
    assertFailed(
      result,
      new RegExp(
        `ListenFdsError: fd 3 \\(from LISTEN_FDS\\) is not a socket: it is ` +
          `${dir}/regular file`,
      ),
    );
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});
