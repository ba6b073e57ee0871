import net from "node:net";
import { assert, assertEquals, assertMatch } from "../../tests/assert.ts";
import { createNodeEngine } from "./node.ts";
import { closeFd } from "../os/fd.ts";
import { listenUnix } from "../os/socket.ts";
import { selfSignedCert } from "../../bench/lib/tls_cert.ts";
import type {
  Addr,
  EngineBinding,
  ErrorHandler,
  GracefulHandler,
  Listener,
  TlsOptions,
} from "../listen/types.ts";

// ---------------------------------------------------------------------------
// Helpers
// ---------------------------------------------------------------------------

interface TestServer extends AsyncDisposable {
  binding: EngineBinding;
  addr: Addr;
  /** The TCP port (0 for unix sockets). */
  port: number;
  /** "http://127.0.0.1:PORT" (or https://localhost:PORT). */
  origin: string;
  /** Aborts the `draining` signal handed to the engine. */
  draining: AbortController;
  /**
   * `binding.stopAccepting()`, then closes the fd duplicated by fdForIpc(),
   * as the listeners module does: until then the socket still listens.
   */
  stopAccepting(): Promise<void>;
}

interface StartOptions {
  onError?: ErrorHandler;
  tls?: TlsOptions;
  /** Listen on this unix socket path instead of 127.0.0.1:0. */
  path?: string;
}

function listen(server: net.Server, path?: string): Promise<void> {
  return new Promise((resolve, reject) => {
    server.once("error", reject);
    if (path !== undefined) server.listen(path, resolve);
    else server.listen(0, "127.0.0.1", resolve);
  });
}

async function startServer(
  handler: GracefulHandler,
  options: StartOptions = {},
): Promise<TestServer> {
  let listener: Listener;
  let port = 0;
  if (options.path !== undefined) {
    // node:net removes a unix socket's path when it closes: the socket is
    // made without it.
    const fd = listenUnix(options.path);
    if (typeof fd === "string") throw new Error(fd);
    const addr: Addr = { transport: "unix", path: options.path };
    listener = { name: "test", fd, addr, inherited: false };
  } else {
    const server = net.createServer();
    await listen(server);
    const address = server.address() as net.AddressInfo;
    port = address.port;
    listener = {
      name: "test",
      // deno-lint-ignore no-explicit-any
      fd: (server as any)._handle.fdForIpc(),
      addr: { transport: "tcp", hostname: address.address, port },
      inherited: false,
    };
    // The engine accepts on a copy of the fd; this server must not.
    server.close();
  }
  const addr = listener.addr;
  const draining = new AbortController();
  const binding = createNodeEngine().serve(listener, {
    handler,
    onError: options.onError ??
      ((error) => new Response(`onError: ${error}`, { status: 500 })),
    tls: options.tls,
    draining: draining.signal,
  });
  let fdClosed = false;
  async function stopAccepting(): Promise<void> {
    await binding.stopAccepting();
    if (!fdClosed) {
      fdClosed = true;
      closeFd(listener.fd);
    }
  }
  const origin = options.tls !== undefined
    ? `https://localhost:${port}`
    : `http://127.0.0.1:${port}`;
  return {
    binding,
    addr,
    port,
    origin,
    draining,
    stopAccepting,
    async [Symbol.asyncDispose]() {
      await stopAccepting();
      binding.abort();
      await binding.drain(0);
    },
  };
}

type Bytes = Uint8Array<ArrayBuffer>;

const encoder = new TextEncoder();
const decoder = new TextDecoder();

interface RawResponse {
  status: number;
  reason: string;
  /** Header lines as sent, names lowercased. */
  headers: [string, string][];
  body: Bytes;
}

function header(response: RawResponse, name: string): string | undefined {
  return response.headers.find(([key]) => key === name)?.[1];
}

function concat(a: Uint8Array, b: Uint8Array): Bytes {
  const out = new Uint8Array(a.length + b.length);
  out.set(a);
  out.set(b, a.length);
  return out;
}

function indexOfSequence(haystack: Uint8Array, needle: Uint8Array): number {
  outer: for (let i = 0; i + needle.length <= haystack.length; i++) {
    for (let j = 0; j < needle.length; j++) {
      if (haystack[i + j] !== needle[j]) continue outer;
    }
    return i;
  }
  return -1;
}

/** A minimal HTTP/1.1 client over a raw connection, to see the wire. */
class RawClient {
  readonly conn: Deno.Conn;
  #buffer: Bytes = new Uint8Array(0);
  #eof = false;

  constructor(conn: Deno.Conn) {
    this.conn = conn;
  }

  static async connect(addr: Addr): Promise<RawClient> {
    const conn = "path" in addr
      ? await Deno.connect({ transport: "unix", path: addr.path })
      : await Deno.connect({ hostname: addr.hostname, port: addr.port });
    return new RawClient(conn);
  }

  async send(text: string | Uint8Array): Promise<void> {
    const bytes = typeof text === "string" ? encoder.encode(text) : text;
    let written = 0;
    while (written < bytes.length) {
      written += await this.conn.write(bytes.subarray(written));
    }
  }

  /** Reads more bytes; false at EOF (or when the peer reset). */
  async #fill(): Promise<boolean> {
    if (this.#eof) return false;
    const chunk = new Uint8Array(64 * 1024);
    let n: number | null;
    try {
      n = await this.conn.read(chunk);
    } catch (error) {
      if (error instanceof Deno.errors.ConnectionReset) n = null;
      else throw error;
    }
    if (n === null) {
      this.#eof = true;
      return false;
    }
    this.#buffer = concat(this.#buffer, chunk.subarray(0, n));
    return true;
  }

  async #take(length: number): Promise<Bytes> {
    while (this.#buffer.length < length) {
      if (!await this.#fill()) throw new Error("unexpected EOF");
    }
    const out = this.#buffer.slice(0, length);
    this.#buffer = this.#buffer.slice(length);
    return out;
  }

  async #line(): Promise<string> {
    const crlf = encoder.encode("\r\n");
    for (;;) {
      const index = indexOfSequence(this.#buffer, crlf);
      if (index !== -1) {
        const line = decoder.decode(this.#buffer.subarray(0, index));
        this.#buffer = this.#buffer.slice(index + 2);
        return line;
      }
      if (!await this.#fill()) throw new Error("unexpected EOF");
    }
  }

  /** Reads the status line and headers of the next response. */
  async readHead(): Promise<RawResponse> {
    const statusLine = await this.#line();
    const match = /^HTTP\/1\.1 (\d{3}) ?(.*)$/.exec(statusLine);
    if (match === null) throw new Error(`bad status line: ${statusLine}`);
    const headers: [string, string][] = [];
    for (;;) {
      const line = await this.#line();
      if (line === "") break;
      const colon = line.indexOf(":");
      headers.push([
        line.slice(0, colon).toLowerCase(),
        line.slice(colon + 1).trim(),
      ]);
    }
    return {
      status: Number(match[1]),
      reason: match[2],
      headers,
      body: new Uint8Array(0),
    };
  }

  /** Reads one whole response; `head` is true for responses to HEAD. */
  async readResponse(head = false): Promise<RawResponse> {
    const response = await this.readHead();
    const status = response.status;
    if (head || status === 204 || status === 304 || status < 200) {
      return response;
    }
    const length = header(response, "content-length");
    if (header(response, "transfer-encoding") === "chunked") {
      let body: Bytes = new Uint8Array(0);
      for (;;) {
        const size = parseInt(await this.#line(), 16);
        if (size === 0) {
          await this.#line();
          break;
        }
        body = concat(body, await this.#take(size));
        await this.#line();
      }
      response.body = body;
    } else if (length !== undefined) {
      response.body = await this.#take(Number(length));
    } else {
      while (await this.#fill());
      response.body = this.#buffer;
      this.#buffer = new Uint8Array(0);
    }
    return response;
  }

  /** Resolves true once the server closed the connection. */
  async closedByPeer(): Promise<boolean> {
    while (await this.#fill());
    return this.#buffer.length === 0;
  }

  close(): void {
    try {
      this.conn.close();
    } catch {
      // Already closed.
    }
  }

  [Symbol.dispose](): void {
    this.close();
  }
}

function text(response: RawResponse): string {
  return decoder.decode(response.body);
}

/** A promise with its resolvers, for handlers the test steers. */
function deferred<T = void>(): PromiseWithResolvers<T> {
  return Promise.withResolvers<T>();
}

async function sha256(data: Bytes): Promise<string> {
  const digest = await crypto.subtle.digest("SHA-256", data);
  return Array.from(new Uint8Array(digest), (b) => b.toString(16)).join("");
}

function randomBytes(size: number): Bytes {
  const bytes = new Uint8Array(size);
  for (let offset = 0; offset < size; offset += 65536) {
    crypto.getRandomValues(bytes.subarray(offset, offset + 65536));
  }
  return bytes;
}

// ---------------------------------------------------------------------------
// Requests and responses
// ---------------------------------------------------------------------------

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

// ---------------------------------------------------------------------------
// WebSockets
// ---------------------------------------------------------------------------

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

// ---------------------------------------------------------------------------
// Unix sockets and TLS
// ---------------------------------------------------------------------------

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

// ---------------------------------------------------------------------------
// Draining
// ---------------------------------------------------------------------------

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
