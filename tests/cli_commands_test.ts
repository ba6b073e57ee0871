/**
 * `reload`, `stop` and `status` against real servers, found through the
 * pidfile.
 */

import {
  assert,
  assertEquals,
  assertMatch,
  assertNotEquals,
} from "./assert.ts";
import { alive, Child, get, MOD, runCli, TempApp, until } from "./helpers.ts";
import { ignoreWithout, ROOT_USER } from "./capabilities.ts";

async function cli(args: string[]) {
  const out = await new Deno.Command(Deno.execPath(), {
    args: ["run", "-A", MOD, ...args],
    stdout: "piped",
    stderr: "piped",
  }).output();
  const decode = (b: Uint8Array) => new TextDecoder().decode(b);
  return { code: out.code, text: decode(out.stdout) + decode(out.stderr) };
}

/** `reload` that must succeed (60 s for a loaded machine). */
async function reloadOk(pidfile: string) {
  const r = await cli(["reload", "--pidfile", pidfile, "--timeout", "60000"]);
  assertEquals(r.code, 0, r.text);
  return r;
}

const APP = `export default { async fetch(req) {
  const url = new URL(req.url);
  if (url.pathname === "/sleep") await new Promise((r) => setTimeout(r, 1500));
  return new Response(String(Deno.pid));
} };`;

/** The app, served with a pidfile; resolves once the pidfile names it. */
async function serve(extra: string[] = []) {
  const pidDir = await Deno.makeTempDir({ prefix: "graceful-pid-" });
  const pidfile = `${pidDir}/app.pid`;
  const t = await TempApp.start(APP, ["--pidfile", pidfile, ...extra]);
  await until(() => {
    try {
      return Deno.readTextFileSync(pidfile).trim() === String(t.child.pid);
    } catch {
      return false;
    }
  });
  return {
    pidfile,
    app: t.app,
    child: t.child,
    port: t.port,
    dir: pidDir,
    async stop() {
      await t.stop();
      await Deno.remove(pidDir, { recursive: true });
    },
  };
}

Deno.test("cli reload: returns once the new generation serves", async () => {
  const s = await serve(["--restart-signal", "SIGUSR2"]);
  try {
    const status = JSON.parse(Deno.readTextFileSync(`${s.pidfile}.json`));
    assertEquals(status.generation, 1);
    const r = await cli([
      "reload",
      "--pidfile",
      s.pidfile,
      "--signal",
      "SIGUSR2",
    ]);
    assertEquals(r.code, 0, r.text);
    // Right after reload returned, the new generation serves.
    const pid = Number((await get(s.port, "/")).text);
    assertNotEquals(pid, s.child.pid);
    assertEquals(Number(Deno.readTextFileSync(s.pidfile)), pid);
    assertMatch(r.text, new RegExp(`generation 2 \\(pid ${pid}\\)`));
    assertEquals(
      JSON.parse(Deno.readTextFileSync(`${s.pidfile}.json`)).generation,
      2,
    );
  } finally {
    await s.stop();
  }
});

Deno.test("cli reload: a broken new version fails with the reason, the old one serves", async () => {
  const s = await serve();
  try {
    await Deno.writeTextFile(s.app, "throw new Error('no config found');");
    const r = await cli(["reload", "--pidfile", s.pidfile]);
    assertEquals(r.code, 1, r.text);
    assertMatch(r.text, /reload failed/);
    assertMatch(r.text, /exited with code 1/);
    assertEquals(Number((await get(s.port, "/")).text), s.child.pid);
    assertEquals(Number(Deno.readTextFileSync(s.pidfile)), s.child.pid);
  } finally {
    await s.stop();
  }
});

Deno.test("cli stop: drains, returns once the process is gone, removes the pidfile", async () => {
  const s = await serve();
  try {
    const slow = get(s.port, "/sleep");
    await new Promise((r) => setTimeout(r, 200));
    const r = await cli(["stop", "--pidfile", s.pidfile]);
    assertEquals(r.code, 0, r.text);
    assert(!alive(s.child.pid));
    assertEquals((await slow).text, String(s.child.pid));
    assertEquals((await s.child.exited).code, 0);
    let exists = true;
    try {
      Deno.statSync(s.pidfile);
    } catch {
      exists = false;
    }
    assertEquals(exists, false);
  } finally {
    await s.stop();
  }
});

Deno.test("cli status: running, JSON, stale and missing pidfiles", async () => {
  const s = await serve();
  try {
    const human = await cli(["status", "--pidfile", s.pidfile]);
    assertEquals(human.code, 0, human.text);
    assertMatch(human.text, new RegExp(`running: pid ${s.child.pid}`));
    assertMatch(human.text, /generation 1/);
    const json = await cli(["status", "--pidfile", s.pidfile, "--json"]);
    const parsed = JSON.parse(json.text);
    assertEquals([parsed.running, parsed.pid, parsed.generation], [
      true,
      s.child.pid,
      1,
    ]);
    const byPid = await cli(["status", "--pid", String(s.child.pid)]);
    assertEquals(byPid.code, 0);
    s.child.kill("SIGKILL");
    await s.child.exited;
    const stale = await cli(["status", "--pidfile", s.pidfile]);
    assertEquals(stale.code, 1);
    assertMatch(stale.text, /stale pidfile/);
    const missing = await cli(["status", "--pidfile", `${s.dir}/nope.pid`]);
    assertEquals(missing.code, 1);
    assertMatch(missing.text, /no pidfile/);
    const reload = await cli(["reload", "--pidfile", s.pidfile]);
    assertEquals(reload.code, 1);
    assertMatch(reload.text, /stale pidfile/);
  } finally {
    await s.stop();
  }
});

Deno.test("cli reload and stop: a pidfile pointed at an unrelated process is refused, and it lives", async () => {
  const s = await serve();
  const sleeper = new Deno.Command("sleep", { args: ["600"] }).spawn();
  try {
    const status = JSON.parse(Deno.readTextFileSync(`${s.pidfile}.json`));
    // The pidfile alone rewritten; then the status file too (a forger's).
    const forgeries: [string, () => void, RegExp][] = [
      ["pidfile", () => {}, /its status file names pid \d+: refused$/m],
      [
        "pidfile and status",
        () =>
          Deno.writeTextFileSync(
            `${s.pidfile}.json`,
            JSON.stringify({ ...status, pid: sleeper.pid }),
          ),
        /that process is not the server that wrote it .*: refused$/m,
      ],
      [
        "pidfile, no status",
        () => Deno.removeSync(`${s.pidfile}.json`),
        /its status file \S+ is missing or unreadable: refused$/m,
      ],
    ];
    for (const [what, forge, pattern] of forgeries) {
      Deno.writeTextFileSync(s.pidfile, `${sleeper.pid}\n`);
      forge();
      for (const command of ["stop", "reload"]) {
        const r = await cli([command, "--pidfile", s.pidfile]);
        assertEquals(r.code, 1, `${what} ${command}: ${r.text}`);
        assertEquals(r.text.trim().split("\n").length, 1, r.text);
        assertMatch(
          r.text,
          new RegExp(`^error: pidfile \\S+ names pid ${sleeper.pid}, but `),
        );
        assertMatch(r.text, pattern);
        assert(alive(sleeper.pid), `${what} ${command}: sleep was signalled`);
      }
      const st = await cli(["status", "--pidfile", s.pidfile]);
      assertEquals(st.code, 1, st.text);
    }
    // The server was not signalled either.
    assertEquals(Number((await get(s.port, "/")).text), s.child.pid);
  } finally {
    sleeper.kill("SIGKILL");
    await sleeper.status;
    await s.stop();
  }
});

Deno.test("cli reload: sends a signal the server restarts on (from the status file), refuses one it does not", async () => {
  const s = await serve(["--restart-signal", "SIGUSR1"]);
  try {
    const status = JSON.parse(Deno.readTextFileSync(`${s.pidfile}.json`));
    assertEquals(status.restartSignals, ["SIGUSR1"]);
    const wrong = await cli([
      "reload",
      "--pidfile",
      s.pidfile,
      "--signal",
      "SIGUSR2",
    ]);
    assertEquals(wrong.code, 1, wrong.text);
    assertMatch(
      wrong.text,
      /^error: --signal SIGUSR2: pid \d+ does not restart on it \(its restart signals: SIGUSR1\)/,
    );
    assertEquals(Number((await get(s.port, "/")).text), s.child.pid);
    const r = await reloadOk(s.pidfile);
    // (this client's keep-alive connection may still reach the old one once)
    await until(async () =>
      Number((await get(s.port, "/")).text) !== s.child.pid
    );
    assertMatch(r.text, /reloaded: generation 2/);
  } finally {
    await s.stop();
  }
});

Deno.test("cli: a pidfile directory others may write is refused by the server and by reload", async () => {
  const dir = await Deno.makeTempDir({ prefix: "graceful-pid-" });
  try {
    await Deno.chmod(dir, 0o777);
    const out = await runCli(["--port", "0", "--pidfile", `${dir}/app.pid`]);
    const text = out.stderr;
    assertEquals(out.code, 1, text);
    assertMatch(
      text,
      new RegExp(
        `^error: pidfile directory ${dir} is writable by others and not sticky \\(mode 0777\\)`,
      ),
    );
    Deno.writeTextFileSync(`${dir}/app.pid`, `${Deno.pid}\n`);
    const r = await cli(["reload", "--pidfile", `${dir}/app.pid`]);
    assertEquals(r.code, 1, r.text);
    assertMatch(r.text, /^error: pidfile directory .* is writable by others/);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("cli --pidfile under umask 000 with symlinks planted: files are 0644, the targets untouched", async () => {
  const dir = await Deno.makeTempDir({ prefix: "graceful-pid-" });
  const pidfile = `${dir}/app.pid`;
  const victim = `${dir}/victim`;
  Deno.writeTextFileSync(victim, "precious\n");
  Deno.symlinkSync(victim, pidfile);
  Deno.symlinkSync(victim, `${pidfile}.json`);
  const child = new Child("sh", [
    "-c",
    'umask 000; exec "$@"',
    "sh",
    Deno.execPath(),
    "run",
    "-A",
    MOD,
    "--port",
    "0",
    "--hostname",
    "127.0.0.1",
    "--pidfile",
    pidfile,
  ]);
  try {
    await until(() => {
      try {
        return Deno.readTextFileSync(pidfile).trim() === String(child.pid);
      } catch {
        return false;
      }
    });
    assertEquals(Deno.readTextFileSync(victim), "precious\n");
    for (const path of [pidfile, `${pidfile}.json`]) {
      const info = Deno.lstatSync(path);
      assert(info.isFile, `${path} is not a regular file`);
      assertEquals(info.mode! & 0o7777, 0o644, path);
    }
  } finally {
    child.kill("SIGKILL");
    await child.done;
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("cli: a 100 KB GRACEFUL_PORT is quoted cut, in one short line", async () => {
  const out = await runCli([], { GRACEFUL_PORT: "9".repeat(100_000) });
  const text = out.stderr.trim();
  assertEquals(out.code, 1, text);
  assertMatch(
    text,
    /^error: --port "9{80}"… \(100000 characters\) is not a port number \(0-65535\)$/,
  );
});

Deno.test("cli reload: a server of an older version (its status file without startTime and restartSignals) still reloads, by SIGUSR2", async () => {
  const s = await serve(["--restart-signal", "SIGUSR2"]);
  try {
    const { startTime: _s, cmdlineSha256: _c, restartSignals: _r, ...legacy } =
      JSON.parse(Deno.readTextFileSync(`${s.pidfile}.json`));
    Deno.writeTextFileSync(`${s.pidfile}.json`, JSON.stringify(legacy));
    const r = await reloadOk(s.pidfile);
    assertMatch(r.text, /reloaded: generation 2/);
  } finally {
    await s.stop();
  }
});

/**
 * A stand-in for a 0.1.x server on its default signals: it restarts on
 * SIGUSR1 only (so SIGUSR2 is not caught: it would end it), and writes its
 * pidfile and a status file of that version (no startTime, cmdlineSha256 or
 * restartSignals). Prints "ready" once both are written.
 */
const OLD_SERVER = `
const pidfile = Deno.args[0];
Deno.addSignalListener("SIGUSR1", () => console.log("SIGUSR1"));
const now = Date.now();
Deno.writeTextFileSync(pidfile + ".json", JSON.stringify({
  pid: Deno.pid, generation: 1, startedAt: now, firstStartedAt: now,
  restarts: 0, listeners: ["127.0.0.1:1"],
}));
Deno.writeTextFileSync(pidfile, Deno.pid + "\\n");
console.log("ready");
setInterval(() => {}, 60_000);
`;

Deno.test("cli reload: an older server whose status file lists no restart signals and that does not catch SIGUSR2 is refused, and it lives", async () => {
  const dir = await Deno.makeTempDir({ prefix: "graceful-pid-" });
  const pidfile = `${dir}/app.pid`;
  Deno.writeTextFileSync(`${dir}/old_server.ts`, OLD_SERVER);
  const old = new Child(Deno.execPath(), [
    "run",
    "-A",
    `${dir}/old_server.ts`,
    pidfile,
  ]);
  try {
    await old.waitFor(/^ready$/);
    const caught = Deno.readTextFileSync(`/proc/${old.pid}/status`)
      .match(/^SigCgt:\s*([0-9a-f]+)$/m)![1];
    // The stand-in is what it claims: SIGUSR1 (10) caught, SIGUSR2 (12) not.
    assertEquals((BigInt(`0x${caught}`) >> 9n) & 1n, 1n);
    assertEquals((BigInt(`0x${caught}`) >> 11n) & 1n, 0n);
    for (const extra of [[], ["--signal", "SIGUSR2"]]) {
      const r = await cli(["reload", "--pidfile", pidfile, ...extra]);
      assertNotEquals(r.code, 0, r.text);
      assertEquals(r.text.trim().split("\n").length, 1, r.text);
      assertMatch(
        r.text,
        new RegExp(
          `^error: pid ${old.pid}'s status file lists no restart signals .*` +
            `does not catch SIGUSR2 .*: refused; .*--signal SIGUSR1$`,
          "m",
        ),
      );
      assert(alive(old.pid), `${extra.join(" ")}: it was signalled`);
    }
    assertEquals(old.lines, ["ready"]);
  } finally {
    old.kill("SIGKILL");
    await old.done;
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test({
  name:
    "cli reload and stop: a pidfile or status file of another user (uid 65534) naming a root process is refused, even with its true start time and command line, and it lives",
  ignore: ignoreWithout(ROOT_USER),
  async fn() {
    const dir = await Deno.makeTempDir({ prefix: "graceful-pid-" });
    const pidfile = `${dir}/app.pid`;
    const victim = new Deno.Command("sleep", { args: ["600"] }).spawn();
    try {
      // (spawn may return before the child's execve)
      await until(() =>
        Deno.readTextFileSync(`/proc/${victim.pid}/cmdline`).endsWith(
          "sleep\x00600\x00",
        )
      );
      // A forger who can read /proc knows everything the status file records.
      const stat = Deno.readTextFileSync(`/proc/${victim.pid}/stat`);
      const startTime = Number(
        stat.slice(stat.lastIndexOf(")") + 2).split(" ")[22 - 3],
      );
      const digest = new Uint8Array(
        await crypto.subtle.digest(
          "SHA-256",
          Deno.readFileSync(`/proc/${victim.pid}/cmdline`),
        ),
      );
      const now = Date.now();
      Deno.writeTextFileSync(
        `${pidfile}.json`,
        JSON.stringify({
          pid: victim.pid,
          generation: 1,
          startedAt: now,
          firstStartedAt: now,
          restarts: 0,
          listeners: ["127.0.0.1:1"],
          startTime,
          cmdlineSha256: Array.from(
            digest,
            (b) => b.toString(16).padStart(2, "0"),
          ).join(""),
          restartSignals: ["SIGUSR2"],
        }),
      );
      Deno.writeTextFileSync(pidfile, `${victim.pid}\n`);
      const cases: [string, number, number][] = [
        ["the pidfile", 65534, 0],
        ["its status file", 0, 65534],
      ];
      for (const [what, pidUid, statusUid] of cases) {
        Deno.chownSync(pidfile, pidUid, pidUid);
        Deno.chownSync(`${pidfile}.json`, statusUid, statusUid);
        for (const command of ["stop", "reload"]) {
          const r = await cli([command, "--pidfile", pidfile]);
          assertEquals(r.code, 1, `${what} ${command}: ${r.text}`);
          assertEquals(r.text.trim().split("\n").length, 1, r.text);
          assertMatch(
            r.text,
            new RegExp(
              `^error: pidfile \\S+ names pid ${victim.pid}, but ${what} ` +
                `belongs to uid 65534 and the process to uid 0: refused$`,
              "m",
            ),
          );
          assert(alive(victim.pid), `${what} ${command}: it was signalled`);
        }
      }
      // The control: with both files root's, the forgery passes every other
      // check, and stop signals the process (SIGTERM ends sleep).
      Deno.chownSync(pidfile, 0, 0);
      Deno.chownSync(`${pidfile}.json`, 0, 0);
      const stop = await cli(["stop", "--pidfile", pidfile]);
      assertEquals(stop.code, 0, stop.text);
      assertEquals((await victim.status).signal, "SIGTERM");
    } finally {
      if (alive(victim.pid)) victim.kill("SIGKILL");
      await victim.status;
      await Deno.remove(dir, { recursive: true });
    }
  },
});
