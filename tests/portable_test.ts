/**
 * The portable modes on Linux, end to end (issue 17): `GRACEFUL_PORTABLE`
 * runs the POSIX and the Windows paths here, with real processes, sockets,
 * wrk and file edits: serving, restarts, a failed restart and --watch.
 */

import { assert, assertEquals, assertNotEquals } from "./assert.ts";
import {
  alive,
  Child,
  get,
  killAllWith,
  MOD,
  pidsWith,
  runCli,
  TempApp,
  until,
} from "./helpers.ts";
import { versionedAppSource } from "./fixtures/versioned_app.ts";
import { assertNoFailures, Load } from "./load.ts";

/** The versioned test app (tests/fixtures/versioned_app.ts) at `version`. */
function app(version: string): string {
  return versionedAppSource(version);
}

async function pidOf(port: number): Promise<number> {
  return Number((await get(port, "/pid")).text);
}

/** Waits until another pid than `old` answers; returns it. */
async function nextPid(port: number, old: number): Promise<number> {
  let now = old;
  await until(async () => {
    try {
      now = await pidOf(port);
    } catch {
      return false; // the windows mode refuses while it restarts
    }
    return now !== old;
  });
  return now;
}

function warnings(t: TempApp, mode: string): number {
  return t.child.lines.filter((l) =>
    l.startsWith(`serveGraceful: ${mode} mode`)
  )
    .length;
}

/**
 * No stack trace of the module, and no word of /proc but in the mode's
 * warning (an app's syntax error names its own line: that is the app's).
 */
function assertQuiet(t: TempApp, mode: string): void {
  const others = t.child.lines.filter((l) =>
    !l.startsWith(`serveGraceful: ${mode} mode`)
  );
  assert(
    !others.some((l) => /\/proc|^\s+at .*\/src\/[a-z_]+\.ts/.test(l)),
    t.child.output,
  );
}

const POSIX = { GRACEFUL_PORTABLE: "posix" };

Deno.test("posix mode: one warning, the node engine, and restarts under wrk lose no request", async () => {
  const t = await TempApp.start(app("v1"), [], POSIX);
  const load = Load.start(`http://127.0.0.1:${t.port}/`);
  try {
    let pid = await pidOf(t.port);
    for (let i = 0; i < 3; i++) {
      // A request in flight on the old generation finishes there.
      const slow = get(t.port, "/sleep?ms=1500");
      await until(() =>
        t.child.lines.some((l) => /accepted|sleep/.test(l)) || true
      );
      Deno.kill(pid, "SIGUSR2");
      const now = await nextPid(t.port, pid);
      assertEquals((await slow).text, `slept in ${pid}`);
      await until(() => !alive(pid));
      pid = now;
    }
    load.assertRunning("after 3 restarts");
    assertNoFailures(await load.stop(), 1);
    assertEquals(warnings(t, "posix"), 1, t.child.output);
    assertQuiet(t, "posix");
    const listening = t.child.lines.filter((l) => /listening on /.test(l));
    assertEquals(listening.length, 4, t.child.output);
    assert(listening.every((l) => /node engine/.test(l)), t.child.output);
  } finally {
    await load.kill();
    await t.stop();
  }
});

Deno.test("posix mode: a broken version leaves the old one serving; the next good one serves", async () => {
  const t = await TempApp.start(app("v1"), [], POSIX);
  try {
    const old = await pidOf(t.port);
    await t.write("export default {");
    Deno.kill(old, "SIGUSR2");
    await t.child.waitFor(/restart failed/);
    assertEquals(await pidOf(t.port), old);
    await until(() => pidsWith(t.dir).length === 1);
    await t.write(app("v2"));
    Deno.kill(old, "SIGUSR2");
    const now = await nextPid(t.port, old);
    assertNotEquals(now, old);
    assertEquals((await get(t.port, "/version")).text, "v2");
  } finally {
    await t.stop();
  }
});

const LIBC_URL = new URL("../src/os/libc.ts", import.meta.url).href;

/** The symbols only Linux has, or that only the linux mode may bind. */
const LINUX_ONLY = /^(epoll_ctl|netlink\w+|syscall)$/;

/** Each generation prints the libc symbols it bound, as it exits. */
const BOUND_APP = `
import { boundSymbols } from ${JSON.stringify(LIBC_URL)};
globalThis.addEventListener("unload", () => {
  console.log("bound: " + JSON.stringify(boundSymbols()));
});
export default { fetch: () => new Response(String(Deno.pid)) };
`;

/** The symbols each generation that exited so far said it bound. */
function boundBy(t: TempApp): string[][] {
  return t.child.lines.filter((l) => l.startsWith("bound: ")).map((l) =>
    JSON.parse(l.slice("bound: ".length))
  );
}

for (const mode of ["linux", "posix"]) {
  Deno.test(`${mode} mode: what a generation binds through FFI on a restart (no epoll, sock_diag or pidfd outside Linux)`, async () => {
    const t = await TempApp.start(BOUND_APP, [], { GRACEFUL_PORTABLE: mode });
    try {
      const old = await pidOf(t.port);
      Deno.kill(old, "SIGUSR2");
      await nextPid(t.port, old);
      await until(() => boundBy(t).length === 1);
      const [bound] = boundBy(t);
      // Both modes pass the fds at spawn and check them by getsockopt.
      assert(bound.includes("getsockopt"), bound.join(" "));
      const linuxOnly = bound.filter((name) => LINUX_ONLY.test(name));
      if (mode === "posix") assertEquals(linuxOnly, []);
      else assert(linuxOnly.includes("epoll_ctl"), bound.join(" "));
    } finally {
      await t.stop();
    }
  });
}

/** Waits until `/version` answers `version`; returns the pid that serves it. */
async function servesVersion(port: number, version: string): Promise<number> {
  await until(async () => {
    try {
      return (await get(port, "/version")).text === version;
    } catch {
      return false;
    }
  });
  return await pidOf(port);
}

for (const mode of ["posix", "windows"]) {
  Deno.test(`${mode} mode: --watch restarts on an edit, keeps serving past a broken one`, async () => {
    const t = await TempApp.start(app("v1"), ["--watch"], {
      GRACEFUL_PORTABLE: mode,
    });
    try {
      const first = await pidOf(t.port);
      await t.write(app("v2"));
      const second = await servesVersion(t.port, "v2");
      assertNotEquals(second, first);
      const failures = t.child.lines.filter((l) => /restart failed/.test(l));
      await t.write("export default {");
      await until(() =>
        t.child.lines.filter((l) => /restart failed/.test(l)).length >
          failures.length
      );
      assertEquals(await pidOf(t.port), second);
      await t.write(app("v3"));
      assertNotEquals(await servesVersion(t.port, "v3"), second);
      assertEquals(warnings(t, mode), 1, t.child.output);
      assertQuiet(t, mode);
    } finally {
      await t.stop();
    }
  });
}

const TOKEN = "portable-test-token-0123456789abcdef";
const WINDOWS = { GRACEFUL_PORTABLE: "windows", GRACEFUL_ADMIN_TOKEN: TOKEN };

/** POST /ops/restart with the token; the windows mode answers 202 first. */
async function adminRestart(port: number): Promise<void> {
  const res = await fetch(`http://127.0.0.1:${port}/ops/restart`, {
    method: "POST",
    headers: { authorization: `Bearer ${TOKEN}` },
  });
  assertEquals([res.status, await res.json()], [202, {
    restarting: true,
    complete: true,
  }]);
}

Deno.test("windows mode: a restart is a complete one: in-flight requests finish on the old process, the next one opens the same port; no restart signal", async () => {
  const t = await TempApp.start(app("v1"), ["--admin=/ops"], WINDOWS);
  try {
    const old = await pidOf(t.port);
    const slow = get(t.port, "/sleep?ms=1500");
    await t.write(app("v2"));
    await adminRestart(t.port);
    assertEquals((await slow).text, `slept in ${old}`);
    const now = await servesVersion(t.port, "v2");
    assertNotEquals(now, old);
    await until(() => !alive(old));
    assert(
      t.child.lines.some((l) => /complete restart: stopped accepting/.test(l)),
      t.child.output,
    );
    // SIGUSR2 is no restart signal here: the same process keeps serving.
    Deno.kill(now, "SIGUSR2");
    await t.child.waitFor(/SIGUSR2 ignored/);
    assertEquals(await pidOf(t.port), now);
    assertEquals(warnings(t, "windows"), 1, t.child.output);
    assertQuiet(t, "windows");
  } finally {
    await t.stop();
  }
});

Deno.test("windows mode: when the next process fails, the old one listens again and keeps serving", async () => {
  const t = await TempApp.start(app("v1"), ["--admin=/ops"], WINDOWS);
  try {
    const old = await pidOf(t.port);
    await t.write("export default {");
    await adminRestart(t.port);
    await t.child.waitFor(/restart failed/);
    await t.child.waitFor(/listening again on 127\.0\.0\.1:/);
    assertEquals(await pidOf(t.port), old);
    assertEquals((await get(t.port, "/version")).text, "v1");
    await until(() => pidsWith(t.dir).length === 1);
    // And the next good version takes over.
    await t.write(app("v2"));
    await adminRestart(t.port);
    assertNotEquals(await servesVersion(t.port, "v2"), old);
  } finally {
    await t.stop();
  }
});

/**
 * The HTTP version curl gets with HTTP/2 prior knowledge (h2c): "2" from
 * Deno.serve; node:http speaks no HTTP/2 (curl fails: "0").
 */
async function h2cVersion(port: number): Promise<string> {
  const out = await new Deno.Command("curl", {
    args: [
      "-sS",
      "--max-time",
      "30",
      "--http2-prior-knowledge",
      "-o",
      "/dev/null",
      "-w",
      "%{http_version}",
      `http://127.0.0.1:${port}/`,
    ],
    stdout: "piped",
    stderr: "null",
  }).output();
  return new TextDecoder().decode(out.stdout).trim();
}

Deno.test("windows mode: plain Deno.serve serves (h2c, FFI denied) before a restart, after it and after a rollback", async () => {
  const t = await startFlagged("--deny-ffi", ["--admin=/ops"], WINDOWS);
  try {
    const port = t.port;
    const first = await pidOf(port);
    assertEquals(await h2cVersion(port), "2");
    await Deno.writeTextFile(t.source, app("v2"));
    await adminRestart(port);
    const second = await servesVersion(port, "v2");
    assertNotEquals(second, first);
    assertEquals(await h2cVersion(port), "2");
    // A broken version: the old process opens the address again, with
    // Deno.serve again.
    await Deno.writeTextFile(t.source, "export default {");
    await adminRestart(port);
    await t.child.waitFor(/listening again on 127\.0\.0\.1:/);
    assertEquals(await pidOf(port), second);
    assertEquals(await h2cVersion(port), "2");
    assertEquals((await get(port, "/version")).text, "v2");
    assert(!/FFI|ffi/.test(t.child.output), t.child.output);
  } finally {
    await t.stop();
  }
});

Deno.test("windows mode: LISTEN_FDS and the signal commands are refused with one line each", async () => {
  const activated = await new Deno.Command("sh", {
    args: [
      "-c",
      `LISTEN_PID=$$ LISTEN_FDS=1 exec "$0" run -A "$1" --port 0 3<&0`,
      Deno.execPath(),
      MOD,
    ],
    env: { NO_COLOR: "1", GRACEFUL_PORTABLE: "windows" },
    stdin: "null",
    stdout: "piped",
    stderr: "piped",
  }).output();
  const stderr = new TextDecoder().decode(activated.stderr);
  assertNotEquals(activated.code, 0);
  assert(
    /^error: LISTEN_FDS is 1: socket activation needs inherited fds, which the windows mode does not have; unset LISTEN_FDS$/m
      .test(stderr),
    stderr,
  );
  assertQuietText(stderr);
  for (const command of ["reload", "stop"]) {
    const out = await runCli([command, "--pidfile", "/nonexistent/app.pid"], {
      GRACEFUL_PORTABLE: "windows",
    });
    assertEquals(out.code, 1, out.stderr);
    assertEquals(
      out.stderr.trim(),
      `error: ${command}: the windows mode has no signals to ${command} ` +
        `with (Deno.kill terminates); use the admin API (--admin)`,
    );
  }
});

function assertQuietText(text: string): void {
  assert(!/^\s+at .*\/src\/[a-z_]+\.ts/m.test(text), text);
}

Deno.test("posix mode: a first generation that cannot read /proc restarts (no ownership check, the command line rebuilt)", async () => {
  const t = await startFlagged("--deny-read=/proc", [], POSIX);
  try {
    const old = await pidOf(t.port);
    assertEquals(old, t.child.pid);
    await Deno.writeTextFile(t.source, app("v2"));
    Deno.kill(old, "SIGUSR2");
    assertNotEquals(await servesVersion(t.port, "v2"), old);
    await until(() => !alive(old));
    assertEquals((await t.child.exited).code, 0);
  } finally {
    await t.stop();
  }
});

/**
 * The CLI on app v1 in a fresh dir, on a free port, under one Deno flag of
 * its own (`--deny-ffi`...), which TempApp does not take.
 */
async function startFlagged(
  denoFlag: string,
  extra: string[],
  env: Record<string, string>,
): Promise<
  { source: string; child: Child; port: number; stop(): Promise<void> }
> {
  const dir = await Deno.makeTempDir({ prefix: "graceful-portable-" });
  const source = `${dir}/app.ts`;
  await Deno.writeTextFile(source, app("v1"));
  const child = new Child(Deno.execPath(), [
    "run",
    "-A",
    denoFlag,
    MOD,
    source,
    "--port",
    "0",
    "--hostname",
    "127.0.0.1",
    ...extra,
  ], env);
  const stop = async () => {
    killAllWith(dir);
    child.kill("SIGKILL");
    await child.exited;
    await until(() => pidsWith(dir).length === 0);
    await Deno.remove(dir, { recursive: true });
  };
  try {
    const m = await child.waitFor(/Listening on http:\/\/127\.0\.0\.1:(\d+)\//);
    return { source, child, port: Number(m[1]), stop };
  } catch (error) {
    await stop();
    throw error;
  }
}
