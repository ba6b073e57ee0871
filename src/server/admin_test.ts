/**
 * The admin router over real HTTP: options, status, methods, paths and limits, what reaches the app, and requests fetch() cannot send.
 */

import { ADMIN_MAX_QUERY_BYTES, createAdmin } from "./admin.ts";
import { assert, assertEquals, assertMatch } from "../../tests/assert.ts";
import {
  assertSafeHeaders,
  FakeProcess,
  TOKEN,
  waitFor,
  withAdmin,
} from "../../tests/admin_harness.ts";

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

Deno.test("admin: a non-JSON Content-Type on an action is refused even with an empty body", async () => {
  await withAdmin({}, async (h) => {
    const csrf = await h.csrf();
    const post = (headers: string) =>
      rawRequest(
        h.origin,
        `POST /debug/admin/restart HTTP/1.1\r\nHost: 127.0.0.1\r\n` +
          `X-Admin-CSRF: ${csrf}\r\n${headers}Content-Length: 0`,
      );
    for (
      const type of [
        "text/plain",
        "application/x-www-form-urlencoded",
        "multipart/form-data; boundary=x",
        "application/jsonx",
        "",
      ]
    ) {
      const reply = await post(`Content-Type: ${type}\r\n`);
      assertMatch(reply, /^HTTP\/1\.1 415 /, `${type}: ${reply}`);
      assertMatch(reply, /application\/json/);
    }
    assertEquals(h.fake.restartCalls.length, 0);
    // JSON, with or without parameters, and no Content-Type at all (a plain
    // `curl -X POST`) are accepted on an empty body.
    for (
      const header of [
        "Content-Type: application/json\r\n",
        "Content-Type: Application/JSON; charset=utf-8\r\n",
        "",
      ]
    ) {
      const reply = await post(header);
      assertMatch(reply, /^HTTP\/1\.1 200 /, `${header}: ${reply}`);
    }
    assertEquals(h.fake.restartCalls.length, 3);
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
