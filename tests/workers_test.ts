/**
 * Workers under a supervisor, end to end: real `deno run -A mod.ts APP.ts
 * --workers N` processes, signals, `reload`, wrk, a pid namespace and a
 * pseudo-terminal. Each test's app lives in a temp dir whose path marks every
 * process it starts, so that nothing is left behind.
 */

import { assert, assertEquals, assertMatch } from "./assert.ts";
import { terminalArgs } from "./terminal.ts";
import { ignoreWithout, SCRIPT } from "./capabilities.ts";
import {
  alive,
  Child,
  get,
  listeningInodes,
  MOD,
  pidsWith,
  readStatus,
  until,
  type WorkersStatus,
} from "./helpers.ts";
import {
  ADMIN_TOKEN,
  adminRestart,
  app,
  reload,
  startWorkers,
  text,
} from "./workers_harness.ts";

/** `deno run -A mod.ts APP --port 0 --hostname 127.0.0.1`. */
function cliCommand(appPath: string): string[] {
  return [
    Deno.execPath(),
    "run",
    "-A",
    MOD,
    appPath,
    "--port",
    "0",
    "--hostname",
    "127.0.0.1",
  ];
}

/** `mod.ts APP --workers 2 --pidfile F` for a main module; waits for both. */
async function startMainModule(
  appPath: string,
  pidfile: string,
): Promise<Child> {
  const child = new Child(Deno.execPath(), [
    "run",
    "-A",
    MOD,
    appPath,
    "--workers",
    "2",
    "--pidfile",
    pidfile,
  ]);
  await until(() => readStatus(pidfile)?.workers.length === 2);
  return child;
}

Deno.test("workers: 2 workers share the supervisor's socket; SIGTERM drains them all and exits 0", async () => {
  const { t, status } = await startWorkers(app(), 2);
  try {
    const supervisor = t.child.pid;
    const { workers } = status();
    assertEquals(status().pid, supervisor);
    const [shared] = listeningInodes(supervisor);
    assert(shared, "the supervisor holds the listening socket");
    for (const worker of workers) {
      assertEquals(listeningInodes(worker.pid).map((l) => l.inode), [
        shared.inode,
      ]);
    }
    assertEquals(
      pidsWith(t.dir).sort(),
      [supervisor, ...workers.map((w) => w.pid)].sort(),
    );
    // Workers do not talk to systemd, and know they are workers.
    for (const worker of workers) {
      const env = Deno.readTextFileSync(`/proc/${worker.pid}/environ`);
      assert(!env.includes("NOTIFY_SOCKET="), "no NOTIFY_SOCKET in a worker");
    }
    assertEquals((await get(t.port, "/version")).text, "v1");
    t.child.kill("SIGTERM");
    assertEquals((await t.child.exited).code, 0);
    assertEquals(pidsWith(t.dir), []);
  } finally {
    await t.stop();
  }
});

for (const mode of ["keep-alive", "Connection: close"]) {
  Deno.test(`workers: a rolling reload under wrk (${mode}) loses no request`, async () => {
    const { t, pidfile, status } = await startWorkers(app(), 2);
    try {
      const before = status().workers.map((w) => w.pid);
      await t.write(app("v2"));
      const wrk = new Child("wrk", [
        "-t1",
        "-c20",
        "-d120s",
        ...(mode === "keep-alive" ? [] : ["-H", "Connection: close"]),
        `http://127.0.0.1:${t.port}/`,
      ]);
      // wrk is connected once the port has established connections.
      await until(() => established(t.port) > 0);
      const reloaded = await reload(pidfile);
      assertEquals(reloaded.code, 0, text(reloaded.stderr));
      assertMatch(text(reloaded.stdout), /rolled to generation 2/);
      // The last old worker drains after the roll succeeded.
      await until(() => before.every((pid) => !alive(pid)));
      await until(() => status().workers.length === 2);
      // The roll, drains included, happened within the load window.
      assert(
        (await Promise.race([wrk.exited.then(() => true), false])) === false,
        "wrk ended before the roll did",
      );
      wrk.kill("SIGINT"); // wrk stops and prints its report
      await wrk.done;
      const report = wrk.output;
      const requests = Number(report.match(/(\d+) requests in/)?.[1] ?? 0);
      assert(requests >= 200, report);
      assert(!/Socket errors/.test(report), report);
      assert(!/Non-2xx/.test(report), report);
      const after = status().workers.map((w) => w.pid);
      assertEquals(after.filter((pid) => before.includes(pid)), []);
      assertEquals(status().workers.map((w) => w.generation), [2, 2]);
      assertEquals((await get(t.port, "/version")).text, "v2");
    } finally {
      await t.stop();
    }
  });
}

/** Established TCP connections to 127.0.0.1:port (server side). */
function established(port: number): number {
  const hex = port.toString(16).toUpperCase().padStart(4, "0");
  return Deno.readTextFileSync("/proc/net/tcp").split("\n").filter((line) => {
    const cols = line.trim().split(/\s+/);
    return cols[1]?.endsWith(`:${hex}`) && cols[3] === "01";
  }).length;
}

Deno.test("workers: a new version that fails mid-roll: the old worker keeps serving and reload exits 1", async () => {
  const { t, pidfile, status } = await startWorkers(app(), 2);
  try {
    const [first, second] = status().workers;
    // The first v2 worker starts; the next one fails.
    await t.write(app(
      "v2",
      `const mark = new URL("./v2-started", import.meta.url).pathname;
try { Deno.statSync(mark); throw new Error("v2 cannot start twice"); }
catch (e) { if (e.message.includes("twice")) throw e; Deno.writeTextFileSync(mark, ""); }
`,
    ));
    const reloaded = await reload(pidfile);
    assertEquals(reloaded.code, 1, text(reloaded.stdout));
    assertMatch(text(reloaded.stderr), /reload failed/);
    const now = status();
    assertEquals(now.lastRestart?.ok, false);
    assertEquals(now.workers.length, 2);
    assert(!alive(first.pid), "slot 1 was rolled");
    assertEquals(now.workers[1].pid, second.pid);
    assert(alive(second.pid), "slot 2 keeps its old worker");
    assertEquals(now.workers.map((w) => w.generation), [2, 1]);
    assertEquals(now.generation, 1);
    // Both keep serving. Requests go 8 at a time: one at a time, an idle
    // worker is woken before a busy one (EPOLLEXCLUSIVE), always the same
    // one, and would reach only it.
    const versions = new Set<string>();
    const one = async () => {
      versions.add(
        (await get(t.port, "/version", {
          headers: { connection: "close" },
        })).text,
      );
    };
    await until(async () => {
      await Promise.all(Array.from({ length: 8 }, one));
      return versions.size === 2;
    });
    assertEquals([...versions].sort(), ["v1", "v2"]);
  } finally {
    await t.stop();
  }
});

Deno.test("workers: a crashed worker is replaced; a crash loop stops replacing it", async () => {
  const { t, pidfile, status } = await startWorkers(
    app(
      "v1",
      `
try {
  Deno.statSync(new URL("./crash", import.meta.url));
  setTimeout(() => Deno.exit(3), 50);
} catch { /* no crash file: serve */ }
`,
    ),
    2,
  );
  try {
    const [first, second] = status().workers;
    Deno.kill(first.pid, "SIGKILL");
    await until(() => {
      const slot1 = status().workers.find((w) => w.slot === 1);
      return slot1 !== undefined && slot1.pid !== first.pid;
    });
    assertEquals((await get(t.port, "/version")).text, "v1");
    // Now every new worker crashes right after it starts.
    Deno.writeTextFileSync(`${t.dir}/crash`, "");
    const replaced = status().workers.find((w) => w.slot === 1)!;
    Deno.kill(replaced.pid, "SIGKILL");
    await until(() => status().givenUp.includes(1), 60_000);
    assertEquals(status().workers.map((w) => w.pid), [second.pid]);
    await t.child.waitFor(/worker 1 crashed \d+ times/); // logged
    assertEquals(Number((await get(t.port, "/pid")).text), second.pid);
    // A fixed version brings the slot back with the next roll.
    Deno.removeSync(`${t.dir}/crash`);
    const reloaded = await reload(pidfile);
    assertEquals(reloaded.code, 0, text(reloaded.stderr));
    assertEquals(status().givenUp, []);
    // (the last old worker drains after the roll's success)
    await until(() => status().workers.map((w) => w.slot).join() === "1,2");
  } finally {
    await t.stop();
  }
});

/** Field `index` (0: state, 1: ppid) after the command in /proc/PID/stat. */
function statField(pid: number, index: number): string | undefined {
  try {
    const stat = Deno.readTextFileSync(`/proc/${pid}/stat`);
    return stat.slice(stat.lastIndexOf(")") + 2).split(" ")[index];
  } catch {
    return undefined; // reaped
  }
}

/** The host pid of the process that is PID 1 in the namespace under `pid`. */
function namespaceInit(parent: number): number | undefined {
  for (const pid of pidsWith("")) {
    if (statField(pid, 1) !== String(parent)) continue;
    const status = Deno.readTextFileSync(`/proc/${pid}/status`);
    if (/^NSpid:\s+\d+\s+1$/m.test(status)) return pid;
  }
  return undefined;
}

Deno.test({
  name:
    "workers: as PID 1 of a pid namespace, a restart keeps serving and every child (orphans too) is reaped",
  ignore: Deno.build.os !== "linux",
  async fn() {
    const dir = await Deno.makeTempDir({ prefix: "graceful-pid1-" });
    const source = app(
      "v1",
      // An orphan: the subshell outlives its parent sh and is reparented to
      // PID 1, which must reap it.
      `await new Deno.Command("sh", {
  args: ["-c", "(until [ -e ${dir}/release ]; do sleep 0.05; done) >/dev/null 2>&1 & exit 0", "${dir}/orphan"],
}).output();
`,
    );
    await Deno.writeTextFile(`${dir}/app.ts`, source);
    const child = new Child("unshare", [
      "--pid",
      "--fork",
      "--mount-proc",
      "--kill-child", // when the test kills unshare, the namespace ends
      ...cliCommand(`${dir}/app.ts`),
    ]);
    try {
      const m = await child.waitFor(
        /Listening on http:\/\/127\.0\.0\.1:(\d+)\//,
      );
      const port = Number(m[1]);
      let init: number | undefined;
      await until(() => (init = namespaceInit(child.pid)) !== undefined);
      const first = Number((await get(port, "/pid")).text);
      assert(first !== 1, "a worker serves, not PID 1");
      // The orphan is the supervisor's child now.
      let orphan: number | undefined;
      await until(() => {
        orphan = pidsWith(`${dir}/orphan`).find((pid) =>
          statField(pid, 1) === String(init)
        );
        return orphan !== undefined;
      });
      Deno.writeTextFileSync(`${dir}/release`, ""); // the orphan ends
      Deno.kill(init!, "SIGUSR1");
      await until(async () =>
        Number(
          (await get(port, "/pid", {
            headers: { connection: "close" },
          })).text,
        ) !== first
      );
      // Neither the old worker nor the orphan is left a zombie.
      await until(() => statField(orphan!, 0) === undefined);
      await until(() =>
        pidsWith("").every((pid) =>
          statField(pid, 1) !== String(init) || statField(pid, 0) !== "Z"
        ) && !Deno.readDirSync("/proc").some((e) =>
          statField(Number(e.name), 1) === String(init) &&
          statField(Number(e.name), 0) === "Z"
        )
      );
      assertEquals((await get(port, "/version")).text, "v1");
      Deno.kill(init!, "SIGTERM");
      assertEquals((await child.exited).code, 0);
      assertEquals(pidsWith(dir), []);
    } finally {
      await child.cleanup();
      await Deno.remove(dir, { recursive: true });
    }
  },
});

Deno.test({
  name:
    "workers: in a terminal the command stays in the foreground across a restart, and Ctrl-C drains and stops everything",
  ignore: ignoreWithout(SCRIPT),
  async fn() {
    const dir = await Deno.makeTempDir({ prefix: "graceful-tty-" });
    await Deno.writeTextFile(`${dir}/app.ts`, app());
    const terminal = new Deno.Command("script", {
      args: terminalArgs(cliCommand(`${dir}/app.ts`)),
      stdin: "piped",
      stdout: "piped",
      stderr: "null",
      env: { NO_COLOR: "1" },
    }).spawn();
    const output: string[] = [];
    const reading = (async () => {
      for await (
        const chunk of terminal.stdout.pipeThrough(new TextDecoderStream())
      ) output.push(chunk);
    })();
    const typist = terminal.stdin.getWriter();
    try {
      await until(() =>
        /Listening on http:\/\/127\.0\.0\.1:\d+\//.test(output.join(""))
      );
      const port = Number(
        output.join("").match(/Listening on http:\/\/127\.0\.0\.1:(\d+)\//)![1],
      );
      const first = Number((await get(port, "/pid")).text);
      const supervisor = Number(statField(first, 1));
      assert(
        /^[^\0]*deno\0run\0/.test(
          Deno.readTextFileSync(`/proc/${supervisor}/cmdline`),
        ),
        "the worker's parent is the supervisor, in the terminal",
      );
      Deno.kill(supervisor, "SIGUSR1");
      let now = first;
      await until(async () => {
        now = Number(
          (await get(port, "/pid", {
            headers: { connection: "close" },
          })).text,
        );
        return now !== first;
      });
      await until(() => !alive(first));
      assert(alive(supervisor), "the command is still in the foreground");
      await typist.write(new TextEncoder().encode("\x03")); // Ctrl-C
      const status = await terminal.status;
      assertEquals(status.code, 0, output.join(""));
      await until(() => pidsWith(dir).length === 0);
      await reading; // the terminal's last output
      assertMatch(output.join(""), /SIGINT: stopping \d+ worker/);
    } finally {
      for (const pid of pidsWith(dir)) Deno.kill(pid, "SIGKILL");
      try {
        terminal.kill("SIGKILL");
      } catch {
        // gone
      }
      await typist.close().catch(() => {});
      await reading;
      await Deno.remove(dir, { recursive: true });
    }
  },
});

Deno.test("workers: APP.ts as a main module that calls serveGraceful on port 0: the first worker's socket is taken by the supervisor and shared", async () => {
  const dir = await Deno.makeTempDir({ prefix: "graceful-main-" });
  const pidfile = `${dir}/app.pid`;
  await Deno.writeTextFile(
    `${dir}/app.ts`,
    `import { serveGraceful } from "${MOD}";
serveGraceful({ port: 0, hostname: "127.0.0.1" }, () => new Response(String(Deno.pid)));
`,
  );
  const child = await startMainModule(`${dir}/app.ts`, pidfile);
  try {
    const { workers, listeners } = readStatus(pidfile)! as WorkersStatus & {
      listeners: string[];
    };
    const port = Number(listeners[0].split(":").pop());
    const inodes = workers.map((w) => listeningInodes(w.pid)[0]?.inode);
    assertEquals(inodes[0], inodes[1]);
    assertEquals(listeningInodes(child.pid)[0].inode, inodes[0]);
    assert(
      workers.map((w) => w.pid).includes(Number((await get(port, "/")).text)),
    );
    child.kill("SIGTERM");
    assertEquals((await child.exited).code, 0);
  } finally {
    await child.cleanup();
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("workers: GRACEFUL_WORKERS=auto counts the CPUs this process may run on", async () => {
  const cpus = navigator.hardwareConcurrency;
  const dir = await Deno.makeTempDir({ prefix: "graceful-auto-" });
  const pidfile = `${dir}/app.pid`;
  await Deno.writeTextFile(`${dir}/app.ts`, app());
  const start = (affinity: string) =>
    new Child("taskset", [
      "-c",
      affinity,
      Deno.execPath(),
      "run",
      "-A",
      MOD,
      `${dir}/app.ts`,
      "--port",
      "0",
      "--hostname",
      "127.0.0.1",
      "--pidfile",
      pidfile,
    ], { GRACEFUL_WORKERS: "auto" });
  try {
    if (cpus >= 2) {
      const all = start(`0-${cpus - 1}`);
      await until(() => readStatus(pidfile)?.workers?.length === cpus);
      all.kill("SIGTERM");
      assertEquals((await all.exited).code, 0);
    }
    // One CPU: one worker, served as today (no supervisor, no workers list).
    const one = start("0");
    await one.waitFor(/Listening on/);
    await until(() => readStatus(pidfile) !== undefined);
    assertEquals(readStatus(pidfile)!.pid, one.pid);
    assertEquals(readStatus(pidfile)!.workers, undefined);
    one.kill("SIGTERM");
    assertEquals((await one.exited).code, 0);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("workers: --workers takes a number or auto; anything else is a one-line error", async () => {
  const out = await new Deno.Command(Deno.execPath(), {
    args: ["run", "-A", MOD, "--workers", "two"],
    stdout: "piped",
    stderr: "piped",
  }).output();
  assertEquals(out.code, 1);
  assertEquals(
    text(out.stderr).trim(),
    'error: --workers "two" must be a number of workers (1-1024) or auto',
  );
});

function cmdlineOf(pid: number): string {
  return Deno.readTextFileSync(`/proc/${pid}/cmdline`);
}

Deno.test("workers: the admin API rolls every worker (200, generation 2), and answers 503 when the new version fails", async () => {
  const { t, status } = await startWorkers(app(), 2, [
    "--admin",
    "--admin-token",
    ADMIN_TOKEN,
  ]);
  try {
    const before = status().workers.map((w) => w.pid);
    // The supervisor hands the token over the control channel: it is in no
    // worker's command line.
    for (const pid of before) {
      assertEquals(cmdlineOf(pid).includes(ADMIN_TOKEN), false);
    }
    await t.write(app("v2"));
    const ok = await adminRestart(t.port);
    const body = await ok.json();
    assertEquals(ok.status, 200, JSON.stringify(body));
    assertEquals(body, { pid: t.child.pid, generation: 2 });
    await until(() =>
      status().workers.length === 2 &&
      status().workers.every((w) => !before.includes(w.pid))
    );
    assertEquals(status().lastRestart?.ok, true);
    // Whichever worker answers, the admin status is the supervisor's view.
    await until(async () => {
      const res = await fetch(`http://127.0.0.1:${t.port}/debug/admin/status`, {
        headers: {
          authorization: `Bearer ${ADMIN_TOKEN}`,
          connection: "close",
        },
      });
      const view = await res.json();
      return view.pid === t.child.pid && view.generation === 2 &&
        view.workers?.length === 2 && view.restarts === 1 &&
        view.workers.every((w: { pid: number }) => !before.includes(w.pid));
    });
    await t.write(app("v3", `throw new Error("v3 is broken");\n`));
    const failed = await adminRestart(t.port);
    const reason = await failed.json();
    assertEquals(failed.status, 503, JSON.stringify(reason));
    assertMatch(reason.error, /v3 is broken|did not start/);
    assertEquals((await get(t.port, "/version")).text, "v2");
    assertEquals(status().workers.map((w) => w.generation), [2, 2]);
    for (const worker of status().workers) {
      assertEquals(cmdlineOf(worker.pid).includes(ADMIN_TOKEN), false);
    }
  } finally {
    await t.stop();
  }
});

Deno.test("workers: `status` lists every worker with its pid, generation, start, requests in flight and served", async () => {
  const { t, pidfile, status } = await startWorkers(app(), 2);
  try {
    for (let i = 0; i < 20; i++) {
      await get(t.port, "/", { headers: { connection: "close" } });
    }
    // Each worker reports its counts (within a second of a change).
    await until(() =>
      status().workers.reduce(
        (n, w) => n + w.served,
        0,
      ) >= 20
    );
    const out = await new Deno.Command(Deno.execPath(), {
      args: ["run", "-A", MOD, "status", "--pidfile", pidfile],
      stdout: "piped",
    }).output();
    const lines = text(out.stdout).split("\n").filter((l) =>
      /^ {2}worker \d/.test(l)
    );
    assertEquals(lines.length, 2, text(out.stdout));
    for (const [i, w] of status().workers.entries()) {
      assertMatch(
        lines[i],
        new RegExp(
          `worker ${w.slot}: pid ${w.pid}, generation 1, ready since \\S+, 0 in flight, \\d+ served`,
        ),
      );
    }
  } finally {
    await t.stop();
  }
});

Deno.test("workers: --watch under the supervisor rolls the workers on an edit", async () => {
  const { t, status } = await startWorkers(app(), 2, ["--watch"]);
  try {
    await t.write(app("v2"));
    await until(() =>
      status().workers.length === 2 &&
      status().workers.every((w) => w.generation === 2 && w.phase === "ready")
    );
    assertEquals((await get(t.port, "/version")).text, "v2");
  } finally {
    await t.stop();
  }
});

Deno.test("workers: a worker SIGKILLed under wrk: no connection is refused, and it is replaced", async () => {
  const { t, status } = await startWorkers(app(), 2);
  try {
    const wrk = new Child("wrk", [
      "-t1",
      "-c20",
      "-d120s",
      `http://127.0.0.1:${t.port}/`,
    ]);
    await until(() => established(t.port) > 0);
    const [victim] = status().workers;
    Deno.kill(victim.pid, "SIGKILL");
    await until(() =>
      status().workers.length === 2 &&
      status().workers.every((w) => w.pid !== victim.pid)
    );
    assert(
      (await Promise.race([wrk.exited.then(() => true), false])) === false,
      "wrk ended before the worker was replaced",
    );
    wrk.kill("SIGINT");
    await wrk.done;
    const requests = Number(wrk.output.match(/(\d+) requests in/)?.[1] ?? 0);
    assert(requests >= 200, wrk.output);
    // The killed worker's in-flight requests are lost (read errors); no
    // connection is refused.
    const connect = Number(
      wrk.output.match(/Socket errors: connect (\d+)/)?.[1] ?? 0,
    );
    assertEquals(connect, 0, wrk.output);
  } finally {
    await t.stop();
  }
});

Deno.test("workers: when the supervisor is SIGKILLed, the workers drain and exit (nothing is left serving)", async () => {
  const { t, status } = await startWorkers(app(), 2);
  try {
    const workers = status().workers.map((w) => w.pid);
    Deno.kill(t.child.pid, "SIGKILL");
    await until(() => workers.every((pid) => !alive(pid)));
    assertEquals(pidsWith(t.dir), []);
  } finally {
    await t.stop();
  }
});

Deno.test("workers: a reload upgrades the supervisor in place (execve: same pid, same socket), and each new worker gets its old worker's app state", async () => {
  const dir = await Deno.makeTempDir({ prefix: "graceful-upgrade-" });
  const pidfile = `${dir}/app.pid`;
  await Deno.writeTextFile(
    `${dir}/app.ts`,
    `import { serveGraceful } from "${MOD}";
let hits = 0;
serveGraceful({
  port: 0,
  hostname: "127.0.0.1",
  handover: { save: () => ({ hits }), restore: (s) => { hits = s.hits; } },
}, () => new Response(Deno.pid + " " + ++hits));
`,
  );
  const child = await startMainModule(`${dir}/app.ts`, pidfile);
  try {
    const port = Number(
      (readStatus(pidfile) as unknown as { listeners: string[] }).listeners[0]
        .split(":").pop(),
    );
    const [socket] = listeningInodes(child.pid);
    // Until every worker has answered: each one's first and last count.
    // Requests go 8 at a time: an idle worker is woken before a busy one
    // (EPOLLEXCLUSIVE), always the same one, so one at a time would reach
    // only it.
    const hits = async (pids: number[]) => {
      const first = new Map<number, number>();
      const last = new Map<number, number>();
      const one = async () => {
        const res = await fetch(`http://127.0.0.1:${port}/`, {
          headers: { connection: "close" },
        });
        const [pid, count] = (await res.text()).split(" ").map(Number);
        first.set(pid, Math.min(first.get(pid) ?? count, count));
        last.set(pid, Math.max(last.get(pid) ?? count, count));
      };
      await until(async () => {
        await Promise.all(Array.from({ length: 8 }, one));
        return pids.every((p) => last.has(p));
      });
      return { first, last };
    };
    const before = readStatus(pidfile)!.workers;
    const counts = (await hits(before.map((w) => w.pid))).last;
    const reloaded = await reload(pidfile);
    assertEquals(reloaded.code, 0, text(reloaded.stderr));
    await child.waitFor(
      new RegExp(`supervisor upgraded in place \\(pid ${child.pid}\\)`),
    );
    assertEquals(readStatus(pidfile)!.pid, child.pid);
    assertEquals(listeningInodes(child.pid)[0].inode, socket.inode);
    await until(() =>
      readStatus(pidfile)!.workers.length === 2 &&
      readStatus(pidfile)!.workers.every((w) => w.generation === 2)
    );
    const after = readStatus(pidfile)!.workers;
    const next = (await hits(after.map((w) => w.pid))).first;
    for (const w of after) {
      const old = before.find((b) => b.slot === w.slot)!;
      // handover.restore() got the old worker's count.
      assertEquals(next.get(w.pid), counts.get(old.pid)! + 1, `slot ${w.slot}`);
    }
    child.kill("SIGTERM");
    assertEquals((await child.exited).code, 0);
  } finally {
    await child.cleanup();
    await Deno.remove(dir, { recursive: true });
  }
});
