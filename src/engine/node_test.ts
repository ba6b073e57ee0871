/**
 * The node engine's binding: connections over TCP, unix sockets and TLS, draining, abort and unref.
 */

import type { Addr } from "../listen/types.ts";
import { assert, assertEquals, assertMatch } from "../../tests/assert.ts";
import {
  decoder,
  deferred,
  header,
  RawClient,
  startServer,
  text,
} from "../../tests/node_engine.ts";
import { selfSignedCert } from "../../bench/lib/tls_cert.ts";

Deno.test("node engine: GET with fetch", async () => {
  await using server = await startServer((request) => {
    const url = new URL(request.url);
    return new Response(
      `${request.method} ${url.pathname}${url.search} ${url.host}`,
      { headers: { "x-answer": "42" } },
    );
  });
  const response = await fetch(`${server.origin}/hello?a=1`);
  assertEquals(response.status, 200);
  assertEquals(response.headers.get("x-answer"), "42");
  const expected = `GET /hello?a=1 127.0.0.1:${server.port}`;
  assertEquals(response.headers.get("content-length"), `${expected.length}`);
  assertEquals(await response.text(), expected);
  assertEquals(server.binding.inFlight, 0);
});

Deno.test("node engine: keep-alive connection serves several requests", async () => {
  await using server = await startServer((request) =>
    new Response(new URL(request.url).pathname)
  );
  using client = await RawClient.connect(server.addr);
  for (const path of ["/one", "/two", "/three"]) {
    await client.send(`GET ${path} HTTP/1.1\r\nHost: x\r\n\r\n`);
    const response = await client.readResponse();
    assertEquals(response.status, 200);
    assertEquals(text(response), path);
    assertEquals(header(response, "connection"), "keep-alive");
  }
  assertEquals(server.binding.connections, 1);
});

Deno.test("node engine: pipelined requests are answered in order", async () => {
  await using server = await startServer(async (request) => {
    const path = new URL(request.url).pathname;
    // The first answer is the slowest: order must still hold.
    if (path === "/1") await new Promise((resolve) => setTimeout(resolve, 20));
    return new Response(path);
  });
  using client = await RawClient.connect(server.addr);
  await client.send(
    "GET /1 HTTP/1.1\r\nHost: x\r\n\r\nGET /2 HTTP/1.1\r\nHost: x\r\n\r\n" +
      "GET /3 HTTP/1.1\r\nHost: x\r\n\r\n",
  );
  const bodies = [];
  for (let i = 0; i < 3; i++) bodies.push(text(await client.readResponse()));
  assertEquals(bodies, ["/1", "/2", "/3"]);
});

Deno.test("node engine: remoteAddr is the client's address", async () => {
  let remote: Addr | undefined;
  await using server = await startServer((_request, info) => {
    remote = info.remoteAddr;
    return new Response("ok");
  });
  using client = await RawClient.connect(server.addr);
  await client.send("GET / HTTP/1.1\r\nHost: x\r\n\r\n");
  await client.readResponse();
  const local = client.conn.localAddr as Deno.NetAddr;
  assertEquals(remote, {
    transport: "tcp",
    hostname: "127.0.0.1",
    port: local.port,
  });
});

Deno.test("node engine: unix socket listener", async () => {
  const dir = await Deno.makeTempDir();
  const path = `${dir}/engine.sock`;
  try {
    let remote: Addr | undefined;
    await using server = await startServer(async (request, info) => {
      remote = info.remoteAddr;
      return new Response(`${request.method} ${await request.text()}`);
    }, { path });
    using client = await RawClient.connect(server.addr);
    await client.send(
      "POST /unix HTTP/1.1\r\nHost: localhost\r\nContent-Length: 4\r\n\r\nping",
    );
    const response = await client.readResponse();
    assertEquals(text(response), "POST ping");
    assertEquals(remote, { transport: "unix", path });
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("node engine: TLS", async () => {
  const dir = await Deno.makeTempDir();
  try {
    const tls = await selfSignedCert();
    await using server = await startServer(
      async (request, info) =>
        new Response(
          JSON.stringify({
            url: request.url,
            body: await request.text(),
            port: (info.remoteAddr as Deno.NetAddr).port,
          }),
        ),
      { tls },
    );
    using client = Deno.createHttpClient({ caCerts: [tls.cert] });
    const response = await fetch(`${server.origin}/secure`, {
      client,
      method: "POST",
      body: "over tls",
    });
    const result = await response.json();
    assertEquals(result.url, `${server.origin}/secure`);
    assertEquals(result.body, "over tls");
    assert(result.port > 0);
    assertEquals(server.binding.connections, 1);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("node engine: drain completes in-flight work and closes idle connections", async () => {
  const release = deferred();
  const slowStarted = deferred();
  await using server = await startServer(async (request) => {
    if (new URL(request.url).pathname === "/slow") {
      slowStarted.resolve();
      await release.promise;
      return new Response("slow done");
    }
    return new Response("fast");
  });
  const binding = server.binding;

  // An idle keep-alive connection.
  using idle = await RawClient.connect(server.addr);
  await idle.send("GET /fast HTTP/1.1\r\nHost: x\r\n\r\n");
  const fast = await idle.readResponse();
  assertEquals(header(fast, "connection"), "keep-alive");

  // A connection with a request in flight.
  using busy = await RawClient.connect(server.addr);
  await busy.send("GET /slow HTTP/1.1\r\nHost: x\r\n\r\n");
  await slowStarted.promise;
  assertEquals(binding.connections, 2);
  assertEquals(binding.inFlight, 1);

  await server.stopAccepting();
  // The listening socket is closed: new connections are refused.
  let refused = false;
  try {
    (await Deno.connect({ hostname: "127.0.0.1", port: server.port })).close();
  } catch (error) {
    refused = error instanceof Deno.errors.ConnectionRefused;
  }
  assert(refused, "a new connection was accepted after stopAccepting()");

  let drained = false;
  const draining = binding.drain(50).then(() => {
    drained = true;
  });
  // The idle connection is closed once the grace period is over.
  assert(await idle.closedByPeer());
  assertEquals(drained, false);
  assertEquals(binding.connections, 1);

  release.resolve();
  const slow = await busy.readResponse();
  assertEquals(text(slow), "slow done");
  assertEquals(header(slow, "connection"), "close");
  assert(await busy.closedByPeer());
  await draining;
  assertEquals(binding.connections, 0);
  assertEquals(binding.inFlight, 0);
});

Deno.test("node engine: requests during a drain get Connection: close", async () => {
  await using server = await startServer(() =>
    new Response("bye", { headers: { connection: "keep-alive" } })
  );
  using client = await RawClient.connect(server.addr);
  await client.send("GET / HTTP/1.1\r\nHost: x\r\n\r\n");
  assertEquals(header(await client.readResponse(), "connection"), "keep-alive");
  // A long grace: the connection is closed because of the response.
  const drained = server.binding.drain(60_000);
  await client.send("GET / HTTP/1.1\r\nHost: x\r\n\r\n");
  const response = await client.readResponse();
  assertEquals(text(response), "bye");
  assertEquals(header(response, "connection"), "close");
  assert(await client.closedByPeer());
  await drained;
});

Deno.test("node engine: abort() closes every connection", async () => {
  const started = deferred();
  await using server = await startServer(() => {
    started.resolve();
    return new Promise<Response>(() => {});
  });
  using client = await RawClient.connect(server.addr);
  await client.send("GET / HTTP/1.1\r\nHost: x\r\n\r\n");
  await started.promise;
  assertEquals(server.binding.inFlight, 1);
  server.binding.abort();
  assert(await client.closedByPeer());
  await server.binding.drain(0);
  assertEquals(server.binding.connections, 0);
  assertEquals(server.binding.inFlight, 0);
});

Deno.test("node engine: bad request target gets 400", async () => {
  await using server = await startServer(() => new Response("unreachable"));
  using client = await RawClient.connect(server.addr);
  await client.send("GET / HTTP/1.1\r\nHost: bad host\r\n\r\n");
  const response = await client.readResponse();
  assertEquals(response.status, 400);
  assertMatch(header(response, "connection") ?? "", /close/);
});

Deno.test("node engine: unref() lets the process exit", async () => {
  // A child process serves a listener, unrefs the binding and must then
  // exit on its own; a ref'd binding would keep it alive forever.
  const script = `
    import net from "node:net";
    import { createNodeEngine } from ${
    JSON.stringify(import.meta.resolve("./node.ts"))
  };
    const server = net.createServer();
    await new Promise((resolve) => server.listen(0, "127.0.0.1", resolve));
    const { port } = server.address();
    const fd = server._handle.fdForIpc();
    server.close();
    const binding = createNodeEngine().serve({
      name: "child", fd, inherited: false,
      addr: { transport: "tcp", hostname: "127.0.0.1", port },
    }, {
      handler: () => new Response("child"),
      onError: () => new Response("error", { status: 500 }),
      draining: new AbortController().signal,
    });
    const response = await fetch("http://127.0.0.1:" + port + "/");
    await response.text();
    binding.unref();
    console.log("unrefed");
  `;
  const child = new Deno.Command(Deno.execPath(), {
    args: ["eval", "--ext=ts", script],
    stdout: "piped",
    stderr: "piped",
  }).spawn();
  // Only a guard against hanging forever, not a timing assertion.
  const guard = setTimeout(() => child.kill("SIGKILL"), 60_000);
  try {
    const output = await child.output();
    assertEquals(decoder.decode(output.stderr), "");
    assertEquals(decoder.decode(output.stdout).trim(), "unrefed");
    assertEquals(output.code, 0);
  } finally {
    clearTimeout(guard);
  }
});
