import { assertEquals } from "../../tests/assert.ts";
import { decodeSockaddr, formatIp } from "./sockaddr.ts";
import { decodeProcInetAddress } from "../os/proc_net.ts";

Deno.test("formatIp writes /proc/net addresses in Deno's notation", () => {
  const cases: [string, string][] = [
    ["0100007F", "127.0.0.1"],
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
    const address = decodeProcInetAddress(`${hex}:01BB`, true);
    assertEquals(address && formatIp(address.ip), hostname);
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
