import { assert, assertEquals, assertThrows } from "../../tests/assert.ts";
import {
  addrMatches,
  formatAddr,
  formatIpv6,
  isLoopbackIp,
  type ListenSpec,
  parseListenAddress,
} from "./address.ts";

Deno.test("parseListenAddress parses HOST:PORT", () => {
  assertEquals(parseListenAddress("127.0.0.1:8000"), {
    transport: "tcp",
    hostname: "127.0.0.1",
    port: 8000,
  });
  assertEquals(parseListenAddress("localhost:80"), {
    transport: "tcp",
    hostname: "localhost",
    port: 80,
  });
  assertEquals(parseListenAddress("my-host.example.com:443"), {
    transport: "tcp",
    hostname: "my-host.example.com",
    port: 443,
  });
  assertEquals(parseListenAddress("0.0.0.0:0"), {
    transport: "tcp",
    hostname: "0.0.0.0",
    port: 0,
  });
  assertEquals(parseListenAddress("127.0.0.1:65535"), {
    transport: "tcp",
    hostname: "127.0.0.1",
    port: 65535,
  });
});

Deno.test("parseListenAddress parses bracketed IPv6 addresses", () => {
  assertEquals(parseListenAddress("[::1]:8001"), {
    transport: "tcp",
    hostname: "::1",
    port: 8001,
  });
  assertEquals(parseListenAddress("[::]:80"), {
    transport: "tcp",
    hostname: "::",
    port: 80,
  });
  assertEquals(parseListenAddress("[2001:db8::8a2e:370:7334]:443"), {
    transport: "tcp",
    hostname: "2001:db8::8a2e:370:7334",
    port: 443,
  });
  assertEquals(parseListenAddress("[::ffff:127.0.0.1]:8080"), {
    transport: "tcp",
    hostname: "::ffff:127.0.0.1",
    port: 8080,
  });
  assertEquals(parseListenAddress("[1:2:3:4:5:6:7:8]:1"), {
    transport: "tcp",
    hostname: "1:2:3:4:5:6:7:8",
    port: 1,
  });
});

Deno.test("parseListenAddress listens on 0.0.0.0 for PORT and :PORT", () => {
  const expected = { transport: "tcp", hostname: "0.0.0.0", port: 8000 };
  assertEquals(parseListenAddress("8000"), expected);
  assertEquals(parseListenAddress(":8000"), expected);
});

Deno.test("parseListenAddress parses unix socket paths", () => {
  assertEquals(parseListenAddress("unix:/run/app.sock"), {
    transport: "unix",
    path: "/run/app.sock",
  });
  assertEquals(parseListenAddress("unix:app.sock"), {
    transport: "unix",
    path: "app.sock",
  });
  assertEquals(parseListenAddress("unix:./run/app.sock"), {
    transport: "unix",
    path: "./run/app.sock",
  });
  assertEquals(parseListenAddress("unix:/tmp/with:colon.sock"), {
    transport: "unix",
    path: "/tmp/with:colon.sock",
  });
});

/** Asserts that `spec` is rejected with a TypeError quoting it and matching `reason`. */
function assertRejected(spec: string, reason: RegExp): void {
  const error = assertThrows(() => parseListenAddress(spec));
  assert(
    error instanceof TypeError,
    `expected a TypeError for ${spec}, got ${error}`,
  );
  assert(
    error.message.includes(JSON.stringify(spec)),
    `the message does not quote ${JSON.stringify(spec)}: ${error.message}`,
  );
  assert(
    reason.test(error.message),
    `the message does not match ${reason}: ${error.message}`,
  );
  assert(
    /expected HOST:PORT, \[IPV6\]:PORT, :PORT, PORT or unix:PATH/.test(
      error.message,
    ),
    `the message does not say what is expected: ${error.message}`,
  );
}

Deno.test("parseListenAddress rejects a missing port", () => {
  assertRejected("127.0.0.1", /port is missing/);
  assertRejected("localhost", /port is missing/);
  assertRejected("127.0.0.1:", /port is missing/);
  assertRejected(":", /port is missing/);
  assertRejected("[::1]", /port is missing/);
  assertRejected("[::1]:", /port is missing/);
});

Deno.test("parseListenAddress rejects invalid ports", () => {
  assertRejected("127.0.0.1:http", /port "http" is not a number/);
  assertRejected("127.0.0.1:-1", /port "-1" is not a number/);
  assertRejected("-1", /port "-1" is not a number/);
  assertRejected("127.0.0.1:80.5", /port "80.5" is not a number/);
  assertRejected("127.0.0.1: 80", /port " 80" is not a number/);
  assertRejected("127.0.0.1:65536", /port 65536 is out of range/);
  assertRejected("70000", /port 70000 is out of range/);
  assertRejected("[::1]:99999999999999999999", /out of range/);
});

Deno.test("parseListenAddress rejects an empty string", () => {
  assertRejected("", /it is empty/);
});

Deno.test("parseListenAddress rejects unbracketed IPv6 addresses", () => {
  assertRejected("::1:8000", /IPv6 address must be enclosed in brackets/);
  assertRejected("::1", /IPv6 address must be enclosed in brackets/);
  assertRejected(
    "2001:db8::1:443",
    /IPv6 address must be enclosed in brackets/,
  );
});

Deno.test("parseListenAddress rejects malformed brackets and hosts", () => {
  assertRejected("[::1:8000", /not closed/);
  assertRejected("[::1]8000", /expected ":PORT" after the "\]"/);
  assertRejected("[]:80", /IPv6 address in brackets is empty/);
  assertRejected("[localhost]:80", /"localhost" is not a valid IPv6 address/);
  assertRejected("[1:2:3:4:5:6:7:8:9]:80", /not a valid IPv6 address/);
  assertRejected("[1::2::3]:80", /not a valid IPv6 address/);
  assertRejected("[::ffff:1.2.3.256]:80", /not a valid IPv6 address/);
  assertRejected("my host:80", /"my host" is not a valid hostname/);
  assertRejected(" 127.0.0.1:80", /is not a valid hostname/);
  assertRejected("http://example.com:80", /is not a valid hostname/);
  assertRejected("example.com/x:80", /is not a valid hostname/);
});

Deno.test("parseListenAddress rejects an empty unix path", () => {
  assertRejected("unix:", /unix socket path is empty/);
  assertRejected("unix:/tmp/a\0b", /NUL byte/);
});

Deno.test("parseListenAddress rejects non-strings with a TypeError", () => {
  const error = assertThrows(() =>
    parseListenAddress(8000 as unknown as string)
  );
  assert(error instanceof TypeError);
  assert(/8000: it is a number, not a string/.test(error.message));
});

Deno.test("formatAddr formats Deno addresses and listen specs", () => {
  assertEquals(
    formatAddr({ transport: "tcp", hostname: "127.0.0.1", port: 8000 }),
    "127.0.0.1:8000",
  );
  assertEquals(
    formatAddr({ transport: "tcp", hostname: "::1", port: 8001 }),
    "[::1]:8001",
  );
  assertEquals(
    formatAddr({ transport: "udp", hostname: "::", port: 53 }),
    "[::]:53",
  );
  assertEquals(
    formatAddr({ transport: "unix", path: "/run/app.sock" }),
    "unix:/run/app.sock",
  );
  assertEquals(
    formatAddr({ transport: "unixpacket", path: "@abstract" }),
    "unix:@abstract",
  );
});

Deno.test("formatAddr output parses back to the same spec", () => {
  const specs = [
    "127.0.0.1:8000",
    "[::1]:8001",
    "[::ffff:127.0.0.1]:1",
    "localhost:0",
    "unix:/run/app.sock",
    "unix:relative.sock",
  ];
  for (const text of specs) {
    const spec = parseListenAddress(text);
    assertEquals(formatAddr(spec), text);
    assertEquals(parseListenAddress(formatAddr(spec)), spec);
  }
});

Deno.test("formatAddr formats what Deno.listen reports", () => {
  const listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  try {
    const addr = listener.addr;
    assertEquals(formatAddr(addr), `127.0.0.1:${addr.port}`);
    assert(addrMatches(parseListenAddress(formatAddr(addr)), addr));
  } finally {
    listener.close();
  }
});

/** A TCP address as Deno reports it. */
function tcp(hostname: string, port: number): Deno.NetAddr {
  return { transport: "tcp", hostname, port };
}

Deno.test("addrMatches compares TCP hostnames and ports", () => {
  const spec = parseListenAddress("127.0.0.1:8000");
  assert(addrMatches(spec, tcp("127.0.0.1", 8000)));
  assert(!addrMatches(spec, tcp("127.0.0.1", 8001)));
  assert(!addrMatches(spec, tcp("127.0.0.2", 8000)));
  assert(!addrMatches(spec, tcp("0.0.0.0", 8000)));
  assert(!addrMatches(spec, tcp("::1", 8000)));
  assert(
    !addrMatches(spec, { transport: "udp", hostname: "127.0.0.1", port: 8000 }),
  );
  assert(!addrMatches(spec, { transport: "unix", path: "127.0.0.1:8000" }));
});

Deno.test("addrMatches treats localhost as 127.0.0.1", () => {
  assert(addrMatches(parseListenAddress("localhost:80"), tcp("127.0.0.1", 80)));
  assert(
    addrMatches(parseListenAddress("LocalHost:80"), tcp("127.0.0.1", 80)),
  );
  assert(addrMatches(parseListenAddress("127.0.0.1:80"), tcp("localhost", 80)));
  assert(!addrMatches(parseListenAddress("localhost:80"), tcp("::1", 80)));
});

Deno.test("addrMatches treats 0.0.0.0 and :: as the same wildcard", () => {
  for (const text of ["0.0.0.0:80", ":80", "80", "[::]:80", "[0:0::0]:80"]) {
    const spec = parseListenAddress(text);
    assert(addrMatches(spec, tcp("0.0.0.0", 80)), text);
    assert(addrMatches(spec, tcp("::", 80)), text);
    assert(!addrMatches(spec, tcp("127.0.0.1", 80)), text);
    assert(!addrMatches(spec, tcp("::", 81)), text);
  }
});

Deno.test("addrMatches compares IPv6 addresses, not their spelling", () => {
  assert(addrMatches(parseListenAddress("[::1]:80"), tcp("::1", 80)));
  assert(
    addrMatches(parseListenAddress("[0:0:0:0:0:0:0:1]:80"), tcp("::1", 80)),
  );
  assert(
    addrMatches(
      parseListenAddress("[2001:DB8:0::1]:80"),
      tcp("2001:db8::1", 80),
    ),
  );
  assert(!addrMatches(parseListenAddress("[::1]:80"), tcp("::2", 80)));
  assert(!addrMatches(parseListenAddress("[::1]:80"), tcp("127.0.0.1", 80)));
});

Deno.test("addrMatches: port 0 (any free port) matches every port", () => {
  assert(addrMatches(parseListenAddress("127.0.0.1:0"), tcp("127.0.0.1", 1)));
  assert(
    addrMatches(parseListenAddress("127.0.0.1:0"), tcp("127.0.0.1", 65535)),
  );
  assert(!addrMatches(parseListenAddress("127.0.0.1:0"), tcp("::1", 8000)));
});

Deno.test("addrMatches compares unix paths", () => {
  const spec: ListenSpec = parseListenAddress("unix:/run/app.sock");
  assert(addrMatches(spec, { transport: "unix", path: "/run/app.sock" }));
  assert(!addrMatches(spec, { transport: "unix", path: "/run/other.sock" }));
  assert(!addrMatches(spec, { transport: "unix", path: "run/app.sock" }));
  assert(
    !addrMatches(spec, { transport: "unixpacket", path: "/run/app.sock" }),
  );
  assert(!addrMatches(spec, tcp("127.0.0.1", 80)));
  assert(
    addrMatches(parseListenAddress("unix:@abstract"), {
      transport: "unix",
      path: "@abstract",
    }),
  );
});

Deno.test("addrMatches accepts what Deno.listen reports for the spec", () => {
  const v4 = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  try {
    assert(
      addrMatches(parseListenAddress(`localhost:${v4.addr.port}`), v4.addr),
    );
    assert(addrMatches(parseListenAddress("127.0.0.1:0"), v4.addr));
  } finally {
    v4.close();
  }
  const any = Deno.listen({ hostname: "0.0.0.0", port: 0 });
  try {
    assert(addrMatches(parseListenAddress(`${any.addr.port}`), any.addr));
  } finally {
    any.close();
  }
  const dir = Deno.makeTempDirSync();
  const unix = Deno.listen({ transport: "unix", path: `${dir}/a.sock` });
  try {
    assert(addrMatches(parseListenAddress(`unix:${dir}/a.sock`), unix.addr));
  } finally {
    unix.close();
    Deno.removeSync(dir, { recursive: true });
  }
});

Deno.test("formatIpv6 compresses like Deno (Rust's Ipv6Addr)", () => {
  assertEquals(formatIpv6([0, 0, 0, 0, 0, 0, 0, 0]), "::");
  assertEquals(formatIpv6([0, 0, 0, 0, 0, 0, 0, 1]), "::1");
  assertEquals(formatIpv6([1, 0, 0, 0, 0, 0, 0, 0]), "1::");
  assertEquals(
    formatIpv6([0x2001, 0xdb8, 0, 0, 0, 0, 0, 1]),
    "2001:db8::1",
  );
  // A single zero group is not compressed.
  assertEquals(formatIpv6([1, 0, 2, 3, 4, 5, 6, 7]), "1:0:2:3:4:5:6:7");
  // The longest run wins; on a tie, the first.
  assertEquals(formatIpv6([1, 0, 0, 2, 0, 0, 0, 3]), "1:0:0:2::3");
  assertEquals(formatIpv6([1, 0, 0, 2, 0, 0, 3, 4]), "1::2:0:0:3:4");
  assertEquals(
    formatIpv6([0xfe80, 0, 0, 0, 0xabcd, 0xef01, 0x2345, 0x6789]),
    "fe80::abcd:ef01:2345:6789",
  );
  assertEquals(
    formatIpv6([0, 0, 0, 0, 0, 0xffff, 0x7f00, 0x0001]),
    "::ffff:127.0.0.1",
  );
  assertThrows(() => formatIpv6([0, 0, 1]));
});

Deno.test("Deno prints bound IPv6 hosts in the notation formatIpv6 uses", () => {
  for (const hostname of ["::1", "::", "::ffff:127.0.0.1"]) {
    let listener: Deno.TcpListener;
    try {
      listener = Deno.listen({ hostname, port: 0 });
    } catch {
      continue; // IPv6 disabled on this host
    }
    try {
      assertEquals(listener.addr.hostname, hostname);
      assertEquals(
        formatAddr(listener.addr),
        `[${hostname}]:${listener.addr.port}`,
      );
    } finally {
      listener.close();
    }
  }
});

Deno.test("isLoopbackIp: 127/8, ::1 and IPv4-mapped 127/8, in any notation", () => {
  for (
    const ip of [
      "127.0.0.1",
      "127.255.0.9",
      "::1",
      "[::1]",
      "0:0:0:0:0:0:0:1",
      "::1%lo",
      "::ffff:127.0.0.1",
      "::FFFF:7f00:1",
    ]
  ) {
    assertEquals(isLoopbackIp(ip), true, ip);
  }
  for (
    const ip of [
      "128.0.0.1",
      "127.0.0.256",
      "127.1",
      "::",
      "::2",
      "::ffff:10.0.0.1",
      "1::1",
      "localhost",
      "",
      "1:2:3:4:5:6:7:8:9",
    ]
  ) {
    assertEquals(isLoopbackIp(ip), false, ip);
  }
});
