/**
 * The raw test client against servers that misbehave on purpose (a raw
 * Deno.listen that writes exactly the bytes given): what it must report, and
 * what it must not mistake for a normal end of a response.
 *
 * @module
 */

import net from "node:net";
import { assertEquals, assertMatch, assertRejects } from "./assert.ts";
import { rawExchange } from "./http_client.ts";

/**
 * A one-connection server: reads the request head, writes `reply`, then
 * closes the connection, or holds it open when `hold`.
 */
async function withRawServer(
  reply: string,
  options: { hold?: boolean },
  fn: (port: number) => Promise<void>,
): Promise<void> {
  const listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const release = Promise.withResolvers<void>();
  const served = (async () => {
    const conn = await listener.accept();
    try {
      const buf = new Uint8Array(64 * 1024);
      let got = "";
      while (!got.includes("\r\n\r\n")) {
        const n = await conn.read(buf);
        if (n === null) break;
        got += new TextDecoder().decode(buf.subarray(0, n));
      }
      await conn.write(new TextEncoder().encode(reply));
      if (options.hold) await release.promise;
    } finally {
      conn.close();
    }
  })();
  try {
    await fn((listener.addr as Deno.NetAddr).port);
  } finally {
    release.resolve();
    await served.catch(() => {});
    listener.close();
  }
}

const GET = "GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n";
const HEAD = "HEAD / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n";

Deno.test("http client: a well-behaved 204 then close is one response with no body", async () => {
  await withRawServer(
    "HTTP/1.1 204 No Content\r\nConnection: close\r\n\r\n",
    {},
    async (port) => {
      const responses = await rawExchange(port, GET);
      assertEquals(responses.map((r) => [r.status, r.body]), [[204, ""]]);
    },
  );
});

for (
  const [what, request, reply, head] of [
    [
      "a body after a 204",
      GET,
      "HTTP/1.1 204 No Content\r\nConnection: close\r\n\r\nHello!",
      false,
    ],
    [
      "a body after a 304",
      GET,
      "HTTP/1.1 304 Not Modified\r\nConnection: close\r\n\r\nHello!",
      false,
    ],
    [
      "a body after the response to a HEAD",
      HEAD,
      "HTTP/1.1 200 OK\r\nContent-Length: 6\r\nConnection: close\r\n\r\nHello!",
      true,
    ],
  ] as const
) {
  Deno.test(`http client: ${what} is reported, with the bytes`, async () => {
    await withRawServer(reply, {}, async (port) => {
      const error = await assertRejects(() =>
        rawExchange(port, request, { head })
      );
      assertMatch(error.message, /no complete response/);
      assertMatch(error.message, /"Hello!"/);
    });
  });
}

Deno.test("http client: bytes already received past `count` responses are reported", async () => {
  // One write: the 204 and the bytes after it arrive together, and the
  // connection stays open, so only the check of what is left after `count`
  // responses can report them (not the end of the connection, nor a
  // time-out).
  await withRawServer(
    "HTTP/1.1 204 No Content\r\n\r\nHello!",
    { hold: true },
    async (port) => {
      const request = "GET / HTTP/1.1\r\nHost: x\r\n\r\n";
      const error = await assertRejects(() =>
        rawExchange(port, request, { count: 1 })
      );
      assertMatch(
        error.message,
        /^bytes that are no complete response after 1 complete response\(s\) \(last: 204\), 6 byte\(s\) left: "Hello!"$/,
      );
    },
  );
});

Deno.test("http client: a connection closed in the middle of a body is an error", async () => {
  await withRawServer(
    "HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nabc",
    {},
    async (port) => {
      const error = await assertRejects(() => rawExchange(port, GET));
      assertMatch(error.message, /0 complete response.*"HTTP\/1\.1 200 OK/s);
    },
  );
});

Deno.test("http client: a reset is a read error, not the end of a response", async () => {
  // node:net can send a RST (SO_LINGER 0) after a partial response.
  const server = net.createServer((socket) => {
    socket.once("data", () => {
      socket.write(
        "HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nabc",
        () => socket.resetAndDestroy(),
      );
    });
  });
  const listening = Promise.withResolvers<void>();
  server.listen(0, "127.0.0.1", listening.resolve);
  await listening.promise;
  try {
    const { port } = server.address() as net.AddressInfo;
    const error = await assertRejects(() => rawExchange(port, GET));
    assertMatch(error.message, /^read failed after 0 complete response/);
    assertMatch(error.message, /ConnectionReset/);
  } finally {
    await new Promise((resolve) => server.close(resolve));
  }
});

Deno.test("http client: a server that never finishes is a time-out error", async () => {
  await withRawServer(
    "HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nabc",
    { hold: true },
    async (port) => {
      const error = await assertRejects(() =>
        rawExchange(port, GET, { timeoutMs: 300 })
      );
      assertMatch(error.message, /no end of the exchange in 300 ms/);
      assertMatch(error.message, /"HTTP\/1\.1 200 OK/);
    },
  );
});
