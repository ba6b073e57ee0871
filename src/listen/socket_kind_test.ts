import { assertEquals, assertThrows } from "../../tests/assert.ts";
import { classifySocket } from "./socket_kind.ts";
import { ListenFdsError } from "./listen_env.ts";
import {
  parseProcNetInet,
  parseProcNetUnix,
  type ProcNetTables,
} from "../os/proc_net.ts";
import {
  PROC_NET_TCP,
  PROC_NET_TCP6,
  PROC_NET_UDP,
  PROC_NET_UNIX,
} from "../../tests/fixtures/proc_net_tables.ts";

/** Tables built from tests/fixtures/proc_net_tables.ts. */
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

Deno.test("classifySocket rejects sockets that cannot serve HTTP", () => {
  const tables = fixtureTables();
  assertThrows(
    () => classifySocket(3, 4989, tables),
    ListenFdsError,
    /^fd 3 is a TCP socket that is not listening \(bound to 127\.0\.0\.1:45816, TCP state 01 ESTABLISHED\)/,
  );
  assertThrows(
    () => classifySocket(4, 5000, tables),
    ListenFdsError,
    /^fd 4 is a TCP socket that is not listening .*state 07 CLOSE/,
  );
  assertThrows(
    () => classifySocket(5, 7100, tables),
    ListenFdsError,
    /^fd 5 is a datagram \(UDP\) socket \(bound to 127\.0\.0\.53:53\); only stream sockets can serve HTTP$/,
  );
  assertThrows(
    () => classifySocket(6, 7000, tables),
    ListenFdsError,
    /^fd 6 is a datagram \(unix SOCK_DGRAM\) socket \(bound to \/run\/systemd\/notify\); only stream sockets/,
  );
  assertThrows(
    () => classifySocket(7, 7001, tables),
    ListenFdsError,
    /^fd 7 is a unix SOCK_SEQPACKET socket .*only stream sockets/,
  );
  assertThrows(
    () => classifySocket(8, 7002, tables),
    ListenFdsError,
    /^fd 8 is a unix stream socket that is not listening \(bound to \/run\/bound only\.sock\)/,
  );
  assertThrows(
    () => classifySocket(9, 1590, tables),
    ListenFdsError,
    /^fd 9 is a unix stream socket that is not listening \(unbound\)/,
  );
  assertThrows(
    () => classifySocket(10, 424242, tables),
    ListenFdsError,
    /^fd 10 is a socket of an unsupported kind \(socket:\[424242\]/,
  );
});
