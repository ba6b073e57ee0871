/**
 * Test helpers: free ports, real child processes, and waiting on them.
 *
 * @module
 */

import { heldSocketInodes, readTcpTables, tcpListeners } from "./proc.ts";

export const ROOT = new URL("..", import.meta.url).pathname.replace(/\/$/, "");
export const MOD = `${ROOT}/mod.ts`;

/** The inspector guard's address (127.0.0.1:9229) as /proc/net/tcp prints it. */
const INSPECTOR_GUARD = "0100007F:240D";

import { freePort } from "./ports.ts";
export { freePort };

/** A running child process whose output is collected line by line. */
export class Child {
  readonly process: Deno.ChildProcess;
  readonly lines: string[] = [];
  #waiters: { re: RegExp; resolve: (m: RegExpMatchArray) => void }[] = [];
  /** The process's exit status, once output from every holder of its pipes ended. */
  readonly done: Promise<Deno.CommandStatus>;
  /** The process's exit status (later generations may still hold its pipes). */
  readonly exited: Promise<Deno.CommandStatus>;
  #pumps: Promise<void>[];

  constructor(cmd: string, args: string[], env: Record<string, string> = {}) {
    this.process = new Deno.Command(cmd, {
      args,
      env: { NO_COLOR: "1", ...env },
      stdout: "piped",
      stderr: "piped",
      stdin: "null",
    }).spawn();
    this.#pumps = [
      this.#pump(this.process.stdout),
      this.#pump(this.process.stderr),
    ];
    this.exited = this.process.status;
    this.done = this.process.status.then(async (status) => {
      await Promise.all(this.#pumps);
      return status;
    });
  }

  get pid(): number {
    return this.process.pid;
  }

  get output(): string {
    return this.lines.join("\n");
  }

  async #pump(stream: ReadableStream<Uint8Array>): Promise<void> {
    let rest = "";
    for await (const chunk of stream.pipeThrough(new TextDecoderStream())) {
      rest += chunk;
      let nl;
      while ((nl = rest.indexOf("\n")) >= 0) {
        this.#line(rest.slice(0, nl));
        rest = rest.slice(nl + 1);
      }
    }
    if (rest) this.#line(rest);
  }

  #line(line: string): void {
    this.lines.push(line);
    if (Deno.env.get("TEST_VERBOSE")) console.error(`[${this.pid}] ${line}`);
    this.#waiters = this.#waiters.filter((w) => {
      const m = line.match(w.re);
      if (m) w.resolve(m);
      return !m;
    });
  }

  /** Resolves with the first output line (past or future) matching `re`. */
  waitFor(re: RegExp, timeoutMs = 60_000): Promise<RegExpMatchArray> {
    for (const line of this.lines) {
      const m = line.match(re);
      if (m) return Promise.resolve(m);
    }
    const { promise, resolve, reject } = Promise.withResolvers<
      RegExpMatchArray
    >();
    const timer = setTimeout(() => {
      reject(new Error(`timeout waiting for ${re}; output:\n${this.output}`));
    }, timeoutMs);
    this.#waiters.push({
      re,
      resolve: (m) => {
        clearTimeout(timer);
        resolve(m);
      },
    });
    Promise.all(this.#pumps).then(() => {
      clearTimeout(timer);
      reject(new Error(`output ended before ${re}; output:\n${this.output}`));
    });
    return promise;
  }

  kill(signal: Deno.Signal = "SIGTERM"): void {
    try {
      this.process.kill(signal);
    } catch {
      // already gone
    }
  }

  /** Kills (SIGKILL) if still running and waits; for finally blocks. */
  async cleanup(): Promise<void> {
    this.kill("SIGKILL");
    await this.done;
  }
}

/** Starts `deno run -A mod.ts ...args` and waits until it listens; returns the port. */
export async function startCli(
  args: string[],
  env: Record<string, string> = {},
): Promise<{ child: Child; port: number }> {
  const child = new Child(Deno.execPath(), ["run", "-A", MOD, ...args], env);
  const m = await child.waitFor(/Listening on http:\/\/.*:(\d+)\//);
  return { child, port: Number(m[1]) };
}

/** GET `path` on 127.0.0.1:port; returns status and text. */
export async function get(
  port: number,
  path: string,
  init?: RequestInit,
): Promise<{ status: number; text: string; headers: Headers }> {
  const res = await fetch(`http://127.0.0.1:${port}${path}`, init);
  return { status: res.status, text: await res.text(), headers: res.headers };
}

/** Whether a TCP connect to 127.0.0.1:port is refused. */
export async function refused(port: number): Promise<boolean> {
  try {
    const conn = await Deno.connect({ hostname: "127.0.0.1", port });
    conn.close();
    return false;
  } catch (error) {
    return error instanceof Deno.errors.ConnectionRefused;
  }
}

/**
 * Socket inodes of the TCP sockets in LISTEN state that process `pid` holds,
 * but its inspector guard (127.0.0.1:9229, see {@linkcode fdCount}).
 */
export function listeningInodes(
  pid: number,
): { inode: string; port: number }[] {
  const mine = heldSocketInodes(pid);
  return readTcpTables().flatMap(tcpListeners)
    .filter((l) => l.local !== INSPECTOR_GUARD && mine.has(l.inode))
    .map(({ inode, port }) => ({ inode, port }));
}

/** Polls `check` every 20 ms until it returns true (or `timeoutMs`). */
export async function until(
  check: () => boolean | Promise<boolean>,
  timeoutMs = 30_000,
): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!(await check())) {
    if (Date.now() > deadline) throw new Error("condition not met in time");
    await new Promise((r) => setTimeout(r, 20));
  }
}

/** Pids of live processes whose command line contains `marker`. */
export function pidsWith(marker: string): number[] {
  const pids: number[] = [];
  for (const entry of Deno.readDirSync("/proc")) {
    if (!/^\d+$/.test(entry.name)) continue;
    try {
      const cmdline = Deno.readTextFileSync(`/proc/${entry.name}/cmdline`);
      const stat = Deno.readTextFileSync(`/proc/${entry.name}/stat`);
      const state = stat.slice(
        stat.lastIndexOf(")") + 2,
        stat.lastIndexOf(")") + 3,
      );
      if (cmdline.includes(marker) && state !== "Z") {
        pids.push(Number(entry.name));
      }
    } catch {
      // gone meanwhile
    }
  }
  return pids.filter((pid) => pid !== Deno.pid);
}

export { alive } from "./proc.ts";

/** SIGKILLs every process whose command line contains `marker`. */
export function killAllWith(marker: string): void {
  for (const pid of pidsWith(marker)) {
    try {
      Deno.kill(pid, "SIGKILL");
    } catch {
      // gone
    }
  }
}

/**
 * Number of open fds of process `pid`, not counting the inspector guard (the
 * socket listening on 127.0.0.1:9229: whether a server outside a network
 * namespace of its own holds it depends on the other servers of the machine;
 * inspector_race.ts counts it).
 */
export function fdCount(pid: number): number {
  const guard = new Set(
    tcpListeners(Deno.readTextFileSync(`/proc/${pid}/net/tcp`))
      .filter((l) => l.local === INSPECTOR_GUARD)
      .map((l) => `socket:[${l.inode}]`),
  );
  let count = 0;
  for (const entry of Deno.readDirSync(`/proc/${pid}/fd`)) {
    try {
      if (!guard.has(Deno.readLinkSync(`/proc/${pid}/fd/${entry.name}`))) {
        count++;
      }
    } catch {
      count++; // closed meanwhile (as a plain count would have it)
    }
  }
  return count;
}

/**
 * An app module in a fresh temp dir, served by `deno run -A mod.ts APP.ts`.
 * The dir's path is in every generation's command line, so that `stop()`
 * finds and kills all of them (later generations run in their own process
 * groups).
 */
export class TempApp {
  readonly dir: string;
  readonly app: string;
  child!: Child;
  port = 0;

  private constructor(dir: string) {
    this.dir = dir;
    this.app = `${dir}/app.ts`;
  }

  /** Writes `source` as the app and starts the CLI on a free port. */
  static async start(
    source: string,
    extra: string[] = [],
    env: Record<string, string> = {},
  ): Promise<TempApp> {
    return await (await TempApp.create(source)).launch(extra, env);
  }

  /** Writes `source` as the app in a new temp dir; starts nothing. */
  static async create(source: string): Promise<TempApp> {
    const app = new TempApp(
      await Deno.makeTempDir({ prefix: "graceful-app-" }),
    );
    await Deno.writeTextFile(app.app, source);
    return app;
  }

  /** Starts the CLI on the app, on a free port, and waits until it listens. */
  async launch(
    extra: string[] = [],
    env: Record<string, string> = {},
  ): Promise<this> {
    this.child = new Child(Deno.execPath(), [
      "run",
      "-A",
      MOD,
      this.app,
      "--port",
      "0",
      "--hostname",
      "127.0.0.1",
      ...extra,
    ], env);
    const m = await this.child.waitFor(
      /Listening on https?:\/\/127\.0\.0\.1:(\d+)\//,
    );
    this.port = Number(m[1]);
    return this;
  }

  /** Replaces the app's source (for the next generation). */
  write(source: string): Promise<void> {
    return Deno.writeTextFile(this.app, source);
  }

  /** Pids of every live generation. */
  pids(): number[] {
    return pidsWith(this.dir);
  }

  /**
   * Kills every generation (and `others`, children started on the app some
   * other way), waits until none is left, removes the dir.
   */
  async stop(...others: Child[]): Promise<void> {
    killAllWith(this.dir);
    const children = this.child ? [this.child, ...others] : others;
    for (const child of children) child.kill("SIGKILL");
    await Promise.all(children.map((child) => child.exited));
    await until(() => pidsWith(this.dir).length === 0);
    await Deno.remove(this.dir, { recursive: true });
  }
}

/**
 * Runs `deno run -A mod.ts ...args` to its end (an operator command, or a
 * start that must fail); resolves to its exit code and output.
 */
export async function runCli(
  args: string[],
  env: Record<string, string> = {},
): Promise<{ code: number; stdout: string; stderr: string }> {
  const out = await new Deno.Command(Deno.execPath(), {
    args: ["run", "-A", MOD, ...args],
    env: { NO_COLOR: "1", ...env },
    stdout: "piped",
    stderr: "piped",
  }).output();
  const decode = (bytes: Uint8Array) => new TextDecoder().decode(bytes);
  return {
    code: out.code,
    stdout: decode(out.stdout),
    stderr: decode(out.stderr),
  };
}

/**
 * Runs `systemd-socket-activate -l 127.0.0.1:PORT ... args` on `count` ports
 * that were free a moment ago, and waits until it listens on all of them
 * (it cannot bind port 0). Should another process take a port in between,
 * it fails with EADDRINUSE and other ports are tried, up to 5 times.
 */
export async function socketActivate(
  count: number,
  args: string[],
): Promise<{ child: Child; ports: number[] }> {
  for (let attempt = 1;; attempt++) {
    const ports = Array.from({ length: count }, () => freePort());
    const child = new Child("systemd-socket-activate", [
      ...ports.flatMap((port) => ["-l", `127.0.0.1:${port}`]),
      ...args,
    ]);
    try {
      for (const port of ports) {
        await child.waitFor(
          new RegExp(`Listening on 127\\.0\\.0\\.1:${port} `),
        );
      }
      return { child, ports };
    } catch (error) {
      await child.cleanup();
      if (attempt >= 5 || !/Address already in use/.test(child.output)) {
        throw error;
      }
    }
  }
}

/** A supervisor's status file (`<pidfile>.json`), as the workers tests read it. */
export interface WorkersStatus {
  pid: number;
  generation: number;
  restarts: number;
  restartSignals?: string[];
  lastRestart?: { ok: boolean; reason?: string };
  workers: {
    slot: number;
    pid: number;
    generation: number;
    phase: string;
    served: number;
  }[];
  givenUp: number[];
}

/**
 * The status file beside `pidfile`, or undefined while it is not written
 * yet or being replaced.
 */
export function readStatus(pidfile: string): WorkersStatus | undefined {
  try {
    return JSON.parse(Deno.readTextFileSync(`${pidfile}.json`));
  } catch {
    return undefined;
  }
}
