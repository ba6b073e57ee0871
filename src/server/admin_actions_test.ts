/**
 * The admin actions over real HTTP: restart and shutdown, and the entry and execPath overrides.
 */

import { createAdmin } from "./admin.ts";
import { assert, assertEquals, assertMatch } from "../../tests/assert.ts";
import {
  assertSafeHeaders,
  direct,
  FakeProcess,
  type Harness,
  LOOPBACK,
  waitFor,
  withAdmin,
} from "../../tests/admin_harness.ts";

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
