/**
 * The node engine's fetch Response on the wire: streaming, HEAD and 204, status text and cookies, handler errors, `info.completed`.
 */

import { assert, assertEquals } from "../../tests/assert.ts";
import {
  decoder,
  deferred,
  encoder,
  header,
  randomBytes,
  RawClient,
  sha256,
  startServer,
  text,
} from "../../tests/node_engine.ts";

Deno.test("node engine: streaming response arrives incrementally", async () => {
  const more = deferred();
  await using server = await startServer(() => {
    const body = new ReadableStream<Uint8Array>({
      async start(controller) {
        controller.enqueue(encoder.encode("first;"));
        // Only continue once the client has seen the first chunk.
        await more.promise;
        controller.enqueue(encoder.encode("second;"));
        controller.enqueue(encoder.encode("third"));
        controller.close();
      },
    });
    return new Response(body, { headers: { "content-type": "text/plain" } });
  });
  const response = await fetch(`${server.origin}/stream`);
  assertEquals(response.headers.get("transfer-encoding"), "chunked");
  const reader = response.body!.getReader();
  const first = await reader.read();
  assertEquals(decoder.decode(first.value), "first;");
  more.resolve();
  let rest = "";
  for (;;) {
    const { done, value } = await reader.read();
    if (done) break;
    rest += decoder.decode(value);
  }
  assertEquals(rest, "second;third");
});

Deno.test("node engine: large streaming response with backpressure", async () => {
  const chunk = randomBytes(256 * 1024);
  const count = 40;
  await using server = await startServer(() => {
    let sent = 0;
    return new Response(
      new ReadableStream<Uint8Array>({
        pull(controller) {
          if (sent++ < count) controller.enqueue(chunk);
          else controller.close();
        },
      }),
    );
  });
  using client = await RawClient.connect(server.addr);
  await client.send("GET /big HTTP/1.1\r\nHost: x\r\n\r\n");
  const response = await client.readResponse();
  assertEquals(response.body.length, chunk.length * count);
  assertEquals(
    await sha256(response.body.subarray(0, chunk.length)),
    await sha256(chunk),
  );
});

Deno.test("node engine: HEAD and 204 have no body", async () => {
  await using server = await startServer((request) => {
    if (new URL(request.url).pathname === "/empty") {
      return new Response(null, { status: 204, headers: { "x-empty": "1" } });
    }
    return new Response("a body that must not be sent", {
      headers: { "x-method": request.method },
    });
  });
  using client = await RawClient.connect(server.addr);
  await client.send("HEAD /head HTTP/1.1\r\nHost: x\r\n\r\n");
  const head = await client.readResponse(true);
  assertEquals(head.status, 200);
  assertEquals(header(head, "x-method"), "HEAD");
  assertEquals(header(head, "transfer-encoding"), undefined);
  // Like Deno.serve: the length a GET would get.
  assertEquals(
    header(head, "content-length"),
    `${"a body that must not be sent".length}`,
  );

  // If HEAD had leaked a body, it would be read as the next status line.
  await client.send("GET /empty HTTP/1.1\r\nHost: x\r\n\r\n");
  const empty = await client.readResponse();
  assertEquals(empty.status, 204);
  assertEquals(header(empty, "x-empty"), "1");
  assertEquals(header(empty, "content-length"), undefined);

  await client.send("GET /after HTTP/1.1\r\nHost: x\r\n\r\n");
  const after = await client.readResponse();
  assertEquals(after.status, 200);
  assertEquals(text(after), "a body that must not be sent");
});

Deno.test("node engine: status text and several Set-Cookie headers", async () => {
  await using server = await startServer(() => {
    const headers = new Headers();
    headers.append("set-cookie", "a=1; Path=/");
    headers.append("set-cookie", "b=2; HttpOnly");
    headers.append("set-cookie", "c=3, with comma; Secure");
    headers.append("x-multi", "one");
    headers.append("x-multi", "two");
    return new Response("cookies", {
      status: 201,
      statusText: "Made It",
      headers,
    });
  });
  using client = await RawClient.connect(server.addr);
  await client.send("GET / HTTP/1.1\r\nHost: x\r\n\r\n");
  const response = await client.readResponse();
  assertEquals(response.status, 201);
  assertEquals(response.reason, "Made It");
  const cookies = response.headers
    .filter(([name]) => name === "set-cookie")
    .map(([, value]) => value);
  assertEquals(cookies, [
    "a=1; Path=/",
    "b=2; HttpOnly",
    "c=3, with comma; Secure",
  ]);
  assertEquals(header(response, "x-multi"), "one, two");

  const viaFetch = await fetch(`${server.origin}/`);
  assertEquals(viaFetch.status, 201);
  assertEquals(viaFetch.headers.getSetCookie().length, 3);
  await viaFetch.body?.cancel();
});

Deno.test("node engine: info.completed resolves after the response", async () => {
  const completed = deferred<Promise<void>>();
  await using server = await startServer((_request, info) => {
    completed.resolve(info.completed);
    assert(info.draining instanceof AbortSignal);
    return new Response("done");
  });
  const response = await fetch(server.origin);
  assertEquals(await response.text(), "done");
  await (await completed.promise);
});

Deno.test("node engine: handler errors go to onError", async () => {
  await using server = await startServer((request) => {
    const path = new URL(request.url).pathname;
    if (path === "/sync") throw new Error("sync boom");
    return Promise.reject(new Error("async boom"));
  }, {
    onError: (error) =>
      new Response(`handled: ${(error as Error).message}`, { status: 503 }),
  });
  const sync = await fetch(`${server.origin}/sync`);
  assertEquals(sync.status, 503);
  assertEquals(await sync.text(), "handled: sync boom");
  const async = await fetch(`${server.origin}/async`);
  assertEquals(async.status, 503);
  assertEquals(await async.text(), "handled: async boom");
});

Deno.test("node engine: failing onError answers 500", async () => {
  await using server = await startServer(() => {
    throw new Error("handler");
  }, {
    onError: () => {
      throw new Error("onError too");
    },
  });
  const response = await fetch(server.origin);
  assertEquals(response.status, 500);
  assertEquals(await response.text(), "Internal Server Error");
});

Deno.test("node engine: a body stream failing before any byte answers 500", async () => {
  await using server = await startServer(() =>
    new Response(
      new ReadableStream({
        pull() {
          throw new Error("stream broke");
        },
      }),
    )
  );
  const response = await fetch(server.origin);
  assertEquals(response.status, 500);
  await response.body?.cancel();
});
