/**
 * Deno.upgradeWebSocket on the node engine, and upgrades it cannot take.
 */

import { assert, assertEquals, assertMatch } from "../../tests/assert.ts";
import {
  deferred,
  header,
  RawClient,
  startServer,
  text,
} from "../../tests/node_engine.ts";

Deno.test("node engine: WebSocket echo via Deno.upgradeWebSocket", async () => {
  const serverClosed = deferred();
  await using server = await startServer((request, info) => {
    if (request.headers.get("upgrade") !== "websocket") {
      return new Response("not a websocket", { status: 400 });
    }
    assertEquals(info.remoteAddr.transport, "tcp");
    const { socket, response } = Deno.upgradeWebSocket(request, {
      protocol: "echo",
    });
    socket.onmessage = (event) => socket.send(`echo: ${event.data}`);
    socket.onclose = () => serverClosed.resolve();
    return response;
  });
  const ws = new WebSocket(`ws://127.0.0.1:${server.port}/ws`, "echo");
  const opened = deferred();
  const messages: string[] = [];
  const gotTwo = deferred();
  const clientClosed = deferred();
  ws.onopen = () => opened.resolve();
  ws.onmessage = (event) => {
    messages.push(event.data);
    if (messages.length === 2) gotTwo.resolve();
  };
  ws.onclose = () => clientClosed.resolve();
  await opened.promise;
  assertEquals(ws.protocol, "echo");
  // The upgraded connection belongs to the WebSocket, not to the engine.
  assertEquals(server.binding.connections, 0);
  assertEquals(server.binding.inFlight, 0);
  ws.send("hello");
  ws.send("world");
  await gotTwo.promise;
  assertEquals(messages, ["echo: hello", "echo: world"]);
  ws.close();
  await Promise.all([clientClosed.promise, serverClosed.promise]);

  // Plain requests still work beside it.
  const plain = await fetch(`${server.origin}/plain`);
  assertEquals(plain.status, 400);
  await plain.body?.cancel();
});

Deno.test("node engine: an upgrade request answered without upgrading", async () => {
  await using server = await startServer(() =>
    new Response("no websockets here", {
      status: 403,
      headers: { "x-reason": "policy" },
    })
  );
  using client = await RawClient.connect(server.addr);
  await client.send(
    "GET /ws HTTP/1.1\r\nHost: x\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n" +
      "Sec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n",
  );
  const response = await client.readResponse();
  assertEquals(response.status, 403);
  assertEquals(header(response, "x-reason"), "policy");
  assertEquals(header(response, "connection"), "close");
  assertEquals(text(response), "no websockets here");
  assert(await client.closedByPeer());
});

Deno.test("node engine: a WebSocket upgrade that cannot happen goes to onError", async () => {
  // Deno.upgradeWebSocket can only take over TCP sockets, not unix ones.
  const dir = await Deno.makeTempDir();
  try {
    let caught = "";
    await using server = await startServer((request) => {
      return Deno.upgradeWebSocket(request).response;
    }, {
      path: `${dir}/ws.sock`,
      onError: (error) => {
        caught = String(error);
        return new Response("no upgrade", { status: 501 });
      },
    });
    using client = await RawClient.connect(server.addr);
    await client.send(
      "GET /ws HTTP/1.1\r\nHost: x\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n" +
        "Sec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n",
    );
    const response = await client.readResponse();
    assertEquals(response.status, 501);
    assertEquals(text(response), "no upgrade");
    assertMatch(caught, /TypeError/);
    assert(await client.closedByPeer());
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});
