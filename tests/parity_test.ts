/**
 * One table of HTTP behaviours, run against Deno.serve itself (the oracle)
 * and against serveGraceful on each engine. Every case observes what a client
 * sees and normalises it; the engines must observe exactly what Deno.serve
 * does.
 */

import { serveGraceful } from "../mod.ts";
import type { GracefulHandler } from "../src/types.ts";
import { assertEquals } from "./assert.ts";
import { rawExchange, type RawResponse } from "./http_client.ts";

interface Started {
  port: number;
  close(): Promise<void>;
}

interface Target {
  name: string;
  start(
    handler: GracefulHandler,
    onError?: (error: unknown) => Response,
  ): Promise<Started>;
}

const quiet = () => {};

const targets: Target[] = [
  {
    name: "Deno.serve",
    start(handler, onError) {
      const server = Deno.serve({
        port: 0,
        hostname: "127.0.0.1",
        onListen: quiet,
        onError,
      }, (req, info) =>
        handler(req, {
          remoteAddr: info.remoteAddr,
          get completed() {
            return info.completed;
          },
          draining: new AbortController().signal,
        }));
      return Promise.resolve({
        port: server.addr.port,
        close: () => server.shutdown(),
      });
    },
  },
  ...(["native", "node"] as const).map((engine): Target => ({
    name: engine,
    async start(handler, onError) {
      const server = serveGraceful({
        engine,
        port: 0,
        hostname: "127.0.0.1",
        onListen: quiet,
        onError,
        shutdownSignals: false,
        idleGrace: 0,
        drainTimeout: 2000,
      }, handler);
      await server.ready;
      assertEquals(server.engines, [engine]);
      const addr = server.addr as Deno.NetAddr;
      return { port: addr.port, close: () => server.shutdown() };
    },
  })),
];

/** What one case observes; compared with deep equality across targets. */
type Observation = unknown;

interface Case {
  name: string;
  handler: GracefulHandler;
  onError?: (error: unknown) => Response;
  observe(port: number): Promise<Observation>;
}

function summary(res: RawResponse) {
  return {
    status: res.status,
    contentLength: res.headers.get("content-length"),
    chunked: /chunked/i.test(res.headers.get("transfer-encoding") ?? ""),
    body: res.body,
  };
}

async function sha256(
  data: Uint8Array<ArrayBuffer> | ArrayBuffer,
): Promise<string> {
  const digest = await crypto.subtle.digest("SHA-256", data);
  return Array.from(
    new Uint8Array(digest),
    (b) => b.toString(16).padStart(2, "0"),
  )
    .join("");
}

function pattern(size: number): Uint8Array<ArrayBuffer> {
  const data = new Uint8Array(size);
  for (let i = 0; i < size; i++) data[i] = (i * 31 + 7) & 0xff;
  return data;
}

const MB = 1024 * 1024;

const cases: Case[] = [
  {
    name: "GET hello",
    handler: () => new Response("Hello!"),
    async observe(port) {
      const res = await fetch(`http://127.0.0.1:${port}/`);
      return {
        status: res.status,
        type: res.headers.get("content-type"),
        body: await res.text(),
      };
    },
  },
  {
    name: "HEAD has headers and no body",
    handler: () => new Response("Hello!", { headers: { "x-a": "1" } }),
    async observe(port) {
      const [res] = await rawExchange(
        port,
        "HEAD / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
        { head: true },
      );
      return { ...summary(res), xa: res.headers.get("x-a") };
    },
  },
  {
    name: "204 and 304 carry no body",
    handler: (req) =>
      new Response(null, { status: req.url.endsWith("/204") ? 204 : 304 }),
    async observe(port) {
      const out = [];
      for (const path of ["/204", "/304"]) {
        const [res] = await rawExchange(
          port,
          `GET ${path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n`,
        );
        out.push({ status: res.status, body: res.body });
      }
      return out;
    },
  },
  {
    name: "5 MB upload",
    handler: async (req) => {
      const body = await req.arrayBuffer();
      return Response.json({
        length: body.byteLength,
        sha: await sha256(body),
      });
    },
    async observe(port) {
      const res = await fetch(`http://127.0.0.1:${port}/`, {
        method: "POST",
        body: pattern(5 * MB),
      });
      return { status: res.status, body: await res.json() };
    },
  },
  {
    name: "chunked streaming upload",
    handler: async (req) => {
      let length = 0;
      let chunks = 0;
      for await (const chunk of req.body!) {
        length += chunk.byteLength;
        chunks++;
      }
      return Response.json({ length, some: chunks > 0 });
    },
    async observe(port) {
      const body = new ReadableStream<Uint8Array>({
        async start(controller) {
          for (let i = 0; i < 20; i++) {
            controller.enqueue(pattern(64 * 1024));
            await new Promise((r) => setTimeout(r, 1));
          }
          controller.close();
        },
      });
      const res = await fetch(`http://127.0.0.1:${port}/`, {
        method: "POST",
        body,
      });
      return { status: res.status, body: await res.json() };
    },
  },
  {
    name: "streaming response",
    handler: () => {
      let i = 0;
      const body = new ReadableStream<Uint8Array>({
        async pull(controller) {
          await new Promise((r) => setTimeout(r, 2));
          if (i++ < 5) {
            controller.enqueue(new TextEncoder().encode(`part${i};`));
          } else controller.close();
        },
      });
      return new Response(body, { headers: { "content-type": "text/plain" } });
    },
    async observe(port) {
      const [res] = await rawExchange(
        port,
        "GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
      );
      return summary(res);
    },
  },
  {
    name: "8 MB response",
    handler: () => new Response(pattern(8 * MB)),
    async observe(port) {
      const res = await fetch(`http://127.0.0.1:${port}/`);
      const body = await res.arrayBuffer();
      return {
        status: res.status,
        length: body.byteLength,
        sha: await sha256(body),
      };
    },
  },
  {
    name: "multi-value request headers",
    handler: (req) =>
      Response.json({
        multi: req.headers.get("x-multi"),
        cookie: req.headers.get("cookie"),
      }),
    async observe(port) {
      const [res] = await rawExchange(
        port,
        "GET / HTTP/1.1\r\nHost: x\r\nX-Multi: a\r\nX-Multi: b\r\n" +
          "Cookie: c=1\r\nConnection: close\r\n\r\n",
      );
      return { status: res.status, body: JSON.parse(res.body) };
    },
  },
  {
    name: "several Set-Cookie headers",
    handler: () => {
      const headers = new Headers();
      headers.append("set-cookie", "a=1; Path=/");
      headers.append("set-cookie", "b=2; HttpOnly");
      return new Response("ok", { headers });
    },
    async observe(port) {
      const res = await fetch(`http://127.0.0.1:${port}/`);
      await res.body?.cancel();
      return res.headers.getSetCookie();
    },
  },
  {
    name: "info.remoteAddr is the client's address and port",
    handler: (_req, info) => Response.json(info.remoteAddr),
    async observe(port) {
      const conn = await Deno.connect({ hostname: "127.0.0.1", port });
      const local = conn.localAddr as Deno.NetAddr;
      const [res] = await rawExchange(
        conn,
        "GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
      );
      const seen = JSON.parse(res.body);
      return {
        transport: seen.transport,
        hostname: seen.hostname,
        samePort: seen.port === local.port,
      };
    },
  },
  {
    name: "request.signal aborts when the client disconnects",
    handler: (() => {
      let aborted = Promise.withResolvers<string>();
      return async (req: Request) => {
        if (req.url.endsWith("/result")) {
          const result = await aborted.promise;
          aborted = Promise.withResolvers<string>();
          return new Response(result);
        }
        // This request's own slot: a late timer of an earlier target must not
        // answer for the next one.
        const slot = aborted;
        const timer = Promise.withResolvers<void>();
        const id = setTimeout(timer.resolve, 5000);
        req.signal.addEventListener("abort", () => {
          slot.resolve("aborted");
          clearTimeout(id);
          timer.resolve();
        });
        await timer.promise;
        slot.resolve("not aborted");
        return new Response("late");
      };
    })(),
    async observe(port) {
      const conn = await Deno.connect({ hostname: "127.0.0.1", port });
      await conn.write(
        new TextEncoder().encode("GET /wait HTTP/1.1\r\nHost: x\r\n\r\n"),
      );
      await new Promise((r) => setTimeout(r, 100));
      conn.close();
      const res = await fetch(`http://127.0.0.1:${port}/result`);
      return await res.text();
    },
  },
  {
    name: "info.completed resolves after the response is sent",
    handler: (() => {
      let completed = Promise.withResolvers<string>();
      return async (req: Request, info) => {
        if (req.url.endsWith("/result")) {
          const result = await completed.promise;
          completed = Promise.withResolvers<string>();
          return new Response(result);
        }
        info.completed.then(
          () => completed.resolve("completed"),
          () => completed.resolve("failed"),
        );
        return new Response("body");
      };
    })() as GracefulHandler,
    async observe(port) {
      const first = await fetch(`http://127.0.0.1:${port}/`);
      await first.text();
      const res = await fetch(`http://127.0.0.1:${port}/result`);
      return await res.text();
    },
  },
  {
    name: "WebSocket upgrade through Deno.upgradeWebSocket",
    handler: (req) => {
      if (req.headers.get("upgrade") !== "websocket") {
        return new Response("not ws", { status: 400 });
      }
      const { socket, response } = Deno.upgradeWebSocket(req);
      socket.onmessage = (e) => socket.send(`echo:${e.data}`);
      return response;
    },
    async observe(port) {
      const ws = new WebSocket(`ws://127.0.0.1:${port}/`);
      const got: string[] = [];
      const done = Promise.withResolvers<void>();
      ws.onmessage = (e) => {
        got.push(e.data);
        if (got.length === 1) {
          // A second message after a pause: the socket must outlive the
          // HTTP connection it came from.
          setTimeout(() => ws.send("two"), 200);
        } else {
          ws.close();
        }
      };
      ws.onclose = () => done.resolve();
      ws.onerror = () => {
        got.push("error");
        done.resolve();
      };
      ws.onopen = () => ws.send("one");
      await done.promise;
      return got;
    },
  },
  {
    name: "a throwing handler becomes onError's response",
    handler: () => {
      throw new Error("boom");
    },
    onError: (error) =>
      new Response(`custom: ${(error as Error).message}`, { status: 500 }),
    async observe(port) {
      const res = await fetch(`http://127.0.0.1:${port}/`);
      return { status: res.status, body: await res.text() };
    },
  },
  {
    name: "pipelined keep-alive requests are answered in order",
    handler: (req) => new Response(new URL(req.url).pathname),
    async observe(port) {
      const responses = await rawExchange(
        port,
        "GET /a HTTP/1.1\r\nHost: x\r\n\r\nGET /b HTTP/1.1\r\nHost: x\r\n\r\n" +
          "GET /c HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
        { count: 3 },
      );
      return responses.map((r) => `${r.status} ${r.body}`);
    },
  },
  {
    name: "malformed request gets 400 or a closed connection",
    handler: () => new Response("should not be called"),
    async observe(port) {
      const responses = await rawExchange(port, "GARBAGE\r\n\r\n");
      return responses.length === 0 ? "closed" : responses[0].status;
    },
  },
];

for (const c of cases) {
  Deno.test(`parity: ${c.name}`, async (t) => {
    const seen = new Map<string, Observation>();
    for (const target of targets) {
      await t.step(target.name, async () => {
        const server = await target.start(c.handler, c.onError);
        try {
          seen.set(target.name, await c.observe(server.port));
        } finally {
          await server.close();
        }
      });
    }
    const oracle = seen.get("Deno.serve");
    for (const target of targets.slice(1)) {
      assertEquals(
        seen.get(target.name),
        oracle,
        `${target.name} differs from Deno.serve`,
      );
    }
  });
}
