/**
 * The admin API wired into real servers: restart through it, a failing
 * restart, shutdown, the token, and that it never reaches the app.
 */

import { assertEquals, assertMatch, assertNotEquals } from "./assert.ts";
import { alive, get, TempApp, until } from "./helpers.ts";

const APP = `export default { fetch: () => new Response("app " + Deno.pid) };`;

async function serveApp(extra: string[], env: Record<string, string> = {}) {
  const t = await TempApp.start(APP, extra, env);
  return { t, app: t.app, child: t.child, port: t.port };
}

/** The CSRF token from an (authorised) status response under `path`. */
async function csrf(
  port: number,
  auth: Record<string, string> = {},
  path = "/debug/admin",
) {
  const res = await fetch(`http://127.0.0.1:${port}${path}/status`, {
    headers: auth,
  });
  await res.body?.cancel();
  assertEquals(res.status, 200, `GET ${path}/status`);
  return res.headers.get("x-admin-csrf") ?? "";
}

Deno.test("admin: restart through the API, then a failing one, then shutdown", async () => {
  const s = await serveApp(["--admin"]);
  const base = `http://127.0.0.1:${s.port}/debug/admin`;
  try {
    const status = await (await fetch(`${base}/status`)).json();
    assertEquals([status.pid, status.generation], [s.child.pid, 1]);
    assertEquals(status.listeners, [`127.0.0.1:${s.port}`]);
    // The page is served, and admin paths never reach the app.
    const page = await get(s.port, "/debug/admin");
    assertMatch(page.text, /<button[^>]*id="restart"/);
    assertEquals((await get(s.port, "/debug/admin/nope")).status, 404);
    assertEquals((await get(s.port, "/other")).text, `app ${s.child.pid}`);
    // A GET on an action.
    const getRestart = await fetch(`${base}/restart`);
    await getRestart.body?.cancel();
    assertEquals([getRestart.status, getRestart.headers.get("allow")], [
      405,
      "POST",
    ]);

    const token = await csrf(s.port);
    const ok = await fetch(`${base}/restart`, {
      method: "POST",
      headers: { "x-admin-csrf": token },
    });
    const body = await ok.json();
    assertEquals(ok.status, 200);
    assertEquals(body.generation, 2);
    assertNotEquals(body.pid, s.child.pid);
    // The new generation serves (the old one may still answer requests on
    // its keep-alive connections while it drains).
    await until(async () =>
      (await get(s.port, "/other")).text === `app ${body.pid}`
    );
    await until(() => !alive(s.child.pid));
    const after = await (await fetch(`${base}/status`)).json();
    assertEquals([after.generation, after.lastRestart?.trigger], [2, "admin"]);

    await Deno.writeTextFile(s.app, "Deno.exit(3);");
    const failed = await fetch(`${base}/restart`, {
      method: "POST",
      headers: { "x-admin-csrf": await csrf(s.port) },
    });
    const reason = await failed.json();
    assertEquals(failed.status, 503);
    assertMatch(reason.error, /exited with code 3/);
    assertEquals((await get(s.port, "/other")).text, `app ${body.pid}`);

    const bye = await fetch(`${base}/shutdown`, {
      method: "POST",
      headers: { "x-admin-csrf": await csrf(s.port) },
    });
    await bye.body?.cancel();
    assertEquals(bye.status, 202);
    await until(() => !alive(body.pid));
  } finally {
    await s.t.stop();
  }
});

Deno.test("admin: with a token (from GRACEFUL_ADMIN_TOKEN) actions need it", async () => {
  const secret = crypto.randomUUID();
  const s = await serveApp(["--admin=/ops"], { GRACEFUL_ADMIN_TOKEN: secret });
  try {
    const noToken = await fetch(`http://127.0.0.1:${s.port}/ops/restart`, {
      method: "POST",
    });
    await noToken.body?.cancel();
    assertEquals(noToken.status, 401);
    const auth = { authorization: `Bearer ${secret}` };
    const wrong = await fetch(`http://127.0.0.1:${s.port}/ops/status`, {
      headers: { authorization: "Bearer nope-nope-nope-nope" },
    });
    await wrong.body?.cancel();
    assertEquals(wrong.status, 401);
    const res = await fetch(`http://127.0.0.1:${s.port}/ops/status`, {
      headers: auth,
    });
    assertEquals((await res.json()).pid, s.child.pid);
    // The bearer token alone is no action: the CSRF token is needed too.
    const token = await csrf(s.port, auth, "/ops");
    assertMatch(token, /^[0-9a-f]{64}$/);
    const noCsrf = await fetch(`http://127.0.0.1:${s.port}/ops/restart`, {
      method: "POST",
      headers: auth,
    });
    await noCsrf.body?.cancel();
    assertEquals(noCsrf.status, 403);
    // With both, the restart happens.
    const restarted = await fetch(`http://127.0.0.1:${s.port}/ops/restart`, {
      method: "POST",
      headers: { ...auth, "x-admin-csrf": token },
    });
    const body = await restarted.json();
    assertEquals([restarted.status, body.generation], [200, 2]);
    assertNotEquals(body.pid, s.child.pid);
    await until(() => !alive(s.child.pid));
    await until(async () =>
      (await get(s.port, "/other")).text === `app ${body.pid}`
    );
  } finally {
    await s.t.stop();
  }
});
