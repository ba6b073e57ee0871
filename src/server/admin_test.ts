/**
 * The admin router over real HTTP (Deno.serve on 127.0.0.1), with a fake
 * process behind it that records what it is asked to do. Non-loopback clients
 * are simulated by calling `router.handle` with another `remoteAddr`. The
 * browser tests drive headless Chromium (skipped when it is not installed).
 */

import { assert, assertEquals, assertMatch } from "../../tests/assert.ts";
import {
  ADMIN_MAX_QUERY_BYTES,
  type AdminOptions,
  type AdminRouter,
  createAdmin,
} from "./admin.ts";
import type { AdminDeps, AdminRestartRequest } from "./admin_actions.ts";
import type { AdminStatus } from "./admin_status.ts";
import { type LastRestart, RestartError } from "../restart/handover.ts";
import {
  CHROMIUM as CHROMIUM_CAPABILITY,
  CHROMIUM_PATH,
  has,
} from "../../tests/capabilities.ts";

const TOKEN = "s3cret-admin-token-0123456789";
const LOOPBACK: Deno.NetAddr = {
  transport: "tcp",
  hostname: "127.0.0.1",
  port: 50000,
};
const REMOTE: Deno.NetAddr = {
  transport: "tcp",
  hostname: "10.1.2.3",
  port: 1,
};

/**
 * A process as the router sees it: the status it reports, and the restarts
 * and shutdowns it was asked for. A successful restart makes it report the
 * new generation, as the process answering on the same sockets would.
 */
class FakeProcess implements AdminDeps {
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

interface Harness {
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

interface Reply {
  status: number;
  headers: Headers;
  text: string;
  // deno-lint-ignore no-explicit-any
  json: any;
}

async function read(response: Response): Promise<Reply> {
  const text = await response.text();
  let json: unknown;
  try {
    json = JSON.parse(text);
  } catch {
    json = undefined;
  }
  return { status: response.status, headers: response.headers, text, json };
}

async function withAdmin(
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
async function direct(
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

async function waitFor(
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

function assertSafeHeaders(reply: Reply, what: string): void {
  assertEquals(reply.headers.get("cache-control"), "no-store", what);
  assertEquals(reply.headers.get("x-content-type-options"), "nosniff", what);
  assertEquals(reply.headers.get("x-frame-options"), "DENY", what);
  assert(reply.headers.get("access-control-allow-origin") === null, what);
}

// ---------------------------------------------------------------------------
// Options

Deno.test("admin: options are validated and the path normalised", () => {
  const fake = new FakeProcess();
  assertEquals(createAdmin({}, fake).path, "/debug/admin");
  assertEquals(createAdmin({ path: "/ops/admin/" }, fake).path, "/ops/admin");
  for (const path of ["/", "", "admin", "/a/../b", "/a b", "/a?x", "//"]) {
    let threw = false;
    try {
      createAdmin({ path }, fake);
    } catch (error) {
      threw = error instanceof TypeError;
    }
    assert(threw, `path ${JSON.stringify(path)} should be refused`);
  }
  for (
    const token of [
      "",
      "short",
      "has a space in it here",
      "tab\there-0123456789",
    ]
  ) {
    let threw = false;
    try {
      createAdmin({ token }, fake);
    } catch (error) {
      threw = error instanceof TypeError;
    }
    assert(threw, `token ${JSON.stringify(token)} should be refused`);
  }
  let threw = false;
  try {
    createAdmin({ maxBodyBytes: -1 }, fake);
  } catch (error) {
    threw = error instanceof TypeError;
  }
  assert(threw, "a negative maxBodyBytes should be refused");
});

// ---------------------------------------------------------------------------
// The page

Deno.test("admin: the page shows the process and is locked down", async () => {
  await withAdmin({}, async (h) => {
    const reply = await h.call("/debug/admin");
    assertEquals(reply.status, 200);
    assertSafeHeaders(reply, "page");
    assertMatch(reply.headers.get("content-type")!, /^text\/html/);
    const csp = reply.headers.get("content-security-policy")!;
    const nonce = csp.match(/script-src 'nonce-([0-9a-f]{32})'/)?.[1];
    assert(nonce, `no script nonce in ${csp}`);
    assert(csp.includes(`style-src 'nonce-${nonce}'`), csp);
    for (
      const directive of [
        "default-src 'none'",
        "connect-src 'self'",
        "frame-ancestors 'none'",
        "form-action 'none'",
        "base-uri 'none'",
      ]
    ) {
      assert(csp.includes(directive), `${directive} missing from ${csp}`);
    }
    const html = reply.text;
    // Every script and style carries this response's nonce.
    const scripts = html.match(/<script\b[^>]*>/g) ?? [];
    const styles = html.match(/<style\b[^>]*>/g) ?? [];
    assert(scripts.length >= 1 && styles.length >= 1);
    for (const tag of [...scripts, ...styles]) {
      assert(tag.includes(`nonce="${nonce}"`), `${tag} lacks the nonce`);
    }
    // Self-contained: nothing to load from anywhere.
    for (
      const pattern of [/\bsrc=/, /<link\b/, /url\(/, /@import/, /https?:/]
    ) {
      assert(!pattern.test(html), `page contains ${pattern}`);
    }
    assert(!/\sstyle=/.test(html), "inline style attributes break the CSP");
    // The process, rendered at once.
    assertMatch(html, /id="pid">48211</);
    assertMatch(html, /id="generation">5</);
    assertMatch(html, /id="uptime">3 h 12 min</);
    assertMatch(html, /id="restarts">4</);
    assertMatch(html, /id="inflight">3</);
    assertMatch(html, /<li>\[::1\]:8199<\/li>/);
    assertMatch(
      html,
      /id="last-restart"[^>]*>none since this generation took over \(restart #4\)</,
    );
    assertMatch(html, /<button[^>]*id="restart"[^>]*>Restart</);
    assertMatch(html, /<button[^>]*id="shutdown"[^>]*>Shutdown</);
    // The CSRF token it embeds is the one actions need.
    const csrf = html.match(/name="admin-csrf" content="([0-9a-f]{64})"/)?.[1];
    assertEquals(csrf, await h.csrf());
    assertMatch(html, /name="admin-auth" content="loopback"/);
    assertMatch(html, /name="admin-base" content="\/debug\/admin"/);
    assertMatch(html, /id="token-form" class="card hidden"/);

    // A fresh nonce per response; the same CSRF token.
    const again = await h.call("/debug/admin/");
    assertEquals(again.status, 200);
    const nonce2 = again.headers.get("content-security-policy")!
      .match(/'nonce-([0-9a-f]+)'/)?.[1];
    assert(nonce2 && nonce2 !== nonce, "the nonce must change per response");
    assert(again.text.includes(`content="${csrf}"`));

    const head = await h.call("/debug/admin", { method: "HEAD" });
    assertEquals(head.status, 200);
    assertEquals(head.text, "");
    assertEquals(h.appHits, []);
  });
});

Deno.test("admin: values on the page are HTML-escaped", async () => {
  const fake = new FakeProcess();
  fake.status = () => ({
    ...FakeProcess.prototype.status.call(fake),
    listeners: ['unix:/tmp/<script>alert("x")</script>'],
    phase: "<b>odd</b>",
  });
  await withAdmin({}, async (h) => {
    const html = (await h.call("/debug/admin")).text;
    assert(!html.includes("<script>alert"), "a listener was not escaped");
    assert(!html.includes("<b>odd"), "the phase was not escaped");
    assert(html.includes("&#60;script&#62;alert(&#34;x&#34;)"));
  }, fake);
});

// ---------------------------------------------------------------------------
// Status

Deno.test("admin: status is JSON with the process's facts", async () => {
  await withAdmin({}, async (h) => {
    const reply = await h.call("/debug/admin/status");
    assertEquals(reply.status, 200);
    assertSafeHeaders(reply, "status");
    assertMatch(reply.headers.get("content-type")!, /^application\/json/);
    assertMatch(reply.headers.get("x-admin-csrf")!, /^[0-9a-f]{64}$/);
    const s = reply.json;
    for (
      const key of [
        "pid",
        "generation",
        "startedAt",
        "firstStartedAt",
        "restarts",
        "listeners",
        "inFlight",
        "connections",
        "phase",
        "lastRestart",
        "uptimeMs",
      ]
    ) {
      assert(key in s, `status lacks ${key}`);
    }
    assertEquals(s.pid, 48211);
    assertEquals(s.generation, 5);
    assertEquals(s.restarts, 4);
    assertEquals(s.phase, "serving");
    assertEquals(s.listeners, [
      "0.0.0.0:8199",
      "[::1]:8199",
      "unix:/run/myapp.sock",
    ]);
    assertEquals(s.inFlight, 3);
    assertEquals(s.connections, 7);
    assertEquals(s.lastRestart, null);
    assertEquals(s.startedAt, h.fake.startedAt);
    assertEquals(s.firstStartedAt, h.fake.firstStartedAt);
    assert(Math.abs(s.uptimeMs - (Date.now() - h.fake.startedAt)) < 5000);
  });
});

// ---------------------------------------------------------------------------
// Actions

Deno.test("admin: restart answers 200 once the new generation serves", async () => {
  const fake = new FakeProcess();
  fake.restartDelayMs = 200;
  await withAdmin({}, async (h) => {
    const started = Date.now();
    const reply = await h.action("restart");
    assert(Date.now() - started >= 150, "answered before the restart ended");
    assertEquals(reply.status, 200);
    assertSafeHeaders(reply, "restart");
    assertEquals(reply.json, { pid: 48377, generation: 6 });
    assertEquals(h.fake.restartCalls, [{ trigger: "admin" }]);
    const status = (await h.call("/debug/admin/status")).json;
    assertEquals([status.pid, status.generation, status.restarts], [
      48377,
      6,
      5,
    ]);
    // A body of {} is the same as none.
    const again = await h.action("restart", {
      body: "{}",
      headers: { "content-type": "application/json" },
    });
    assertEquals(again.status, 200);
    assertEquals(h.fake.restartCalls.length, 2);
  }, fake);
});

Deno.test("admin: a failed restart is 503 with the reason; the old generation serves", async () => {
  const fake = new FakeProcess();
  fake.failWith = "the new generation exited early (code 1)";
  await withAdmin({}, async (h) => {
    const reply = await h.action("restart");
    assertEquals(reply.status, 503);
    assertSafeHeaders(reply, "restart 503");
    assertEquals(reply.json, {
      error: "the new generation exited early (code 1)",
    });
    const status = (await h.call("/debug/admin/status")).json;
    assertEquals(status.pid, 48211);
    assertEquals(status.lastRestart.ok, false);
    assertEquals(status.lastRestart.trigger, "admin");
    assertEquals(
      status.lastRestart.reason,
      "the new generation exited early (code 1)",
    );
  }, fake);
});

Deno.test("admin: shutdown answers 202, then shuts down once", async () => {
  await withAdmin({}, async (h) => {
    const reply = await h.action("shutdown");
    assertEquals(reply.status, 202);
    assertSafeHeaders(reply, "shutdown");
    assertEquals(reply.json, { shutting_down: true });
    await waitFor("deps.shutdown()", () => h.fake.shutdownCalls === 1);
    const again = await h.action("shutdown");
    assertEquals(again.status, 202);
    await new Promise((resolve) => setTimeout(resolve, 50));
    assertEquals(h.fake.shutdownCalls, 1);
  });
});

Deno.test("admin: shutdown waits until the response has been sent", async () => {
  const fake = new FakeProcess();
  const router = createAdmin({}, fake);
  const csrf = (await direct(
    router,
    "http://127.0.0.1/debug/admin/status",
    {},
    LOOPBACK,
  )).headers.get("x-admin-csrf")!;
  const completed = Promise.withResolvers<void>();
  const reply = await direct(
    router,
    "http://127.0.0.1/debug/admin/shutdown",
    { method: "POST", headers: { "x-admin-csrf": csrf } },
    LOOPBACK,
    completed.promise,
  );
  assertEquals(reply.status, 202);
  await new Promise((resolve) => setTimeout(resolve, 50));
  assertEquals(fake.shutdownCalls, 0, "shut down before the response was sent");
  completed.resolve();
  await waitFor("deps.shutdown()", () => fake.shutdownCalls === 1);
});

// ---------------------------------------------------------------------------
// Authentication

Deno.test("admin: with a token, status and actions need it", async () => {
  await withAdmin({ token: TOKEN }, async (h) => {
    const csrf = await h.csrf();

    const missing = await h.call("/debug/admin/status");
    assertEquals(missing.status, 401);
    assertSafeHeaders(missing, "401");
    assertMatch(missing.headers.get("www-authenticate")!, /^Bearer\b/);

    const wrong = await h.call("/debug/admin/status", {
      headers: { authorization: `Bearer ${TOKEN}x` },
    });
    assertEquals(wrong.status, 401);
    assertMatch(wrong.headers.get("www-authenticate")!, /invalid_token/);
    assert(wrong.headers.get("x-admin-csrf") === null);

    const basic = await h.call("/debug/admin/status", {
      headers: { authorization: `Basic ${btoa("admin:" + TOKEN)}` },
    });
    assertEquals(basic.status, 401);

    const right = await h.call("/debug/admin/status", {
      headers: { authorization: `bearer ${TOKEN}` },
    });
    assertEquals(right.status, 200);
    assertEquals(right.json.pid, 48211);

    for (const action of ["restart", "shutdown"]) {
      const none = await h.call(`/debug/admin/${action}`, {
        method: "POST",
        headers: { "x-admin-csrf": csrf },
      });
      assertEquals(none.status, 401, action);
      assertMatch(none.headers.get("www-authenticate")!, /^Bearer\b/);
      const bad = await h.action(action, {
        headers: { authorization: "Bearer not-the-token-0123456789" },
      });
      assertEquals(bad.status, 401, action);
    }
    assertEquals(h.fake.restartCalls.length, 0);
    assertEquals(h.fake.shutdownCalls, 0);

    const ok = await h.action("restart");
    assertEquals(ok.status, 200);
    assertEquals(h.fake.restartCalls, [{ trigger: "admin" }]);
  });
});

Deno.test("admin: with a token, the page asks for it and shows no process data", async () => {
  await withAdmin({ token: TOKEN }, async (h) => {
    const reply = await h.call("/debug/admin");
    assertEquals(reply.status, 200);
    assert(!reply.text.includes("48211"), "the page leaked the pid");
    assert(!reply.text.includes("8199"), "the page leaked the listeners");
    assertMatch(reply.text, /name="admin-auth" content="token"/);
    assertMatch(reply.text, /<form id="token-form" class="card">/);
    assertMatch(reply.text, /<input id="token" type="password"/);
    assert(reply.text.includes("sessionStorage"));
    assert(reply.text.includes('"Bearer "'));
  });
});

Deno.test("admin: with a token, remote clients are served", async () => {
  const fake = new FakeProcess();
  const router = createAdmin({ token: TOKEN }, fake);
  const auth = { authorization: `Bearer ${TOKEN}` };
  const status = await direct(
    router,
    "https://admin.example.com/debug/admin/status",
    { headers: auth },
  );
  assertEquals(status.status, 200);
  const restart = await direct(
    router,
    "https://admin.example.com/debug/admin/restart",
    {
      method: "POST",
      headers: { ...auth, "x-admin-csrf": status.headers.get("x-admin-csrf")! },
    },
  );
  assertEquals(restart.status, 200);
  assertEquals(fake.restartCalls, [{ trigger: "admin" }]);
  const noToken = await direct(
    router,
    "https://admin.example.com/debug/admin/restart",
    { method: "POST" },
  );
  assertEquals(noToken.status, 401);
});

Deno.test("admin: without a token, only loopback clients are served", async () => {
  const fake = new FakeProcess();
  const router = createAdmin({}, fake);
  const csrf = (await direct(
    router,
    "http://127.0.0.1/debug/admin/status",
    {},
    LOOPBACK,
  )).headers.get("x-admin-csrf")!;
  const post = { method: "POST", headers: { "x-admin-csrf": csrf } };

  for (const action of ["restart", "shutdown"]) {
    const reply = await direct(
      router,
      `http://127.0.0.1/debug/admin/${action}`,
      post,
      REMOTE,
    );
    assertEquals(reply.status, 403, action);
    assertSafeHeaders(reply, action);
    assertMatch(reply.json.error, /loopback/);
  }
  for (const path of ["", "/status"]) {
    const reply = await direct(router, `http://127.0.0.1/debug/admin${path}`);
    assertEquals(reply.status, 403, `GET ${path} from a remote client`);
  }
  assertEquals(fake.restartCalls.length, 0);
  await new Promise((resolve) => setTimeout(resolve, 20));
  assertEquals(fake.shutdownCalls, 0);

  const loopbacks: Deno.Addr[] = [
    { transport: "tcp", hostname: "127.0.0.1", port: 1 },
    { transport: "tcp", hostname: "127.200.3.4", port: 1 },
    { transport: "tcp", hostname: "::1", port: 1 },
    { transport: "tcp", hostname: "0:0:0:0:0:0:0:1", port: 1 },
    { transport: "tcp", hostname: "::ffff:127.0.0.1", port: 1 },
    { transport: "tcp", hostname: "::FFFF:7f00:2", port: 1 },
    { transport: "unix", path: "/run/app.sock" },
  ];
  for (const addr of loopbacks) {
    const reply = await direct(
      router,
      "http://localhost/debug/admin/status",
      {},
      addr,
    );
    assertEquals(reply.status, 200, JSON.stringify(addr));
  }
  const remotes: Deno.Addr[] = [
    REMOTE,
    { transport: "tcp", hostname: "128.0.0.1", port: 1 },
    { transport: "tcp", hostname: "::2", port: 1 },
    { transport: "tcp", hostname: "::ffff:10.0.0.1", port: 1 },
    { transport: "tcp", hostname: "::127.0.0.1", port: 1 },
    { transport: "tcp", hostname: "1::1", port: 1 },
    { transport: "tcp", hostname: "127.0.0.1.evil.example", port: 1 },
    { transport: "tcp", hostname: "0.0.0.0", port: 1 },
  ];
  for (const addr of remotes) {
    const reply = await direct(
      router,
      "http://localhost/debug/admin/status",
      {},
      addr,
    );
    assertEquals(reply.status, 403, JSON.stringify(addr));
  }
});

Deno.test("admin: without a token, proxied requests and foreign Host names are refused", async () => {
  const router = createAdmin({}, new FakeProcess());
  for (
    const header of [
      { "x-forwarded-for": "203.0.113.9" } as Record<string, string>,
      { "forwarded": "for=203.0.113.9" },
      { "x-real-ip": "203.0.113.9" },
    ]
  ) {
    const reply = await direct(
      router,
      "http://127.0.0.1/debug/admin/status",
      { headers: header },
      LOOPBACK,
    );
    assertEquals(reply.status, 403, JSON.stringify(header));
    assertMatch(reply.json.error, /proxy/);
  }
  // DNS rebinding: a hostile name resolving to 127.0.0.1.
  for (const url of ["http://evil.example:8000", "http://127.0.0.1.nip.io"]) {
    const reply = await direct(
      router,
      `${url}/debug/admin/status`,
      {},
      LOOPBACK,
    );
    assertEquals(reply.status, 403, url);
    assertMatch(reply.json.error, /Host/);
  }
  for (
    const url of [
      "http://localhost:8000",
      "http://app.localhost",
      "http://[::1]:8000",
      "http://127.0.0.1",
    ]
  ) {
    const reply = await direct(
      router,
      `${url}/debug/admin/status`,
      {},
      LOOPBACK,
    );
    assertEquals(reply.status, 200, url);
  }
  // A unix socket client's Host is whatever it says.
  const unix = await direct(
    router,
    "http://anything/debug/admin/status",
    {},
    { transport: "unix", path: "/run/app.sock" },
  );
  assertEquals(unix.status, 200);
});

// ---------------------------------------------------------------------------
// CSRF

Deno.test("admin: CSRF: cross-site and header-less requests are refused", async () => {
  await withAdmin({}, async (h) => {
    const csrf = await h.csrf();
    const cases: [string, Record<string, string>][] = [
      ["cross-site Origin", { origin: "https://evil.example" }],
      ["Origin on another port", { origin: "http://127.0.0.1:1" }],
      ["opaque Origin", { origin: "null" }],
      ["Sec-Fetch-Site: cross-site", { "sec-fetch-site": "cross-site" }],
      ["Sec-Fetch-Site: same-site", { "sec-fetch-site": "same-site" }],
    ];
    for (const [what, headers] of cases) {
      for (const action of ["restart", "shutdown"]) {
        const reply = await h.action(action, { headers });
        assertEquals(reply.status, 403, `${what} ${action}`);
        assertMatch(reply.json.error, /cross-(site|origin)/);
      }
      const status = await h.call("/debug/admin/status", { headers });
      assertEquals(status.status, 403, `${what} status`);
    }
    const missing = await h.call("/debug/admin/restart", { method: "POST" });
    assertEquals(missing.status, 403);
    assertMatch(missing.json.error, /X-Admin-CSRF/);
    const wrong = await h.call("/debug/admin/shutdown", {
      method: "POST",
      headers: {
        "x-admin-csrf": csrf.replace(/^./, (c) => c === "0" ? "1" : "0"),
      },
    });
    assertEquals(wrong.status, 403);
    // A form post cannot set the header, and a form encoding is refused too.
    const form = await h.action("restart", {
      body: "entry=%2Ftmp%2Fx.ts",
      headers: { "content-type": "application/x-www-form-urlencoded" },
    });
    assertEquals(form.status, 415);
    assertEquals(h.fake.restartCalls.length, 0);
    await new Promise((resolve) => setTimeout(resolve, 20));
    assertEquals(h.fake.shutdownCalls, 0);

    // What a same-origin page sends passes.
    const same = await h.action("restart", {
      headers: { origin: h.origin, "sec-fetch-site": "same-origin" },
    });
    assertEquals(same.status, 200);
  });
});

// ---------------------------------------------------------------------------
// Methods, paths, limits

Deno.test("admin: wrong methods are 405 with Allow; unknown paths 404", async () => {
  await withAdmin({}, async (h) => {
    for (const action of ["restart", "shutdown"]) {
      for (const method of ["GET", "PUT", "DELETE", "OPTIONS"]) {
        const reply = await h.call(`/debug/admin/${action}`, { method });
        assertEquals(reply.status, 405, `${method} ${action}`);
        assertEquals(reply.headers.get("allow"), "POST");
        assertSafeHeaders(reply, `${method} ${action}`);
      }
    }
    for (const path of ["", "/status"]) {
      const reply = await h.call(`/debug/admin${path}`, { method: "POST" });
      assertEquals(reply.status, 405);
      assertEquals(reply.headers.get("allow"), "GET, HEAD");
    }
    for (
      const path of [
        "/debug/admin/nope",
        "/debug/admin/status/",
        "/debug/admin/restart/now",
        "/debug/admin/%73tatus",
        "/debug/admin/__proto__",
        "/debug/admin/constructor",
      ]
    ) {
      const reply = await h.call(path);
      assertEquals(reply.status, 404, path);
      assertSafeHeaders(reply, path);
    }
    assertEquals(h.fake.restartCalls.length, 0);
  });
});

Deno.test("admin: a body over maxBodyBytes is 413, streamed or declared", async () => {
  await withAdmin({}, async (h) => {
    // Streamed, chunked, no Content-Length: counted as it arrives.
    const chunk = new TextEncoder().encode(" ".repeat(4096));
    let sent = 0;
    const body = new ReadableStream<Uint8Array>({
      pull(controller) {
        if (sent >= 64 * 1024) return controller.close();
        sent += chunk.byteLength;
        controller.enqueue(chunk);
      },
    });
    const streamed = await h.action("restart", {
      body,
      headers: { "content-type": "application/json" },
    });
    assertEquals(streamed.status, 413);
    assertSafeHeaders(streamed, "413");
    const last = h.seen.at(-1)!;
    assertEquals(last.contentLength, null, "the body was not streamed");

    // Declared.
    const big = await h.action("restart", {
      body: JSON.stringify({ entry: "/" + "x".repeat(20_000) }),
      headers: { "content-type": "application/json" },
    });
    assertEquals(big.status, 413);
    assertEquals(h.fake.restartCalls.length, 0);
  });
  await withAdmin({ maxBodyBytes: 10 }, async (h) => {
    const over = await h.action("shutdown", {
      body: "{         }",
      headers: { "content-type": "application/json" },
    });
    assertEquals(over.status, 413);
    const at = await h.action("shutdown", {
      body: "{        }",
      headers: { "content-type": "application/json" },
    });
    assertEquals(at.status, 202);
    await waitFor("deps.shutdown()", () => h.fake.shutdownCalls === 1);
  });
});

Deno.test("admin: a query string over 2 KiB is 414", async () => {
  await withAdmin({}, async (h) => {
    const long = "q=" + "a".repeat(ADMIN_MAX_QUERY_BYTES - 1);
    const reply = await h.call(`/debug/admin/status?${long}`);
    assertEquals(reply.status, 414);
    assertSafeHeaders(reply, "414");
    const action = await h.action(`restart?${long}`);
    assertEquals(action.status, 414);
    assertEquals(h.fake.restartCalls.length, 0);
    const fits = "q=" + "a".repeat(ADMIN_MAX_QUERY_BYTES - 2);
    assertEquals((await h.call(`/debug/admin/status?${fits}`)).status, 200);
  });
});

Deno.test("admin: malformed restart bodies are 400", async () => {
  await withAdmin({ allowEntryOverride: { dirs: ["/"] } }, async (h) => {
    const json = { "content-type": "application/json" };
    for (
      const body of [
        "{",
        "[]",
        "null",
        '"entry"',
        '{"entry": 42}',
        '{"entry": ""}',
        '{"execPath": ["/bin/sh"]}',
        '{"entry": "/tmp/x.ts", "cwd": "/"}',
      ]
    ) {
      const reply = await h.action("restart", { body, headers: json });
      assertEquals(reply.status, 400, body);
    }
    const shutdown = await h.action("shutdown", {
      body: '{"now": true}',
      headers: json,
    });
    assertEquals(shutdown.status, 400);
    assertEquals(h.fake.restartCalls.length, 0);
    assertEquals(h.fake.shutdownCalls, 0);
  });
});

// ---------------------------------------------------------------------------
// Entry override

Deno.test("admin: entry and execPath overrides stay inside the allowed directories", async () => {
  const tmp = await Deno.realPath(
    await Deno.makeTempDir({ prefix: "admin_test_" }),
  );
  try {
    const allowed = `${tmp}/allowed`;
    const outside = `${tmp}/outside`;
    await Deno.mkdir(allowed);
    await Deno.mkdir(outside);
    await Deno.writeTextFile(`${allowed}/app.ts`, "export default {};\n");
    await Deno.writeTextFile(`${outside}/evil.ts`, "export default {};\n");
    await Deno.writeTextFile(`${allowed}/deno`, "#!/bin/sh\n");
    await Deno.chmod(`${allowed}/deno`, 0o755);
    await Deno.writeTextFile(`${allowed}/plain`, "not executable\n");
    await Deno.chmod(`${allowed}/plain`, 0o644);
    await Deno.symlink(`${outside}/evil.ts`, `${allowed}/escape.ts`);
    await Deno.symlink(outside, `${allowed}/escape-dir`);
    await Deno.symlink(`${allowed}/app.ts`, `${allowed}/alias.ts`);
    await Deno.symlink(allowed, `${tmp}/allowed-link`);
    const json = { "content-type": "application/json" };
    const restart = (h: Harness, body: unknown) =>
      h.action("restart", { body: JSON.stringify(body), headers: json });

    // Not allowed at all.
    for (const options of [{}, { allowEntryOverride: false as const }]) {
      await withAdmin(options, async (h) => {
        for (
          const body of [
            { entry: `${allowed}/app.ts` },
            { execPath: `${allowed}/deno` },
          ]
        ) {
          const reply = await restart(h, body);
          assertEquals(reply.status, 403, JSON.stringify(body));
          assertMatch(reply.json.error, /not allowed/);
        }
        assertEquals(h.fake.restartCalls.length, 0);
      });
    }

    await withAdmin({ allowEntryOverride: { dirs: [allowed] } }, async (h) => {
      const refused: [string, unknown][] = [
        ["outside", { entry: `${outside}/evil.ts` }],
        ["symlink escaping the dir", { entry: `${allowed}/escape.ts` }],
        ["through a dir symlink", { entry: `${allowed}/escape-dir/evil.ts` }],
        ["dot-dot", { entry: `${allowed}/../outside/evil.ts` }],
        ["dot-dot back inside", { entry: `${allowed}/../allowed/app.ts` }],
        ["missing", { entry: `${allowed}/missing.ts` }],
        ["relative", { entry: "allowed/app.ts" }],
        ["a URL", { entry: `file://${allowed}/app.ts` }],
        ["a directory", { entry: allowed }],
        ["the dir's prefix", { entry: `${allowed}-not/app.ts` }],
        ["not executable", { execPath: `${allowed}/plain` }],
        ["execPath outside", { execPath: "/bin/sh" }],
        ["one good, one bad", {
          entry: `${allowed}/app.ts`,
          execPath: `${outside}/evil.ts`,
        }],
      ];
      for (const [what, body] of refused) {
        const reply = await restart(h, body);
        assertEquals(reply.status, 403, what);
      }
      assertEquals(h.fake.restartCalls.length, 0);

      const ok = await restart(h, { entry: `${allowed}/app.ts` });
      assertEquals(ok.status, 200);
      const alias = await restart(h, { entry: `${allowed}/alias.ts` });
      assertEquals(alias.status, 200);
      const both = await restart(h, {
        entry: `${allowed}/app.ts`,
        execPath: `${allowed}/deno`,
      });
      assertEquals(both.status, 200);
      assertEquals(h.fake.restartCalls, [
        { trigger: "admin", entry: `${allowed}/app.ts` },
        // The resolved path, not the symlink.
        { trigger: "admin", entry: `${allowed}/app.ts` },
        {
          trigger: "admin",
          entry: `${allowed}/app.ts`,
          execPath: `${allowed}/deno`,
        },
      ]);
    });

    // The allowed directories are resolved too.
    await withAdmin(
      { allowEntryOverride: { dirs: [`${tmp}/allowed-link`, "/nonexistent"] } },
      async (h) => {
        const ok = await restart(h, { entry: `${tmp}/allowed-link/app.ts` });
        assertEquals(ok.status, 200);
        assertEquals(h.fake.restartCalls, [
          { trigger: "admin", entry: `${allowed}/app.ts` },
        ]);
        const escape = await restart(h, {
          entry: `${tmp}/allowed-link/escape.ts`,
        });
        assertEquals(escape.status, 403);
      },
    );
  } finally {
    await Deno.remove(tmp, { recursive: true });
  }
});

// ---------------------------------------------------------------------------
// The app never sees admin paths

Deno.test("admin: admin paths never reach the app; other paths do", async () => {
  await withAdmin({ token: TOKEN }, async (h) => {
    const admin: [string, RequestInit][] = [
      ["/debug/admin", {}],
      ["/debug/admin/", {}],
      ["/debug/admin/status", {}],
      ["/debug/admin/status", { method: "DELETE" }],
      ["/debug/admin/restart", {}],
      ["/debug/admin/restart", { method: "POST" }],
      ["/debug/admin/shutdown", { method: "POST", body: "x".repeat(20_000) }],
      ["/debug/admin/unknown/deep/path", {}],
      ["/debug/admin/status?" + "a".repeat(3000), {}],
      ["/debug/admin?x=1", {}],
    ];
    for (const [path, init] of admin) {
      const reply = await h.call(path, init);
      assert(reply.text !== "app", `${path} reached the app`);
      assertSafeHeaders(reply, path);
    }
    assertEquals(h.appHits, []);

    for (
      const path of [
        "/",
        "/debug",
        "/debug/adminx",
        "/debug/admin-status",
        "/Debug/Admin",
        "/x/debug/admin",
      ]
    ) {
      const reply = await h.call(path);
      assertEquals(reply.text, "app", path);
    }
    assertEquals(h.appHits, [
      "/",
      "/debug",
      "/debug/adminx",
      "/debug/admin-status",
      "/Debug/Admin",
      "/x/debug/admin",
    ]);
    assertEquals(h.fake.restartCalls.length, 0);
    assertEquals(h.fake.shutdownCalls, 0);
  });
});

Deno.test("admin: a custom path", async () => {
  await withAdmin({ path: "/ops" }, async (h) => {
    assertEquals((await h.call("/ops/status")).status, 200);
    assertMatch(
      (await h.call("/ops")).text,
      /name="admin-base" content="\/ops"/,
    );
    assertEquals((await h.call("/debug/admin/status")).text, "app");
    assertEquals((await h.action("restart")).status, 200);
  });
});

Deno.test("admin: a deps failure is a 500 without details", async () => {
  const fake = new FakeProcess();
  fake.status = () => {
    throw new Error("secret internals");
  };
  await withAdmin({}, async (h) => {
    const reply = await h.call("/debug/admin/status");
    assertEquals(reply.status, 500);
    assertSafeHeaders(reply, "500");
    assert(!reply.text.includes("secret internals"));
  }, fake);
});

// ---------------------------------------------------------------------------
// In a real browser

const CHROMIUM = CHROMIUM_PATH;
// Skips the browser tests without it (strict mode: fails; capabilities.ts).
const haveChromium = has(CHROMIUM_CAPABILITY);

const CHROMIUM_FLAGS = [
  "--headless",
  "--no-sandbox",
  "--disable-gpu",
  "--disable-quic",
  "--no-first-run",
  "--disable-background-networking",
  "--disable-component-update",
  "--disable-sync",
  "--hide-scrollbars",
  "--window-size=1200,800",
];

/** Width and height from a PNG's IHDR chunk. */
function pngSize(png: Uint8Array): { width: number; height: number } {
  const signature = [0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a];
  assert(signature.every((b, i) => png[i] === b), "not a PNG");
  const view = new DataView(png.buffer, png.byteOffset, png.byteLength);
  return { width: view.getUint32(16), height: view.getUint32(20) };
}

Deno.test({
  name: "admin: browser: headless Chromium renders the page",
  ignore: !haveChromium,
  async fn() {
    await withAdmin({}, async (h) => {
      const dir = await Deno.makeTempDir({ prefix: "admin_chromium_" });
      try {
        const file = `${dir}/page.png`;
        const result = await new Deno.Command(CHROMIUM, {
          args: [
            ...CHROMIUM_FLAGS,
            `--user-data-dir=${dir}/profile`,
            `--screenshot=${file}`,
            h.base,
          ],
          stdout: "piped",
          stderr: "piped",
          signal: AbortSignal.timeout(60_000),
        }).output();
        const stderr = new TextDecoder().decode(result.stderr);
        assert(result.success, `chromium failed: ${stderr}`);
        const png = await Deno.readFile(file);
        assertEquals(pngSize(png), { width: 1200, height: 800 });
        // A blank 1200×800 PNG is a few KB; the page is far more.
        assert(
          png.byteLength > 20_000,
          `screenshot of ${png.byteLength} bytes`,
        );
        assertEquals(h.seen.length >= 1, true, "chromium never asked");
      } finally {
        await Deno.remove(dir, { recursive: true });
      }
    });
  },
});

/** The smallest Chrome DevTools Protocol client: commands and their results. */
class Cdp {
  #ws: WebSocket;
  #next = 1;
  #pending = new Map<
    number,
    { resolve(value: unknown): void; reject(error: Error): void }
  >();
  #closed: Promise<void>;

  private constructor(ws: WebSocket) {
    this.#ws = ws;
    this.#closed = new Promise((resolve) => {
      ws.addEventListener("close", () => resolve());
    });
    ws.addEventListener("message", (event) => {
      const message = JSON.parse(event.data);
      const pending = this.#pending.get(message.id);
      if (!pending) return; // an event
      this.#pending.delete(message.id);
      if (message.error) pending.reject(new Error(message.error.message));
      else pending.resolve(message.result);
    });
  }

  static async connect(url: string): Promise<Cdp> {
    const ws = new WebSocket(url);
    await new Promise((resolve, reject) => {
      ws.addEventListener("open", resolve, { once: true });
      ws.addEventListener(
        "error",
        () => reject(new Error(`cannot open ${url}`)),
        {
          once: true,
        },
      );
    });
    return new Cdp(ws);
  }

  // deno-lint-ignore no-explicit-any
  send(method: string, params: Record<string, unknown> = {}): Promise<any> {
    const id = this.#next++;
    const result = new Promise((resolve, reject) => {
      this.#pending.set(id, { resolve, reject });
    });
    this.#ws.send(JSON.stringify({ id, method, params }));
    return result;
  }

  async evaluate(expression: string): Promise<unknown> {
    const reply = await this.send("Runtime.evaluate", {
      expression,
      returnByValue: true,
      awaitPromise: true,
    });
    if (reply.exceptionDetails) {
      throw new Error(`page threw: ${JSON.stringify(reply.exceptionDetails)}`);
    }
    return reply.result.value;
  }

  async close(): Promise<void> {
    this.#ws.close();
    await this.#closed;
  }
}

/**
 * Opens `url` in headless Chromium with remote debugging, and gives `fn` a
 * DevTools connection to the page. Closes everything afterwards.
 */
async function withBrowserPage(
  url: string,
  fn: (page: Cdp) => Promise<void>,
): Promise<void> {
  const dir = await Deno.makeTempDir({ prefix: "admin_cdp_" });
  const profile = `${dir}/profile`;
  const chromium = new Deno.Command(CHROMIUM, {
    args: [
      ...CHROMIUM_FLAGS,
      `--user-data-dir=${profile}`,
      "--remote-debugging-port=0",
      url,
    ],
    stdout: "null",
    stderr: "piped",
  }).spawn();
  const stderr = new Response(chromium.stderr).text();
  let page: Cdp | undefined;
  try {
    let port = "";
    await waitFor("DevToolsActivePort", async () => {
      const text = await Deno.readTextFile(`${profile}/DevToolsActivePort`)
        .catch(() => "");
      port = text.split("\n")[0];
      return /^\d+$/.test(port);
    }, 30_000);
    let pageWs = "";
    await waitFor("the page target", async () => {
      const targets = await fetch(`http://127.0.0.1:${port}/json/list`)
        .then((r) => r.json()).catch(() => []);
      const target = targets.find((t: { type: string; url: string }) =>
        t.type === "page" && t.url.startsWith(url)
      );
      pageWs = target?.webSocketDebuggerUrl ?? "";
      return pageWs !== "";
    }, 30_000);
    page = await Cdp.connect(pageWs);
    await waitFor(
      "the page to load",
      async () =>
        await page!.evaluate(
          "document.readyState === 'complete' && !!document.querySelector('#restart')",
        ) === true,
      20_000,
    );
    await fn(page);
  } finally {
    await page?.close();
    chromium.kill("SIGTERM");
    await chromium.status;
    await stderr;
    await Deno.remove(dir, { recursive: true }).catch(() => {});
  }
}

function textOf(page: Cdp, selector: string): Promise<unknown> {
  return page.evaluate(
    `document.querySelector(${JSON.stringify(selector)})?.textContent ?? ""`,
  );
}

Deno.test({
  name: "admin: browser: clicking Restart restarts once and shows the new pid",
  ignore: !haveChromium,
  async fn() {
    const fake = new FakeProcess();
    fake.restartDelayMs = 300;
    await withAdmin({}, async (h) => {
      await withBrowserPage(h.base, async (page) => {
        await waitFor(
          "the page to poll the status",
          async () => /^updated /.test(String(await textOf(page, "#updated"))),
          20_000,
        );
        assertEquals(await textOf(page, "#pid"), "48211");
        assertEquals(await textOf(page, "#conn"), "live");

        await page.evaluate("document.querySelector('#restart').click()");
        await waitFor(
          "the page to show the new pid",
          async () => await textOf(page, "#pid") === "48377",
          20_000,
        );
        assertEquals(h.fake.restartCalls, [{ trigger: "admin" }]);
        assertEquals(await textOf(page, "#generation"), "6");
        assertEquals(await textOf(page, "#restarts"), "5");
        assertEquals(
          await textOf(page, "#message"),
          "Generation 6 serves (pid 48377).",
        );
        assertEquals(
          await textOf(page, "#last-restart"),
          "none since this generation took over (restart #5)",
        );
        assertEquals(
          await page.evaluate("document.querySelector('#restart').disabled"),
          false,
        );
        // The nonce'd style applies; the CSP forbids eval in the page.
        assertEquals(
          await page.evaluate(
            "getComputedStyle(document.querySelector('#restart')).borderRadius",
          ),
          "8px",
        );
        // A style without the nonce, as an injection would add, is refused.
        assertEquals(
          await page.evaluate(`(async () => {
            const style = document.createElement("style");
            style.textContent = "#pid { color: rgb(1, 2, 3) }";
            document.head.append(style);
            await new Promise((resolve) => setTimeout(resolve, 50));
            return getComputedStyle(document.querySelector("#pid")).color;
          })()`) !== "rgb(1, 2, 3)",
          true,
        );

        const shot = await page.send("Page.captureScreenshot", {
          format: "png",
        });
        const png = Uint8Array.from(atob(shot.data), (c) => c.charCodeAt(0));
        assert(png.byteLength > 20_000);
        const out = Deno.env.get("ADMIN_SCREENSHOT");
        if (out) await Deno.writeFile(out, png);
      });
    }, fake);
  },
});

Deno.test({
  name:
    "admin: browser: with a token, the page asks for it; Shutdown takes two clicks",
  ignore: !haveChromium,
  async fn() {
    await withAdmin({ token: TOKEN }, async (h) => {
      await withBrowserPage(h.base, async (page) => {
        assertEquals(
          await page.evaluate(
            "document.querySelector('#token-form').classList.contains('hidden')",
          ),
          false,
        );
        assertEquals(await textOf(page, "#pid"), "—");
        assertEquals(await textOf(page, "#conn"), "token needed");

        await page.evaluate(
          `document.querySelector('#token').value = ${JSON.stringify(TOKEN)};
           document.querySelector('#token-form').requestSubmit();`,
        );
        await waitFor(
          "the page to show the pid",
          async () => await textOf(page, "#pid") === "48211",
          20_000,
        );
        assertEquals(
          await page.evaluate(
            "document.querySelector('#token-form').classList.contains('hidden')",
          ),
          true,
        );
        assertEquals(
          await page.evaluate(
            "sessionStorage.getItem('admin-token:/debug/admin')",
          ),
          TOKEN,
        );

        await page.evaluate("document.querySelector('#shutdown').click()");
        assertEquals(await textOf(page, "#shutdown"), "Confirm shutdown");
        await new Promise((resolve) => setTimeout(resolve, 100));
        assertEquals(h.fake.shutdownCalls, 0);
        await page.evaluate("document.querySelector('#shutdown').click()");
        await waitFor("deps.shutdown()", () => h.fake.shutdownCalls === 1);
        await waitFor(
          "the page to say so",
          async () =>
            await textOf(page, "#message") ===
              "Shutting down: the process drains and exits.",
        );
        assertEquals(h.fake.restartCalls, []);
      });
    });
  },
});

// ---------------------------------------------------------------------------
// Raw requests: what fetch() cannot send

/** Sends `head` (request line and headers, no final CRLF) and reads the reply. */
async function rawRequest(origin: string, head: string): Promise<string> {
  const port = Number(new URL(origin).port);
  const conn = await Deno.connect({ hostname: "127.0.0.1", port });
  await conn.write(
    new TextEncoder().encode(`${head}\r\nConnection: close\r\n\r\n`),
  );
  let out = "";
  const buffer = new Uint8Array(16384);
  for (;;) {
    const n = await conn.read(buffer);
    if (n === null) break;
    out += new TextDecoder().decode(buffer.subarray(0, n));
  }
  conn.close();
  return out;
}

Deno.test("admin: an action with an empty body is accepted whatever its Content-Type", async () => {
  await withAdmin({}, async (h) => {
    const csrf = await h.csrf();
    for (const type of ["text/plain", "application/x-www-form-urlencoded"]) {
      const reply = await rawRequest(
        h.origin,
        `POST /debug/admin/restart HTTP/1.1\r\nHost: 127.0.0.1\r\n` +
          `X-Admin-CSRF: ${csrf}\r\nContent-Type: ${type}\r\nContent-Length: 0`,
      );
      assertMatch(reply, /^HTTP\/1\.1 200 /, `${type}: ${reply}`);
    }
    assertEquals(h.fake.restartCalls.length, 2);
  });
});

Deno.test("admin: a Host header with a path in it does not change which route answers", async () => {
  await withAdmin({}, async (h) => {
    const port = new URL(h.origin).port;
    const bad = `127.0.0.1:${port}/debug/admin/status?`;
    // An action under a Host that names the status route: refused as a bad
    // Host, never answered by the status route (405) or any other.
    const restart = await rawRequest(
      h.origin,
      `POST /debug/admin/restart HTTP/1.1\r\nHost: ${bad}\r\n` +
        `X-Admin-CSRF: ${await h.csrf()}\r\nContent-Length: 0`,
    );
    assertMatch(restart, /^HTTP\/1\.1 400 /, restart);
    assertMatch(restart, /invalid Host header/);
    // An app path under a Host naming an admin route is the app's.
    const app = await rawRequest(
      h.origin,
      `GET /other HTTP/1.1\r\nHost: 127.0.0.1:${port}/debug/admin/shutdown?`,
    );
    assertMatch(app, /^HTTP\/1\.1 200 /, app);
    assertMatch(app, /\r\n\r\napp$/);
    // And an admin path under a Host naming an app path stays admin's.
    const status = await rawRequest(
      h.origin,
      `GET /debug/admin/status HTTP/1.1\r\nHost: 127.0.0.1:${port}/x?`,
    );
    assertMatch(status, /^HTTP\/1\.1 400 /, status);
    assertEquals(h.appHits, ["/debug/admin/shutdown"]);
    assertEquals(h.fake.restartCalls.length, 0);
    await new Promise((resolve) => setTimeout(resolve, 20));
    assertEquals(h.fake.shutdownCalls, 0);
  });
});

Deno.test("admin: with a token, the bearer header alone is enough for an action (no CSRF header)", async () => {
  await withAdmin({ token: TOKEN }, async (h) => {
    const ok = await h.call("/debug/admin/restart", {
      method: "POST",
      headers: { authorization: `Bearer ${TOKEN}` },
    });
    assertEquals(ok.status, 200, ok.text);
    // A wrong CSRF header does not matter either: the bearer token is the
    // proof that no browser sent it on its own.
    const shutdown = await h.call("/debug/admin/shutdown", {
      method: "POST",
      headers: { authorization: `Bearer ${TOKEN}`, "x-admin-csrf": "0" },
    });
    assertEquals(shutdown.status, 202, shutdown.text);
    // Cross-site markers are still refused.
    const cross = await h.call("/debug/admin/restart", {
      method: "POST",
      headers: {
        authorization: `Bearer ${TOKEN}`,
        "sec-fetch-site": "cross-site",
      },
    });
    assertEquals(cross.status, 403);
    assertEquals(h.fake.restartCalls.length, 1);
  });
});
