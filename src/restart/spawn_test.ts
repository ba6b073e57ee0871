import net from "node:net";
import { spawn } from "node:child_process";
import {
  assert,
  assertEquals,
  assertMatch,
  assertNotEquals,
  assertThrows,
} from "../../tests/assert.ts";
import { Child, ROOT } from "../../tests/helpers.ts";
import { closeFd, ensureNonBlocking } from "../os/fd.ts";
import { libc } from "../os/libc.ts";
import type { Generation } from "./child.ts";
import { spawnGeneration } from "./spawn.ts";

const FIXTURES = `${ROOT}/tests/fixtures`;
const CHILD = `${FIXTURES}/spawn_child.ts`;
const PARENT = `${FIXTURES}/spawn_parent.ts`;

const O_NONBLOCK = 0o4000;
const F_DUPFD = 0;
const F_GETFD = 1;
const FD_CLOEXEC = 1;

// ---------------------------------------------------------------------------
// Helpers
// ---------------------------------------------------------------------------

/** A node:net server on 127.0.0.1, a free port, and a dup of its fd. */
interface Listening {
  server: net.Server;
  port: number;
  fd: number;
}

/** Listens on 127.0.0.1:0 and takes a dup of the socket's fd. */
async function listenWithFd(
  onConnection?: (socket: net.Socket) => void,
): Promise<Listening> {
  const server = net.createServer(onConnection);
  await new Promise<void>((resolve, reject) => {
    server.once("error", reject);
    server.listen(0, "127.0.0.1", () => resolve());
  });
  const port = (server.address() as net.AddressInfo).port;
  // deno-lint-ignore no-explicit-any
  const fd: number = (server as any)._handle.fdForIpc();
  assert(fd >= 0, "fdForIpc() gave no fd");
  return { server, port, fd };
}

/** Closes the server (its dup fd stays open until closeFd). */
function closeServer(server: net.Server): Promise<void> {
  return new Promise((resolve) => server.close(() => resolve()));
}

/** The file status flags of `fd` in this process, from /proc/self/fdinfo. */
function fdinfoFlags(fd: number): number {
  const info = Deno.readTextFileSync(`/proc/self/fdinfo/${fd}`);
  const match = /^flags:\s+([0-7]+)$/m.exec(info);
  assert(match !== null, `no flags in /proc/self/fdinfo/${fd}`);
  return parseInt(match[1], 8);
}

/** Connects to 127.0.0.1:port and returns everything it sends, trimmed. */
async function fetchText(port: number): Promise<string> {
  const conn = await Deno.connect({ hostname: "127.0.0.1", port });
  let text = "";
  for await (
    const chunk of conn.readable.pipeThrough(new TextDecoderStream())
  ) {
    text += chunk;
  }
  return text.trim();
}

/** What spawn_child.ts answers on a connection. */
interface ChildAnswer {
  pid: number;
  fd: number;
  name: string;
}

/** What spawn_child.ts reports. */
interface ChildReport {
  pid: number;
  pgid: number;
  listenPid: string | null;
  listenFds: string | null;
  listenFdNames: string | null;
  fds: { fd: number; name: string; port: number | null }[];
  grandchild?: number;
  next?: number;
}

/** Waits until `path` holds JSON (written atomically) and returns it. */
async function waitForJson<T>(path: string, timeoutMs = 20_000): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  while (true) {
    try {
      return JSON.parse(Deno.readTextFileSync(path)) as T;
    } catch (error) {
      if (Date.now() > deadline) {
        throw new Error(`no JSON in ${path} in time`, { cause: error });
      }
      await delay(20);
    }
  }
}

function delay(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

/** The state letter of process `pid` (R, S, Z...), or undefined when gone. */
function processState(pid: number): string | undefined {
  let stat: string;
  try {
    stat = Deno.readTextFileSync(`/proc/${pid}/stat`);
  } catch {
    return undefined;
  }
  return stat.slice(stat.lastIndexOf(")") + 2).split(" ")[0];
}

/** Whether `pid` is gone: no such process, or a zombie nobody reaped yet. */
function isDead(pid: number): boolean {
  const state = processState(pid);
  return state === undefined || state === "Z";
}

/** Polls `check` every 20 ms until it holds. */
async function until(
  check: () => boolean,
  what: string,
  timeoutMs = 10_000,
): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!check()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting: ${what}`);
    await delay(20);
  }
}

/** The fds of process `pid` and what they point to. */
function fdTargets(pid: number | "self"): Map<number, string> {
  const targets = new Map<number, string>();
  for (const entry of Deno.readDirSync(`/proc/${pid}/fd`)) {
    try {
      targets.set(
        Number(entry.name),
        Deno.readLinkSync(`/proc/${pid}/fd/${entry.name}`),
      );
    } catch {
      // closed meanwhile (such as the one listing the folder)
    }
  }
  return targets;
}

/** The pids of the children of this process (all its threads). */
function myChildren(): number[] {
  const children: number[] = [];
  for (const task of Deno.readDirSync("/proc/self/task")) {
    const text = Deno.readTextFileSync(
      `/proc/self/task/${task.name}/children`,
    );
    for (const pid of text.trim().split(/\s+/)) {
      if (pid !== "") children.push(Number(pid));
    }
  }
  return children.sort((a, b) => a - b);
}

/** Spawns spawn_child.ts with `options`, reporting to a fresh temp file. */
async function spawnChild(
  directory: string,
  fds: { fd: number; name: string }[],
  childArgs: string[] = [],
): Promise<{ generation: Generation; reportPath: string }> {
  const reportPath = await Deno.makeTempFile({ dir: directory });
  await Deno.remove(reportPath);
  const generation = spawnGeneration({
    execPath: Deno.execPath(),
    args: ["run", "-A", CHILD, "--report", reportPath, ...childArgs],
    fds,
    env: {},
  });
  return { generation, reportPath };
}

/** Kills the generation's group if it still runs and waits for it. */
async function stop(generation: Generation): Promise<void> {
  generation.killGroup("SIGKILL");
  try {
    await within(generation.exited, 10_000, "the killed group to exit");
  } catch {
    // killGroup missed it (not a group leader?): kill the child itself.
    Deno.kill(generation.pid, "SIGKILL");
    await generation.exited;
  }
}

/** Resolves as `promise` does, or rejects after `ms` saying what was awaited. */
async function within<T>(
  promise: Promise<T>,
  ms: number,
  what: string,
): Promise<T> {
  let timer: ReturnType<typeof setTimeout> | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`timed out: ${what}`)), ms);
  });
  try {
    return await Promise.race([promise, timeout]);
  } finally {
    clearTimeout(timer);
  }
}

/** Asserts that the child was reaped: no zombie left behind. */
function assertReaped(pid: number): void {
  assertNotEquals(processState(pid), "Z", `process ${pid} is a zombie`);
}

/** Runs deno with `args` in `cwd` and returns its stdout, or throws. */
// ---------------------------------------------------------------------------
// spawnGeneration
// ---------------------------------------------------------------------------

Deno.test("spawnGeneration passes two listening sockets as fds 3 and 4", async () => {
  const directory = await Deno.makeTempDir({ prefix: "spawn_test_" });
  const a = await listenWithFd();
  const b = await listenWithFd();
  // Hand over: the dups keep the sockets listening, only the child accepts.
  await closeServer(a.server);
  await closeServer(b.server);
  let ticks = 0;
  const interval = setInterval(() => ticks++, 10);
  let generation: Generation | undefined;
  try {
    const before = [fdinfoFlags(a.fd), fdinfoFlags(b.fd)];
    assert(before.every((flags) => (flags & O_NONBLOCK) !== 0));
    const spawned = await spawnChild(directory, [
      { fd: a.fd, name: "a" },
      { fd: b.fd, name: "b" },
    ]);
    generation = spawned.generation;
    const after = [fdinfoFlags(a.fd), fdinfoFlags(b.fd)];
    assertEquals(after, before, "O_NONBLOCK must be set again after spawn");

    const ticksAtSpawn = ticks;
    const report = await waitForJson<ChildReport>(spawned.reportPath);
    assertEquals(report.pid, generation.pid);
    assertEquals(report.pgid, generation.pid, "own process group");
    assertEquals(report.listenPid, String(generation.pid));
    assertEquals(report.listenFds, "2");
    assertEquals(report.listenFdNames, "a:b");
    assertEquals(report.fds, [
      { fd: 3, name: "a", port: a.port },
      { fd: 4, name: "b", port: b.port },
    ]);

    const answerA: ChildAnswer = JSON.parse(await fetchText(a.port));
    const answerB: ChildAnswer = JSON.parse(await fetchText(b.port));
    assertEquals(answerA, { pid: generation.pid, fd: 3, name: "a" });
    assertEquals(answerB, { pid: generation.pid, fd: 4, name: "b" });
    assert(
      ticks > ticksAtSpawn,
      `the parent's timer stopped while the child started (${ticks} ticks)`,
    );

    generation.killGroup("SIGTERM");
    assertEquals(await within(generation.exited, 20_000, "exit"), {
      code: null,
      signal: "SIGTERM",
    });
    assertReaped(generation.pid);
  } finally {
    clearInterval(interval);
    closeFd(a.fd);
    closeFd(b.fd);
    if (generation !== undefined) await stop(generation);
    await Deno.remove(directory, { recursive: true });
  }
});

Deno.test("the parent's accept loop on a passed socket keeps working (subprocess)", async () => {
  // In a subprocess, so that a frozen event loop fails the test instead of
  // hanging it.
  const parent = new Child(Deno.execPath(), ["run", "-A", PARENT, "accept"]);
  let spawned: number | undefined;
  const timer = setTimeout(() => {
    parent.kill("SIGKILL");
    // The child holds the output pipe: without it, the output ends.
    if (spawned !== undefined) killGroupOf(spawned);
  }, 30_000);
  try {
    spawned = JSON.parse((await parent.waitFor(/^\{"spawned":\d+\}$/))[0])
      .spawned;
    const status = await parent.done;
    assert(
      status.success,
      `spawn_parent.ts accept did not finish (a frozen event loop?):\n` +
        parent.output,
    );
    const report = JSON.parse(
      parent.lines.find((line) => line.startsWith('{"pid"'))!,
    );
    assertEquals(report.childPid, spawned);
    assert((report.flagsBefore & O_NONBLOCK) !== 0);
    assertEquals(report.flagsAfter, report.flagsBefore);
    assertEquals(report.child.listenPid, String(report.childPid));
    assertEquals(report.answers, [
      `parent ${report.pid}`,
      `parent ${report.pid}`,
      `parent ${report.pid}`,
    ]);
    // A 10 ms interval over the whole exchange (at least 90 ms): it must
    // have kept firing; allow for a slow machine.
    assert(report.elapsedMs >= 90);
    assert(report.ticks >= 3, `only ${report.ticks} ticks`);
    assertEquals(report.exit, { code: null, signal: "SIGKILL" });
  } finally {
    clearTimeout(timer);
    if (spawned !== undefined) killGroupOf(spawned);
    await parent.cleanup();
  }
});

Deno.test("Deno's child_process clears O_NONBLOCK on a passed socket (why spawnGeneration sets it again)", async () => {
  const a = await listenWithFd();
  try {
    assert((fdinfoFlags(a.fd) & O_NONBLOCK) !== 0);
    const child = spawn("/bin/true", [], {
      stdio: ["ignore", "ignore", "ignore", a.fd],
    });
    const cleared = fdinfoFlags(a.fd);
    // Set it again before the event loop runs, or the server would block.
    ensureNonBlocking(a.fd);
    await new Promise((resolve) => child.on("exit", resolve));
    assertEquals(
      cleared & O_NONBLOCK,
      0,
      "Deno no longer clears O_NONBLOCK on passed fds: the ensureNonBlocking " +
        "call in spawnGeneration is now redundant (but harmless); drop this test",
    );
  } finally {
    closeFd(a.fd);
    await closeServer(a.server);
  }
});

Deno.test("spawnGeneration: the old process can exit, the child keeps serving (stdio pipes)", async () => {
  const parent = new Child(Deno.execPath(), ["run", "-A", PARENT, "handover"]);
  let childPid: number | undefined;
  try {
    const handover = JSON.parse(
      (await parent.waitFor(/^\{"pid":\d+,"childPid".*$/))[0],
    );
    childPid = handover.childPid as number;
    // The old process exits without waiting for the child (unref)...
    const status = await parent.process.status;
    assertEquals(status.code, 0);
    // ...which keeps running, writes on the stdout it inherited (a pipe),
    // and serves on both sockets.
    const report: ChildReport = JSON.parse(
      (await parent.waitFor(/^\{"pid":\d+,"pgid".*$/))[0],
    );
    assertEquals(report.pid, childPid);
    assertEquals(report.listenPid, String(childPid));
    assertEquals(report.fds.map((fd) => fd.port), handover.ports);
    assert(!isDead(childPid), "the child died with its parent");
    for (const [index, port] of (handover.ports as number[]).entries()) {
      const answer: ChildAnswer = JSON.parse(await fetchText(port));
      assertEquals(answer, {
        pid: childPid,
        fd: 3 + index,
        name: ["a", "b"][index],
      });
    }
  } finally {
    if (childPid !== undefined) {
      killGroupOf(childPid);
      await until(() => isDead(childPid!), `process ${childPid} to die`);
    }
    await parent.cleanup();
  }
});

/**
 * SIGKILLs the process group `pgid`, and the process `pgid` itself in case it
 * is no group leader; ignores what is gone.
 */
function killGroupOf(pgid: number): void {
  for (const target of [-pgid, pgid]) {
    try {
      Deno.kill(target, "SIGKILL");
    } catch (error) {
      if (!(error instanceof Deno.errors.NotFound)) throw error;
    }
  }
}

Deno.test("spawnGeneration: exited gives the exit status, and the child is reaped", async () => {
  const directory = await Deno.makeTempDir({ prefix: "spawn_test_" });
  try {
    const { generation } = await spawnChild(directory, [], ["--exit", "7"]);
    assertEquals(await within(generation.exited, 20_000, "exit"), {
      code: 7,
      signal: null,
    });
    assertReaped(generation.pid);
    // Killing a group that is gone is not an error.
    generation.killGroup();

    const missing = spawnGeneration({
      execPath: `${directory}/no-such-program`,
      args: [],
      fds: [],
      env: {},
    });
    assertEquals(await within(missing.exited, 20_000, "exit"), {
      code: 127,
      signal: null,
    });
    assertReaped(missing.pid);
  } finally {
    await Deno.remove(directory, { recursive: true });
  }
});

Deno.test("spawnGeneration: killGroup kills the child and what it started", async () => {
  const directory = await Deno.makeTempDir({ prefix: "spawn_test_" });
  let generation: Generation | undefined;
  let grandchild: number | undefined;
  try {
    const spawned = await spawnChild(directory, [], ["--idle", "--grandchild"]);
    generation = spawned.generation;
    const report = await waitForJson<ChildReport>(spawned.reportPath);
    grandchild = report.grandchild!;
    assert(!isDead(grandchild), "the grandchild is not running");
    assert(!isDead(generation.pid), "the child is not running");

    generation.killGroup();
    assertEquals(await within(generation.exited, 20_000, "exit"), {
      code: null,
      signal: "SIGKILL",
    });
    assertReaped(generation.pid);
    await until(() => isDead(grandchild!), "the grandchild to die");
  } finally {
    if (generation !== undefined) await stop(generation);
    if (grandchild !== undefined && !isDead(grandchild)) {
      Deno.kill(grandchild, "SIGKILL");
    }
    await Deno.remove(directory, { recursive: true });
  }
});

Deno.test("spawnGeneration: the child leads its own session, with no signal ignored or blocked", async () => {
  // Deno ignores SIGPIPE; a child that inherited that would not die of a
  // broken pipe.
  const generation = spawnGeneration({
    execPath: "/bin/sh",
    args: ["-c", "exec sleep 30"],
    fds: [],
    env: {},
  });
  try {
    let status = "";
    await until(() => {
      try {
        status = Deno.readTextFileSync(`/proc/${generation.pid}/status`);
        return /^Name:\s+sleep$/m.test(status);
      } catch {
        return false;
      }
    }, "the child to exec sleep");
    const stat = Deno.readTextFileSync(`/proc/${generation.pid}/stat`);
    const fields = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
    // pgrp and session, after state and ppid
    assertEquals(Number(fields[2]), generation.pid);
    assertEquals(Number(fields[3]), generation.pid);
    assertMatch(status, /^SigIgn:\s+0+$/m);
    assertMatch(status, /^SigBlk:\s+0+$/m);
  } finally {
    generation.killGroup();
    await within(generation.exited, 20_000, "exit");
  }
});

Deno.test("spawnGeneration refuses invalid fds before spawning", async () => {
  const a = await listenWithFd();
  try {
    const childrenBefore = myChildren();
    const cases: [{ fd: number; name: string }[], RegExp][] = [
      [[{ fd: a.fd, name: "a" }, { fd: 999_999, name: "b" }], /fd 999999 /],
      [[{ fd: -1, name: "a" }], /fd -1 /],
      [[{ fd: 3.5, name: "a" }], /fd 3\.5 /],
      [[{ fd: a.fd, name: "a:b" }], new RegExp(`fd ${a.fd} .*":"`)],
    ];
    for (const [fds, message] of cases) {
      const error = assertThrows(() =>
        spawnGeneration({
          execPath: Deno.execPath(),
          args: ["run", "-A", CHILD],
          fds,
          env: {},
        })
      );
      assertMatch(error.message, message);
    }
    // (A child of an earlier test may have exited meanwhile: new ones only.)
    assertEquals(
      myChildren().filter((pid) => !childrenBefore.includes(pid)),
      [],
      "a process was spawned",
    );
    assert((fdinfoFlags(a.fd) & O_NONBLOCK) !== 0);
  } finally {
    closeFd(a.fd);
    await closeServer(a.server);
  }
});

Deno.test("spawnGeneration leaks no other fd into the child", async () => {
  const directory = await Deno.makeTempDir({ prefix: "spawn_test_" });
  const a = await listenWithFd();
  const b = await listenWithFd();
  const other = await listenWithFd();
  // An fd this process would pass to any child: no FD_CLOEXEC.
  const stray = libc()!.fcntl(other.fd, F_DUPFD, 0);
  assert(stray >= 0);
  assertEquals(libc()!.fcntl(stray, F_GETFD, 0) & FD_CLOEXEC, 0);
  const generations: Generation[] = [];
  try {
    const withFds = await spawnChild(directory, [
      { fd: a.fd, name: "a" },
      { fd: b.fd, name: "b" },
    ], ["--idle"]);
    generations.push(withFds.generation);
    const withoutFds = await spawnChild(directory, [], ["--idle"]);
    generations.push(withoutFds.generation);
    // The stray fd keeps its flags in this process.
    assertEquals(libc()!.fcntl(stray, F_GETFD, 0) & FD_CLOEXEC, 0);
    await waitForJson(withFds.reportPath);
    await waitForJson(withoutFds.reportPath);

    const parent = fdTargets("self");
    const child = fdTargets(withFds.generation.pid);
    const baseline = fdTargets(withoutFds.generation.pid);
    const socketA = parent.get(a.fd)!;
    const socketB = parent.get(b.fd)!;

    // 0-2 are inherited (from `deno test`, which captures the output of
    // tests, they are not this process's own 0-2); the passed sockets are at
    // 3 and 4, once.
    for (const fd of [0, 1, 2]) {
      assertEquals(child.get(fd), baseline.get(fd));
    }
    assertEquals(child.get(3), socketA);
    assertEquals(child.get(4), socketB);
    const elsewhere = [...child].filter(([fd, target]) =>
      fd > 4 && (target === socketA || target === socketB)
    );
    assertEquals(elsewhere, [], "a passed socket is open twice in the child");

    // Beyond that, the child holds nothing of this process's that the
    // baseline child (no fds) does not: no socket or pipe (those are only
    // ever inherited), nor anything else. Deno keeps dups of its own stdout
    // and stderr; those are not leaks.
    const shared = (targets: Map<number, string>, skip: number[]) => {
      const stdio = [0, 1, 2].map((fd) => targets.get(fd));
      return [...targets]
        .filter(([fd, target]) =>
          fd > 2 && !skip.includes(fd) && !stdio.includes(target) &&
          [...parent.values()].includes(target)
        )
        .map(([, target]) => target);
    };
    const leaked = shared(child, [3, 4]);
    assertEquals(
      leaked.filter((target) => /^(socket|pipe):/.test(target)),
      [],
      "sockets or pipes of the parent leaked into the child",
    );
    assertEquals(
      shared(baseline, []).filter((target) => /^(socket|pipe):/.test(target)),
      [],
      "sockets or pipes of the parent leaked into the baseline child",
    );
    assertEquals(
      new Set(leaked),
      new Set(shared(baseline, [])),
      "the child holds other files of the parent than a child without fds",
    );
    assert(
      ![...child.values()].includes(parent.get(stray)!),
      "the parent's fd without FD_CLOEXEC leaked",
    );
  } finally {
    for (const generation of generations) await stop(generation);
    closeFd(stray);
    for (const listening of [a, b, other]) {
      closeFd(listening.fd);
      await closeServer(listening.server);
    }
    await Deno.remove(directory, { recursive: true });
  }
});

Deno.test("spawnGeneration passes inherited fds on in another order (generation to generation)", async () => {
  const directory = await Deno.makeTempDir({ prefix: "spawn_test_" });
  const a = await listenWithFd();
  const b = await listenWithFd();
  await closeServer(a.server);
  await closeServer(b.server);
  const nextReport = `${directory}/next.json`;
  let next: number | undefined;
  try {
    // Generation 1 gets a at 3 and b at 4, and passes them on reversed, so
    // that generation 2 gets b at 3 and a at 4: each source fd is the other
    // one's target.
    const { generation } = await spawnChild(directory, [
      { fd: a.fd, name: "a" },
      { fd: b.fd, name: "b" },
    ], ["--idle", "--respawn-reversed", nextReport]);
    assertEquals(await within(generation.exited, 20_000, "exit"), {
      code: 0,
      signal: null,
    });
    const report = await waitForJson<ChildReport>(nextReport);
    next = report.pid;
    assertEquals(report.listenPid, String(next));
    assertEquals(report.listenFdNames, "b:a");
    assertEquals(report.fds, [
      { fd: 3, name: "b", port: b.port },
      { fd: 4, name: "a", port: a.port },
    ]);
    assertEquals(JSON.parse(await fetchText(a.port)), {
      pid: next,
      fd: 4,
      name: "a",
    });
    assertEquals(JSON.parse(await fetchText(b.port)), {
      pid: next,
      fd: 3,
      name: "b",
    });
  } finally {
    closeFd(a.fd);
    closeFd(b.fd);
    if (next !== undefined) {
      killGroupOf(next);
      await until(() => isDead(next!), `process ${next} to die`);
    }
    await Deno.remove(directory, { recursive: true });
  }
});

Deno.test("spawnGeneration sets LISTEN_* and drops a stale LISTEN_PID", async () => {
  const directory = await Deno.makeTempDir({ prefix: "spawn_test_" });
  const a = await listenWithFd();
  try {
    const reportPath = `${directory}/env.json`;
    const generation = spawnGeneration({
      execPath: "/bin/sh",
      args: [
        "-c",
        `printf '{"pid":%s,"listenPid":"%s","listenFds":"%s",` +
        `"listenFdNames":"%s","extra":"%s","mine":"%s"}' ` +
        `"$$" "$LISTEN_PID" "$LISTEN_FDS" "$LISTEN_FDNAMES" ` +
        `"\${DENO_EXTRA_STDIO_FDS-unset}" "$MINE" > "$0"`,
        reportPath,
      ],
      fds: [{ fd: a.fd, name: "x" }],
      env: { MINE: "yes", LISTEN_PID: "1", LISTEN_FDS: "9" },
      cwd: directory,
    });
    assertEquals(await within(generation.exited, 20_000, "exit"), {
      code: 0,
      signal: null,
    });
    const report = JSON.parse(Deno.readTextFileSync(reportPath));
    assertEquals(report, {
      pid: generation.pid,
      listenPid: String(generation.pid),
      listenFds: "1",
      listenFdNames: "x",
      extra: "unset",
      mine: "yes",
    });
  } finally {
    closeFd(a.fd);
    await closeServer(a.server);
    await Deno.remove(directory, { recursive: true });
  }
});

Deno.test("spawnGeneration: what a child left running in its process group is killed before the child is reaped", async () => {
  const directory = await Deno.makeTempDir({ prefix: "spawn_test_" });
  try {
    // sh -c runs without job control: the background sleep stays in the
    // child's group, and outlives the child.
    const generation = spawnGeneration({
      execPath: "/bin/sh",
      args: ["-c", `sleep 600 & echo $! > ${directory}/left; exit 3`],
      fds: [],
      env: {},
    });
    assertEquals(await within(generation.exited, 20_000, "exit"), {
      code: 3,
      signal: null,
    });
    const left = Number(Deno.readTextFileSync(`${directory}/left`));
    assertReaped(generation.pid);
    // Gone, or a zombie left for init: not running (SIGKILL takes a moment).
    await until(() => {
      try {
        const stat = Deno.readTextFileSync(`/proc/${left}/stat`);
        return stat.slice(stat.lastIndexOf(")") + 2).startsWith("Z");
      } catch {
        return true;
      }
    }, `sleep ${left}, left in the group, to be killed`);
    // After the reap the group is never signalled again (its id is free).
    generation.killGroup();
  } finally {
    await Deno.remove(directory, { recursive: true });
  }
});
