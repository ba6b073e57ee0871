/**
 * The measured runs of the restart bench, per system: cold starts, idle
 * restarts, then per mode a steady wrk run and a wrk run with restarts.
 *
 * @module
 */

import type { WrkResult } from "../lib/wrk.ts";
import { failureCount, requestFailures } from "../lib/failures.ts";
import { readCoreTicks } from "../lib/proc.ts";
import { freePort } from "../lib/server_process.ts";
import { median, percentile, round } from "../lib/stats.ts";
import { epochNow, sleep } from "../lib/time.ts";
import type { LuaTimeline } from "../lib/timeline.ts";
import { analyzeTimeline, type TimelineAnalysis } from "./analysis.ts";
import { runPlainWrk, startTimelineRun, type WrkSetup } from "./load.ts";
import {
  foreignOwnTicks,
  killAllDescendants,
  memoryOf,
  readProcTable,
  serverPids,
} from "./procs.ts";
import type {
  BenchConfig,
  Failures,
  ModeName,
  ModeRecord,
  RestartRunRecord,
  Spread,
  SteadyRecord,
  SystemRecord,
} from "./records.ts";
import {
  currentPid,
  restartOnce,
  type RestartRecord,
  type RestartTiming,
} from "./restart.ts";
import { stepsOf } from "./steps.ts";
import { SPECS, type SystemId } from "./specs.ts";
import {
  createSystem,
  type SystemContext,
  type SystemInstance,
} from "./systems.ts";

const REPO_DIR = decodeURIComponent(new URL("../..", import.meta.url).pathname);

export const BUCKET_MS = 10;
export const STOP_GRACE_MS = 10_000;

export const TIMING: RestartTiming = {
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
export const SOAK_TIMING: RestartTiming = {
  ...TIMING,
  handoverTimeoutMs: 40_000,
};

const MODES: { mode: ModeName; headers: string[] }[] = [
  { mode: "keep-alive", headers: [] },
  { mode: "close", headers: ["Connection: close"] },
];

export function log(line: string): void {
  const stamp = new Date().toISOString().slice(11, 23);
  console.error(`[restart ${stamp}] ${line}`);
}

export function spread(values: (number | null)[]): Spread {
  const xs = values.filter((v): v is number => v !== null && isFinite(v));
  return {
    n: xs.length,
    p50: round(median(xs)),
    p95: round(percentile(xs, 95)),
    max: xs.length > 0 ? round(Math.max(...xs)) : NaN,
  };
}

export function failuresOf(
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
export async function waitQuiet(
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
    processesLeft: serverPids().length,
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
export function analyzeRestarts(
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

export function notableLines(lines: string[]): string[] {
  return lines.filter((line) =>
    /\b(WRN|ERR|FTL|error|Error|panic|warn|WARN|emerg|alert|crit)\b/.test(
      line,
    ) &&
    !/Applications hello not running, starting/.test(line)
  ).slice(-30);
}

/** A command line as the report shows it: repository-relative, $TMP for the run's directory. */
function displayCommand(command: string[], workDir: string): string[] {
  return command.map((arg) =>
    arg === Deno.execPath()
      ? "deno"
      : arg.replaceAll(workDir, "$TMP").replaceAll(REPO_DIR, "")
  );
}

export async function benchSystem(
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
    coldSteps: [],
    idleRestarts: [],
    idleHandover: spread([]),
    modes: [],
    killedAtStop: [],
    notable: [],
    error: null,
  };
  let system: SystemInstance | null = null;
  // Ours starts and restarts idle with GRACEFUL_TRACE=1 (where the time
  // goes), then serves the load from a fresh instance without it.
  const traced = record.spec.ours
    ? { ...context, env: { GRACEFUL_TRACE: "1" } }
    : context;
  try {
    for (let i = 0; i < config.coldStarts; i++) {
      system = createSystem(id, port, traced);
      record.command = displayCommand(system.command, context.workDir);
      const spawnedAt = epochNow();
      const ms = await system.start();
      record.coldStartsMs.push(round(ms));
      const pid = await currentPid(system.endpoint, TIMING);
      record.coldSteps.push(stepsOf(system.output(), spawnedAt, null, pid));
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
    if (traced !== context) {
      record.killedAtStop.push(...await system.stop(STOP_GRACE_MS));
      system = createSystem(id, port, context);
      await system.start();
    }
    for (const { mode, headers } of MODES) {
      const setup: WrkSetup = {
        endpoint: system.endpoint,
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
        await currentPid(system.endpoint, TIMING);
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
