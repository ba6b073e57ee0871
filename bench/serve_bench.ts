/**
 * Hello-world serving cost of `serveGraceful` (native and node engines) next
 * to plain `Deno.serve` and plain `node:http`, with keep-alive and with
 * `Connection: close`, in one run.
 *
 *   deno run -A bench/serve_bench.ts [--duration S] [--rounds R] [--quick]
 *     [--out DIR] [--only name,name] [--no-markdown] [--render FILE]
 *
 * Each server runs pinned to CPU 1, wrk (or, for unix sockets, which wrk
 * cannot reach, bench/lib/unix_load.ts) pinned to CPU 0. Runs go round-robin
 * across the systems, R rounds, and the medians are reported. Results go to
 * `bench/results/serve.json` and to the serve-bench section of BENCHMARKS.md.
 *
 * @module
 */

import { runBenchMain } from "./lib/bench_main.ts";
import { killAllChildren } from "./lib/children.ts";
import { readFlags } from "./lib/flags.ts";
import { formatMarkdown } from "./lib/deno_fmt.ts";
import { writeSection } from "./lib/markdown_section.ts";
import {
  clockTicksPerSecond,
  commandOutput,
  type CoreTicks,
  foreignTicks,
  readAllProcessTicks,
  readCoreTicks,
  readProcessCpuTicks,
} from "./lib/proc.ts";
import {
  type AttemptRecord,
  type BenchConfig,
  type BenchReport,
  buildReport,
  type CpuRecord,
  type Environment,
  formatErrors,
  formatInteger,
  MARKERS,
  type ModeSpec,
  renderMarkdown,
  type RunRecord,
  type SystemSpec,
} from "./lib/report.ts";
import {
  checkHelloWorld,
  type RunningServer,
  startServer,
  stopServerProcess,
} from "./lib/server_process.ts";
import { sleep } from "./lib/time.ts";
import { selfSignedCert } from "./lib/tls_cert.ts";
import { track } from "./lib/children.ts";
import { denoRunCommand, pinnedToCpu } from "./lib/commands.ts";
import { runWrk, type WrkOptions, type WrkResult } from "./lib/wrk.ts";

const PLAIN: SystemSpec[] = [
  { name: "deno_serve", label: "Deno.serve", script: "servers/deno_serve.ts" },
  {
    name: "graceful_native",
    label: "serveGraceful native",
    script: "servers/graceful_native.ts",
  },
  {
    name: "graceful_node",
    label: "serveGraceful node",
    script: "servers/graceful_node.ts",
  },
  { name: "node_http", label: "node:http", script: "servers/node_http.ts" },
];

/** The TLS and unix variants: keep-alive only (the targets' cases). */
const SYSTEMS: SystemSpec[] = [
  ...PLAIN,
  ...(["tls", "unix"] as const).flatMap((transport) =>
    PLAIN.slice(0, 3).map((system): SystemSpec => ({
      ...system,
      name: `${system.name}_${transport}`,
      label: `${system.label} ${transport === "tls" ? "HTTPS" : "unix"}`,
      transport,
      modes: ["keep-alive"],
    }))
  ),
];

const MODES: ModeSpec[] = [
  { name: "keep-alive", label: "Keep-alive", headers: [] },
  {
    name: "close",
    label: "Connection: close",
    headers: ["Connection: close"],
  },
];

const SERVER_CPU = 1;
const CLIENT_CPU = 0;
const THREADS = 1;
const CONNECTIONS = 50;
const WARMUP_SECONDS = 2;
/** Pause after the warm-up (ms). */
const SETTLE_MS = 250;
const STARTUP_TIMEOUT_MS = 30_000;
const STOP_GRACE_MS = 5_000;
/** Before each measured run, wait for other processes to use less than this % of a core… */
const QUIET_PERCENT = 5;
/** …over this window… */
const QUIET_WINDOW_MS = 1_000;
/** …but no longer than this (default; `--quiet-wait`). */
const QUIET_MAX_WAIT_MS = 60_000;
/** Measure again when other processes used more than this % of a core during the run. */
const MAX_FOREIGN_PERCENT = 5;
/** Default; `--attempts`. */
const MAX_ATTEMPTS = 3;

const BENCH_DIR = decodeURIComponent(new URL(".", import.meta.url).pathname);
const REPO_DIR = decodeURIComponent(new URL("..", import.meta.url).pathname);
const MARKDOWN_PATH = `${REPO_DIR}BENCHMARKS.md`;

const USAGE = `Usage: deno run -A bench/serve_bench.ts [options]

Hello-world req/s and server CPU µs per request of Deno.serve,
serveGraceful (native and node engines) and node:http, with keep-alive and
with Connection: close. Needs Linux, wrk, taskset and at least 2 CPUs.

Options:
  --duration S       seconds of measured load per run (default 5)
  --rounds R         round-robin rounds; medians are reported (default 5)
  --quick            --duration 3 --rounds 1 (explicit flags still win)
  --out DIR          directory for serve.json (default bench/results)
  --only a,b         only these systems: ${
  SYSTEMS.map((s) => s.name).join(", ")
}
  --quiet-wait S     wait at most S s for a quiet machine before a run (60)
  --attempts N       measure a disturbed run at most N times (3)
  --no-markdown      do not update BENCHMARKS.md (neither does --quick nor
                     --out: the section goes to DIR/serve.md beside
                     serve.json)
  --render FILE      measure nothing: rebuild the report and the Markdown
                     section from the runs in an earlier serve.json
  -h, --help         this text
`;

interface Flags {
  duration: number;
  rounds: number;
  outDir: string;
  systems: SystemSpec[];
  markdown: boolean;
  /** `--render FILE`: re-render an earlier serve.json instead of measuring. */
  render: string | undefined;
  /** How long to wait for a quiet machine before each run (ms). */
  quietWaitMs: number;
  /** How often a disturbed run is measured at most. */
  attempts: number;
  /** A private directory for the certificate and the unix sockets. */
  workDir: string;
  /** The TLS certificate (PEM) the HTTPS systems serve. */
  cert: string;
}

function parseFlags(args: string[]): Flags | "help" {
  let duration: number | undefined;
  let rounds: number | undefined;
  let quick = false;
  let outDir = `${BENCH_DIR}results`;
  let systems = SYSTEMS;
  let markdown = true;
  let outGiven = false;
  let quietWaitMs = QUIET_MAX_WAIT_MS;
  let attempts = MAX_ATTEMPTS;
  let render: string | undefined;
  for (const { arg, name, value } of readFlags(args)) {
    switch (name) {
      case "-h":
      case "--help":
        return "help";
      case "--duration": {
        duration = Number(value());
        if (!Number.isFinite(duration) || duration <= 0) {
          throw new Error("--duration must be a positive number of seconds");
        }
        break;
      }
      case "--rounds": {
        rounds = Number(value());
        if (!Number.isInteger(rounds) || rounds < 1) {
          throw new Error("--rounds must be a positive integer");
        }
        break;
      }
      case "--quick":
        quick = true;
        break;
      case "--out":
        outDir = value();
        outGiven = true;
        break;
      case "--only": {
        const names = value().split(",").map((n) => n.trim()).filter(Boolean);
        for (const n of names) {
          if (!SYSTEMS.some((s) => s.name === n)) {
            throw new Error(
              `--only: unknown system "${n}" (known: ${
                SYSTEMS.map((s) => s.name).join(", ")
              })`,
            );
          }
        }
        systems = SYSTEMS.filter((s) => names.includes(s.name));
        if (systems.length === 0) throw new Error("--only names no system");
        break;
      }
      case "--quiet-wait": {
        quietWaitMs = Number(value()) * 1000;
        if (!Number.isFinite(quietWaitMs) || quietWaitMs < 0) {
          throw new Error("--quiet-wait must be a number of seconds");
        }
        break;
      }
      case "--attempts": {
        attempts = Number(value());
        if (!Number.isInteger(attempts) || attempts < 1) {
          throw new Error("--attempts must be a positive integer");
        }
        break;
      }
      case "--no-markdown":
        markdown = false;
        break;
      case "--render":
        render = value();
        break;
      default:
        throw new Error(`unknown argument "${arg}"\n\n${USAGE}`);
    }
  }
  return {
    duration: duration ?? (quick ? 3 : 5),
    rounds: rounds ?? (quick ? 1 : 5),
    outDir: outDir.endsWith("/") ? outDir : `${outDir}/`,
    systems,
    // A quick run, or one written elsewhere, leaves BENCHMARKS.md alone: its
    // section goes next to its serve.json.
    markdown: markdown && !quick && !outGiven,
    render,
    quietWaitMs,
    attempts,
    workDir: "",
    cert: "",
  };
}

function shellQuote(arg: string): string {
  return /^[\w@%+=:,./-]+$/.test(arg)
    ? arg
    : `'${arg.replaceAll("'", "'\\''")}'`;
}

async function readEnvironment(clockTicks: number): Promise<Environment> {
  const cpuinfo = await Deno.readTextFile("/proc/cpuinfo");
  const cpuModel = /^model name\s*:\s*(.+)$/m.exec(cpuinfo)?.[1].trim() ??
    "unknown CPU";
  const wrkOutput = await new Deno.Command("wrk", {
    args: ["-v"],
    stdout: "piped",
    stderr: "piped",
  }).output();
  const wrkText = new TextDecoder().decode(wrkOutput.stdout) +
    new TextDecoder().decode(wrkOutput.stderr);
  const wrk = /^wrk \S+/m.exec(wrkText)?.[0] ?? "wrk";
  const loadavg = await Deno.readTextFile("/proc/loadavg");
  return {
    date: new Date().toISOString().slice(0, 10),
    command: ["deno", "run", "-A", "bench/serve_bench.ts", ...Deno.args]
      .map(shellQuote).join(" "),
    nproc: Number(await commandOutput("nproc", [])),
    cpuModel,
    deno: Deno.version.deno,
    v8: Deno.version.v8,
    typescript: Deno.version.typescript,
    kernel: Deno.osRelease(),
    wrk,
    clockTicksPerSecond: clockTicks,
    loadAverageAtStart: loadavg.split(" ").slice(0, 3).join(" "),
  };
}

function coreDeltaPercent(
  before: Map<number, CoreTicks>,
  after: Map<number, CoreTicks>,
  cpu: number,
): number {
  const a = before.get(cpu);
  const b = after.get(cpu);
  if (a === undefined || b === undefined || b.total === a.total) return NaN;
  return (b.busy - a.busy) / (b.total - a.total) * 100;
}

interface RunPlan {
  round: number;
  sequence: number;
  system: SystemSpec;
  mode: ModeSpec;
}

/** Round-robin: every round runs each mode over every system; the system order rotates per round. */
function planRuns(flags: Flags): RunPlan[] {
  const plans: RunPlan[] = [];
  const n = flags.systems.length;
  for (let round = 1; round <= flags.rounds; round++) {
    for (let m = 0; m < MODES.length; m++) {
      const mode = MODES[(m + round - 1) % MODES.length];
      for (let i = 0; i < n; i++) {
        const system = flags.systems[(i + round - 1) % n];
        if (system.modes && !system.modes.includes(mode.name)) continue;
        plans.push({ round, sequence: plans.length + 1, system, mode });
      }
    }
  }
  return plans;
}

/** Measures one loaded run against a warm server; see {@linkcode measure}. */
async function measureLoad(
  server: RunningServer,
  load: Load,
  clockTicks: number,
): Promise<{ wrk: WrkResult; cpu: CpuRecord }> {
  const allBefore = await readAllProcessTicks();
  const cpuBefore = await readProcessCpuTicks(server.pid);
  const coresBefore = await readCoreTicks();
  const startedAt = performance.now();
  const result = await runLoad(load);
  // Read right away: wrk has exited, so its connections are closed, and an
  // idle pause here would only dilute the CPU percentages.
  if (server.exited()) throw new Error("the server exited under load");
  const cpuAfter = await readProcessCpuTicks(server.pid);
  const coresAfter = await readCoreTicks();
  const wallSeconds = (performance.now() - startedAt) / 1000;
  const allAfter = await readAllProcessTicks();
  if (result.requests === 0) throw new Error("wrk completed no requests");
  const ticks = cpuAfter.user + cpuAfter.system -
    (cpuBefore.user + cpuBefore.system);
  const seconds = ticks / clockTicks;
  const foreign = foreignTicks(
    allBefore,
    allAfter,
    new Set([server.pid, Deno.pid]),
  );
  return {
    wrk: result,
    cpu: {
      ticks,
      seconds,
      usPerRequest: seconds * 1e6 / result.requests,
      wallSeconds,
      serverPercent: seconds / wallSeconds * 100,
      serverCoreBusyPercent: coreDeltaPercent(
        coresBefore,
        coresAfter,
        SERVER_CPU,
      ),
      clientCoreBusyPercent: coreDeltaPercent(
        coresBefore,
        coresAfter,
        CLIENT_CPU,
      ),
      foreignPercent: foreign / clockTicks / wallSeconds * 100,
    },
  };
}

/** wrk's options, and the unix socket to load instead of its URL. */
type Load = WrkOptions & { unixPath?: string };

/** wrk, or for a unix socket bench/lib/unix_load.ts, pinned like wrk. */
async function runLoad(load: Load): Promise<WrkResult> {
  if (load.unixPath === undefined) return (await runWrk(load)).result;
  const [command, ...args] = pinnedToCpu(
    load.cpu,
    denoRunCommand([
      `${BENCH_DIR}lib/unix_load.ts`,
      load.unixPath,
      String(load.connections),
      String(load.duration),
      load.headers.some((h) => /close/i.test(h)) ? "close" : "keep-alive",
    ]),
  );
  const child = new Deno.Command(command, {
    args,
    stdin: "null",
    stdout: "piped",
    stderr: "piped",
  }).spawn();
  track(child);
  const out = await child.output();
  if (!out.success) {
    throw new Error(
      `unix_load.ts failed: ${new TextDecoder().decode(out.stderr)}`,
    );
  }
  return JSON.parse(new TextDecoder().decode(out.stdout));
}

/**
 * Waits until processes other than the bench and `serverPid` use less than
 * {@linkcode QUIET_PERCENT} of a core over {@linkcode QUIET_WINDOW_MS}, or
 * until {@linkcode QUIET_MAX_WAIT_MS} have passed.
 */
async function waitForQuiet(
  serverPid: number,
  clockTicks: number,
  maxWaitMs: number,
): Promise<{ waitedSeconds: number; foreignPercent: number }> {
  const started = performance.now();
  const exclude = new Set([serverPid, Deno.pid]);
  while (true) {
    const before = await readAllProcessTicks();
    await sleep(QUIET_WINDOW_MS);
    const after = await readAllProcessTicks();
    const foreignPercent = foreignTicks(before, after, exclude) / clockTicks /
      (QUIET_WINDOW_MS / 1000) * 100;
    const waited = performance.now() - started;
    if (foreignPercent < QUIET_PERCENT || waited >= maxWaitMs) {
      return { waitedSeconds: waited / 1000, foreignPercent };
    }
  }
}

/**
 * One (system, mode, round) run: a fresh server, a pre-flight GET, a warm-up,
 * then the measured load, repeated (up to {@linkcode MAX_ATTEMPTS}) when
 * other processes used more than {@linkcode MAX_FOREIGN_PERCENT} of a core
 * meanwhile. The attempt with the least interference is kept.
 */
async function measure(
  plan: RunPlan,
  flags: Flags,
  clockTicks: number,
): Promise<RunRecord> {
  const transport = plan.system.transport;
  const unixPath = transport === "unix"
    ? `${flags.workDir}bench-${plan.sequence}.sock`
    : undefined;
  const server: RunningServer = await startServer({
    script: `${BENCH_DIR}${plan.system.script}`,
    cwd: REPO_DIR,
    cpu: SERVER_CPU,
    timeoutMs: STARTUP_TIMEOUT_MS,
    args: transport === "tls"
      ? [`tls:${flags.workDir}`]
      : unixPath
      ? [`unix:${unixPath}`]
      : [],
  });
  let record: Omit<RunRecord, "stop"> | undefined;
  let failure: unknown;
  const check = {
    tlsCert: transport === "tls" ? flags.cert : undefined,
    unixPath,
  };
  try {
    const responseHeaders = await checkHelloWorld(server.port, check);
    const load: Load = {
      unixPath,
      url: `${
        transport === "tls" ? "https" : "http"
      }://127.0.0.1:${server.port}/`,
      duration: WARMUP_SECONDS,
      threads: THREADS,
      connections: CONNECTIONS,
      headers: plan.mode.headers,
      cpu: CLIENT_CPU,
    };
    const warmup = { result: await runLoad(load) };
    await sleep(SETTLE_MS);
    if (server.exited()) throw new Error("the server exited during warm-up");

    const attempts: AttemptRecord[] = [];
    for (let attempt = 1; attempt <= flags.attempts; attempt++) {
      const quiet = await waitForQuiet(
        server.pid,
        clockTicks,
        flags.quietWaitMs,
      );
      const measured = await measureLoad(
        server,
        { ...load, duration: flags.duration },
        clockTicks,
      );
      attempts.push({ attempt, quiet, ...measured });
      if (measured.cpu.foreignPercent <= MAX_FOREIGN_PERCENT) break;
      console.log(
        `    other processes used ${
          measured.cpu.foreignPercent.toFixed(0)
        }% of a core during the run` +
          (attempt < flags.attempts ? "; measuring again" : ""),
      );
    }
    await checkHelloWorld(server.port, check);
    const kept = attempts.reduce((best, a) =>
      a.cpu.foreignPercent < best.cpu.foreignPercent ? a : best
    );
    record = {
      round: plan.round,
      sequence: plan.sequence,
      mode: plan.mode.name,
      system: plan.system.name,
      pid: server.pid,
      port: server.port,
      responseHeaders,
      warmup: {
        requests: warmup.result.requests,
        requestsPerSecond: warmup.result.requestsPerSecond,
        errors: warmup.result.errors,
      },
      quiet: kept.quiet,
      wrk: kept.wrk,
      cpu: kept.cpu,
      discarded: attempts.filter((a) => a !== kept),
    };
  } catch (error) {
    failure = error;
  }
  const { status, killed } = await stopServerProcess(
    server.child,
    STOP_GRACE_MS,
  );
  if (unixPath) await Deno.remove(unixPath).catch(() => {});
  if (failure !== undefined || record === undefined) {
    throw new Error(
      `${plan.system.name} (${plan.mode.name}, round ${plan.round}) failed: ${
        failure instanceof Error ? failure.message : String(failure)
      }\n--- server output ---\n${server.output()}`,
    );
  }
  return {
    ...record,
    stop: { code: status.code, signal: status.signal, killed },
  };
}

async function checkPrerequisites(): Promise<void> {
  if (Deno.build.os !== "linux") {
    throw new Error("this bench reads /proc and needs Linux");
  }
  for (const tool of ["wrk", "taskset", "getconf", "nproc"]) {
    const found = await new Deno.Command("sh", {
      args: ["-c", `command -v ${tool}`],
      stdout: "null",
      stderr: "null",
    }).output();
    if (!found.success) throw new Error(`${tool} is not installed`);
  }
  const cores = await readCoreTicks();
  if (!cores.has(SERVER_CPU) || !cores.has(CLIENT_CPU)) {
    throw new Error(
      `needs CPUs ${SERVER_CPU} and ${CLIENT_CPU}; this machine has ${cores.size}`,
    );
  }
}

function relativeToRepo(path: string): string {
  return path.startsWith(REPO_DIR) ? path.slice(REPO_DIR.length) : path;
}

async function main(args: string[]): Promise<number> {
  const flags = parseFlags(args);
  if (flags === "help") {
    console.log(USAGE);
    return 0;
  }
  if (flags.render !== undefined) return await render(flags.render, flags);
  await checkPrerequisites();
  flags.workDir = `${await Deno.makeTempDir({ prefix: "serve-bench-" })}/`;
  const tls = await selfSignedCert();
  flags.cert = tls.cert;
  await Deno.writeTextFile(`${flags.workDir}cert.pem`, tls.cert);
  await Deno.writeTextFile(`${flags.workDir}key.pem`, tls.key);
  const clockTicks = await clockTicksPerSecond();
  const environment = await readEnvironment(clockTicks);
  const plans = planRuns(flags);
  const perRun = WARMUP_SECONDS + flags.duration + 2;
  console.log(
    `serve bench: ${flags.systems.map((s) => s.name).join(", ")}; ` +
      `${flags.rounds} round(s) × ${flags.duration} s; ${plans.length} runs, ` +
      `about ${Math.ceil(plans.length * perRun / 60)} min`,
  );

  const runs: RunRecord[] = [];
  for (const plan of plans) {
    const run = await measure(plan, flags, clockTicks);
    runs.push(run);
    console.log(
      `[${plan.sequence}/${plans.length}] round ${plan.round} ` +
        `${plan.mode.name.padEnd(10)} ${plan.system.name.padEnd(15)} ` +
        `${formatInteger(run.wrk.requestsPerSecond).padStart(7)} req/s  ` +
        `${run.cpu.usPerRequest.toFixed(1).padStart(6)} µs/req  ` +
        `cpu ${run.cpu.serverPercent.toFixed(0).padStart(3)}%  ` +
        `others ${run.cpu.foreignPercent.toFixed(0).padStart(2)}%  ` +
        `errors ${formatErrors(run.wrk.errors)}`,
    );
  }

  const config: BenchConfig = {
    durationSeconds: flags.duration,
    warmupSeconds: WARMUP_SECONDS,
    rounds: flags.rounds,
    threads: THREADS,
    connections: CONNECTIONS,
    serverCpu: SERVER_CPU,
    clientCpu: CLIENT_CPU,
    quietMaxWaitSeconds: flags.quietWaitMs / 1000,
    maxForeignPercent: MAX_FOREIGN_PERCENT,
    maxAttempts: flags.attempts,
    systems: flags.systems.map((s) => s.name),
    modes: MODES.map((m) => m.name),
  };
  await writeOutputs(
    buildReport(environment, config, runs, SYSTEMS, MODES),
    flags,
  );
  await Deno.remove(flags.workDir, { recursive: true });
  return 0;
}

/**
 * `--render FILE`: rebuilds the report (summaries, ratios, targets, notes)
 * from the runs of an earlier serve.json, without measuring anything.
 */
async function render(file: string, flags: Flags): Promise<number> {
  const old: BenchReport = JSON.parse(await Deno.readTextFile(file));
  if (old.benchmark !== "serve" || !Array.isArray(old.runs)) {
    throw new Error(`${file} is not a serve bench result`);
  }
  await writeOutputs(
    buildReport(old.environment, old.config, old.runs, SYSTEMS, MODES),
    flags,
  );
  return 0;
}

/** Writes serve.json, prints the Markdown section and splices it into BENCHMARKS.md. */
async function writeOutputs(report: BenchReport, flags: Flags): Promise<void> {
  await Deno.mkdir(flags.outDir, { recursive: true });
  const jsonPath = await Deno.realPath(flags.outDir) + "/serve.json";
  await Deno.writeTextFile(jsonPath, JSON.stringify(report, null, 2) + "\n");
  const section = await formatMarkdown(
    renderMarkdown(report, SYSTEMS, MODES, relativeToRepo(jsonPath)),
  );
  console.log(`\n${section}\n`);
  console.log(`wrote ${jsonPath}`);
  const sectionPath = jsonPath.replace(/\.json$/, ".md");
  await Deno.writeTextFile(
    sectionPath,
    section.endsWith("\n") ? section : `${section}\n`,
  );
  console.log(`wrote ${sectionPath}`);
  if (flags.markdown) {
    await writeSection(MARKDOWN_PATH, section, MARKERS);
    console.log(`updated ${MARKDOWN_PATH}`);
  }
}

if (import.meta.main) {
  await runBenchMain(main, {
    name: "serve bench",
    stopping: "every server and wrk",
    cleanUp: killAllChildren,
    printStack: false,
  });
}
