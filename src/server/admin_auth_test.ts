/**
 * Who may use the admin routes: tokens, loopback clients, proxies and Host names, and the CSRF defences.
 */

import { createAdmin } from "./admin.ts";
import { assert, assertEquals, assertMatch } from "../../tests/assert.ts";
import {
  assertSafeHeaders,
  direct,
  FakeProcess,
  LOOPBACK,
  REMOTE,
  TOKEN,
  withAdmin,
} from "../../tests/admin_harness.ts";

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
