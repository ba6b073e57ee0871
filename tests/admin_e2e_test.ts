/**
 * The admin API wired into real servers: restart through it, a failing
 * restart, shutdown, the token, and that it never reaches the app.
 */

import { dirname } from "node:path";
import { assertEquals, assertMatch, assertNotEquals } from "./assert.ts";
import { curl, header } from "./curl.ts";
import { has, PYTHON } from "./capabilities.ts";
import { alive, freePort, get, runCli, TempApp, until } from "./helpers.ts";

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

/** The admin socket the log names ("admin API on unix:PATH"). */
async function adminSocket(t: TempApp): Promise<string> {
  return (await t.child.waitFor(/admin API on unix:(\S+)/))[1];
}

/** curl over the admin socket: `path` under /debug/admin. */
function overSocket(socket: string, path: string, args: string[] = []) {
  return curl([
    "--unix-socket",
    socket,
    ...args,
    `http://localhost/debug/admin${path}`,
  ]);
}

async function socketCsrf(socket: string): Promise<string> {
  return header((await overSocket(socket, "/status")).headers, "x-admin-csrf");
}

Deno.test("admin without a token: only on its own unix socket (0600), never on the app's port; restart, a failing restart, shutdown", async () => {
  const s = await serveApp(["--admin"]);
  try {
    const socket = await adminSocket(s.t);
    const mode = Deno.statSync(socket).mode! & 0o777;
    assertEquals(mode, 0o600);
    assertEquals(Deno.statSync(dirname(socket)).mode! & 0o077, 0);
    // The app's port: the admin paths are the app's (no admin there).
    for (const path of ["/debug/admin", "/debug/admin/status"]) {
      assertEquals((await get(s.port, path)).text, `app ${s.child.pid}`);
    }
    const appPost = await fetch(
      `http://127.0.0.1:${s.port}/debug/admin/restart`,
      {
        method: "POST",
      },
    );
    assertEquals(await appPost.text(), `app ${s.child.pid}`);

    // Another local user (nobody) cannot connect to it.
    if (has(PYTHON)) {
      const other = await new Deno.Command("setpriv", {
        args: [
          "--reuid=nobody",
          "--regid=nogroup",
          "--clear-groups",
          "/usr/bin/python3", // (a pyenv shim under /root is not nobody's)
          "-c",
          "import socket, sys\n" +
          "try:\n" +
          "  socket.socket(socket.AF_UNIX).connect(sys.argv[1]); print('connected')\n" +
          "except OSError as e: print(type(e).__name__)",
          socket,
        ],
        stdout: "piped",
      }).output();
      assertEquals(
        new TextDecoder().decode(other.stdout).trim(),
        "PermissionError",
      );
    }

    const status = JSON.parse((await overSocket(socket, "/status")).body);
    assertEquals([status.pid, status.generation], [s.child.pid, 1]);
    assertEquals(status.listeners, [`127.0.0.1:${s.port}`]);
    const page = await overSocket(socket, "");
    assertMatch(page.body, /<button[^>]*id="restart"/);
    assertEquals((await overSocket(socket, "/nope")).status, 404);
    // Without the CSRF header, an action is refused.
    const bare = await overSocket(socket, "/restart", ["-X", "POST"]);
    assertEquals(bare.status, 403, bare.body);

    const ok = await overSocket(socket, "/restart", [
      "-X",
      "POST",
      "-H",
      `X-Admin-CSRF: ${await socketCsrf(socket)}`,
    ]);
    assertEquals(ok.status, 200, ok.body);
    const body = JSON.parse(ok.body);
    assertEquals(body.generation, 2);
    assertNotEquals(body.pid, s.child.pid);
    await until(() => !alive(s.child.pid));
    // The socket was passed on: the same path answers, from generation 2.
    const after = JSON.parse((await overSocket(socket, "/status")).body);
    assertEquals([after.pid, after.generation, after.lastRestart?.trigger], [
      body.pid,
      2,
      "admin",
    ]);

    await Deno.writeTextFile(s.app, "Deno.exit(3);");
    const failed = await overSocket(socket, "/restart", [
      "-X",
      "POST",
      "-H",
      `X-Admin-CSRF: ${await socketCsrf(socket)}`,
    ]);
    assertEquals(failed.status, 503);
    assertMatch(JSON.parse(failed.body).error, /exited with code 3/);
    assertEquals((await get(s.port, "/other")).text, `app ${body.pid}`);

    const bye = await overSocket(socket, "/shutdown", [
      "-X",
      "POST",
      "-H",
      `X-Admin-CSRF: ${await socketCsrf(socket)}`,
    ]);
    assertEquals(bye.status, 202);
    await until(() => !alive(body.pid));
    // The last generation removed the socket.
    assertEquals(await Deno.lstat(socket).then(() => true, () => false), false);
  } finally {
    await s.t.stop();
  }
});

Deno.test("admin without a token: --admin-listen a loopback port is its listener; a public address is refused", async () => {
  const adminPort = freePort();
  const s = await serveApp([
    "--admin",
    "--admin-listen",
    `127.0.0.1:${adminPort}`,
  ]);
  try {
    const status = await get(adminPort, "/debug/admin/status");
    assertEquals(JSON.parse(status.text).pid, s.child.pid);
    assertEquals(
      (await get(s.port, "/debug/admin/status")).text,
      `app ${s.child.pid}`,
    );
    // Over TCP the loopback rules hold: a proxied request is refused.
    const proxied = await get(adminPort, "/debug/admin/status", {
      headers: { "x-forwarded-for": "203.0.113.9" },
    });
    assertEquals(proxied.status, 403);
  } finally {
    await s.t.stop();
  }
  const out = await runCli([
    "--port",
    "0",
    "--admin",
    "--admin-listen",
    "0.0.0.0:1",
  ]);
  assertEquals(out.code, 1);
  assertMatch(
    out.stderr,
    /^error: admin listen address 0\.0\.0\.0:1: without a token the admin API listens only on a unix socket or a loopback address$/m,
  );
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
    // The bearer token alone is an action (a browser never sends it
    // cross-site): the restart happens without the CSRF header.
    const restarted = await fetch(`http://127.0.0.1:${s.port}/ops/restart`, {
      method: "POST",
      headers: auth,
    });
    const body = await restarted.json();
    assertEquals([restarted.status, body.generation], [200, 2]);
    assertNotEquals(body.pid, s.child.pid);
    await until(() => !alive(s.child.pid));
    await until(async () =>
      (await get(s.port, "/other")).text === `app ${body.pid}`
    );
    // The page's way (bearer and its CSRF token) restarts the new one too.
    const token = await csrf(s.port, auth, "/ops");
    assertMatch(token, /^[0-9a-f]{64}$/);
    const again = await fetch(`http://127.0.0.1:${s.port}/ops/restart`, {
      method: "POST",
      headers: { ...auth, "x-admin-csrf": token },
    });
    const third = await again.json();
    assertEquals([again.status, third.generation], [200, 3]);
    await until(() => !alive(body.pid));
  } finally {
    await s.t.stop();
  }
});

Deno.test("admin without a token: the socket goes under systemd's RUNTIME_DIRECTORY; a socket directory others may enter is refused", async () => {
  const runtime = await Deno.makeTempDir({ prefix: "graceful-run-" });
  try {
    const s = await serveApp(["--admin"], { RUNTIME_DIRECTORY: runtime });
    try {
      const socket = await adminSocket(s.t);
      assertEquals(
        socket,
        `${runtime}/serve-graceful/admin-${s.child.pid}.sock`,
      );
      assertEquals(Deno.statSync(dirname(socket)).mode! & 0o777, 0o700);
      const status = JSON.parse((await overSocket(socket, "/status")).body);
      assertEquals(status.pid, s.child.pid);
    } finally {
      await s.t.stop();
    }
    await Deno.chmod(`${runtime}/serve-graceful`, 0o755);
    const out = await runCli(["--port", "0", "--admin"], {
      XDG_RUNTIME_DIR: runtime,
    });
    assertEquals(out.code, 1, out.stderr);
    assertMatch(
      out.stderr,
      new RegExp(
        `^error: admin socket directory ${runtime}/serve-graceful is not a directory of uid \\d+ that only it may enter`,
        "m",
      ),
    );
  } finally {
    await Deno.remove(runtime, { recursive: true });
  }
});
