/**
 * Zero-downtime restarts against the peers, side by side, in one run: ours
 * (native and node engine), plain Deno.serve killed and started again,
 * cloudflare/tableflip and facebookgo/grace (Go, from Debian), nginx
 * (`nginx -s reload`) and pm2 (cluster mode, `pm2 reload`). For each, with
 * keep-alive and with `Connection: close`: steady req/s and server CPU per
 * request, then restarts under wrk load (failed requests, throughput in the
 * restart window, handover latency, RSS). Then a soak of ours (native): many
 * restarts under load, fd count and RSS per generation.
 *
 *   deno run -A bench/peers_bench.ts [--quick] [--out DIR] [--restarts N]
 *     [--soak N] [--systems id,id] [--no-markdown]
 *
 * Servers are pinned to CPU 0, wrk (and this script) to CPU 1. Results:
 * `DIR/peers.json` (default `bench/peers/results/`), and for a full run the
 * peers-bench section of BENCHMARKS.md, docs/peers_timeline.svg and
 * docs/soak.svg. A quick run writes its section and charts into DIR instead.
 *
 * @module
 */

import { parseArgs } from "node:util";
import type { WrkResult } from "./lib/wrk.ts";
import { writeFileAtomically } from "./lib/atomic_write.ts";
import { formatWithDeno } from "./lib/deno_fmt.ts";
import { failureCount, requestFailures } from "./lib/failures.ts";
import { writeSection } from "./lib/markdown_section.ts";
import { clockTicksPerSecond, readCoreTicks } from "./lib/proc.ts";
import { freePort } from "./lib/server_process.ts";
import { readMachine } from "./lib/machine.ts";
import { median, percentile, round } from "./lib/stats.ts";
import { sleep } from "./lib/time.ts";
import type { LuaTimeline } from "./lib/timeline.ts";
import { analyzeTimeline, type TimelineAnalysis } from "./peers/analysis.ts";
import { soakSvg, timelineSvg } from "./peers/charts.ts";
import { runPlainWrk, startTimelineRun, type WrkSetup } from "./peers/load.ts";
import {
  allDescendants,
  becomeSubreaper,
  fdCount,
  foreignOwnTicks,
  killAllDescendants,
  memoryOf,
  pinSelf,
  readProcTable,
  rssOf,
  serverPids,
  stopReaper,
} from "./peers/procs.ts";
import type {
  BenchConfig,
  Failures,
  ModeName,
  ModeRecord,
  PeersReport,
  RestartRunRecord,
  SoakRecord,
  SoakSample,
  Spread,
  SteadyRecord,
  SystemRecord,
} from "./peers/records.ts";
import { evaluateTargets, MARKERS, renderSection } from "./peers/report.ts";
import {
  currentPid,
  restartOnce,
  type RestartRecord,
  type RestartTiming,
} from "./peers/restart.ts";
import { prepareToolchain, type Toolchain } from "./peers/setup.ts";
import {
  createSystem,
  SPECS,
  SYSTEM_IDS,
  type SystemContext,
  type SystemId,
  type SystemInstance,
} from "./peers/systems.ts";

const BENCH_DIR = decodeURIComponent(new URL(".", import.meta.url).pathname);
const REPO_DIR = decodeURIComponent(new URL("..", import.meta.url).pathname);
const APPS_DIR = `${BENCH_DIR}peers/apps`;
const DEFAULT_OUT = `${BENCH_DIR}peers/results`;
const MARKDOWN_PATH = `${REPO_DIR}BENCHMARKS.md`;
const TIMELINE_SVG = `${REPO_DIR}docs/peers_timeline.svg`;
const SOAK_SVG = `${REPO_DIR}docs/soak.svg`;
const BUCKET_MS = 10;
const STOP_GRACE_MS = 10_000;

const TIMING: RestartTiming = {
  pollMs: 5,
  probeTimeoutMs: 1_000,
  handoverTimeoutMs: 15_000,
  exitTimeoutMs: 35_000,
};

/**
 * The soak waits longer for a handover than ours' own start timeout (30 s),
 * so that a slow restart shows how it ended (late, or given up by the old
 * generation) instead of being cut short by the bench.
 */
const SOAK_TIMING: RestartTiming = { ...TIMING, handoverTimeoutMs: 40_000 };

const MODES: { mode: ModeName; headers: string[] }[] = [
  { mode: "keep-alive", headers: [] },
  { mode: "close", headers: ["Connection: close"] },
];

const USAGE = `Usage: deno run -A bench/peers_bench.ts [options]

Restarts under load, ours against the peers (Deno.serve kill + start, Go
tableflip, Go grace, nginx reload, pm2 cluster reload), plus a soak of ours.
Installs what it needs (Debian: golang-go, the two Go libraries, nginx; npm:
pm2 into a temporary directory). Linux, root (for apt-get), 2+ CPUs, wrk.

  --quick          a short run (about 2.5 minutes): 1 cold start, 2 restarts
                   per system and mode, 2 s steady runs, a soak of 10
  --out DIR        where peers.json goes (default bench/peers/results); a
                   quick run also writes peers.md and the charts there
  --restarts N     restarts per system and mode (default 20; quick 2)
  --soak N         restarts of the soak (default 200; quick 10; 0: none)
  --systems LIST   comma-separated subset of: ${SYSTEM_IDS.join(", ")}
  --quiet-wait S   before each measured run, wait up to S s for the other
                   processes on the machine to use < 10% of a core (default
                   30; quick 0); the run goes on regardless, and notes it
  --no-markdown    do not touch BENCHMARKS.md and docs/
  --render FILE    measure nothing: render the section and the charts again
                   from a peers.json (BENCHMARKS.md and docs/ for the full
                   run's bench/peers/results/peers.json, else next to FILE)
  --note TEXT      with --render: add a note to the report (kept in its JSON)
  --help           this text
`;

/** The configuration of a full or a quick run. */
export function benchConfig(quick: boolean): BenchConfig {
  return {
    quick,
    coldStarts: quick ? 1 : 5,
    idleRestarts: quick ? 1 : 3,
    warmupS: 1,
    steadyS: quick ? 2 : 8,
    restarts: quick ? 2 : 20,
    intervalMs: 2_000,
    leadMs: quick ? 2_000 : 5_000,
    tailMs: quick ? 1_000 : 2_000,
    windowMs: 1_000,
    rampMs: 1_000,
    soakRestarts: quick ? 10 : 200,
    soakIntervalMs: 1_200,
    connections: 50,
    threads: 1,
    serverCpu: 0,
    clientCpu: 1,
    systems: [...SYSTEM_IDS],
    quietWaitS: quick ? 0 : 30,
  };
}

let cleanedUp = false;
let workDirToRemove: string | null = null;

/**
 * Kills every process this bench started and removes its temporary
 * directory (synchronous; safe in "unload").
 */
function emergencyCleanup(): void {
  if (cleanedUp) return;
  cleanedUp = true;
  killAllDescendants();
  if (workDirToRemove !== null) {
    try {
      Deno.removeSync(workDirToRemove, { recursive: true });
    } catch {
      // already gone
    }
  }
}

function log(line: string): void {
  const stamp = new Date().toISOString().slice(11, 23);
  console.error(`[peers ${stamp}] ${line}`);
}

function spread(values: (number | null)[]): Spread {
  const xs = values.filter((v): v is number => v !== null && isFinite(v));
  return {
    n: xs.length,
    p50: round(median(xs)),
    p95: round(percentile(xs, 95)),
    max: xs.length > 0 ? round(Math.max(...xs)) : NaN,
  };
}

function failuresOf(
  wrk: WrkResult,
  non2xx: number,
  restarts: number,
): Failures {
  const failures = requestFailures(wrk.errors, non2xx);
  const total = failureCount(failures);
  return {
    ...failures,
    total,
    perRestart: restarts > 0 ? round(total / restarts, 2) : NaN,
  };
}

/**
 * Waits up to `maxS` for the other processes on the machine to use less than
 * 10% of a core (measured over 0.5 s); resolves with how long it waited and
 * what they used in the last 0.5 s.
 */
async function waitQuiet(
  maxS: number,
  ticksPerS: number,
): Promise<{ waitedS: number; foreignPercent: number } | null> {
  if (maxS <= 0) return null;
  const started = performance.now();
  let busy = NaN;
  while (performance.now() - started < maxS * 1000) {
    const before = readProcTable();
    await sleep(500);
    busy = foreignOwnTicks(before, readProcTable()) / ticksPerS / 0.5 * 100;
    if (busy < 10) break;
  }
  return {
    waitedS: round((performance.now() - started) / 1000),
    foreignPercent: round(busy),
  };
}

async function steadyRun(
  setup: WrkSetup,
  config: BenchConfig,
  ticksPerS: number,
): Promise<SteadyRecord> {
  await runPlainWrk(setup, config.warmupS);
  const quiet = await waitQuiet(config.quietWaitS, ticksPerS);
  const pids0 = serverPids();
  const table0 = readProcTable();
  const all0 = readProcTable();
  const cores0 = await readCoreTicks();
  const wrk = runPlainWrk(setup, config.steadyS);
  await sleep(config.steadyS * 1000 - 500);
  const memory = memoryOf(serverPids());
  const { result } = await wrk;
  const table1 = readProcTable();
  const pids1 = serverPids(table1);
  const all1 = readProcTable();
  const cores1 = await readCoreTicks();
  const pids = [...new Set([...pids0, ...pids1])];
  let ticks = 0;
  for (const pid of pids) {
    const after = table1.get(pid)?.ticks ?? table0.get(pid)?.ticks ?? 0;
    ticks += after - (table0.get(pid)?.ticks ?? 0);
  }
  const foreign = foreignOwnTicks(all0, all1);
  const core0 = cores0.get(config.clientCpu);
  const core1 = cores1.get(config.clientCpu);
  const clientCore = core0 && core1
    ? (core1.busy - core0.busy) / Math.max(1, core1.total - core0.total) * 100
    : NaN;
  const seconds = result.seconds;
  return {
    seconds,
    requests: result.requests,
    rps: round(result.requestsPerSecond),
    cpuTicks: ticks,
    cpuUsPerRequest: round(ticks / ticksPerS * 1e6 / result.requests, 2),
    serverCpuPercent: round(ticks / ticksPerS / seconds * 100),
    clientCorePercent: round(clientCore),
    foreignCpuPercent: round(foreign / ticksPerS / seconds * 100),
    latencyMs: {
      p50: result.latencyMs.p50,
      p99: result.latencyMs.p99,
      max: result.latencyMs.max,
    },
    errors: result.errors,
    memory,
    quiet,
  };
}

async function restartRun(
  system: SystemInstance,
  setup: WrkSetup,
  config: BenchConfig,
  workDir: string,
  mode: ModeName,
  ticksPerS: number,
): Promise<RestartRunRecord> {
  const out = `${workDir}/timeline-${system.spec.id}-${mode}.json`;
  const maxSeconds = Math.ceil(
    (config.leadMs + config.restarts * (config.intervalMs + 20_000) +
      config.tailMs) / 1000,
  ) + 60;
  const quiet = await waitQuiet(config.quietWaitS, ticksPerS);
  const all0 = readProcTable();
  const started = performance.now();
  const run = startTimelineRun(setup, out, BUCKET_MS, maxSeconds);
  const restarts: RestartRecord[] = [];
  const restartErrors: RestartRunRecord["restartErrors"] = [];
  let error: string | null = null;
  try {
    await sleep(config.leadMs);
    let next = performance.now();
    for (let i = 0; i < config.restarts; i++) {
      await sleep(next - performance.now());
      const triggerAt = performance.now();
      const record = await restartOnce(system, i, TIMING);
      restarts.push(record);
      if (record.error !== null) {
        log(`  ${system.spec.id} ${mode}: restart ${i + 1}: ${record.error}`);
        restartErrors.push({
          index: i,
          error: record.error,
          outputTail: system.output().slice(-60),
        });
      }
      if (record.newPid === null) {
        error = `restart ${i + 1}: ${record.error}`;
        break;
      }
      next = Math.max(triggerAt + config.intervalMs, performance.now() + 200);
    }
    const last = restarts.at(-1);
    const windowEnd = last === undefined
      ? 0
      : last.atMs - performance.timeOrigin + config.windowMs;
    await sleep(
      Math.max(windowEnd, performance.now()) + config.tailMs -
        performance.now(),
    );
  } catch (caught) {
    error = caught instanceof Error ? caught.message : String(caught);
  }
  const { result, timeline } = await run.stop();
  const seconds = (performance.now() - started) / 1000;
  const all1 = readProcTable();
  const foreign = foreignOwnTicks(all0, all1);
  const analysis = analyzeRestarts(timeline, restarts, config);
  return {
    command: run.command,
    restarts,
    completed: restarts.filter((r) => r.newPid !== null).length,
    wrk: result,
    failures: failuresOf(result, analysis.non2xx, restarts.length),
    analysis,
    handover: spread(restarts.map((r) => r.handoverMs)),
    oldExit: spread(restarts.map((r) => r.oldExitMs)),
    foreignCpuPercent: round(foreign / ticksPerS / seconds * 100),
    quiet,
    restartErrors,
    error,
  };
}

/** Reads a restart run's timeline around its triggers. */
function analyzeRestarts(
  timeline: LuaTimeline,
  restarts: RestartRecord[],
  config: BenchConfig,
): TimelineAnalysis {
  return analyzeTimeline(timeline, {
    triggersMs: restarts.map((r) => r.atMs),
    windowMs: config.windowMs,
    rampMs: config.rampMs,
    maxOutstanding: config.connections + config.threads,
  });
}

/** A command line as the report shows it: repository-relative, $TMP for the run's directory. */
function displayCommand(command: string[], workDir: string): string[] {
  return command.map((arg) =>
    arg === Deno.execPath()
      ? "deno"
      : arg.replaceAll(workDir, "$TMP").replaceAll(REPO_DIR, "")
  );
}

function notableLines(lines: string[]): string[] {
  return lines.filter((line) =>
    /\b(WRN|ERR|FTL|error|Error|panic|warn|WARN|emerg|alert|crit)\b/.test(
      line,
    ) &&
    !/Applications hello not running, starting/.test(line)
  ).slice(-30);
}

async function benchSystem(
  id: SystemId,
  context: SystemContext,
  config: BenchConfig,
  ticksPerS: number,
): Promise<SystemRecord> {
  const port = freePort();
  const record: SystemRecord = {
    spec: SPECS[id],
    command: [],
    coldStartsMs: [],
    coldStartMedianMs: NaN,
    idleRestarts: [],
    idleHandover: spread([]),
    modes: [],
    killedAtStop: [],
    notable: [],
    error: null,
  };
  let system: SystemInstance | null = null;
  try {
    for (let i = 0; i < config.coldStarts; i++) {
      system = createSystem(id, port, context);
      record.command = displayCommand(system.command, context.workDir);
      const ms = await system.start();
      record.coldStartsMs.push(round(ms));
      log(`  ${id}: cold start ${i + 1}: ${round(ms)} ms`);
      if (i < config.coldStarts - 1) {
        record.killedAtStop.push(...await system.stop(STOP_GRACE_MS));
        system = null;
      }
    }
    record.coldStartMedianMs = round(median(record.coldStartsMs));
    if (system === null) throw new Error("no instance");
    for (let i = 0; i < config.idleRestarts; i++) {
      const restart = await restartOnce(system, i, TIMING);
      record.idleRestarts.push(restart);
      log(
        `  ${id}: idle restart ${i + 1}: handover ${restart.handoverMs} ms, ` +
          `old exit ${restart.oldExitMs} ms${
            restart.error ? ` (${restart.error})` : ""
          }`,
      );
      if (restart.newPid === null) break;
      await sleep(300);
    }
    record.idleHandover = spread(record.idleRestarts.map((r) => r.handoverMs));
    for (const { mode, headers } of MODES) {
      const setup: WrkSetup = {
        port,
        threads: config.threads,
        connections: config.connections,
        headers,
        cpu: config.clientCpu,
      };
      const modeRecord: ModeRecord = {
        mode,
        steady: null,
        restart: null,
        error: null,
      };
      record.modes.push(modeRecord);
      try {
        await currentPid(port, TIMING);
        modeRecord.steady = await steadyRun(setup, config, ticksPerS);
        log(
          `  ${id} ${mode}: steady ${modeRecord.steady.rps} req/s, ` +
            `${modeRecord.steady.cpuUsPerRequest} µs/req, RSS ${
              round(modeRecord.steady.memory.rssKiB / 1024)
            } MiB`,
        );
        modeRecord.restart = await restartRun(
          system,
          setup,
          config,
          context.workDir,
          mode,
          ticksPerS,
        );
        const r = modeRecord.restart;
        log(
          `  ${id} ${mode}: ${r.completed}/${config.restarts} restarts, ` +
            `failed ${r.failures.total} (${r.failures.perRestart}/restart), ` +
            `window ${r.analysis.windowRatio}, handover p50 ${r.handover.p50} ms`,
        );
      } catch (error) {
        modeRecord.error = error instanceof Error
          ? error.message
          : String(error);
        log(`  ${id} ${mode}: FAILED: ${modeRecord.error}`);
      }
    }
  } catch (error) {
    record.error = error instanceof Error ? error.message : String(error);
    log(`  ${id}: FAILED: ${record.error}`);
  } finally {
    if (system !== null) {
      record.notable = notableLines(system.output());
      record.killedAtStop.push(...await system.stop(STOP_GRACE_MS));
    }
    const left = serverPids();
    if (left.length > 0) {
      record.killedAtStop.push(...left);
      killAllDescendants();
    }
  }
  return record;
}

async function soakRun(
  context: SystemContext,
  config: BenchConfig,
  ticksPerS: number,
): Promise<SoakRecord> {
  const port = freePort();
  const system = createSystem("ours-native", port, context);
  const setup: WrkSetup = {
    port,
    threads: config.threads,
    connections: config.connections,
    headers: [],
    cpu: config.clientCpu,
  };
  const samples: SoakSample[] = [];
  const restarts: RestartRecord[] = [];
  const restartErrors: SoakRecord["restartErrors"] = [];
  let error: string | null = null;
  const sample = (generation: number, pid: number) => {
    const fds = fdCount(pid);
    samples.push({
      generation,
      pid,
      fds: fds?.fds ?? null,
      sockets: fds?.sockets ?? null,
      rssKiB: rssOf(pid),
    });
  };
  await system.start();
  const quiet = await waitQuiet(config.quietWaitS, ticksPerS);
  const all0 = readProcTable();
  const started = performance.now();
  const out = `${context.workDir}/timeline-soak.json`;
  const maxSeconds = Math.ceil(
    config.soakRestarts * (config.soakIntervalMs + 20_000) / 1000,
  ) + 60;
  const run = startTimelineRun(setup, out, BUCKET_MS, maxSeconds);
  let result: WrkResult;
  let analysis: TimelineAnalysis;
  try {
    await sleep(config.leadMs);
    let pid = await currentPid(port, TIMING);
    sample(1, pid);
    let consecutiveFailures = 0;
    for (let i = 0; i < config.soakRestarts; i++) {
      const triggerAt = performance.now();
      const record = await restartOnce(system, i, SOAK_TIMING);
      restarts.push(record);
      if (record.error !== null) {
        const tail = system.output().slice(-60);
        restartErrors.push({ index: i, error: record.error, outputTail: tail });
        error ??= `restart ${i + 1}: ${record.error}`;
        log(`  soak: restart ${i + 1}: ${record.error}`);
        for (const line of tail.slice(-15)) log(`    | ${line}`);
      }
      if (record.newPid === null) {
        if (++consecutiveFailures >= 3) break;
        await sleep(1_000);
        continue;
      }
      consecutiveFailures = 0;
      pid = record.newPid;
      const next = Math.max(
        triggerAt + config.soakIntervalMs,
        performance.now() + 200,
      );
      await sleep(next - performance.now());
      sample(samples.length + 1, pid);
      if ((i + 1) % 20 === 0) {
        const s = samples.at(-1)!;
        log(
          `  soak: ${i + 1} restarts, gen ${s.generation}: ${s.fds} fds, ` +
            `${round((s.rssKiB ?? 0) / 1024)} MiB`,
        );
      }
    }
    await sleep(config.windowMs + config.tailMs);
  } finally {
    const stopped = await run.stop();
    result = stopped.result;
    analysis = analyzeRestarts(stopped.timeline, restarts, config);
    await system.stop(STOP_GRACE_MS);
  }
  const all1 = readProcTable();
  const foreign = foreignOwnTicks(all0, all1);
  const seconds = (performance.now() - started) / 1000;
  const later = samples.slice(1);
  const fdValues = later.map((s) => s.fds).filter((v): v is number =>
    v !== null
  );
  const nonSocketValues = later.filter((s) =>
    s.fds !== null && s.sockets !== null
  ).map((s) => s.fds! - s.sockets!);
  const rssValues = later.map((s) => (s.rssKiB ?? NaN) / 1024).filter(
    isFinite,
  );
  const quarter = Math.max(1, Math.floor(rssValues.length / 4));
  const firstQ = median(rssValues.slice(0, quarter));
  const lastQ = median(rssValues.slice(-quarter));
  const fds = {
    min: Math.min(...fdValues),
    max: Math.max(...fdValues),
    first: fdValues[0] ?? NaN,
    last: fdValues.at(-1) ?? NaN,
  };
  const nonSocketFds = {
    min: Math.min(...nonSocketValues),
    max: Math.max(...nonSocketValues),
    first: nonSocketValues[0] ?? NaN,
    last: nonSocketValues.at(-1) ?? NaN,
  };
  return {
    restarts,
    completed: restarts.filter((r) => r.newPid !== null).length,
    samples,
    wrk: result,
    failures: failuresOf(result, analysis.non2xx, restarts.length),
    analysis,
    handover: spread(restarts.map((r) => r.handoverMs)),
    fds,
    nonSocketFds,
    rssMiB: {
      min: round(Math.min(...rssValues)),
      max: round(Math.max(...rssValues)),
      firstQuarterMedian: round(firstQ),
      lastQuarterMedian: round(lastQ),
      slopePer100: round(slope(rssValues) * 100, 2),
    },
    foreignCpuPercent: round(foreign / ticksPerS / seconds * 100),
    quiet,
    restartErrors,
    notable: notableLines(system.output()),
    fdsFlat: fds.max - fds.min <= 2 && fds.last <= fds.first + 1 &&
      nonSocketFds.max - nonSocketFds.min <= 1,
    rssFlat: lastQ <= firstQ * 1.1,
    error,
  };
}

function slope(values: number[]): number {
  const n = values.length;
  if (n < 2) return NaN;
  const xMean = (n - 1) / 2;
  const yMean = values.reduce((a, b) => a + b, 0) / n;
  let num = 0;
  let den = 0;
  values.forEach((y, x) => {
    num += (x - xMean) * (y - yMean);
    den += (x - xMean) ** 2;
  });
  return num / den;
}

function reproduceLines(config: BenchConfig, toolchain: Toolchain | null) {
  const lines = [
    config.quick
      ? "deno run -A bench/peers_bench.ts --quick --out DIR"
      : "deno run -A bench/peers_bench.ts",
  ];
  if (toolchain !== null) {
    lines.push(
      "# what it does first (Debian packages, only when missing; pm2 in a temp dir):",
      "apt-get update && apt-get install -y golang-go golang-github-cloudflare-tableflip-dev golang-github-facebookgo-grace-dev nginx",
      "GO111MODULE=off GOPATH=$TMP/gopath:/usr/share/gocode go build -o $TMP/tableflip-hello bench/peers/apps/tableflip/main.go",
      "GO111MODULE=off GOPATH=$TMP/gopath:/usr/share/gocode go build -o $TMP/grace-hello bench/peers/apps/grace/main.go",
      `npm install --prefix $TMP/pm2 --no-audit --no-fund pm2@${toolchain.versions.pm2}`,
    );
  }
  return lines;
}

/** Writes the JSON, the charts and the section (BENCHMARKS.md or DIR/peers.md). */
async function publish(
  report: PeersReport,
  outDir: string,
  updateDocs: boolean,
): Promise<void> {
  await writeFileAtomically(
    `${outDir}/peers.json`,
    await formatWithDeno("json", JSON.stringify(report, null, 2)),
  );
  log(`wrote ${outDir}/peers.json`);
  const timelinePath = updateDocs
    ? TIMELINE_SVG
    : `${outDir}/peers_timeline.svg`;
  const soakPath = updateDocs ? SOAK_SVG : `${outDir}/soak.svg`;
  await writeFileAtomically(
    timelinePath,
    await formatWithDeno("svg", timelineSvg(report)),
  );
  if (report.soak !== null) {
    await writeFileAtomically(
      soakPath,
      await formatWithDeno("svg", soakSvg(report)),
    );
  }
  const section = await renderSection(report, {
    jsonPath: updateDocs
      ? "bench/peers/results/peers.json"
      : `${outDir}/peers.json`,
    timelineSvg: updateDocs ? "docs/peers_timeline.svg" : timelinePath,
    soakSvg: updateDocs ? "docs/soak.svg" : soakPath,
  });
  if (updateDocs) {
    await writeSection(MARKDOWN_PATH, section, MARKERS);
    log(`updated ${MARKDOWN_PATH}, ${timelinePath}, ${soakPath}`);
  } else {
    await writeFileAtomically(`${outDir}/peers.md`, `${section}\n`);
    log(`wrote ${outDir}/peers.md, ${timelinePath}`);
  }
  for (const target of report.targets) {
    log(`${target.pass ? "pass" : "MISS"}: ${target.name}: ${target.value}`);
  }
}

async function main(args: string[]): Promise<number> {
  const parsed = parseArgs({
    args,
    options: {
      quick: { type: "boolean", default: false },
      out: { type: "string" },
      render: { type: "string" },
      note: { type: "string", multiple: true },
      restarts: { type: "string" },
      soak: { type: "string" },
      systems: { type: "string" },
      "quiet-wait": { type: "string" },
      "no-markdown": { type: "boolean", default: false },
      help: { type: "boolean", default: false },
    },
    strict: true,
  });
  if (parsed.values.help) {
    console.log(USAGE);
    return 0;
  }
  if (parsed.values.render !== undefined) {
    const report = JSON.parse(
      await Deno.readTextFile(parsed.values.render),
    ) as PeersReport;
    report.notes.push(...(parsed.values.note ?? []));
    report.targets = evaluateTargets(report);
    const slash = parsed.values.render.lastIndexOf("/");
    const outDir = parsed.values.out ??
      (slash === -1 ? "." : parsed.values.render.slice(0, slash));
    const updateDocs = !report.config.quick && !report.partial &&
      !parsed.values["no-markdown"] && parsed.values.out === undefined &&
      (await Deno.realPath(outDir)) ===
        (await Deno.realPath(DEFAULT_OUT).catch(() => ""));
    await publish(report, outDir, updateDocs);
    return 0;
  }
  const config = benchConfig(parsed.values.quick);
  if (parsed.values.restarts !== undefined) {
    config.restarts = Number(parsed.values.restarts);
  }
  if (parsed.values.soak !== undefined) {
    config.soakRestarts = Number(parsed.values.soak);
  }
  if (parsed.values["quiet-wait"] !== undefined) {
    config.quietWaitS = Number(parsed.values["quiet-wait"]);
    if (!(config.quietWaitS >= 0)) {
      console.error("--quiet-wait must be a number of seconds ≥ 0");
      return 2;
    }
  }
  if (parsed.values.systems !== undefined) {
    const ids = parsed.values.systems.split(",").map((s) => s.trim());
    for (const id of ids) {
      if (!(SYSTEM_IDS as readonly string[]).includes(id)) {
        console.error(`unknown system ${id}; known: ${SYSTEM_IDS.join(", ")}`);
        return 2;
      }
    }
    config.systems = ids;
  }
  if (!Number.isInteger(config.restarts) || config.restarts < 1) {
    console.error("--restarts must be a positive integer");
    return 2;
  }
  if (!Number.isInteger(config.soakRestarts) || config.soakRestarts < 0) {
    console.error("--soak must be a non-negative integer");
    return 2;
  }
  if (navigator.hardwareConcurrency < 2) {
    console.error("needs at least 2 CPUs (servers on CPU 0, wrk on CPU 1)");
    return 1;
  }
  const outDir = parsed.values.out ?? DEFAULT_OUT;
  const partial = parsed.values.systems !== undefined ||
    parsed.values.restarts !== undefined || parsed.values.soak !== undefined;
  const updateDocs = !config.quick && !parsed.values["no-markdown"] &&
    parsed.values.out === undefined && !partial;

  const began = performance.now();
  becomeSubreaper();
  globalThis.addEventListener("unload", emergencyCleanup);
  for (const signal of ["SIGINT", "SIGTERM", "SIGHUP"] as const) {
    Deno.addSignalListener(signal, () => {
      log(`${signal}: stopping every process this bench started`);
      emergencyCleanup();
      Deno.exit(130);
    });
  }
  const workDir = await Deno.makeTempDir({ prefix: "peers-bench-" });
  workDirToRemove = workDir;
  const ticksPerS = await clockTicksPerSecond();
  const machine = await readMachine(REPO_DIR);
  log(
    `${
      config.quick ? "quick" : "full"
    } run: ${config.systems.length} systems, ` +
      `${config.restarts} restarts per mode, soak ${config.soakRestarts}; work dir ${workDir}`,
  );
  let toolchain: Toolchain | null = null;
  const systems: SystemRecord[] = [];
  let soak: SoakRecord | null = null;
  const notes: string[] = [];
  try {
    toolchain = await prepareToolchain(APPS_DIR, workDir, log);
    if (toolchain.installed.length > 0) {
      notes.push(
        `This run installed Debian packages: ${
          toolchain.installed.join(", ")
        }.`,
      );
    }
    await pinSelf(config.clientCpu);
    const context: SystemContext = {
      repoDir: REPO_DIR,
      workDir,
      toolchain,
      cpu: config.serverCpu,
    };
    for (const id of config.systems as SystemId[]) {
      log(`${id}: ${SPECS[id].label}`);
      systems.push(await benchSystem(id, context, config, ticksPerS));
    }
    if (config.soakRestarts > 0) {
      log(`soak: ${config.soakRestarts} restarts of ours (native) under load`);
      try {
        soak = await soakRun(context, config, ticksPerS);
        log(
          `soak: ${soak.completed} restarts, failed ${soak.failures.total}, ` +
            `fds ${soak.fds.min}–${soak.fds.max}, RSS ${soak.rssMiB.min}–${soak.rssMiB.max} MiB`,
        );
      } catch (error) {
        log(`soak FAILED: ${error}`);
        notes.push(`The soak failed: ${error}`);
      }
    }
  } finally {
    const left = allDescendants();
    if (left.length > 0) {
      notes.push(
        `${left.length} processes were still running at the end and were killed.`,
      );
    }
    killAllDescendants();
    stopReaper();
    await Deno.remove(workDir, { recursive: true }).catch(() => {});
  }

  const report: PeersReport = {
    bench: "peers",
    date: machine.date,
    config,
    machine: { ...machine },
    versions: toolchain?.versions ?? {},
    reproduce: reproduceLines(config, toolchain),
    systems,
    soak,
    targets: [],
    partial,
    notes,
    durationS: round((performance.now() - began) / 1000),
  };
  report.targets = evaluateTargets(report);
  await publish(report, outDir, updateDocs);
  return 0;
}

if (import.meta.main) {
  let code = 1;
  try {
    code = await main(Deno.args);
  } catch (error) {
    console.error(error);
    emergencyCleanup();
  }
  Deno.exit(code);
}
