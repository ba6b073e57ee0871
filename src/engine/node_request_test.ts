/**
 * The node engine's fetch Request: URLs, headers, bodies under flow control, and `request.signal`.
 */

import { assert, assertEquals } from "../../tests/assert.ts";
import {
  deferred,
  encoder,
  randomBytes,
  RawClient,
  sha256,
  startServer,
  text,
} from "../../tests/node_engine.ts";

Deno.test("node engine: small binary bodies keep every byte value", async () => {
  const bytes = new Uint8Array(512);
  for (let i = 0; i < bytes.length; i++) bytes[i] = (i * 7 + 3) & 0xff;
  const tiny = new Uint8Array([0, 0x7f, 0x80, 0x9f, 0xc3, 0xff]);
  await using server = await startServer((request) =>
    new Response(request.url.endsWith("/tiny") ? tiny : bytes)
  );
  const response = await fetch(`${server.origin}/bytes`);
  assertEquals(new Uint8Array(await response.arrayBuffer()), bytes);
  // Pipelined: node cannot take its direct write path for the second one.
  using client = await RawClient.connect(server.addr);
  await client.send(
    "GET /bytes HTTP/1.1\r\nHost: x\r\n\r\nGET /tiny HTTP/1.1\r\nHost: x\r\n\r\n",
  );
  assertEquals((await client.readResponse()).body, bytes);
  assertEquals((await client.readResponse()).body, tiny);
});

Deno.test("node engine: an unread request body does not stall the connection", async () => {
  await using server = await startServer((request) =>
    new Response(`${request.method} ignored the body`)
  );
  using client = await RawClient.connect(server.addr);
  const body = "x".repeat(1024 * 1024);
  await client.send(
    `POST /ignore HTTP/1.1\r\nHost: x\r\nContent-Length: ${body.length}\r\n\r\n`,
  );
  const sending = client.send(body);
  const first = await client.readResponse();
  assertEquals(text(first), "POST ignored the body");
  await sending;
  await client.send("GET /next HTTP/1.1\r\nHost: x\r\n\r\n");
  const second = await client.readResponse();
  assertEquals(text(second), "GET ignored the body");
});

Deno.test("node engine: HTTP/1.0 without Host and non-WebSocket upgrades", async () => {
  await using server = await startServer((request) =>
    new Response(`${request.url} ${request.headers.get("upgrade")}`)
  );
  using old = await RawClient.connect(server.addr);
  await old.send("GET /old HTTP/1.0\r\n\r\n");
  const response = await old.readResponse();
  assertEquals(text(response), `http://127.0.0.1:${server.port}/old null`);

  // An h2c upgrade is not for this server: it is an ordinary request.
  using h2c = await RawClient.connect(server.addr);
  await h2c.send(
    "GET /h2c HTTP/1.1\r\nHost: x\r\nConnection: Upgrade, HTTP2-Settings\r\n" +
      "Upgrade: h2c\r\nHTTP2-Settings: AAMAAABkAAQAAP__\r\n\r\n",
  );
  assertEquals(text(await h2c.readResponse()), "http://x/h2c h2c");
});

Deno.test("node engine: POST 5 MB body echo", async () => {
  await using server = await startServer((request) =>
    new Response(request.body, {
      headers: { "x-length": request.headers.get("content-length") ?? "" },
    })
  );
  const payload = randomBytes(5 * 1024 * 1024);
  const response = await fetch(`${server.origin}/echo`, {
    method: "POST",
    body: payload,
  });
  assertEquals(response.status, 200);
  assertEquals(response.headers.get("x-length"), String(payload.length));
  const echoed = new Uint8Array(await response.arrayBuffer());
  assertEquals(echoed.length, payload.length);
  assertEquals(await sha256(echoed), await sha256(payload));
});

Deno.test("node engine: chunked streaming upload", async () => {
  await using server = await startServer(async (request) => {
    const chunks: number[] = [];
    let total = 0;
    for await (const chunk of request.body!) {
      chunks.push(chunk.byteLength);
      total += chunk.byteLength;
    }
    return new Response(
      JSON.stringify({
        total,
        chunked: request.headers.get("transfer-encoding"),
      }),
    );
  });
  const gate = deferred();
  const parts = ["alpha-", "beta-", "gamma"];
  const body = new ReadableStream<Uint8Array>({
    async start(controller) {
      controller.enqueue(encoder.encode(parts[0]));
      // The server must get the first part before the upload is complete.
      await gate.promise;
      controller.enqueue(encoder.encode(parts[1]));
      controller.enqueue(encoder.encode(parts[2]));
      controller.close();
    },
  });
  // Release the rest of the body once the request is in flight.
  const poll = setInterval(() => {
    if (server.binding.inFlight > 0) {
      clearInterval(poll);
      gate.resolve();
    }
  }, 5);
  try {
    const response = await fetch(`${server.origin}/upload`, {
      method: "PUT",
      body,
    });
    const result = await response.json();
    assertEquals(result, { total: parts.join("").length, chunked: "chunked" });
  } finally {
    clearInterval(poll);
  }
});

Deno.test("node engine: raw chunked upload is decoded", async () => {
  await using server = await startServer(async (request) =>
    new Response(await request.text())
  );
  using client = await RawClient.connect(server.addr);
  await client.send(
    "POST /raw HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n" +
      "5\r\nhello\r\n",
  );
  await client.send("6\r\n world\r\n0\r\n\r\n");
  const response = await client.readResponse();
  assertEquals(text(response), "hello world");
});

Deno.test("node engine: multi-value request headers are appended", async () => {
  let seen: Record<string, string | null> = {};
  await using server = await startServer((request) => {
    seen = {
      multi: request.headers.get("x-multi"),
      accept: request.headers.get("accept"),
      host: request.headers.get("host"),
      url: request.url,
    };
    return new Response("ok");
  });
  using client = await RawClient.connect(server.addr);
  await client.send(
    "GET /h HTTP/1.1\r\nHost: example.test:8080\r\nX-Multi: a\r\n" +
      "x-multi: b, c\r\nAccept: text/html\r\n\r\n",
  );
  const response = await client.readResponse();
  assertEquals(response.status, 200);
  assertEquals(seen, {
    multi: "a, b, c",
    accept: "text/html",
    host: "example.test:8080",
    url: "http://example.test:8080/h",
  });
});

Deno.test("node engine: request.signal aborts when the client disconnects", async () => {
  const aborted = deferred<unknown>();
  const started = deferred();
  let completedFailed: Promise<unknown> | undefined;
  await using server = await startServer((request, info) => {
    completedFailed = info.completed.then(
      () => "resolved",
      (error) => error,
    );
    request.signal.addEventListener(
      "abort",
      () => aborted.resolve(request.signal.reason),
    );
    started.resolve();
    // Never answers on its own: waits for the client to go away.
    return new Promise<Response>((resolve) => {
      request.signal.addEventListener(
        "abort",
        () => resolve(new Response("too late")),
      );
    });
  });
  const client = await RawClient.connect(server.addr);
  await client.send("GET /wait HTTP/1.1\r\nHost: x\r\n\r\n");
  await started.promise;
  assertEquals(server.binding.inFlight, 1);
  client.close();
  const reason = await aborted.promise;
  assert(reason instanceof DOMException);
  assertEquals(reason.name, "AbortError");
  assert((await completedFailed) instanceof Deno.errors.Interrupted);
  assertEquals(server.binding.inFlight, 0);
});

Deno.test("node engine: signal does not abort after a complete response", async () => {
  let signal: AbortSignal | undefined;
  await using server = await startServer((request) => {
    signal = request.signal;
    return new Response("fine");
  });
  const response = await fetch(server.origin);
  await response.text();
  assertEquals(signal?.aborted, false);
});
