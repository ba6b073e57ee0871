/**
 * Hello-world serving cost of `serveGraceful` (native and node engines) next
 * to plain `Deno.serve` and plain `node:http`, with keep-alive and with
 * `Connection: close`, over TCP, HTTPS and a unix socket, in one run: server
 * CPU per request, req/s, latency and RSS after the load; then the RSS of
 * serveGraceful native and Deno.serve after a long (20 s) close load
 * (serve/rss_phase.ts); then the cold start (spawn → first 200) of a bare
 * Deno.serve script, serveGraceful and the CLI (`mod.ts APP.ts`).
 *
 *   deno run -A bench/serve_bench.ts [--duration S] [--rounds R] [--quick]
 *     [--rss-rounds N] [--rss-seconds S] [--out DIR] [--only name,name]
 *     [--no-markdown] [--render FILE]
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
import { parseArgs } from "node:util";
import { formatMarkdown } from "./lib/deno_fmt.ts";
import { writeSection } from "./lib/markdown_section.ts";
import {
  clockTicksPerSecond,
  commandOutput,
  readCoreTicks,
} from "./lib/proc.ts";
import { readMachine } from "./lib/machine.ts";
import { selfSignedCert } from "./lib/tls_cert.ts";
import type {
  BenchConfig,
  BenchReport,
  Environment,
  ModeSpec,
  RunRecord,
  SystemSpec,
} from "./serve/records.ts";
import { buildReport, formatErrors, formatInteger } from "./serve/summary.ts";
import { MARKERS, renderMarkdown } from "./serve/markdown.ts";
import { type ColdStartSpec, measureColdStarts } from "./serve/cold_start.ts";
import { runRssPhase } from "./serve/rss_phase.ts";
import {
  CLIENT_CPU,
  CONNECTIONS,
  MAX_ATTEMPTS,
  MAX_FOREIGN_PERCENT,
  measure,
  QUIET_MAX_WAIT_MS,
  type RunPlan,
  SERVER_CPU,
  THREADS,
  WARMUP_SECONDS,
} from "./serve/measure.ts";

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

/** Cold starts: a bare script, the library, and the CLI serving an app. */
const COLD_STARTS: ColdStartSpec[] = [
  {
    name: "deno_serve",
    label: "Deno.serve",
    args: ["bench/servers/deno_serve.ts"],
  },
  {
    name: "graceful_native",
    label: "serveGraceful native",
    args: ["bench/servers/graceful_native.ts"],
  },
  {
    name: "graceful_cli",
    label: "`mod.ts APP.ts`",
    args: [
      "mod.ts",
      "bench/servers/hello_default.ts",
      "--hostname",
      "127.0.0.1",
      "--port",
    ],
  },
];

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
  --quick            --duration 3 --rounds 1 --cold-starts 3 --rss-rounds 1
                     --rss-seconds 5 (explicit flags still win)
  --cold-starts N    cold starts of each system (default 9; 0: none)
  --rss-rounds N     rounds of the RSS phase: serveGraceful native and
                     Deno.serve alternating, RSS read after a long
                     Connection: close load (default 3; 0: none)
  --rss-seconds S    that load's length, warm-up included (default 20)
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
  /** Cold starts of each of COLD_STARTS. */
  coldStarts: number;
  /** Rounds of the RSS phase (serve/rss_phase.ts). */
  rssRounds: number;
  /** Seconds of close load before its RSS reading, warm-up included. */
  rssSeconds: number;
  /** A private directory for the certificate and the unix sockets. */
  workDir: string;
  /** The TLS certificate (PEM) the HTTPS systems serve. */
  cert: string;
}

/** A number flag, checked by `valid`; `fallback` when not given. */
function numberFlag(
  raw: string | undefined,
  fallback: number,
  valid: (n: number) => boolean,
  what: string,
): number {
  if (raw === undefined) return fallback;
  const n = Number(raw);
  if (!valid(n)) throw new Error(`${what}, not ${JSON.stringify(raw)}`);
  return n;
}

function parseFlags(args: string[]): Flags | "help" {
  const { values: v } = parseArgs({
    args,
    strict: true,
    options: {
      help: { type: "boolean", short: "h" },
      quick: { type: "boolean" },
      duration: { type: "string" },
      rounds: { type: "string" },
      out: { type: "string" },
      only: { type: "string" },
      "quiet-wait": { type: "string" },
      attempts: { type: "string" },
      "cold-starts": { type: "string" },
      "rss-rounds": { type: "string" },
      "rss-seconds": { type: "string" },
      "no-markdown": { type: "boolean" },
      render: { type: "string" },
    },
  });
  if (v.help) return "help";
  const quick = v.quick === true;
  const positive = (n: number) => Number.isFinite(n) && n > 0;
  const count = (n: number) => Number.isInteger(n) && n >= 0;
  let systems = SYSTEMS;
  if (v.only !== undefined) {
    const names = v.only.split(",").map((n) => n.trim()).filter(Boolean);
    const unknown = names.find((n) => !SYSTEMS.some((s) => s.name === n));
    if (unknown !== undefined || names.length === 0) {
      throw new Error(
        `--only: unknown system "${unknown ?? ""}" (known: ${
          SYSTEMS.map((s) => s.name).join(", ")
        })`,
      );
    }
    systems = SYSTEMS.filter((s) => names.includes(s.name));
  }
  const outDir = v.out ?? `${BENCH_DIR}results`;
  return {
    duration: numberFlag(
      v.duration,
      quick ? 3 : 5,
      positive,
      "--duration must be a positive number of seconds",
    ),
    rounds: numberFlag(
      v.rounds,
      quick ? 1 : 5,
      (n) => count(n) && n > 0,
      "--rounds must be a positive integer",
    ),
    outDir: outDir.endsWith("/") ? outDir : `${outDir}/`,
    systems,
    // A quick run, or one written elsewhere, leaves BENCHMARKS.md alone: its
    // section goes next to its serve.json.
    markdown: !v["no-markdown"] && !quick && v.out === undefined,
    render: v.render,
    quietWaitMs: numberFlag(
      v["quiet-wait"],
      QUIET_MAX_WAIT_MS / 1000,
      (n) => Number.isFinite(n) && n >= 0,
      "--quiet-wait must be a number of seconds",
    ) * 1000,
    attempts: numberFlag(
      v.attempts,
      MAX_ATTEMPTS,
      (n) => count(n) && n > 0,
      "--attempts must be a positive integer",
    ),
    coldStarts: numberFlag(
      v["cold-starts"],
      quick ? 3 : 9,
      count,
      "--cold-starts must be an integer ≥ 0",
    ),
    rssRounds: numberFlag(
      v["rss-rounds"],
      quick ? 1 : 3,
      count,
      "--rss-rounds must be an integer ≥ 0",
    ),
    rssSeconds: numberFlag(
      v["rss-seconds"],
      quick ? 5 : 20,
      (n) => Number.isFinite(n) && n > WARMUP_SECONDS,
      `--rss-seconds must be more than the ${WARMUP_SECONDS} s warm-up`,
    ),
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
  const machine = await readMachine(REPO_DIR);
  const loadavg = await Deno.readTextFile("/proc/loadavg");
  return {
    ...machine,
    date: machine.date.slice(0, 10),
    command: ["deno", "run", "-A", "bench/serve_bench.ts", ...Deno.args]
      .map(shellQuote).join(" "),
    nproc: Number(await commandOutput("nproc", [])),
    clockTicksPerSecond: clockTicks,
    loadAverageAtStart: loadavg.split(" ").slice(0, 3).join(" "),
  };
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
  const rssS = flags.rssRounds * 2 * (flags.rssSeconds + 2);
  console.log(
    `serve bench: ${flags.systems.map((s) => s.name).join(", ")}; ` +
      `${flags.rounds} round(s) × ${flags.duration} s; ${plans.length} runs, ` +
      `RSS phase ${flags.rssRounds} round(s) × ${flags.rssSeconds} s; ` +
      `about ${Math.ceil((plans.length * perRun + rssS) / 60)} min`,
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

  const rssRuns = await runRssPhase(
    flags.systems,
    MODES.find((m) => m.name === "close")!,
    flags,
    clockTicks,
    plans.length,
  );

  const coldStarts = flags.coldStarts > 0
    ? await measureColdStarts(COLD_STARTS, {
      samples: flags.coldStarts,
      cpu: SERVER_CPU,
      repoDir: REPO_DIR,
    })
    : [];

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
    rssRounds: rssRuns.length > 0 ? flags.rssRounds : 0,
    rssSeconds: flags.rssSeconds,
  };
  await writeOutputs(
    buildReport(
      environment,
      config,
      runs,
      coldStarts,
      SYSTEMS,
      MODES,
      rssRuns,
    ),
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
    buildReport(
      old.environment,
      old.config,
      old.runs,
      old.coldStarts ?? [],
      SYSTEMS,
      MODES,
      old.rssRuns ?? [],
    ),
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
