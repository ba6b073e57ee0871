import {
  deepStrictEqual as assertEquals,
  throws as assertThrows,
} from "node:assert/strict";
import { getPid, httpGet, parseAnswer } from "./http_get.ts";
import { selfSignedCert } from "./tls_cert.ts";

const encode = (text: string) => new TextEncoder().encode(text);

Deno.test("parseAnswer reads a fixed-length response", () => {
  assertEquals(
    parseAnswer(
      encode("HTTP/1.1 200 OK\r\ncontent-length: 7\r\n\r\nHello!\n"),
    ),
    { status: 200, body: "Hello!\n" },
  );
});

Deno.test("parseAnswer joins the chunks of a chunked response", () => {
  assertEquals(
    parseAnswer(
      encode(
        "HTTP/1.1 503 Service Unavailable\r\nTransfer-Encoding: chunked\r\n\r\n" +
          "3\r\nabc\r\n2\r\nde\r\n0\r\n\r\n",
      ),
    ),
    { status: 503, body: "abcde" },
  );
});

Deno.test("parseAnswer refuses what is not an HTTP/1.x response", () => {
  assertThrows(() => parseAnswer(encode("HTTP/1.1 200 OK\r\n")));
  assertThrows(() => parseAnswer(encode("SSH-2.0-OpenSSH\r\n\r\n")));
});

Deno.test("httpGet and getPid on a fresh connection each", async () => {
  const server = Deno.serve(
    { hostname: "127.0.0.1", port: 0, onListen() {} },
    (request) =>
      new URL(request.url).pathname === "/pid"
        ? new Response(`${Deno.pid}\n`)
        : new Response("Hello!\n"),
  );
  try {
    const port = server.addr.port;
    assertEquals(await httpGet(port, "/", 2_000), {
      status: 200,
      body: "Hello!\n",
    });
    assertEquals(await getPid(port, 2_000), Deno.pid);
  } finally {
    await server.shutdown();
  }
});

Deno.test("httpGet over TLS and over a unix socket", async () => {
  const { cert, key } = await selfSignedCert();
  const dir = await Deno.makeTempDir();
  const path = `${dir}/s.sock`;
  const hello = () => new Response("Hello!\n");
  const tls = Deno.serve(
    { hostname: "127.0.0.1", port: 0, cert, key, onListen() {} },
    hello,
  );
  const unix = Deno.serve({ path, onListen() {} }, hello);
  try {
    const expected = { status: 200, body: "Hello!\n" };
    assertEquals(
      await httpGet({ port: tls.addr.port, caCert: cert }, "/", 2_000),
      expected,
    );
    assertEquals(
      await httpGet({ port: 0, unixPath: path }, "/", 2_000),
      expected,
    );
  } finally {
    await tls.shutdown();
    await unix.shutdown();
    await Deno.remove(dir, { recursive: true });
  }
});
