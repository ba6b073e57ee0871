/**
 * The SIGUSR1 inspector guard seen from outside, for inspector_guard_test.ts
 * (a few restarts) and soak_test.ts (many):
 *
 * - the server runs in a network namespace of its own, so that its
 *   127.0.0.1:9229 is nobody else's (other tests, a second copy of the suite,
 *   other servers on the machine would hold it and mask a missing guard);
 * - a racer runs as user nobody in that namespace, asking 127.0.0.1:9229 for
 *   a debugger target back to back, and opening a session when it can;
 * - Deno arms its SIGUSR1 inspector trigger only after about half a second
 *   of event loop, and nothing outside shows when (its signal handlers are
 *   installed at the app's first signal listener). So each generation gets
 *   SIGUSR1 again and again until Deno says "Failed to start inspector
 *   server" (or "Debugger listening": the guard failed), while the next
 *   generation waits at a gate file before it loads: the restart that the
 *   first SIGUSR1 started is in progress, later ones join it, and the
 *   signalled generation stays alive meanwhile;
 * - the oracles are read from /proc: the serving process itself holds the
 *   only socket listening on 127.0.0.1:9229 in the namespace, and it is the
 *   same socket in every generation (never released during a handover);
 *   and a client connecting there is closed at once in every generation
 *   (the guard accepts, bound or inherited).
 *
 * @module
 */

import { assert, assertEquals } from "./assert.ts";
import { BE_NOBODY, ignoreWithout, NET_NAMESPACE } from "./capabilities.ts";
import {
  alive,
  Child,
  killAllWith,
  MOD,
  pidsWith,
  ROOT,
  until,
} from "./helpers.ts";

const RACER = `${ROOT}/tests/fixtures/faults_inspector_racer.ts`;
/** 127.0.0.1:9229 as /proc/net/tcp writes it (little-endian hosts). */
const INSPECTOR_ADDR = "0100007F:240D";
const REFUSED = /Failed to start inspector server/;
const OPENED = /Debugger listening on ws:\/\/127\.0\.0\.1:9229\//;

/**
 * Whether the race cannot run here: it needs root, with unshare, ip, nsenter
 * and setpriv (a server gets a network namespace of its own, and a racer
 * acts as nobody inside it). Missing ones are reported by the one gate.
 */
export function raceIgnored(): boolean {
  return ignoreWithout(NET_NAMESPACE, BE_NOBODY);
}

/** Runs `args` in a new network namespace (its loopback up). */
export function inOwnNetwork(
  args: string[],
  env: Record<string, string> = {},
): Child {
  return new Child("unshare", [
    "--net",
    "sh",
    "-c",
    'ip link set lo up && exec "$@"',
    "sh",
    ...args,
  ], env);
}

/** Runs `args` in the network namespace of process `pid`. */
export function inNetworkOf(pid: number, args: string[]): Child {
  return new Child("nsenter", [`--net=/proc/${pid}/ns/net`, "--", ...args]);
}

/** A library app in a temp dir, served in a network namespace of its own. */
export interface GuardedApp {
  dir: string;
  pidfile: string;
  /** While this file is missing, a starting generation waits before it loads. */
  gate: string;
  /** Every generation's output. */
  child: Child;
}

/**
 * Starts the app (`serveGraceful` with `restartSignals`, SIGTERM as the
 * only shutdown signal, and a pidfile) in a new network namespace.
 */
export async function startGuardedApp(
  restartSignals: Deno.Signal[],
  env: Record<string, string> = {},
): Promise<GuardedApp> {
  const dir = await Deno.makeTempDir({ prefix: "graceful-inspector-" });
  const pidfile = `${dir}/app.pid`;
  const gate = `${dir}/gate`;
  await Deno.writeTextFile(gate, "");
  await Deno.writeTextFile(
    `${dir}/app.ts`,
    `while (true) {
  try {
    Deno.statSync(${JSON.stringify(gate)});
    break;
  } catch {
    await new Promise((r) => setTimeout(r, 10));
  }
}
const { serveGraceful } = await import(${JSON.stringify(MOD)});
serveGraceful({
  port: 0,
  hostname: "127.0.0.1",
  pidfile: ${JSON.stringify(pidfile)},
  restartSignals: ${JSON.stringify(restartSignals)},
}, () => new Response(String(Deno.pid)));
`,
  );
  const child = inOwnNetwork([
    Deno.execPath(),
    "run",
    "-A",
    // The module's import map (an app outside the repo that imports it).
    `--config=${ROOT}/deno.json`,
    `${dir}/app.ts`,
  ], env);
  await child.waitFor(/Listening on http:\/\/127\.0\.0\.1:\d+\//);
  return { dir, pidfile, gate, child };
}

/** Kills every generation, removes the dir. */
export async function stopGuardedApp(app: GuardedApp): Promise<void> {
  killAllWith(app.dir);
  app.child.kill("SIGKILL");
  await app.child.exited;
  await until(() => pidsWith(app.dir).length === 0);
  await Deno.remove(app.dir, { recursive: true });
}

/** The pid of generation `generation`, once it is ready (its status file says so). */
export async function generationPid(
  app: GuardedApp,
  generation: number,
): Promise<number> {
  let pid = 0;
  await until(() => {
    try {
      const status = JSON.parse(Deno.readTextFileSync(`${app.pidfile}.json`));
      pid = status.generation === generation ? status.pid : 0;
    } catch {
      pid = 0; // not written yet, or being replaced
    }
    return pid !== 0 && alive(pid);
  }, 60_000);
  return pid;
}

/** Inodes of the sockets listening on 127.0.0.1:9229 in `pid`'s namespace. */
export function inspectorListeners(pid: number): string[] {
  return Deno.readTextFileSync(`/proc/${pid}/net/tcp`).split("\n")
    .map((line) => line.trim().split(/\s+/))
    .filter((cols) => cols[1] === INSPECTOR_ADDR && cols[3] === "0A")
    .map((cols) => cols[9]);
}

/** Socket inodes that process `pid` holds, each with how many fds it has. */
export function socketsOf(pid: number): Map<string, number> {
  const inodes = new Map<string, number>();
  for (const entry of Deno.readDirSync(`/proc/${pid}/fd`)) {
    try {
      const target = Deno.readLinkSync(`/proc/${pid}/fd/${entry.name}`);
      const m = target.match(/^socket:\[(\d+)\]$/);
      if (m) inodes.set(m[1], (inodes.get(m[1]) ?? 0) + 1);
    } catch {
      // closed meanwhile
    }
  }
  return inodes;
}

/**
 * Asserts that `pid` itself holds the only socket listening on
 * 127.0.0.1:9229 in its namespace (through `fds` fds, when given: an
 * inherited guard is one fd, and a leaked copy would be another), and
 * returns its inode.
 */
export function assertHoldsGuard(
  pid: number,
  what: string,
  fds?: number,
): string {
  const listening = inspectorListeners(pid);
  assertEquals(
    listening.length,
    1,
    `${what}: sockets listening on 127.0.0.1:9229: ${listening.length}`,
  );
  const held = socketsOf(pid).get(listening[0]) ?? 0;
  assert(held > 0, `${what}: 127.0.0.1:9229 is held, but not by pid ${pid}`);
  if (fds !== undefined) assertEquals(held, fds, `${what}: fds of the guard`);
  return listening[0];
}

/** What a client connecting to 127.0.0.1:9229 gets: "closed" from a guard. */
const CONNECT_PROBE = `
let seen = "timeout";
try {
  const conn = await Deno.connect({ hostname: "127.0.0.1", port: 9229 });
  const timer = setTimeout(() => conn.close(), 2000);
  const read = await conn.read(new Uint8Array(1)).catch(() => null);
  clearTimeout(timer);
  seen = read === null ? "closed" : "data";
} catch (error) {
  seen = String(error);
}
console.log(seen);
Deno.exit(0);`;

/**
 * Asserts that the guard in `pid`'s namespace accepts and closes (bound or
 * inherited): a client reads the end at once instead of waiting in the
 * backlog.
 */
export async function assertGuardCloses(
  pid: number,
  what: string,
): Promise<void> {
  const probe = inNetworkOf(pid, [Deno.execPath(), "eval", CONNECT_PROBE]);
  await probe.done;
  assertEquals(probe.lines.at(-1), "closed", `${what}: ${probe.output}`);
}

/**
 * Sends SIGUSR1 to `pid` every 100 ms until Deno says it tried to open the
 * inspector (refused, or opened) once more than `before` says.
 */
export async function signalUntilDenoTries(
  app: GuardedApp,
  pid: number,
): Promise<void> {
  const before = inspectorAttempts(app);
  let sent = 0;
  await until(() => {
    const seen = inspectorAttempts(app);
    if (seen.refused > before.refused || seen.opened > before.opened) {
      return true;
    }
    if (sent++ % 5 === 0) Deno.kill(pid, "SIGUSR1");
    return false;
  }, 60_000);
}

/** The racer, as user nobody, in the network namespace of `pid`. */
export interface Racer {
  child: Child;
  /** Stops it; resolves with its report. */
  stop(): Promise<{ listed: number; sessions: number; results: unknown[] }>;
}

/** Starts the racer (tests/fixtures/faults_inspector_racer.ts). */
export async function startRacer(pid: number): Promise<Racer> {
  const home = await Deno.makeTempDir({ prefix: "graceful-racer-" });
  // A copy nobody can read: the checkout may sit in a directory only root
  // may enter (a clone under mktemp -d, as CI makes).
  const racer = `${home}/racer.ts`;
  await Deno.copyFile(RACER, racer);
  await Deno.chown(racer, 65534, 65534);
  await Deno.chown(home, 65534, 65534);
  const stopFile = `${home}/stop`;
  const child = inNetworkOf(pid, [
    "setpriv",
    "--reuid=65534",
    "--regid=65534",
    "--clear-groups",
    "env",
    `DENO_DIR=${home}`,
    `HOME=${home}`,
    Deno.execPath(),
    "run",
    "-A",
    "--no-config",
    racer,
    stopFile,
    `String(Deno.uid()) + " " + Deno.pid`,
  ]);
  await child.waitFor(/^racing$/);
  return {
    child,
    async stop() {
      try {
        await Deno.writeTextFile(stopFile, "");
        const status = await child.done;
        assertEquals(status.code, 0, child.output);
        return JSON.parse(child.lines.at(-1)!);
      } finally {
        child.kill("SIGKILL");
        await child.done;
        await Deno.remove(home, { recursive: true });
      }
    },
  };
}

/** How many times Deno said it could not open, or did open, the inspector. */
export function inspectorAttempts(
  app: GuardedApp,
): { refused: number; opened: number } {
  return {
    refused: app.child.lines.filter((l) => REFUSED.test(l)).length,
    opened: app.child.lines.filter((l) => OPENED.test(l)).length,
  };
}

/**
 * `restarts` restarts under the racer: by SIGUSR1 itself (restartSignals
 * SIGUSR1), or, with `stray`, a SIGUSR1 that is not a restart signal
 * followed by a SIGUSR2 restart. Asserts, for every generation, that it
 * holds the guard, the same socket as the first, and that Deno tried to
 * open the inspector in it and could not, that socket still the only
 * listener; then that the racer opened no session. Returns what was seen.
 */
export async function raceRestarts(
  restarts: number,
  stray = false,
): Promise<{ generations: number; listed: number; sessions: number }> {
  const app = await startGuardedApp(stray ? ["SIGUSR2"] : ["SIGUSR1"]);
  let racer: Racer | undefined;
  try {
    let pid = await generationPid(app, 1);
    racer = await startRacer(pid);
    const guard = assertHoldsGuard(pid, "generation 1");
    for (let generation = 1; generation <= restarts; generation++) {
      const what = `generation ${generation} (pid ${pid})`;
      assertEquals(
        assertHoldsGuard(pid, what, generation > 1 ? 1 : undefined),
        guard,
        `${what}: another socket`,
      );
      await assertGuardCloses(pid, what);
      await Deno.remove(app.gate);
      await signalUntilDenoTries(app, pid);
      assertEquals(inspectorAttempts(app).opened, 0, app.child.output);
      // It is alive (the next generation waits at the gate): still the
      // guard, and nothing else, listens there.
      assert(alive(pid), `${what} exited`);
      assertEquals(inspectorListeners(pid), [guard], what);
      if (stray) Deno.kill(pid, "SIGUSR2");
      await Deno.writeTextFile(app.gate, "");
      pid = await generationPid(app, generation + 1);
    }
    assertEquals(
      assertHoldsGuard(pid, `generation ${restarts + 1}`, 1),
      guard,
      `generation ${restarts + 1}: another socket`,
    );
    await assertGuardCloses(pid, `generation ${restarts + 1}`);
    const report = await racer.stop();
    racer = undefined;
    assertEquals(inspectorAttempts(app).opened, 0, app.child.output);
    assertEquals(report.sessions, 0, JSON.stringify(report));
    assertEquals(report.listed, 0, JSON.stringify(report));
    assertEquals(report.results, []);
    return {
      generations: restarts + 1,
      listed: report.listed,
      sessions: report.sessions,
    };
  } finally {
    await racer?.stop().catch(() => {});
    await stopGuardedApp(app);
  }
}
