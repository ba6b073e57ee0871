/**
 * The admin router's tests' harness: the router over real HTTP (Deno.serve
 * on 127.0.0.1), with a fake process behind it that records what it is
 * asked to do. Non-loopback clients are simulated by calling
 * `router.handle` with another `remoteAddr` ({@linkcode direct}).
 *
 * @module
 */

import { assert, assertEquals } from "./assert.ts";
import {
  type AdminOptions,
  type AdminRouter,
  createAdmin,
} from "../src/server/admin.ts";
import type {
  AdminDeps,
  AdminRestartRequest,
} from "../src/server/admin_actions.ts";
import type { AdminStatus } from "../src/server/admin_status.ts";
import {
  type LastRestart,
  RestartError,
} from "../src/restart/handover_types.ts";

/** A valid admin token. */
export const TOKEN = "s3cret-admin-token-0123456789";
/** A loopback client. */
export const LOOPBACK: Deno.NetAddr = {
  transport: "tcp",
  hostname: "127.0.0.1",
  port: 50000,
};
/** A client that is not on loopback. */
export const REMOTE: Deno.NetAddr = {
  transport: "tcp",
  hostname: "10.1.2.3",
  port: 1,
};

/**
 * A process as the router sees it: the status it reports, and the restarts
 * and shutdowns it was asked for. A successful restart makes it report the
 * new generation, as the process answering on the same sockets would.
 */
export class FakeProcess implements AdminDeps {
  pid = 48211;
  nextPid = 48377;
  generation = 5;
  restarts = 4;
  startedAt = Date.now() - (3 * 3600 + 12 * 60) * 1000;
  firstStartedAt = Date.now() - (2 * 86400 + 5 * 3600) * 1000;
  phase = "serving";
  lastRestart: LastRestart | undefined;
  /** When set, the next restarts fail with this reason. */
  failWith: string | undefined;
  restartDelayMs = 0;
  restartCalls: AdminRestartRequest[] = [];
  shutdownCalls = 0;

  status(): AdminStatus {
    return {
      pid: this.pid,
      generation: this.generation,
      startedAt: this.startedAt,
      firstStartedAt: this.firstStartedAt,
      restarts: this.restarts,
      phase: this.phase,
      listeners: ["0.0.0.0:8199", "[::1]:8199", "unix:/run/myapp.sock"],
      inFlight: 3,
      connections: 7,
      lastRestart: this.lastRestart,
    };
  }

  async restart(
    options: AdminRestartRequest,
  ): Promise<{ pid: number; generation: number }> {
    this.restartCalls.push(options);
    const at = Date.now();
    this.phase = "spawning";
    await new Promise((resolve) => setTimeout(resolve, this.restartDelayMs));
    if (this.failWith) {
      this.phase = "serving";
      this.lastRestart = {
        ok: false,
        trigger: options.trigger,
        at,
        durationMs: Date.now() - at,
        reason: this.failWith,
      };
      throw new RestartError(this.failWith);
    }
    // From now on the new generation answers; it has attempted no restart.
    this.pid = this.nextPid;
    this.generation += 1;
    this.restarts += 1;
    this.startedAt = Date.now();
    this.phase = "serving";
    this.lastRestart = undefined;
    return { pid: this.pid, generation: this.generation };
  }

  shutdown(): void {
    this.shutdownCalls++;
  }
}

/** A router served on 127.0.0.1, with a fake process behind it. */
export interface Harness {
  origin: string;
  base: string;
  fake: FakeProcess;
  router: AdminRouter;
  /** Requests that reached the app handler. */
  appHits: string[];
  /** Content-Length and Transfer-Encoding of each request, as the server saw them. */
  seen: { contentLength: string | null; transferEncoding: string | null }[];
  /** Fetches path (relative to origin) and reads the whole body. */
  call(path: string, init?: RequestInit): Promise<Reply>;
  /** POSTs to an action with the right CSRF header (and token, if any). */
  action(name: string, init?: RequestInit): Promise<Reply>;
  /** The CSRF token, as the status route reveals it. */
  csrf(): Promise<string>;
}

/** A response, read whole. */
export interface Reply {
  status: number;
  headers: Headers;
  text: string;
  // deno-lint-ignore no-explicit-any
  json: any;
}

/** Reads a whole response (JSON when it parses). */
export async function read(response: Response): Promise<Reply> {
  const text = await response.text();
  let json: unknown;
  try {
    json = JSON.parse(text);
  } catch {
    json = undefined;
  }
  return { status: response.status, headers: response.headers, text, json };
}

/** Runs `fn` against a router served by Deno.serve on 127.0.0.1:0. */
export async function withAdmin(
  options: AdminOptions,
  fn: (h: Harness) => Promise<void>,
  fake = new FakeProcess(),
): Promise<void> {
  const router = createAdmin(options, fake);
  const appHits: string[] = [];
  const seen: Harness["seen"] = [];
  const server = Deno.serve(
    { port: 0, hostname: "127.0.0.1", onListen() {} },
    (request, info) => {
      seen.push({
        contentLength: request.headers.get("content-length"),
        transferEncoding: request.headers.get("transfer-encoding"),
      });
      return router.handle(request, info) ??
        (appHits.push(new URL(request.url).pathname), new Response("app"));
    },
  );
  const origin = `http://127.0.0.1:${server.addr.port}`;
  const base = origin + router.path;
  const auth: Record<string, string> = options.token
    ? { authorization: `Bearer ${options.token}` }
    : {};
  let csrf: string | undefined;
  const h: Harness = {
    origin,
    base,
    fake,
    router,
    appHits,
    seen,
    async call(path, init) {
      return await read(await fetch(origin + path, init));
    },
    async csrf() {
      if (csrf) return csrf;
      const reply = await h.call(router.path + "/status", { headers: auth });
      assertEquals(reply.status, 200);
      csrf = reply.headers.get("x-admin-csrf") ?? "";
      return csrf;
    },
    async action(name, init = {}) {
      const headers = new Headers(init.headers);
      for (const [k, v] of Object.entries(auth)) {
        if (!headers.has(k)) headers.set(k, v);
      }
      if (!headers.has("x-admin-csrf")) {
        headers.set("x-admin-csrf", await h.csrf());
      }
      return await h.call(`${router.path}/${name}`, {
        method: "POST",
        ...init,
        headers,
      });
    },
  };
  try {
    await fn(h);
  } finally {
    await server.shutdown();
  }
}

/** Calls the router directly, e.g. as a client that is not on loopback. */
export async function direct(
  router: AdminRouter,
  url: string,
  init: RequestInit = {},
  remoteAddr: Deno.Addr = REMOTE,
  completed?: Promise<void>,
): Promise<Reply> {
  const response = router.handle(new Request(url, init), {
    remoteAddr,
    completed,
  });
  assert(response, `the router did not take ${url}`);
  return await read(await response);
}

/** Polls `check` until it holds (a guard against hanging, not a timing assertion). */
export async function waitFor(
  what: string,
  check: () => boolean | Promise<boolean>,
  timeoutMs = 10_000,
): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!(await check())) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 25));
  }
}

/** The headers every admin response carries. */
export function assertSafeHeaders(reply: Reply, what: string): void {
  assertEquals(reply.headers.get("cache-control"), "no-store", what);
  assertEquals(reply.headers.get("x-content-type-options"), "nosniff", what);
  assertEquals(reply.headers.get("x-frame-options"), "DENY", what);
  assert(reply.headers.get("access-control-allow-origin") === null, what);
}
