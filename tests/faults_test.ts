/**
 * Faults, end to end, against the real CLI (`deno run -A mod.ts APP.ts`):
 * bad socket activation input, new generations that fail in every way,
 * signals at awkward moments, intruders on the control channel (including
 * another local user), the admin API's refusals, long-lived connections
 * across a restart, and a closed terminal.
 *
 * Every test runs its own app in a temp dir whose path is in every
 * generation's command line (the marker), and checks that nothing with its
 * marker is left behind. Gates are files in that dir, so that no test
 * depends on how fast anything is. The slow, measuring tests are in
 * soak_test.ts; TESTING.md has the table of faults and tests.
 *
 * @module
 */

import {
  assert,
  assertEquals,
  assertMatch,
  assertNotEquals,
} from "./assert.ts";
import {
  alive,
  Child,
  freePort,
  get,
  listeningInodes,
  MOD,
  pidsWith,
  refused,
  ROOT,
  TempApp,
  until,
} from "./helpers.ts";
import {
  BE_NOBODY,
  has,
  NET_NAMESPACE,
  PYTHON,
  SCRIPT,
} from "./capabilities.ts";
import { terminalArgs } from "./terminal.ts";
import { versionedAppSource } from "./fixtures/versioned_app.ts";

/**
 * A prelude that adds a server "warm" whose readiness hook fails, but only
 * once the app has accepted a request (`/hold`): a warm-up that fails after a
 * while, under traffic.
 */
const WARM_UP_FAILS = `import { serveGraceful } from ${JSON.stringify(MOD)};
serveGraceful({
  name: "warm",
  listen: ["127.0.0.1:0"],
  onListen() {},
  async readiness() {
    while (!(globalThis.holding > 0)) await new Promise((r) => setTimeout(r, 5));
    throw new Error("warm-up failed");
  },
}, () => new Response("warm"));
`;
const LAUNCHER = `${ROOT}/tests/fixtures/faults_listen_fds.py`;
// Each skips its tests without the tool (strict mode: fails; capabilities.ts).
const HAS_PYTHON = has(PYTHON);
const HAS_SCRIPT = has(SCRIPT);
/** Root, with setpriv: tests can act as user nobody. */
const CAN_BE_NOBODY = has(BE_NOBODY);
/** Root, with unshare: a process can get a network namespace of its own. */
const CAN_UNSHARE = has(NET_NAMESPACE);

// ---------------------------------------------------------------------------
// The app and its gates

/** A new app (version v1) in a temp dir of its own; started by the test. */
function makeApp(): Promise<TempApp> {
  return TempApp.create(versionedAppSource("v1"));
}

/** Writes version `version` of the app (the next generation loads it). */
function writeVersion(
  app: TempApp,
  version: string,
  prelude = "",
): Promise<void> {
  return app.write(versionedAppSource(version, prelude));
}

/** Creates the file DIR/name (opens a gate). */
function openGate(app: TempApp, name: string): Promise<void> {
  return Deno.writeTextFile(`${app.dir}/${name}`, "");
}

/** Code for the top of a new version: wait for DIR/NAME before loading on. */
function waitForFile(dir: string, name: string): string {
  return `
while (true) {
  try {
    Deno.statSync(${JSON.stringify(`${dir}/${name}`)});
    break;
  } catch {
    await new Promise((r) => setTimeout(r, 10));
  }
}
`;
}

/** The serving pid, on a fresh connection (never a draining generation's). */
async function pidOf(port: number): Promise<number> {
  const res = await fetch(`http://127.0.0.1:${port}/pid`, {
    headers: { connection: "close" },
  });
  return Number(await res.text());
}

/** Sends `signal` to the serving pid and waits until another pid serves. */
async function restartOnce(
  port: number,
  signal: Deno.Signal = "SIGUSR1",
): Promise<{ old: number; now: number }> {
  const old = await pidOf(port);
  Deno.kill(old, signal);
  let now = old;
  await until(async () => {
    now = await pidOf(port);
    return now !== old;
  });
  return { old, now };
}

/** A GET that resolves to its outcome instead of rejecting. */
async function attempt(
  port: number,
  path: string,
): Promise<{ status: number; text: string } | { error: string }> {
  try {
    const res = await fetch(`http://127.0.0.1:${port}${path}`, {
      headers: { connection: "close" },
    });
    return { status: res.status, text: await res.text() };
  } catch (error) {
    return { error: String(error) };
  }
}

/** The process's state letter from /proc (Z: zombie), or undefined when gone. */
function procState(pid: number): string | undefined {
  try {
    const stat = Deno.readTextFileSync(`/proc/${pid}/stat`);
    return stat.slice(stat.lastIndexOf(")") + 2, stat.lastIndexOf(")") + 3);
  } catch {
    return undefined;
  }
}

/** The new generation being started (not `old`), once it exists. */
async function childOf(marker: string, old: number): Promise<number> {
  let pid = 0;
  await until(() => {
    // Not a fork that has yet to exec (a copy of `old`, with its environment
    // and command line), nor the `sh` before its exec: the new generation's
    // own process, which has LISTEN_PID set to itself.
    pid = pidsWith(marker).find((p) => p !== old && execed(p)) ?? 0;
    return pid !== 0;
  });
  return pid;
}

/** Whether `pid` is a new generation that has exec'ed (LISTEN_PID is its own). */
function execed(pid: number): boolean {
  try {
    return environOf(pid).LISTEN_PID === String(pid);
  } catch {
    return false; // gone
  }
}

/** The process's initial environment (what /proc/PID/environ shows). */
function environOf(pid: number): Record<string, string> {
  const env: Record<string, string> = {};
  for (
    const entry of Deno.readTextFileSync(`/proc/${pid}/environ`).split("\0")
  ) {
    const eq = entry.indexOf("=");
    if (eq > 0) env[entry.slice(0, eq)] = entry.slice(eq + 1);
  }
  return env;
}

/** Resolves with the status once `child` exits on its own; a minute's net. */
async function exitsOnItsOwn(child: Child): Promise<Deno.CommandStatus> {
  let killed = false;
  const net = setTimeout(() => {
    killed = true;
    child.kill("SIGKILL");
  }, 60_000);
  try {
    const status = await child.done;
    assert(!killed, `it did not exit on its own:\n${child.output}`);
    return status;
  } finally {
    clearTimeout(net);
  }
}

/** Runs `command` as user nobody (uid and gid 65534, no groups). */
async function asNobody(
  command: string[],
): Promise<{ code: number; stdout: string; stderr: string }> {
  const out = await new Deno.Command("setpriv", {
    args: [
      "--reuid=65534",
      "--regid=65534",
      "--clear-groups",
      "--",
      ...command,
    ],
    env: { PATH: "/usr/bin:/bin", LC_ALL: "C" },
    clearEnv: true,
    stdin: "null",
    stdout: "piped",
    stderr: "piped",
  }).output();
  const decoder = new TextDecoder();
  return {
    code: out.code,
    stdout: decoder.decode(out.stdout),
    stderr: decoder.decode(out.stderr),
  };
}

/**
 * Connects to 127.0.0.1:port, writes `line`, and reads until the server
 * closes; returns what came back ("" when nothing did).
 */
async function sendLine(port: number, line: string): Promise<string> {
  const conn = await Deno.connect({ hostname: "127.0.0.1", port });
  try {
    await conn.write(new TextEncoder().encode(line)).catch(() => {});
    let text = "";
    const buffer = new Uint8Array(64 * 1024);
    while (true) {
      const n = await conn.read(buffer).catch(() => null);
      if (n === null) return text;
      text += new TextDecoder().decode(buffer.subarray(0, n));
    }
  } finally {
    try {
      conn.close();
    } catch {
      // closed by the server
    }
  }
}

// ---------------------------------------------------------------------------
// Socket activation input, through the CLI

type FdSpec =
  | { kind: "file"; path: string }
  | { kind: "udp" }
  | { kind: "tcp" }
  | { kind: "listen" };

interface ActivationCase {
  what: string;
  fds: (app: TempApp) => FdSpec[];
  env: Record<string, string>;
  /** The error line; `ports` are those of the passed fds. */
  error: (ports: (number | null)[]) => RegExp;
}

const LISTEN: FdSpec = { kind: "listen" };

const ACTIVATION_CASES: ActivationCase[] = [
  {
    what: "LISTEN_FDS non-numeric",
    fds: () => [LISTEN],
    env: { LISTEN_PID: "$PID", LISTEN_FDS: "abc" },
    error: () =>
      /^error: LISTEN_FDS must be a non-negative decimal integer .*but it is "abc"$/m,
  },
  {
    what: "LISTEN_FDS negative",
    fds: () => [LISTEN],
    env: { LISTEN_PID: "$PID", LISTEN_FDS: "-1" },
    error: () =>
      /^error: LISTEN_FDS must be a non-negative decimal integer .*but it is "-1"$/m,
  },
  {
    what: "LISTEN_FDS larger than the fds present",
    fds: () => [LISTEN],
    env: { LISTEN_PID: "$PID", LISTEN_FDS: "3" },
    // fd 4 is closed or one of Deno's own (an epoll fd, a cache file): the
    // count is named first, not that fd as if it had been passed.
    error: () =>
      /^error: LISTEN_FDS is 3 but only 1 fd\(s\) were passed \(fd 3\): fd 4 is (not open|this process's own \(.*\)), not inherited$/m,
  },
  {
    what: "LISTEN_FDNAMES with fewer names than fds",
    fds: () => [LISTEN, LISTEN],
    env: { LISTEN_PID: "$PID", LISTEN_FDS: "2", LISTEN_FDNAMES: "http" },
    error: () =>
      /^error: LISTEN_FDNAMES has 1 name\(s\) \("http"\) but LISTEN_FDS is 2/m,
  },
  {
    what: "LISTEN_FDNAMES of 100 KB: the error quotes a cut value",
    fds: () => [LISTEN],
    env: {
      LISTEN_PID: "$PID",
      LISTEN_FDS: "1",
      LISTEN_FDNAMES: "a:".repeat(50_000),
    },
    error: () =>
      /^error: LISTEN_FDNAMES has 50001 name\(s\) \("(a:){40}"… \(100000 characters\)\) but LISTEN_FDS is 1; systemd sends exactly one name per fd$/m,
  },
  {
    what: "LISTEN_FDNAMES with more names than fds",
    fds: () => [LISTEN],
    env: { LISTEN_PID: "$PID", LISTEN_FDS: "1", LISTEN_FDNAMES: "http:admin" },
    error: () =>
      /^error: LISTEN_FDNAMES has 2 name\(s\) \("http:admin"\) but LISTEN_FDS is 1/m,
  },
  {
    what: "fd 3 a regular file",
    fds: (app) => [{ kind: "file", path: app.app }],
    env: { LISTEN_PID: "$PID", LISTEN_FDS: "1" },
    error: () =>
      /^error: fd 3 \(from LISTEN_FDS\) is not a socket: it is \/.*\/app\.ts$/m,
  },
  {
    what: "fd 3 a UDP socket",
    fds: () => [{ kind: "udp" }],
    env: { LISTEN_PID: "$PID", LISTEN_FDS: "1" },
    error: (ports) =>
      new RegExp(
        `^error: fd 3 is a datagram \\(UDP\\) socket \\(bound to ` +
          `127\\.0\\.0\\.1:${ports[0]}\\); only stream sockets can serve HTTP$`,
        "m",
      ),
  },
  {
    what: "fd 3 a TCP socket bound but not listening",
    fds: () => [{ kind: "tcp" }],
    env: { LISTEN_PID: "$PID", LISTEN_FDS: "1" },
    error: () =>
      /^error: fd 3 is a socket of an unsupported kind .*a TCP socket that is bound but not listening looks like this too\)$/m,
  },
];

/** The CLI's port when nothing is inherited and none is given. */
const DEFAULT_PORT = 8199;

/**
 * Runs the CLI with `fds` as fds 3, 4, ... and `env`, and `--port port` when
 * given; `port` is where it would serve (else 8199). Port 0: the CLI picks
 * one, and `port` is the one it says it listens on.
 */
async function activate(
  app: TempApp,
  fds: FdSpec[],
  env: Record<string, string>,
  port?: number,
): Promise<{ child: Child; port: number; ports: (number | null)[] }> {
  const child = new Child("python3", [
    LAUNCHER,
    JSON.stringify({ fds, env }),
    Deno.execPath(),
    "run",
    "-A",
    MOD,
    app.app,
    ...(port === undefined
      ? []
      : ["--port", String(port), "--hostname", "127.0.0.1"]),
  ]);
  const m = await child.waitFor(/^(\[.*\])$/);
  if (port === 0) {
    const listening = await child.waitFor(
      /Listening on http:\/\/127\.0\.0\.1:(\d+)\//,
    );
    port = Number(listening[1]);
  }
  return { child, port: port ?? DEFAULT_PORT, ports: JSON.parse(m[1]) };
}

for (const c of ACTIVATION_CASES) {
  for (const withPort of [false, true]) {
    Deno.test({
      name: `socket activation: ${c.what}${
        withPort ? " (and --port)" : ""
      }: a clear error, exit 1 on its own, nothing served`,
      ignore: !HAS_PYTHON,
      async fn() {
        const app = await makeApp();
        // A free port that nothing should ever bind: no race to lose.
        const { child, port, ports } = await activate(
          app,
          c.fds(app),
          c.env,
          withPort ? freePort() : undefined,
        );
        try {
          // While it runs, every TCP port it listens on, but the passed fds.
          const passed = new Set(ports.filter((p) => p !== null));
          const bound = new Set<number>();
          let running = true;
          const watch = (async () => {
            while (running) {
              try {
                // Only once the python wrapper has exec'ed into deno: before,
                // its own set-up sockets are not the server's doing.
                const exe = Deno.readLinkSync(`/proc/${child.pid}/exe`);
                if (/\/deno( \(deleted\))?$/.test(exe)) {
                  for (const l of listeningInodes(child.pid)) {
                    if (!passed.has(l.port)) bound.add(l.port);
                  }
                }
              } catch {
                // exited meanwhile
              }
              await new Promise((r) => setTimeout(r, 2));
            }
          })();
          const status = await exitsOnItsOwn(child);
          running = false;
          await watch;
          assertEquals(status.code, 1, child.output);
          assertMatch(child.output, c.error(ports));
          // Never where it would serve. (A loopback port of its own may show
          // up for a moment: the native engine's start-up probe, which runs
          // before LISTEN_FDS is read when --port is given; see TESTING.md.)
          assert(
            !bound.has(port),
            `it listened on ${port} (all: ${[...bound]}):\n${child.output}`,
          );
          assert(!/Listening on/.test(child.output), child.output);
          if (withPort) {
            // (Its own processes only: another test may take the port.)
            const serving = pidsWith(app.dir).filter((pid) =>
              listeningInodes(pid).some((l) => l.port === port)
            );
            assertEquals(serving, [], `--port ${port} is served`);
          }
        } finally {
          await app.stop(child);
        }
      },
    });
  }
}

Deno.test({
  name:
    "socket activation: LISTEN_PID of another process: ignored, it opens its own --port and serves",
  ignore: !HAS_PYTHON,
  async fn() {
    const app = await makeApp();
    // --port 0: it picks the port, and says which.
    const { child, port, ports } = await activate(app, [LISTEN], {
      LISTEN_PID: String(Deno.pid),
      LISTEN_FDS: "1",
      LISTEN_FDNAMES: "http",
    }, 0);
    try {
      assertEquals(await pidOf(port), child.pid);
      assertMatch(
        child.output,
        new RegExp(`listening on 127\\.0\\.0\\.1:${port} \\(fd \\d+, native`),
      );
      assert(!/inherited/.test(child.output), child.output);
      // It serves --port; the passed fd stays unserved.
      const listening = listeningInodes(child.pid).map((l) => l.port);
      assert(listening.includes(port), `${listening}`);
      assert(
        !new RegExp(`Listening on .*:${ports[0]}/`).test(child.output),
        child.output,
      );
      child.kill("SIGTERM");
      assertEquals((await child.done).code, 0);
    } finally {
      await app.stop(child);
    }
  },
});

// ---------------------------------------------------------------------------
// New generations that fail (syntax error, top-level throw, Deno.exit(1) and
// a hang before ready: restart_test.ts)

Deno.test("new generation: ready, then it crashes before the old one drained: the old one finishes its requests and exits 0; nothing serves", async () => {
  const app = await makeApp();
  const { child, port } = await app.launch();
  try {
    const old = await pidOf(port);
    const held = attempt(port, "/hold?gate=release");
    await child.waitFor(new RegExp(`holding in ${old}`));
    // v2 serves, and exits 100 ms after the test opens the crash gate.
    await writeVersion(
      app,
      "v2",
      `(async () => {
  while (true) {
    try {
      Deno.statSync(${JSON.stringify(`${app.dir}/crash`)});
      break;
    } catch {
      await new Promise((r) => setTimeout(r, 10));
    }
  }
  await new Promise((r) => setTimeout(r, 100));
  Deno.exit(1);
})();
`,
    );
    Deno.kill(old, "SIGUSR1");
    const m = await child.waitFor(/new generation 2 ready \(pid (\d+)\)/);
    const next = Number(m[1]);
    await openGate(app, "crash");
    await until(() => !alive(next));
    assert(alive(old), "the old generation is still draining");
    await openGate(app, "release");
    assertEquals(await held, { status: 200, text: `held in ${old}` });
    assertEquals((await child.exited).code, 0);
    // With the CLI alone the service is now down (under systemd, the unit's
    // Restart= starts it again: MAINPID was the crashed generation).
    await until(() => refused(port));
    await until(() => pidsWith(app.dir).length === 0);
    await until(() => procState(next) === undefined);
  } finally {
    await app.stop(child);
  }
});

Deno.test("new generation: it wants a port that is busy: it fails, the error names the address, the old one serves", async () => {
  const app = await makeApp();
  const busy = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const busyPort = busy.addr.port;
  const { child, port } = await app.launch();
  try {
    const old = await pidOf(port);
    await writeVersion(
      app,
      "v2",
      `import { serveGraceful } from ${JSON.stringify(MOD)};
serveGraceful({ name: "extra", listen: ["127.0.0.1:${busyPort}"] }, () => new Response("extra"));
`,
    );
    Deno.kill(old, "SIGUSR1");
    const m = await child.waitFor(/restart failed.*/);
    assertMatch(m[0], new RegExp(`127\\.0\\.0\\.1:${busyPort}`));
    assertEquals(await pidOf(port), old);
    assertEquals((await get(port, "/version")).text, "v1");
    await until(() => pidsWith(app.dir).length === 1);
    // The next good version is taken.
    await writeVersion(app, "v3");
    const { now } = await restartOnce(port);
    assertNotEquals(now, old);
    assertEquals((await get(port, "/version")).text, "v3");
  } finally {
    busy.close();
    await app.stop(child);
  }
});

Deno.test("new generation: a server new in it, on port 0 and created first, opens its own socket and leaves the inherited one to its server", async () => {
  const app = await makeApp();
  const { child, port } = await app.launch();
  try {
    const old = await pidOf(port);
    await writeVersion(
      app,
      "v2",
      `import { serveGraceful } from ${JSON.stringify(MOD)};
serveGraceful({
  name: "extra",
  listen: ["127.0.0.1:0"],
  onListen(addr) { console.log("extra on " + addr.port); },
}, () => new Response("extra"));
`,
    );
    Deno.kill(old, "SIGUSR1");
    const m = await child.waitFor(/extra on (\d+)/);
    await until(async () => (await pidOf(port)) !== old);
    assertEquals((await get(port, "/version")).text, "v2");
    assertNotEquals(Number(m[1]), port);
    assertEquals((await get(Number(m[1]), "/")).text, "extra");
  } finally {
    await app.stop(child);
  }
});

Deno.test("new generation: SIGKILLed while it starts (an OOM kill): reported, reaped, the old one serves", async () => {
  const app = await makeApp();
  const pidfile = `${app.dir}/app.pid`;
  const { child, port } = await app.launch(["--pidfile", pidfile]);
  try {
    const old = await pidOf(port);
    await writeVersion(app, "v2", waitForFile(app.dir, "never"));
    Deno.kill(old, "SIGUSR1");
    const next = await childOf(app.dir, old);
    Deno.kill(next, "SIGKILL");
    await child.waitFor(
      new RegExp(
        `restart failed, generation 1 keeps serving: the new generation ` +
          `\\(pid ${next}\\) exited with signal SIGKILL before it was ready`,
      ),
    );
    assertEquals(await pidOf(port), old);
    // Reaped by the old generation, which is still running: no zombie.
    await until(() => procState(next) === undefined);
    assertEquals(pidsWith(app.dir), [old]);
    // The status file says so too (what `status --json` shows).
    await until(() => {
      const status = JSON.parse(Deno.readTextFileSync(`${pidfile}.json`));
      return status.lastRestart?.ok === false;
    });
    const status = JSON.parse(Deno.readTextFileSync(`${pidfile}.json`));
    assertEquals(status.pid, old);
    assertMatch(
      status.lastRestart.reason,
      /signal SIGKILL before it was ready/,
    );
  } finally {
    await app.stop(child);
  }
});

Deno.test({
  name:
    "new generation: one that serves, then fails its readiness, loses no request it accepted",
  fn: async () => {
    // v2's warm-up fails, but only once v2 has accepted a request: what a
    // warm-up that fails after a while does under traffic. The restart fails
    // and v1 keeps serving; the request v2 accepted must still be answered.
    const app = await makeApp();
    const { child, port } = await app.launch();
    try {
      const old = await pidOf(port);
      await writeVersion(app, "v2", WARM_UP_FAILS);
      Deno.kill(old, "SIGUSR1");
      // Requests on fresh connections until one lands on v2 (v2's warm-up
      // fails right then); then all of them may finish. (A request longer
      // than the failed generation's grace, FAILED_CHILD_GRACE_MS, would be
      // cut: see TESTING.md, known limits.)
      const requests: ReturnType<typeof attempt>[] = [];
      const inV2 = () =>
        child.lines.some((line) =>
          /^holding in (\d+)$/.test(line) && line !== `holding in ${old}`
        );
      const deadline = Date.now() + 60_000; // a net, not a threshold
      while (!inV2() && Date.now() < deadline) {
        requests.push(attempt(port, "/hold?gate=release"));
        await new Promise((r) => setTimeout(r, 20));
      }
      await openGate(app, "release");
      await child.waitFor(/restart failed.*warm-up failed/);
      const outcomes = await Promise.all(requests);
      const failed = outcomes.filter((o) =>
        !("status" in o) || o.status !== 200
      );
      assertEquals(
        failed,
        [],
        `${failed.length} of ${outcomes.length} requests failed`,
      );
      assertEquals(pidsWith(app.dir), [old]);
    } finally {
      await app.stop(child);
    }
  },
});

Deno.test("first generation: a server whose readiness fails ends the process with exit 1, after the other servers answered what they accepted", async () => {
  const app = await makeApp();
  await writeVersion(app, "v1", WARM_UP_FAILS);
  const { child, port } = await app.launch();
  try {
    // The CLI's server accepts a request; then the other server fails.
    const held = attempt(port, "/hold?gate=release");
    await child.waitFor(/failed to start: warm-up failed/);
    await openGate(app, "release");
    assertEquals(await held, { status: 200, text: `held in ${child.pid}` });
    assertEquals((await child.exited).code, 1);
    assertMatch(child.output, /error: Error: warm-up failed/);
    assertEquals(pidsWith(app.dir), []);
  } finally {
    await app.stop(child);
  }
});

// ---------------------------------------------------------------------------
// Signals (a storm of 20 SIGUSR1 and SIGTERM during a restart:
// restart_test.ts)

Deno.test("signals: SIGUSR1 during shutdown is ignored: it drains, exits 0, and no new generation appears", async () => {
  const app = await makeApp();
  const { child, port } = await app.launch();
  try {
    const pid = child.pid;
    const held = attempt(port, "/hold?gate=release");
    await child.waitFor(new RegExp(`holding in ${pid}`));
    Deno.kill(pid, "SIGTERM");
    await child.waitFor(/SIGTERM: shutting down/);
    let most = 0;
    let watching = true;
    const watch = (async () => {
      while (watching) {
        most = Math.max(most, pidsWith(app.dir).length);
        await new Promise((r) => setTimeout(r, 5));
      }
    })();
    for (let i = 0; i < 3; i++) Deno.kill(pid, "SIGUSR1");
    await child.waitFor(/SIGUSR1 ignored: shutting down/);
    await openGate(app, "release");
    assertEquals(await held, { status: 200, text: `held in ${pid}` });
    assertEquals((await child.exited).code, 0);
    watching = false;
    await watch;
    assertEquals(most, 1, "a new generation appeared");
    assert(!/restarting/.test(child.output), child.output);
    assertEquals(pidsWith(app.dir), []);
  } finally {
    await app.stop(child);
  }
});

// SIGHUP, SIGUSR2 and stray signals with the defaults, in a terminal and
// under nohup: signals_test.ts.

Deno.test("signals: with --restart-signal SIGHUP, SIGHUP restarts once; nothing is left behind", async () => {
  const app = await makeApp();
  const { child, port } = await app.launch(["--restart-signal", "SIGHUP"]);
  try {
    await writeVersion(app, "v2");
    const { old, now } = await restartOnce(port, "SIGHUP");
    assertEquals(old, child.pid);
    assertEquals((await child.exited).code, 0);
    assertEquals((await get(port, "/version")).text, "v2");
    assertEquals(pidsWith(app.dir), [now]);
    assertEquals(
      child.lines.filter((l) => /new generation \d+ ready/.test(l)).length,
      1,
    );
    assertMatch(
      child.output,
      /restarting \(by signal\): starting generation 2/,
    );
    assertEquals(procState(old), undefined);
  } finally {
    await app.stop(child);
  }
});

/** Runs the CLI in a pseudo-terminal (script(1)); killing `script` hangs it up. */
async function startInTerminal(app: TempApp, extra: string[] = []) {
  const command = [
    Deno.execPath(),
    "run",
    "-A",
    MOD,
    app.app,
    "--port",
    "0",
    "--hostname",
    "127.0.0.1",
    ...extra,
  ];
  const terminal = new Child("script", terminalArgs(command));
  const m = await terminal.waitFor(
    /Listening on http:\/\/127\.0\.0\.1:(\d+)\//,
  );
  return { terminal, port: Number(m[1]) };
}

Deno.test({
  name:
    "signals: a closed terminal: SIGHUP ends generation 1, which is in the terminal's session",
  ignore: !HAS_SCRIPT,
  async fn() {
    const app = await makeApp();
    const { terminal, port } = await startInTerminal(app);
    try {
      const pid = await pidOf(port);
      terminal.kill("SIGKILL"); // the terminal goes away: the tty hangs up
      // (A zombie leader may still have threads exiting, holding the port.)
      await until(() => procState(pid) === undefined);
      await until(() => refused(port));
      assertEquals(pidsWith(app.dir), []);
    } finally {
      await app.stop(terminal);
    }
  },
});

Deno.test({
  name:
    "signals: a closed terminal after a restart: the supervisor in it (the command stays in the foreground) stops every worker",
  ignore: !HAS_SCRIPT,
  async fn() {
    const app = await makeApp();
    const { terminal, port } = await startInTerminal(app);
    try {
      // The worker passes the signal on to its supervisor, which rolls.
      const { old } = await restartOnce(port);
      await until(() => !alive(old));
      assertEquals(await Promise.race([terminal.exited, "running"]), "running");
      terminal.kill("SIGKILL"); // the terminal goes away: the tty hangs up
      await terminal.done;
      await until(() => pidsWith(app.dir).length === 0);
      await until(() => refused(port));
    } finally {
      await app.stop(terminal);
    }
  },
});

/**
 * Runs the CLI with `extra` in a network namespace of its own, so that its
 * 127.0.0.1:9229 is nobody else's (other tests, or a second copy of this one).
 */
async function startIsolated(app: TempApp, extra: string[]): Promise<Child> {
  const child = new Child("unshare", [
    "--net",
    "sh",
    "-c",
    'ip link set lo up && exec "$@"',
    "sh",
    Deno.execPath(),
    "run",
    "-A",
    MOD,
    app.app,
    "--port",
    "0",
    "--hostname",
    "127.0.0.1",
    ...extra,
  ]);
  await child.waitFor(/Listening on http:\/\/127\.0\.0\.1:\d+\//);
  return child;
}

Deno.test({
  name:
    "signals: with --restart-signal SIGUSR2, a SIGUSR1 right after startup does not kill the server",
  ignore: !CAN_UNSHARE,
  async fn() {
    const app = await makeApp();
    const child = await startIsolated(app, ["--restart-signal", "SIGUSR2"]);
    try {
      // It says it serves; a SIGUSR1 now (logrotate habits, a mistyped
      // `kill`) must not end it. Without a listener of its own, the
      // default action would: Deno arms its SIGUSR1 inspector trigger only
      // about 0.6 s into a process's life.
      Deno.kill(child.pid, "SIGUSR1");
      const status = await Promise.race([
        child.exited,
        child.waitFor(/SIGUSR1 ignored: it is not a restart signal/).then(() =>
          undefined
        ),
      ]);
      assertEquals(status, undefined, `it died of it:\n${child.output}`);
      assert(alive(child.pid));
      assert(!/restarting/.test(child.output), child.output);
    } finally {
      await app.stop(child);
    }
  },
});

// A stray SIGUSR1 on an armed generation, raced by another user:
// inspector_guard_test.ts.

// ---------------------------------------------------------------------------
// The control channel (wrong secret, garbage, 10 MB lines, slow clients:
// src/restart/control_server_test.ts; intruders during a real restart: restart_test.ts)

Deno.test({
  name:
    "control channel: another local user (nobody) cannot read the secret, and what it sends is refused",
  ignore: !CAN_BE_NOBODY,
  async fn() {
    const app = await makeApp();
    const { child, port } = await app.launch();
    try {
      const old = await pidOf(port);
      await writeVersion(app, "v2", waitForFile(app.dir, "go"));
      Deno.kill(old, "SIGUSR1");
      const next = await childOf(app.dir, old);
      let addr = "";
      await until(() => {
        addr = environOf(next).GRACEFUL_CONTROL_ADDR ?? "";
        return addr !== "";
      });
      const controlPort = Number(addr.split(":")[1]);

      // The new generation's environment is not readable by another user.
      const environ = await asNobody(["cat", `/proc/${next}/environ`]);
      assertNotEquals(environ.code, 0);
      assertMatch(environ.stderr, /Permission denied/);
      assertEquals(environ.stdout, "");

      // A silent client (slow loris) stays connected meanwhile.
      const silent = new Deno.Command("setpriv", {
        args: [
          "--reuid=65534",
          "--regid=65534",
          "--clear-groups",
          "bash",
          "-c",
          `exec 3<>/dev/tcp/127.0.0.1/${controlPort}; cat <&3`,
        ],
        stdout: "piped",
        stderr: "piped",
      }).output();
      // A guessed secret, claiming the child's pid: no answer, cut off.
      const hello = JSON.stringify({
        type: "hello",
        token: "0".repeat(64),
        pid: next,
      });
      const guess = await asNobody([
        "bash",
        "-c",
        `exec 3<>/dev/tcp/127.0.0.1/${controlPort}; ` +
        `printf '%s\\n' '${hello}' >&3; cat <&3`,
      ]);
      assertEquals(guess.stdout, "", "nobody got an answer");
      await child.waitFor(/refused a connection: wrong token/);

      await openGate(app, "go");
      await until(async () => (await pidOf(port)) === next);
      assertEquals((await get(port, "/version")).text, "v2");
      const quiet = await silent;
      assertEquals(new TextDecoder().decode(quiet.stdout), "");
      await until(() => !alive(old));
      assertEquals(pidsWith(app.dir), [next]);
    } finally {
      await app.stop(child);
    }
  },
});

Deno.test("control channel: a secret replayed after the handover, and on the next restart, is refused", async () => {
  const app = await makeApp();
  const { child, port } = await app.launch();
  try {
    const old = await pidOf(port);
    await writeVersion(app, "v2", waitForFile(app.dir, "go2"));
    Deno.kill(old, "SIGUSR1");
    const second = await childOf(app.dir, old);
    let env: Record<string, string> = {};
    await until(() => {
      env = environOf(second);
      return env.GRACEFUL_CONTROL_TOKEN !== undefined;
    });
    const { GRACEFUL_CONTROL_ADDR: addr, GRACEFUL_CONTROL_TOKEN: token } = env;
    await openGate(app, "go2");
    await until(async () => (await pidOf(port)) === second);
    await until(() => !alive(old));

    // After the handover: nothing listens there any more.
    const hello = JSON.stringify({ type: "hello", token, pid: second }) +
      "\n";
    const replayPort = Number(addr.split(":")[1]);
    if (!(await refused(replayPort))) {
      assertEquals(await sendLine(replayPort, hello), "");
    }

    // The next restart has a new secret; the old one is refused there.
    await writeVersion(app, "v3", waitForFile(app.dir, "go3"));
    Deno.kill(second, "SIGUSR1");
    const third = await childOf(app.dir, second);
    let env3: Record<string, string> = {};
    await until(() => {
      env3 = environOf(third);
      return env3.GRACEFUL_CONTROL_TOKEN !== undefined;
    });
    assertNotEquals(env3.GRACEFUL_CONTROL_TOKEN, token);
    const thirdPort = Number(env3.GRACEFUL_CONTROL_ADDR.split(":")[1]);
    const replay = JSON.stringify({ type: "hello", token, pid: third }) + "\n";
    assertEquals(await sendLine(thirdPort, replay), "");
    await child.waitFor(/refused a connection: wrong token/);
    await openGate(app, "go3");
    await until(async () => (await pidOf(port)) === third);
    assertEquals((await get(port, "/version")).text, "v3");
  } finally {
    await app.stop(child);
  }
});

Deno.test("control channel: a same-user process that read the new generation's environment cannot take the handover over", async () => {
  // README (Security): a process of the same user can read the secret in
  // /proc/PID/environ and race the child, "which makes the restart fail
  // (the pid check), never take it over".
  const app = await makeApp();
  const { child, port } = await app.launch();
  try {
    const old = await pidOf(port);
    await writeVersion(app, "v2", waitForFile(app.dir, "go"));
    Deno.kill(old, "SIGUSR1");
    const next = await childOf(app.dir, old);
    // Its environment is fixed at exec: whatever is not there now never is.
    const env = environOf(next);
    let stolen = "";
    if (env.GRACEFUL_CONTROL_TOKEN !== undefined) {
      // The intruder says hello with the stolen secret and the child's pid,
      // then, if it got the state, says ready in the child's name.
      const conn = await Deno.connect({
        hostname: "127.0.0.1",
        port: Number(env.GRACEFUL_CONTROL_ADDR.split(":")[1]),
      });
      try {
        const encoder = new TextEncoder();
        await conn.write(encoder.encode(
          JSON.stringify({
            type: "hello",
            token: env.GRACEFUL_CONTROL_TOKEN,
            pid: next,
          }) + "\n",
        )).catch(() => {});
        const buffer = new Uint8Array(64 * 1024);
        while (!stolen.includes("\n")) {
          const n = await conn.read(buffer).catch(() => null);
          if (n === null) break;
          stolen += new TextDecoder().decode(buffer.subarray(0, n));
        }
        if (stolen !== "") {
          await conn.write(encoder.encode(
            JSON.stringify({ type: "ready", pid: next }) + "\n",
          )).catch(() => {});
          await child.waitFor(/new generation 2 ready|restart failed/);
        }
      } finally {
        conn.close();
      }
    }
    await openGate(app, "go");
    // Settled: the restart succeeded or failed, and one generation is left.
    await until(() => !alive(old) || /restart failed/.test(child.output));
    await until(() => pidsWith(app.dir).length <= 1);
    const serving = await attempt(port, "/pid");
    assertEquals(
      stolen,
      "",
      `the intruder received the handover state (${stolen.slice(0, 160)}…) ` +
        `and its "ready" was taken; then the port answers: ` +
        JSON.stringify(serving),
    );
    assert("status" in serving, "nothing serves the port");
  } finally {
    await app.stop(child);
  }
});

// ---------------------------------------------------------------------------
// The admin API (unit level: src/server/admin_test.ts; restart, failed restart,
// shutdown, and the token from the environment: admin_e2e_test.ts)

Deno.test("admin (CLI --admin --admin-token): every refusal holds, and nothing restarts", async () => {
  const app = await makeApp();
  const token = crypto.randomUUID() + crypto.randomUUID();
  const { child, port } = await app.launch([
    "--admin",
    "--admin-token",
    token,
  ]);
  const base = `http://127.0.0.1:${port}/debug/admin`;
  const auth = { authorization: `Bearer ${token}` };
  async function call(path: string, init: RequestInit = {}) {
    const res = await fetch(`${base}${path}`, init);
    const text = await res.text();
    return { status: res.status, text, headers: res.headers };
  }
  try {
    const pid = child.pid;
    // No token, a wrong token.
    assertEquals((await call("/status")).status, 401);
    assertEquals((await call("/restart", { method: "POST" })).status, 401);
    const wrong = { authorization: `Bearer ${token.slice(0, -1)}x` };
    assertEquals((await call("/status", { headers: wrong })).status, 401);
    assertEquals(
      (await call("/restart", { method: "POST", headers: wrong })).status,
      401,
    );
    const status = await call("/status", { headers: auth });
    assertEquals(status.status, 200);
    const csrf = status.headers.get("x-admin-csrf") ?? "";
    assertNotEquals(csrf, "");
    // GET on the actions.
    for (const action of ["restart", "shutdown"]) {
      const res = await call(`/${action}`, { headers: auth });
      assertEquals([res.status, res.headers.get("allow")], [405, "POST"]);
    }
    // Cross-site requests. (With the bearer token no CSRF header is needed:
    // a browser never sends one on its own; see admin_token_test.ts.)
    const post = (headers: Record<string, string>, body?: BodyInit) =>
      call("/restart", {
        method: "POST",
        headers: { ...auth, ...headers },
        body,
      });
    assertEquals(
      (await post({ "x-admin-csrf": csrf, origin: "https://evil.example" }))
        .status,
      403,
    );
    assertEquals(
      (await post({ "x-admin-csrf": csrf, "sec-fetch-site": "cross-site" }))
        .status,
      403,
    );
    // Oversized bodies, declared and streamed.
    const json = { "x-admin-csrf": csrf, "content-type": "application/json" };
    const big = JSON.stringify({ pad: "x".repeat(64 * 1024) });
    assertEquals((await post(json, big)).status, 413);
    const chunk = new TextEncoder().encode(" ".repeat(4096));
    let sent = 0;
    const stream = new ReadableStream<Uint8Array>({
      pull(controller) {
        if (sent >= 64 * 1024) return controller.close();
        sent += chunk.byteLength;
        controller.enqueue(chunk);
      },
    });
    assertEquals((await post(json, stream)).status, 413);
    // Another entry or executable: not allowed from the CLI.
    const evil = `${app.dir}/evil.ts`;
    await Deno.writeTextFile(
      evil,
      `Deno.writeTextFileSync(${
        JSON.stringify(`${app.dir}/evil-ran`)
      }, "");\nexport default { fetch: () => new Response("evil") };\n`,
    );
    const entry = await post(json, JSON.stringify({ entry: evil }));
    assertEquals(entry.status, 403);
    assertMatch(entry.text, /not allowed/);
    const exec = await post(json, JSON.stringify({ execPath: "/bin/sh" }));
    assertEquals(exec.status, 403);

    // Nothing restarted, nothing ran.
    assertEquals(await pidOf(port), pid);
    assertEquals(pidsWith(app.dir), [pid]);
    assertEquals(
      JSON.parse((await call("/status", { headers: auth })).text).generation,
      1,
    );
    assert(!/restarting/.test(child.output), child.output);
    assertEquals(
      await Deno.stat(`${app.dir}/evil-ran`).then(() => true, () => false),
      false,
    );
    // The same client, doing it right (the bearer header alone), restarts.
    const ok = await post({});
    assertEquals(ok.status, 200, ok.text);
    assertEquals(JSON.parse(ok.text).generation, 2);
  } finally {
    await app.stop(child);
  }
});

// ---------------------------------------------------------------------------
// Long-lived connections across a restart

Deno.test("long-lived: a WebSocket and an SSE stream see info.draining, stay open while the new generation serves, and are cut at --drain-timeout", async () => {
  const app = await makeApp();
  const { child, port } = await app.launch(["--drain-timeout", "1500"]);
  try {
    const old = child.pid;
    // The WebSocket.
    const ws = new WebSocket(`ws://127.0.0.1:${port}/`);
    const wsMessages: string[] = [];
    const wsClosed = Promise.withResolvers<{ code: number; reason: string }>();
    ws.onmessage = (e) => wsMessages.push(String(e.data));
    ws.onclose = (e) => wsClosed.resolve({ code: e.code, reason: e.reason });
    ws.onerror = () => {};
    await until(() => wsMessages.includes(`hello ${old}`));
    // The SSE stream.
    const sse = await fetch(`http://127.0.0.1:${port}/sse`);
    const events: string[] = [];
    const sseEnded = (async () => {
      let rest = "";
      try {
        for await (
          const chunk of sse.body!.pipeThrough(new TextDecoderStream())
        ) {
          rest += chunk;
          let end;
          while ((end = rest.indexOf("\n\n")) >= 0) {
            events.push(rest.slice(0, end).replace(/\n/g, " "));
            rest = rest.slice(end + 2);
          }
        }
        return "ended";
      } catch (error) {
        return `cut: ${error}`;
      }
    })();
    await until(() => events.includes(`event: hello data: ${old}`));

    const { now } = await restartOnce(port);
    assertNotEquals(now, old);
    // Both were told, and both are still open and served by the old one.
    await until(() => wsMessages.includes(`draining ${old}`));
    await until(() => events.includes(`event: draining data: ${old}`));
    ws.send("ping");
    await until(() => wsMessages.includes(`echo ping ${old}`));
    const ticks = events.length;
    await until(() => events.slice(ticks).includes(`event: tick data: ${old}`));
    assert(alive(old));

    // Then the drain timeout cuts them, and the old one exits.
    const closed = await wsClosed.promise;
    const ended = await sseEnded;
    assertEquals((await child.exited).code, 0);
    // They were open until the drain timeout cut them (not closed earlier).
    const cut = child.output.match(
      /drain timeout \(1500 ms\): closing (\d+) connections/,
    );
    assert(cut, child.output);
    assert(Number(cut[1]) >= 2, cut[0]);
    // Cut, not closed as usual: Deno's client reports a connection that
    // ends without a close frame as code 0 (browsers: 1006); a close frame
    // that got out before the exit is 1001 "server shutdown" (abort()).
    // Never 1000, nor 1001 "server restarting" (closed at drain start).
    assert(
      closed.code === 0 ||
        (closed.code === 1001 && closed.reason === "server shutdown"),
      `WebSocket closed with ${closed.code} ${JSON.stringify(closed.reason)}`,
    );
    assertMatch(ended, /^cut: .*error reading a body/);
    assertEquals(await pidOf(port), now);
    assertEquals(pidsWith(app.dir), [now]);
  } finally {
    await app.stop(child);
  }
});
