/**
 * Zero-downtime restarts under load: for the native and the node engine, with
 * keep-alive and with `Connection: close`, wrk drives `deno run -A mod.ts`
 * while the bench restarts it N times (SIGUSR2), and measures failed requests,
 * throughput around each restart, handover latency against a cold start, and
 * the processes left behind.
 *
 *   deno run -A bench/restart_bench.ts [--restarts N] [--interval MS]
 *     [--quick] [--out DIR] [--no-markdown]
 *   deno run -A bench/restart_bench.ts --acceptance
 *
 * `--acceptance`: `deno run -A mod.ts` (default engine) plus 12 × SIGUSR1
 * under wrk load, with keep-alive and with `Connection: close`: 0 failed
 * requests and one process left.
 *
 * The server runs pinned to CPU 0 (every generation inherits that), wrk pinned
 * to CPU 1. The timeline comes from inside wrk (bench/lib/timeline.lua).
 * Results go to `bench/results/restart.json` (`restart-acceptance.json`) and
 * to the restart-bench section of BENCHMARKS.md.
 *
 * @module
 */

import { runBenchMain } from "./lib/bench_main.ts";
import { killAllChildren } from "./lib/children.ts";
import { readFlags } from "./lib/flags.ts";
import {
  clockTicksPerSecond,
  foreignTicks,
  readAllProcessTicks,
} from "./lib/proc.ts";
import { failureCount, requestFailures } from "./lib/failures.ts";
import { writeSection } from "./lib/markdown_section.ts";
import { freePort } from "./lib/server_process.ts";
import {
  type LuaTimeline,
  readTimeline,
  TIMELINE_LUA_PATH,
} from "./lib/timeline.ts";
import {
  runWrk,
  wrkCommand,
  type WrkOptions,
  type WrkResult,
} from "./lib/wrk.ts";
import { type HttpAnswer, httpGet } from "./lib/http_get.ts";
import {
  type HandoverRecord,
  HandoverTimeoutError,
  type PendingRestart,
  restartOnce,
  type RestartOptions,
} from "./restart/handover.ts";
import { readMachine } from "./lib/machine.ts";
import {
  diagnoseProcess,
  killAllMarked,
  markedPids,
  newMarker,
  pidsWithMarker,
} from "./restart/procs.ts";
import type {
  AttemptSummary,
  ColdStartRecord,
  Failures,
  IdleHandoverRecord,
  ModeName,
  PhaseSpreads,
  RestartReport,
  ScenarioRecord,
  Spread,
  StuckRestart,
  TargetResult,
} from "./restart/records.ts";
import { MARKERS, renderSection } from "./restart/report.ts";
import {
  notableLines,
  type ServerTree,
  spawnTree,
  startTree,
  stopTree,
  type TreeOptions,
} from "./restart/server_tree.ts";
import { median, percentile, round } from "./lib/stats.ts";
import { sleep, waitUntil } from "./lib/time.ts";
import { analyzeTimeline, type TimelineEvent } from "./restart/timeline.ts";

const BENCH_DIR = decodeURIComponent(new URL(".", import.meta.url).pathname);
const REPO_DIR = decodeURIComponent(new URL("..", import.meta.url).pathname);
const MARKDOWN_PATH = `${REPO_DIR}BENCHMARKS.md`;

const SERVER_CPU = 0;
const CLIENT_CPU = 1;
const THREADS = 1;
const CONNECTIONS = 50;
/** Load before the first restart signal (ms). */
const LEAD_MS = 2_000;
/** Load after the last restart window (ms). */
const TAIL_MS = 2_000;
/** The restart window: the second after each signal. */
const WINDOW_MS = 1_000;
/** The first ms of each wrk run are not steady state (connections ramp up). */
const RAMP_MS = 1_000;
/** The timeline's bucket width (ms). */
const BUCKET_MS = 10;
/** Pause between GET /pid probes during a handover (ms). */
const POLL_MS = 5;
const PROBE_TIMEOUT_MS = 2_000;
const HANDOVER_TIMEOUT_MS = 15_000;
const EXIT_WATCH_MS = 40_000;
const START_TIMEOUT_MS = 30_000;
const STOP_GRACE_MS = 10_000;
/** Time for the last old generation to drain before processes are counted. */
const SETTLE_MS = 10_000;
/** Before each loaded run, wait until other processes use less than this % of a core… */
const QUIET_PERCENT = 5;
/** Run a scenario again when other processes used more than this % of a core during it… */
const MAX_FOREIGN_PERCENT = 10;
/** …up to this many times in all. */
const MAX_ATTEMPTS = 3;

/** Temp files to remove on exit, error or Ctrl-C. */
const tempFiles = new Set<string>();

const TARGET_WINDOW_RATIO = 0.8;
const TARGET_COLD_RATIO = 1.2;

const ENGINES = ["native", "node"];

/** A load mode: its name and wrk's extra headers. */
interface LoadMode {
  name: ModeName;
  headers: string[];
}

const MODES: LoadMode[] = [
  { name: "keep-alive", headers: [] },
  { name: "close", headers: ["Connection: close"] },
];

const USAGE = `Usage: deno run -A bench/restart_bench.ts [options]

Zero-downtime restarts of \`deno run -A mod.ts\` under wrk load, for the
native and node engines, with keep-alive and with Connection: close. Needs
Linux, wrk (with LuaJIT), taskset and at least 2 CPUs.

Options:
  --restarts N     restarts per run (default 10; 12 with --acceptance)
  --interval MS    time between restart signals (default 2000)
  --cold N         cold starts per engine; the median is used (default 5)
  --quick          --restarts 3 --cold 3 (explicit flags still win)
  --acceptance     deno run -A mod.ts (default engine) + SIGUSR1 restarts
                   under wrk load, keep-alive and close: 0 errors, 1 process
  --quiet-wait S   before each phase, wait up to S seconds for other
                   processes to use under 5% of a core (default 180)
  --out DIR        directory for the JSON (default bench/results)
  --no-markdown    do not update BENCHMARKS.md
  --render         measure nothing: render the section again from the JSON
                   in --out (and update BENCHMARKS.md)
  -h, --help       this text
`;

interface Flags {
  restarts: number;
  intervalMs: number;
  coldSamples: number;
  idleRestarts: number;
  quick: boolean;
  acceptance: boolean;
  quietWaitMs: number;
  outDir: string;
  markdown: boolean;
  render: boolean;
}

function parseFlags(args: string[]): Flags | "help" {
  let restarts: number | undefined;
  let intervalMs = 2_000;
  let coldSamples: number | undefined;
  let quick = false;
  let acceptance = false;
  let quietWaitMs = 180_000;
  let outDir = `${BENCH_DIR}results`;
  let markdown = true;
  let render = false;
  for (const { arg, name, value } of readFlags(args)) {
    switch (name) {
      case "--restarts":
        restarts = positiveInteger(name, value());
        break;
      case "--interval":
        intervalMs = positiveInteger(name, value());
        break;
      case "--cold":
        coldSamples = positiveInteger(name, value());
        break;
      case "--quick":
        quick = true;
        break;
      case "--acceptance":
        acceptance = true;
        break;
      case "--quiet-wait":
        quietWaitMs = positiveInteger(name, value()) * 1000;
        break;
      case "--out":
        outDir = value();
        break;
      case "--no-markdown":
        markdown = false;
        break;
      case "--render":
        render = true;
        break;
      case "-h":
      case "--help":
        return "help";
      default:
        throw new TypeError(`unknown argument "${arg}"\n\n${USAGE}`);
    }
  }
  if (intervalMs < WINDOW_MS + 200) {
    throw new TypeError(
      `--interval must be at least ${
        WINDOW_MS + 200
      } ms (a ${WINDOW_MS} ms window, then steady state)`,
    );
  }
  return {
    restarts: restarts ?? (acceptance ? 12 : quick ? 3 : 10),
    intervalMs,
    coldSamples: coldSamples ?? (quick ? 3 : 5),
    idleRestarts: quick ? 3 : 5,
    quick,
    acceptance,
    quietWaitMs,
    outDir,
    markdown,
    render,
  };
}

function positiveInteger(name: string, raw: string): number {
  const value = Number(raw);
  if (!/^\d+$/.test(raw) || value < 1) {
    throw new TypeError(`${name} "${raw}" is not a positive integer`);
  }
  return value;
}

async function main(args: string[]): Promise<number> {
  const flags = parseFlags(args);
  if (flags === "help") {
    console.log(USAGE);
    return 0;
  }
  if (flags.render) return await renderOnly(flags);
  const machine = await readMachine(REPO_DIR);
  if (machine.cpus < 2) throw new Error("needs at least 2 CPUs");
  const clockTicks = await clockTicksPerSecond();
  console.log(
    `restart bench (${flags.acceptance ? "acceptance" : "full"}${
      flags.quick ? ", quick" : ""
    }): ${machine.cpuModel}, ${machine.cpus} CPUs, deno ${machine.deno}, ${machine.wrk}`,
  );

  const coldStarts: ColdStartRecord[] = [];
  const idleHandovers: IdleHandoverRecord[] = [];
  const scenarios: ScenarioRecord[] = [];
  if (flags.acceptance) {
    for (const mode of MODES) {
      scenarios.push(
        await measureScenario(
          { engine: undefined, mode, signal: "SIGUSR1" },
          flags,
          clockTicks,
        ),
      );
    }
  } else {
    for (const engine of ENGINES) {
      await waitForQuiet(clockTicks, flags.quietWaitMs);
      coldStarts.push(await measureColdStarts(engine, flags.coldSamples));
      idleHandovers.push(await measureIdleHandovers(engine, flags));
      for (const mode of MODES) {
        scenarios.push(
          await measureScenario(
            { engine, mode, signal: "SIGUSR2" },
            flags,
            clockTicks,
          ),
        );
      }
    }
  }
  const leftoverProcesses = markedPids().length;
  killAllMarked();

  const report: RestartReport = {
    benchmark: "restart",
    kind: flags.acceptance ? "acceptance" : "full",
    quick: flags.quick,
    machine,
    config: {
      serverCpu: SERVER_CPU,
      clientCpu: CLIENT_CPU,
      threads: THREADS,
      connections: CONNECTIONS,
      restarts: flags.restarts,
      intervalMs: flags.intervalMs,
      leadMs: LEAD_MS,
      tailMs: TAIL_MS,
      windowMs: WINDOW_MS,
      bucketMs: BUCKET_MS,
      pollMs: POLL_MS,
      coldSamples: flags.acceptance ? 0 : flags.coldSamples,
      idleRestarts: flags.acceptance ? 0 : flags.idleRestarts,
      quietWaitMs: flags.quietWaitMs,
    },
    reproduce: reproduceCommands(flags),
    coldStarts,
    idleHandovers,
    scenarios,
    targets: [],
    leftoverProcesses,
    notes: [],
  };
  report.targets = evaluateTargets(report);
  report.notes = collectNotes(report);

  await Deno.mkdir(flags.outDir, { recursive: true });
  const outDir = await Deno.realPath(flags.outDir);
  const jsonName = flags.acceptance
    ? "restart-acceptance.json"
    : "restart.json";
  const jsonPath = `${outDir}/${jsonName}`;
  await Deno.writeTextFile(jsonPath, JSON.stringify(report, null, 2) + "\n");
  console.log(`wrote ${jsonPath}`);

  // The section shows both kinds: this run, and the other one's last JSON.
  const other = await readReport(
    `${outDir}/${
      flags.acceptance ? "restart.json" : "restart-acceptance.json"
    }`,
  );
  await publish(
    flags.acceptance ? other : report,
    flags.acceptance ? report : other,
    outDir,
    flags.markdown,
  );
  const failed = report.targets.filter((t) => !t.pass);
  console.log(
    failed.length === 0
      ? "every target met"
      : `targets missed: ${
        failed.map((t) => `${t.scope}: ${t.name} (${t.value})`).join("; ")
      }`,
  );
  return 0;
}

/** Renders the section from the JSON in `flags.outDir`, measuring nothing. */
async function renderOnly(flags: Flags): Promise<number> {
  const outDir = await Deno.realPath(flags.outDir);
  const full = await readReport(`${outDir}/restart.json`);
  const acceptance = await readReport(`${outDir}/restart-acceptance.json`);
  if (full === undefined && acceptance === undefined) {
    throw new Error(`no restart.json or restart-acceptance.json in ${outDir}`);
  }
  for (const report of [full, acceptance]) {
    if (report === undefined) continue;
    report.targets = evaluateTargets(report);
    report.notes = collectNotes(report);
  }
  await publish(full, acceptance, outDir, flags.markdown);
  return 0;
}

/** Prints the section, and puts it in BENCHMARKS.md when `markdown`. */
async function publish(
  full: RestartReport | undefined,
  acceptance: RestartReport | undefined,
  outDir: string,
  markdown: boolean,
): Promise<void> {
  const section = renderSection(full, acceptance, {
    full: relativeToRepo(`${outDir}/restart.json`),
    acceptance: relativeToRepo(`${outDir}/restart-acceptance.json`),
  });
  console.log(`\n${section}\n`);
  if (markdown) {
    await writeSection(MARKDOWN_PATH, section, MARKERS);
    console.log(`updated ${MARKDOWN_PATH}`);
  }
}

/**
 * A server of `engine` (undefined: the default) restarted by `restartSignal`
 * (undefined: the default), pinned to the server CPU, on a free port, with
 * a new marker.
 */
function freshTree(
  engine: string | undefined,
  restartSignal: Deno.Signal | undefined,
): TreeOptions {
  return {
    repoDir: REPO_DIR,
    cpu: SERVER_CPU,
    port: freePort(),
    marker: newMarker(),
    engine,
    restartSignal,
  };
}

/** One scenario: an engine under one load mode, restarted by one signal. */
interface ScenarioPlan {
  /** `--engine`; undefined: not given (the default). */
  engine: string | undefined;
  mode: LoadMode;
  signal: Deno.Signal;
}

/**
 * Runs a scenario, again (up to MAX_ATTEMPTS in all) while other processes
 * used more than MAX_FOREIGN_PERCENT of a core during it; keeps the attempt
 * with the least interference, and a summary of the others, whose failures
 * still count.
 */
async function measureScenario(
  plan: ScenarioPlan,
  flags: Flags,
  clockTicks: number,
): Promise<ScenarioRecord> {
  const attempts: ScenarioRecord[] = [];
  for (let attempt = 1; attempt <= MAX_ATTEMPTS; attempt++) {
    const record = await runScenario(plan, flags, clockTicks);
    attempts.push(record);
    if (record.foreignCpuPercent <= MAX_FOREIGN_PERCENT) break;
    if (attempt < MAX_ATTEMPTS) {
      console.log(
        `  other processes used ${record.foreignCpuPercent}% of a core during the run: measuring again`,
      );
    }
  }
  const kept = attempts.reduce((best, r) =>
    r.foreignCpuPercent < best.foreignCpuPercent ? r : best
  );
  kept.discardedAttempts = attempts.filter((r) => r !== kept).map((r) =>
    summarizeAttempt(r)
  );
  return kept;
}

function summarizeAttempt(record: ScenarioRecord): AttemptSummary {
  return {
    foreignCpuPercent: record.foreignCpuPercent,
    restartsCompleted: record.handovers.filter((h) => h.newPid !== null)
      .length,
    failures: record.failures,
    processesLeft: record.processesLeft,
    stuck: record.stuck,
    steadyRequestsPerSecond: record.timeline.steadyRequestsPerSecond,
    windowRatio: record.timeline.windowRatio,
    latencyMs: record.latencyMs,
    wrkOutput: record.wrkOutput,
    handovers: record.handovers,
    non2xx: record.timeline.non2xx,
    unanswered: record.timeline.unanswered,
  };
}

/** One engine × mode: wrk for the whole run, `flags.restarts` restarts in it. */
async function runScenario(
  plan: ScenarioPlan,
  flags: Flags,
  clockTicks: number,
): Promise<ScenarioRecord> {
  const { engine, mode, signal } = plan;
  const label = `${engine ?? "default engine"} ${mode.name}`;
  const quietBefore = await waitForQuiet(clockTicks, flags.quietWaitMs);
  const treeOptions = freshTree(
    engine,
    signal === "SIGUSR1" ? undefined : signal,
  );
  const { marker, port } = treeOptions;
  const tree = await startTree(treeOptions, START_TIMEOUT_MS);
  const timelinePath = await Deno.makeTempFile({
    prefix: "restart-timeline-",
    suffix: ".json",
  });
  tempFiles.add(timelinePath);
  try {
    await sleep(300);
    const durationS = Math.ceil(
      (LEAD_MS + (flags.restarts - 1) * flags.intervalMs + WINDOW_MS +
        TAIL_MS) / 1000,
    );
    const loadOptions: WrkOptions = {
      url: `http://127.0.0.1:${port}/`,
      duration: durationS,
      threads: THREADS,
      connections: CONNECTIONS,
      cpu: CLIENT_CPU,
      headers: mode.headers,
      script: {
        path: TIMELINE_LUA_PATH,
        args: [timelinePath, String(BUCKET_MS)],
      },
    };
    console.log(
      `\n${label}: ${flags.restarts} × ${signal} every ${flags.intervalMs} ms under wrk (${durationS} s)`,
    );
    const ticksBefore = await readAllProcessTicks();
    const loadStarted = performance.now();
    const load = runWrk(loadOptions).then(async ({ result, output }) => ({
      wrk: result,
      output,
      timeline: await readTimeline(timelinePath),
    }));
    // Keep the promise handled while the restarts run.
    load.catch(() => {});
    const restartOptions: RestartOptions = {
      port,
      signal,
      pollMs: POLL_MS,
      probeTimeoutMs: PROBE_TIMEOUT_MS,
      timeoutMs: HANDOVER_TIMEOUT_MS,
      exitWatchMs: EXIT_WATCH_MS,
    };
    const pending: PendingRestart[] = [];
    let stuck: StuckRestart | null = null;
    for (let i = 0; i < flags.restarts; i++) {
      await sleep(
        loadStarted + LEAD_MS + i * flags.intervalMs -
          performance.now(),
      );
      try {
        const restart = await restartOnce(i, restartOptions);
        pending.push(restart);
        logRestart(restart.record, flags.restarts);
      } catch (error) {
        // A handover that does not complete, or a server that no longer
        // answers GET /pid: record it, send no further restart.
        if (error instanceof HandoverTimeoutError) {
          pending.push({ record: error.record, oldExit: Promise.resolve() });
        }
        stuck = {
          restart: i + 1,
          reason: error instanceof Error ? error.message : String(error),
          processes: pidsWithMarker(marker).map((pid) =>
            diagnoseProcess(pid, port)
          ),
          serverTail: tree.lines.slice(-30),
        };
        console.log(`  ${stuck.reason}; no further restart in this run`);
        for (const p of stuck.processes) {
          console.log(`    ${JSON.stringify(p)}`);
        }
        break;
      }
    }
    let result: { wrk: WrkResult; output: string; timeline: LuaTimeline };
    try {
      result = await load;
    } catch (error) {
      throw new Error(`${label}: ${(error as Error).message}`);
    }
    const loadSeconds = (performance.now() - loadStarted) / 1000;
    const ticksAfter = await readAllProcessTicks();
    await Promise.all(pending.map((p) => p.oldExit));
    await waitUntil(() => pidsWithMarker(marker).length <= 1, SETTLE_MS, 10);
    const processesLeft = pidsWithMarker(marker).length;
    const handovers = pending.map((p) => p.record);
    const own = new Set<number>([Deno.pid, tree.root.pid]);
    for (const handover of handovers) {
      own.add(handover.oldPid);
      if (handover.newPid === null) continue;
      own.add(handover.newPid);
    }
    fillFromLogs(handovers, tree);
    for (const pid of pidsWithMarker(marker)) own.add(pid);
    // wrk has exited and been reaped by now (its ticks are gone from the
    // snapshot); generations whose parent exited are reaped by pid 1, whose
    // cutime would count their ticks as foreign: leave pid 1 out.
    own.add(1);
    const foreignCpuPercent = round(
      foreignTicks(ticksBefore, ticksAfter, own) / clockTicks / loadSeconds *
        100,
    );
    const stop = await stopTree(tree, STOP_GRACE_MS);
    const timeline = analyzeTimeline(result.timeline, {
      triggersMs: handovers.map((h) => h.signalAtMs),
      windowMs: WINDOW_MS,
      rampMs: RAMP_MS,
      maxOutstanding: CONNECTIONS + THREADS,
    });
    const probeFailures = handovers.reduce(
      (n, h) => n + h.probeErrors.length,
      0,
    );
    const non2xx = result.timeline.non2xx.reduce((n, [, c]) => n + c, 0);
    const requests = requestFailures(result.wrk.errors, non2xx);
    const failures: Failures = {
      ...requests,
      probes: probeFailures,
      total: failureCount(requests) + probeFailures,
    };
    const record: ScenarioRecord = {
      engine: engine ?? "auto (default)",
      mode: mode.name,
      signal,
      restarts: flags.restarts,
      intervalMs: flags.intervalMs,
      serverCommand: displayCommand(tree.command),
      wrkCommand: displayCommand(wrkCommand({
        ...loadOptions,
        script: {
          path: "bench/lib/timeline.lua",
          args: ["timeline.json", String(BUCKET_MS)],
        },
      })),
      wrkOutput: result.output,
      wrk: result.wrk,
      failures,
      timeline,
      handovers,
      stuck,
      latencyMs: spread(
        handovers.flatMap((h) => h.latencyMs === null ? [] : [h.latencyMs]),
      ),
      phasesMs: phaseSpreads(handovers),
      serverReadyMs: spread(
        handovers.flatMap((h) =>
          h.serverReadyMs === null ? [] : [h.serverReadyMs]
        ),
      ),
      oldExitMs: spread(
        handovers.flatMap((h) => h.oldExitMs === null ? [] : [h.oldExitMs]),
      ),
      processesLeft,
      notableLines: notableLines(tree).slice(0, 200),
      quietBefore,
      foreignCpuPercent,
      discardedAttempts: [],
      stoppedGracefully: stop.graceful,
    };
    console.log(
      `${label}: ${timeline.responses} responses, failed ${failures.total} ` +
        `(connect ${failures.connect}, read ${failures.read}, write ${failures.write}, ` +
        `timeout ${failures.timeout}, non-2xx ${failures.non2xx}, probes ${failures.probes}); ` +
        `steady ${timeline.steadyRequestsPerSecond} req/s, window ratio ${timeline.windowRatio} ` +
        `(worst ${timeline.worstWindowRatio}); handover p50 ${record.latencyMs.p50} ms ` +
        `p95 ${record.latencyMs.p95} ms; ${processesLeft} process(es) left`,
    );
    return record;
  } finally {
    await stopTree(tree, 2_000);
    await Deno.remove(timelinePath).catch(() => {});
    tempFiles.delete(timelinePath);
  }
}

function logRestart(record: HandoverRecord, total: number): void {
  const failed = record.probeErrors.length;
  console.log(
    `  restart ${
      record.index + 1
    }/${total}: pid ${record.oldPid} → ${record.newPid} ` +
      `in ${record.latencyMs} ms (${record.probes} probes${
        failed > 0 ? `, ${failed} failed` : ""
      })`,
  );
  for (const probe of record.probeErrors) {
    console.log(
      `    probe failed ${probe.sinceSignalMs} ms after the signal: ${probe.error}`,
    );
  }
}

/** Spawn → first 200 "Hello!" on GET /, `samples` times; the median. */
async function measureColdStarts(
  engine: string,
  samples: number,
): Promise<ColdStartRecord> {
  const times: number[] = [];
  const listening: number[] = [];
  let command = "";
  for (let i = 0; i < samples; i++) {
    const tree = spawnTree(freshTree(engine, "SIGUSR2"));
    command = displayCommand(tree.command);
    try {
      times.push(await untilHello(tree));
    } finally {
      await stopTree(tree, STOP_GRACE_MS);
    }
    const logged = tree.milestones.get(tree.root.pid)?.listening;
    if (logged !== undefined) {
      listening.push(Math.round(logged - tree.spawnedAtEpochMs));
    }
    await sleep(200);
  }
  const record: ColdStartRecord = {
    engine,
    command,
    samplesMs: times,
    medianMs: round(median(times)),
    listeningMs: spread(listening),
  };
  console.log(
    `${engine}: cold start median ${record.medianMs} ms (${times.join(", ")})`,
  );
  return record;
}

async function untilHello(tree: ServerTree): Promise<number> {
  const deadline = tree.spawnedAt + START_TIMEOUT_MS;
  while (performance.now() < deadline) {
    let answer: HttpAnswer | undefined;
    try {
      answer = await httpGet(tree.options.port, "/", 1_000);
    } catch {
      // not listening yet
    }
    if (answer !== undefined && answer.status === 200) {
      if (answer.body !== "Hello!\n") {
        throw new Error(`GET / answered ${JSON.stringify(answer.body)}`);
      }
      return round(performance.now() - tree.spawnedAt);
    }
    await sleep(POLL_MS);
  }
  throw new Error(
    `${tree.command.join(" ")} did not answer within ${START_TIMEOUT_MS} ms:\n${
      tree.lines.slice(-20).join("\n")
    }`,
  );
}

/** Restarts with no load: the handover's own latency, for reference. */
async function measureIdleHandovers(
  engine: string,
  flags: Flags,
): Promise<IdleHandoverRecord> {
  const treeOptions = freshTree(engine, "SIGUSR2");
  const { marker, port } = treeOptions;
  const tree = await startTree(treeOptions, START_TIMEOUT_MS);
  const handovers: HandoverRecord[] = [];
  let stuck: StuckRestart | null = null;
  try {
    await sleep(300);
    for (let i = 0; i < flags.idleRestarts; i++) {
      const restart = await restartOnce(i, {
        port,
        signal: "SIGUSR2",
        pollMs: POLL_MS,
        probeTimeoutMs: PROBE_TIMEOUT_MS,
        timeoutMs: HANDOVER_TIMEOUT_MS,
        exitWatchMs: EXIT_WATCH_MS,
      });
      await restart.oldExit;
      handovers.push(restart.record);
      await sleep(300);
    }
  } catch (error) {
    if (error instanceof HandoverTimeoutError) handovers.push(error.record);
    stuck = {
      restart: handovers.length +
        (error instanceof HandoverTimeoutError ? 0 : 1),
      reason: error instanceof Error ? error.message : String(error),
      processes: pidsWithMarker(marker).map((pid) =>
        diagnoseProcess(pid, port)
      ),
      serverTail: tree.lines.slice(-30),
    };
    console.log(`  ${engine} idle: ${stuck.reason}`);
  } finally {
    await stopTree(tree, STOP_GRACE_MS);
  }
  fillFromLogs(handovers, tree);
  const latencyMs = spread(
    handovers.flatMap((h) => h.latencyMs === null ? [] : [h.latencyMs]),
  );
  console.log(
    `${engine}: idle handover p50 ${latencyMs.p50} ms, p95 ${latencyMs.p95} ms`,
  );
  return {
    engine,
    handovers,
    stuck,
    latencyMs,
    phasesMs: phaseSpreads(handovers),
  };
}

/** Fills each handover's server-side figures from what the server logged. */
function fillFromLogs(handovers: HandoverRecord[], tree: ServerTree): void {
  for (const handover of handovers) {
    if (handover.newPid === null) continue;
    handover.serverReadyMs = tree.readyMs.get(handover.newPid) ?? null;
    const milestones = tree.milestones.get(handover.newPid) ?? {};
    const since = (at: number | undefined): number | null =>
      at === undefined ? null : Math.round(at - handover.signalAtMs);
    handover.phasesMs = {
      joined: since(milestones.joined),
      listening: since(milestones.listening),
      ready: since(milestones.ready),
    };
  }
}

/** p50/p95 of each milestone over `handovers`. */
function phaseSpreads(handovers: HandoverRecord[]): PhaseSpreads {
  const of = (key: "joined" | "listening" | "ready"): Spread =>
    spread(handovers.flatMap((h) => {
      const value = h.phasesMs[key];
      return value === null ? [] : [value];
    }));
  return {
    joined: of("joined"),
    listening: of("listening"),
    ready: of("ready"),
  };
}

/**
 * Waits until other processes use less than QUIET_PERCENT of a core over
 * 1 s, for `maxWaitMs` at most. Resolves with whether it got quiet.
 */
async function waitForQuiet(
  clockTicks: number,
  maxWaitMs: number,
): Promise<boolean> {
  const started = performance.now();
  let said = false;
  while (performance.now() - started < maxWaitMs) {
    const before = await readAllProcessTicks();
    await sleep(1_000);
    const after = await readAllProcessTicks();
    // pid 1 reaps orphans (old generations): their time lands in its cutime.
    const percent = foreignTicks(before, after, new Set([Deno.pid, 1])) /
      clockTicks * 100;
    if (percent < QUIET_PERCENT) return true;
    if (!said) {
      console.log(
        `  waiting for a quiet machine (others use ${
          percent.toFixed(0)
        }% of a core; at most ${maxWaitMs / 1000} s)`,
      );
      said = true;
    }
  }
  console.log(
    `  the machine was not quiet within ${
      maxWaitMs / 1000
    } s; measuring anyway`,
  );
  return false;
}

function spread(values: number[]): Spread {
  if (values.length === 0) {
    return { n: 0, p50: NaN, p95: NaN, min: NaN, max: NaN };
  }
  return {
    n: values.length,
    p50: round(percentile(values, 50)),
    p95: round(percentile(values, 95)),
    min: round(Math.min(...values)),
    max: round(Math.max(...values)),
  };
}

function evaluateTargets(report: RestartReport): TargetResult[] {
  const targets: TargetResult[] = [];
  for (const scenario of report.scenarios) {
    const scope = report.kind === "acceptance"
      ? `acceptance ${scenario.mode}`
      : `${scenario.engine} ${scenario.mode}`;
    const f = scenario.failures;
    const completed = scenario.handovers.filter((h) => h.newPid !== null)
      .length;
    const discarded = scenario.discardedAttempts ?? [];
    const also = (values: string[]): string =>
      discarded.length === 0
        ? ""
        : ` (discarded noisier attempt${discarded.length > 1 ? "s" : ""}: ${
          values.join(", ")
        })`;
    targets.push({
      scope,
      name: "restarts completed",
      value: `${completed} of ${scenario.restarts}${
        also(discarded.map((d) =>
          `${d.restartsCompleted} of ${scenario.restarts}`
        ))
      }`,
      target: `${scenario.restarts} of ${scenario.restarts}`,
      pass: completed === scenario.restarts &&
        discarded.every((d) => d.restartsCompleted === scenario.restarts),
    });
    targets.push({
      scope,
      name: "failed requests",
      value: `${f.total}${
        also(discarded.map((d) => String(d.failures.total)))
      }`,
      target: "0",
      pass: f.total === 0 && discarded.every((d) => d.failures.total === 0),
    });
    if (report.kind === "full") {
      targets.push({
        scope,
        name: "restart-window throughput ÷ steady",
        value: scenario.timeline.windowRatio.toFixed(2),
        target: `≥ ${TARGET_WINDOW_RATIO}`,
        pass: scenario.timeline.windowRatio >= TARGET_WINDOW_RATIO,
      });
      const cold = report.coldStarts.find((c) => c.engine === scenario.engine);
      if (cold !== undefined) {
        for (const p of ["p50", "p95"] as const) {
          const ratio = scenario.latencyMs[p] / cold.medianMs;
          targets.push({
            scope,
            name: `handover ${p} ÷ cold start`,
            value: `${ratio.toFixed(2)}× (${
              scenario.latencyMs[p]
            } ÷ ${cold.medianMs} ms)`,
            target: `≤ ${TARGET_COLD_RATIO}×`,
            pass: ratio <= TARGET_COLD_RATIO,
          });
        }
      }
    }
    targets.push({
      scope,
      name: "processes left",
      value: `${scenario.processesLeft}${
        also(discarded.map((d) => String(d.processesLeft)))
      }`,
      target: "1",
      pass: scenario.processesLeft === 1 &&
        discarded.every((d) => d.processesLeft === 1),
    });
  }
  targets.push({
    scope: "all",
    name: "bench processes left after the bench",
    value: `${report.leftoverProcesses}`,
    target: "0",
    pass: report.leftoverProcesses === 0,
  });
  return targets;
}

function collectNotes(report: RestartReport): string[] {
  const notes: string[] = [];
  for (const idle of report.idleHandovers) {
    if (idle.stuck !== null) {
      notes.push(describeStuck(`${idle.engine} idle`, idle.stuck));
    }
  }
  for (const scenario of report.scenarios) {
    const scope = `${scenario.engine} ${scenario.mode}`;
    if (!scenario.quietBefore) {
      notes.push(
        `${scope}: the machine did not get quiet (other processes under ${QUIET_PERCENT}% of a core) within ${
          report.config.quietWaitMs / 1000
        } s before the run.`,
      );
    }
    if (scenario.foreignCpuPercent > QUIET_PERCENT) {
      notes.push(
        `${scope}: other processes used ${scenario.foreignCpuPercent}% of a core during the run.`,
      );
    }
    if (!scenario.stoppedGracefully) {
      notes.push(`${scope}: the final SIGTERM did not stop every generation.`);
    }
    if (scenario.stuck !== null) {
      notes.push(describeStuck(scope, scenario.stuck));
    }
    for (const attempt of scenario.discardedAttempts ?? []) {
      const f = attempt.failures;
      notes.push(
        `${scope}: an attempt was measured again because other processes used ${attempt.foreignCpuPercent}% of a core during it; ` +
          `it had ${attempt.restartsCompleted} of ${scenario.restarts} restarts completed, ` +
          `${f.total} failed requests (connect ${f.connect}, read ${f.read}, write ${f.write}, timeout ${f.timeout}, non-2xx ${f.non2xx}, probes ${f.probes}), ` +
          `${attempt.processesLeft} process(es) left, steady ${attempt.steadyRequestsPerSecond} req/s, window ratio ${attempt.windowRatio}, ` +
          `handover p50 ${attempt.latencyMs.p50} ms.`,
      );
      if (attempt.stuck !== null) {
        notes.push(
          describeStuck(`${scope} (discarded attempt)`, attempt.stuck),
        );
      }
      notes.push(
        ...failureDetails(
          `${scope} (discarded attempt)`,
          attempt.handovers ?? [],
          attempt.non2xx ?? [],
          attempt.unanswered?.excessEvents ?? [],
          {},
        ),
      );
    }
    for (const [line, count] of groupLines(scenario.notableLines)) {
      notes.push(`${scope}: the server printed ${count} × \`${line}\``);
    }
    notes.push(
      ...failureDetails(
        scope,
        scenario.handovers,
        scenario.timeline.non2xx,
        scenario.timeline.unanswered.excessEvents,
        scenario.timeline.statuses,
      ),
    );
  }
  return notes;
}

/** Says when each failed probe, non-2xx answer and unanswered request happened. */
function failureDetails(
  scope: string,
  handovers: HandoverRecord[],
  non2xx: TimelineEvent[],
  unanswered: TimelineEvent[],
  statuses: Record<string, number>,
): string[] {
  const notes: string[] = [];
  if (unanswered.length > 0) {
    notes.push(
      `${scope}: requests written and never answered: ${
        unanswered.map((e) => describeEvent(e)).join(", ")
      }.`,
    );
  }
  if (non2xx.length > 0) {
    notes.push(
      `${scope}: non-2xx answers ${JSON.stringify(statuses)} at ${
        non2xx.map((e) => describeEvent(e)).join(", ")
      }.`,
    );
  }
  for (const handover of handovers) {
    for (const probe of handover.probeErrors) {
      notes.push(
        `${scope}: restart ${handover.index + 1} (pid ${handover.oldPid} → ${
          handover.newPid ?? "none"
        }, handover ${
          handover.latencyMs ?? "not completed"
        } ms): a GET /pid probe failed ${probe.sinceSignalMs} ms after the signal: ${probe.error}`,
      );
    }
  }
  return notes;
}

/** Lines with their timestamps, pids and ids made alike, counted. */
function groupLines(lines: string[]): [string, number][] {
  const counts = new Map<string, number>();
  for (const line of lines) {
    const shape = line
      .replace(/^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d\.\d+ [+-]\d\d:\d\d /, "")
      .replace(/\bpid \d+/g, "pid N")
      .replace(/\bgen \d+/g, "gen N")
      .replace(/\bgeneration \d+/g, "generation N")
      .replace(/[0-9a-f]{8}-[0-9a-f-]{27,}/g, "<uuid>")
      .replace(/\b\d+ ms\b/g, "N ms");
    counts.set(shape, (counts.get(shape) ?? 0) + 1);
  }
  return [...counts].slice(0, 10);
}

function describeStuck(scope: string, stuck: StuckRestart): string {
  const processes = stuck.processes.map((p) => {
    const socket = p.listeningSocket === null
      ? "does not hold the listening socket"
      : `listening socket fd ${p.listeningSocket.fd} flags ${p.listeningSocket.flags} (${
        p.listeningSocket.nonBlocking ? "O_NONBLOCK set" : "O_NONBLOCK cleared"
      })`;
    return `pid ${p.pid}: state ${p.state}, main thread in ${
      p.mainThreadWchan || "?"
    }, ${p.threads} threads, ${socket}`;
  });
  return `${scope}: ${stuck.reason}. Generations then: ${
    processes.join("; ")
  }. The server's last lines: ${
    stuck.serverTail.slice(-4).map((l) => `\`${l}\``).join(" ")
  }`;
}

function describeEvent(
  event: {
    atMs: number;
    sinceSignalMs: number | null;
    signalIndex: number | null;
    count: number;
  },
): string {
  return event.signalIndex === null
    ? `${event.count} at ${event.atMs} ms (before the first signal)`
    : `${event.count} at +${event.sinceSignalMs} ms after signal ${
      event.signalIndex + 1
    }`;
}

function reproduceCommands(flags: Flags): string[] {
  const command = ["deno run -A bench/restart_bench.ts"];
  if (flags.acceptance) command.push("--acceptance");
  if (flags.quick) command.push("--quick");
  if (flags.restarts !== (flags.acceptance ? 12 : flags.quick ? 3 : 10)) {
    command.push("--restarts", String(flags.restarts));
  }
  if (flags.intervalMs !== 2_000) {
    command.push("--interval", String(flags.intervalMs));
  }
  if (
    !flags.acceptance && flags.coldSamples !== (flags.quick ? 3 : 5)
  ) {
    command.push("--cold", String(flags.coldSamples));
  }
  return [command.join(" ")];
}

function displayCommand(command: string[]): string {
  return command.map((arg) => {
    const shown = arg === Deno.execPath() ? "deno" : arg;
    return /^[\w@%+=:,./-]+$/.test(shown) ? shown : `"${shown}"`;
  }).join(" ");
}

async function readReport(path: string): Promise<RestartReport | undefined> {
  try {
    return JSON.parse(await Deno.readTextFile(path)) as RestartReport;
  } catch {
    return undefined;
  }
}

function relativeToRepo(path: string): string {
  return path.startsWith(REPO_DIR) ? path.slice(REPO_DIR.length) : path;
}

function cleanUp(): void {
  killAllChildren();
  killAllMarked();
  for (const path of tempFiles) {
    try {
      Deno.removeSync(path);
    } catch {
      // already gone
    }
  }
  tempFiles.clear();
}

if (import.meta.main) {
  await runBenchMain(main, {
    name: "restart bench",
    stopping: "every server generation and wrk",
    cleanUp,
    printStack: true,
  });
}
