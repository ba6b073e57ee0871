/**
 * Turns the runs of the serve bench into medians, ratios, targets and notes,
 * and renders them as the Markdown section of BENCHMARKS.md.
 *
 * @module
 */

import { type SectionMarkers, sectionMarkers } from "./markdown_section.ts";
import { median } from "./stats.ts";
import { totalErrors, type WrkErrors, type WrkResult } from "./wrk.ts";

/** The two load modes. */
export type ModeName = "keep-alive" | "close";

/** One system under test. */
export interface SystemSpec {
  /** The name used by `--only` and in JSON. */
  name: string;
  /** The name shown in tables. */
  label: string;
  /** The server script, relative to bench/. */
  script: string;
  /** Served over TLS or a unix socket instead of plain TCP. */
  transport?: "tls" | "unix";
  /** Only these modes (default: every mode). */
  modes?: ModeName[];
}

/** One load mode. */
export interface ModeSpec {
  name: ModeName;
  /** The name shown in headings. */
  label: string;
  /** Extra wrk headers. */
  headers: string[];
}

/** CPU accounting of one measured run. */
export interface CpuRecord {
  /** Server utime + stime over the run, in clock ticks. */
  ticks: number;
  /** The same in seconds. */
  seconds: number;
  /** Server CPU µs per completed request. */
  usPerRequest: number;
  /** Wall time between the two /proc readings (s). */
  wallSeconds: number;
  /** Server CPU time ÷ wall time, in percent (100 = one core busy). */
  serverPercent: number;
  /** How busy the server's core was (everything on it), in percent. */
  serverCoreBusyPercent: number;
  /** How busy wrk's core was, in percent. */
  clientCoreBusyPercent: number;
  /**
   * CPU used by every other process on the machine (not the server, wrk or
   * the bench), in percent of one core: interference from other work.
   */
  foreignPercent: number;
}

/** One measured attempt of a run. */
export interface AttemptRecord {
  attempt: number;
  /** The wait for a quiet machine before it. */
  quiet: { waitedSeconds: number; foreignPercent: number };
  wrk: WrkResult;
  cpu: CpuRecord;
}

/** One measured run of one system in one mode. */
export interface RunRecord {
  /** 1-based round. */
  round: number;
  /** 1-based position in the whole bench's sequence of runs. */
  sequence: number;
  mode: ModeName;
  system: string;
  pid: number;
  port: number;
  /** Response headers of the pre-flight GET (without `date`). */
  responseHeaders: Record<string, string>;
  warmup: { requests: number; requestsPerSecond: number; errors: WrkErrors };
  /** The wait for a quiet machine before the kept attempt. */
  quiet: { waitedSeconds: number; foreignPercent: number };
  wrk: WrkResult;
  cpu: CpuRecord;
  /** Attempts not kept because other processes interfered more. */
  discarded: AttemptRecord[];
  /** How the server ended when it was stopped with SIGTERM. */
  stop: { code: number; signal: string | null; killed: boolean };
}

/** Median, minimum and maximum over the rounds. */
export interface Spread {
  median: number;
  min: number;
  max: number;
}

/** One system in one mode, over all rounds. */
export interface Summary {
  system: string;
  mode: ModeName;
  rounds: number;
  requestsPerSecond: Spread;
  cpuUsPerRequest: Spread;
  serverCpuPercent: Spread;
  clientCoreBusyPercent: Spread;
  foreignPercent: Spread;
  /** Median of the per-run p50 and p99 latencies (ms). */
  latencyMs: { p50: number; p99: number };
  /** Errors summed over all rounds. */
  errors: WrkErrors;
  /** Completed requests summed over all rounds. */
  requests: number;
}

/** A system compared with a baseline, in one mode. */
export interface Ratio {
  system: string;
  baseline: string;
  mode: ModeName;
  /** system req/s ÷ baseline req/s (medians). */
  throughput: number | null;
  /** baseline µs/req ÷ system µs/req (medians); above 1 is cheaper. */
  cpuEfficiency: number | null;
}

/** A stated goal, and whether this run met it. */
export interface Target {
  description: string;
  system: string;
  baseline: string;
  mode: ModeName;
  metric: "throughput" | "cpuEfficiency";
  threshold: number;
  value: number | null;
  /** null when a system was not measured. */
  pass: boolean | null;
  /** Runs behind this verdict (both systems, this mode). */
  runs: number;
  /**
   * Of those, runs during which other processes used more than
   * `maxForeignPercent` of a core: the verdict is only as good as they are.
   */
  disturbedRuns: number;
}

/** Facts about the machine and the run, for the report. */
export interface Environment {
  date: string;
  command: string;
  nproc: number;
  cpuModel: string;
  deno: string;
  v8: string;
  typescript: string;
  kernel: string;
  wrk: string;
  clockTicksPerSecond: number;
  loadAverageAtStart: string;
}

/** The bench's settings. */
export interface BenchConfig {
  durationSeconds: number;
  warmupSeconds: number;
  rounds: number;
  threads: number;
  connections: number;
  serverCpu: number;
  clientCpu: number;
  /** The quiet gate: longest wait (s). */
  quietMaxWaitSeconds: number;
  /** Interference (% of a core) that makes a run be measured again. */
  maxForeignPercent: number;
  maxAttempts: number;
  systems: string[];
  modes: ModeName[];
}

/** Everything written to serve.json. */
export interface BenchReport {
  benchmark: "serve";
  environment: Environment;
  config: BenchConfig;
  summaries: Summary[];
  ratios: Ratio[];
  targets: Target[];
  notes: string[];
  runs: RunRecord[];
}

/** The comparisons reported, as [system, baseline]. */
export const COMPARISONS: [string, string][] = [
  ["graceful_native", "deno_serve"],
  ["graceful_node", "deno_serve"],
  ["graceful_node", "node_http"],
  ["graceful_native_tls", "deno_serve_tls"],
  ["graceful_node_tls", "deno_serve_tls"],
  ["graceful_native_unix", "deno_serve_unix"],
  ["graceful_node_unix", "deno_serve_unix"],
];

/** The targets, as stated in the brief. */
export const TARGETS: Omit<
  Target,
  "value" | "pass" | "runs" | "disturbedRuns"
>[] = [
  {
    description:
      "native ≥ 0.95× Deno.serve CPU efficiency per request, keep-alive",
    system: "graceful_native",
    baseline: "deno_serve",
    mode: "keep-alive",
    metric: "cpuEfficiency",
    threshold: 0.95,
  },
  {
    description:
      "native ≥ 0.9× Deno.serve CPU efficiency per request, Connection: close",
    system: "graceful_native",
    baseline: "deno_serve",
    mode: "close",
    metric: "cpuEfficiency",
    threshold: 0.9,
  },
  {
    description:
      "native ≥ 0.9× Deno.serve CPU efficiency per request, HTTPS keep-alive",
    system: "graceful_native_tls",
    baseline: "deno_serve_tls",
    mode: "keep-alive",
    metric: "cpuEfficiency",
    threshold: 0.9,
  },
  {
    description:
      "native ≥ 0.9× Deno.serve CPU efficiency per request, unix keep-alive",
    system: "graceful_native_unix",
    baseline: "deno_serve_unix",
    mode: "keep-alive",
    metric: "cpuEfficiency",
    threshold: 0.9,
  },
  {
    description: "node engine ≥ 0.9× node:http req/s, keep-alive",
    system: "graceful_node",
    baseline: "node_http",
    mode: "keep-alive",
    metric: "throughput",
    threshold: 0.9,
  },
  {
    description: "node engine ≥ 0.9× node:http req/s, Connection: close",
    system: "graceful_node",
    baseline: "node_http",
    mode: "close",
    metric: "throughput",
    threshold: 0.9,
  },
];

function spread(values: number[]): Spread {
  return {
    median: median(values),
    min: Math.min(...values),
    max: Math.max(...values),
  };
}

function sumErrors(list: WrkErrors[]): WrkErrors {
  const sum: WrkErrors = {
    connect: 0,
    read: 0,
    write: 0,
    timeout: 0,
    status: 0,
  };
  for (const errors of list) {
    sum.connect += errors.connect;
    sum.read += errors.read;
    sum.write += errors.write;
    sum.timeout += errors.timeout;
    sum.status += errors.status;
  }
  return sum;
}

/** Summarizes the runs of every (system, mode) pair, in the given orders. */
export function summarize(
  runs: RunRecord[],
  systems: SystemSpec[],
  modes: ModeSpec[],
): Summary[] {
  const summaries: Summary[] = [];
  for (const mode of modes) {
    for (const system of systems) {
      const own = runs.filter((run) =>
        run.mode === mode.name && run.system === system.name
      );
      if (own.length === 0) continue;
      summaries.push({
        system: system.name,
        mode: mode.name,
        rounds: own.length,
        requestsPerSecond: spread(own.map((r) => r.wrk.requestsPerSecond)),
        cpuUsPerRequest: spread(own.map((r) => r.cpu.usPerRequest)),
        serverCpuPercent: spread(own.map((r) => r.cpu.serverPercent)),
        clientCoreBusyPercent: spread(
          own.map((r) => r.cpu.clientCoreBusyPercent),
        ),
        foreignPercent: spread(own.map((r) => r.cpu.foreignPercent)),
        latencyMs: {
          p50: median(own.map((r) => r.wrk.latencyMs.p50)),
          p99: median(own.map((r) => r.wrk.latencyMs.p99)),
        },
        errors: sumErrors(own.map((r) => r.wrk.errors)),
        requests: own.reduce((n, r) => n + r.wrk.requests, 0),
      });
    }
  }
  return summaries;
}

function findSummary(
  summaries: Summary[],
  system: string,
  mode: ModeName,
): Summary | undefined {
  return summaries.find((s) => s.system === system && s.mode === mode);
}

/** Computes every comparison in {@linkcode COMPARISONS} for every mode. */
export function computeRatios(
  summaries: Summary[],
  modes: ModeSpec[],
): Ratio[] {
  const ratios: Ratio[] = [];
  for (const mode of modes) {
    for (const [system, baseline] of COMPARISONS) {
      const own = findSummary(summaries, system, mode.name);
      const base = findSummary(summaries, baseline, mode.name);
      ratios.push({
        system,
        baseline,
        mode: mode.name,
        throughput: own && base
          ? own.requestsPerSecond.median / base.requestsPerSecond.median
          : null,
        cpuEfficiency: own && base
          ? base.cpuUsPerRequest.median / own.cpuUsPerRequest.median
          : null,
      });
    }
  }
  return ratios;
}

/**
 * Evaluates {@linkcode TARGETS} against the ratios, counting the runs behind
 * each verdict that other processes disturbed.
 */
export function evaluateTargets(
  ratios: Ratio[],
  runs: RunRecord[],
  config: BenchConfig,
): Target[] {
  return TARGETS.map((target) => {
    const ratio = ratios.find((r) =>
      r.system === target.system && r.baseline === target.baseline &&
      r.mode === target.mode
    );
    const value = ratio ? ratio[target.metric] : null;
    const involved = runs.filter((run) =>
      run.mode === target.mode &&
      (run.system === target.system || run.system === target.baseline)
    );
    return {
      ...target,
      value,
      pass: value === null ? null : value >= target.threshold,
      runs: involved.length,
      disturbedRuns: involved.filter((run) =>
        run.cpu.foreignPercent > config.maxForeignPercent
      ).length,
    };
  });
}

/** Everything derived from the runs: summaries, ratios, targets, notes. */
export function buildReport(
  environment: Environment,
  config: BenchConfig,
  runs: RunRecord[],
  systems: SystemSpec[],
  modes: ModeSpec[],
): BenchReport {
  const measured = systems.filter((s) => config.systems.includes(s.name));
  const summaries = summarize(runs, measured, modes);
  const ratios = computeRatios(summaries, modes);
  const labels = new Map(systems.map((s) => [s.name, s.label]));
  return {
    benchmark: "serve",
    environment,
    config,
    summaries,
    ratios,
    targets: evaluateTargets(ratios, runs, config),
    notes: collectNotes(summaries, runs, labels, modes, config),
    runs,
  };
}

/**
 * Observations worth a reader's attention: errors, servers that did not keep
 * their core busy, a saturated client, noisy rounds.
 */
export function collectNotes(
  summaries: Summary[],
  runs: RunRecord[],
  labels: Map<string, string>,
  modes: ModeSpec[],
  config: BenchConfig,
): string[] {
  const notes: string[] = [];
  const modeLabel = (name: ModeName) =>
    modes.find((m) => m.name === name)?.label ?? name;
  for (const summary of summaries) {
    const who = `${labels.get(summary.system)}, ${modeLabel(summary.mode)}`;
    const errors = totalErrors(summary.errors);
    if (errors > 0) {
      notes.push(
        `${who}: ${formatErrors(summary.errors)} over ${summary.rounds} ` +
          `run(s) of ${formatInteger(summary.requests)} requests.`,
      );
    }
    if (summary.serverCpuPercent.median < 90) {
      notes.push(
        `${who}: the server used only ${
          summary.serverCpuPercent.median.toFixed(0)
        }% of its core (median), so something other than its CPU limited it.`,
      );
    }
    if (summary.clientCoreBusyPercent.median >= 97) {
      notes.push(
        `${who}: wrk's core was ${
          summary.clientCoreBusyPercent.median.toFixed(0)
        }% busy (median); the client may be part of the limit.`,
      );
    }
    const rps = summary.requestsPerSecond;
    if (summary.rounds > 1 && (rps.max - rps.min) / rps.median > 0.1) {
      notes.push(
        `${who}: req/s varied by ${
          ((rps.max - rps.min) / rps.median * 100).toFixed(0)
        }% across rounds (${formatInteger(rps.min)}–${
          formatInteger(rps.max)
        }).`,
      );
    }
  }
  const interfered = runs.filter((run) =>
    run.cpu.foreignPercent > config.maxForeignPercent
  );
  if (interfered.length > 0) {
    const worst = Math.max(...interfered.map((r) => r.cpu.foreignPercent));
    notes.push(
      `In ${interfered.length} of ${runs.length} runs, other processes on ` +
        `the machine used more than ${config.maxForeignPercent}% of a core ` +
        `even after up to ${
          Math.max(...runs.map((r) => r.discarded.length + 1))
        } attempts (worst ${
          worst.toFixed(0)
        }%); their req/s are less reliable than their CPU µs/req.`,
    );
  }
  const retried = runs.filter((run) => run.discarded.length > 0);
  if (retried.length > 0) {
    notes.push(
      `${retried.length} of ${runs.length} runs were measured again because ` +
        `other processes used more than ${config.maxForeignPercent}% of a ` +
        `core meanwhile (the machine is shared); the least disturbed attempt ` +
        `was kept, the others are in the JSON under \`discarded\`.`,
    );
  }
  const killed = runs.filter((run) => run.stop.killed);
  if (killed.length > 0) {
    notes.push(
      `${killed.length} server(s) did not exit within the grace period after ` +
        `SIGTERM and were killed: ${
          killed.map((r) => `${r.system} (${r.mode}, round ${r.round})`).join(
            ", ",
          )
        }.`,
    );
  }
  return notes;
}

/** Formats an integer with thousands separators. */
export function formatInteger(value: number): string {
  return Math.round(value).toLocaleString("en-US");
}

/** Formats errors as "0" or "12 (read 10, non-2xx/3xx 2)". */
export function formatErrors(errors: WrkErrors): string {
  const total = totalErrors(errors);
  if (total === 0) return "0";
  const parts: string[] = [];
  if (errors.connect) parts.push(`connect ${formatInteger(errors.connect)}`);
  if (errors.read) parts.push(`read ${formatInteger(errors.read)}`);
  if (errors.write) parts.push(`write ${formatInteger(errors.write)}`);
  if (errors.timeout) parts.push(`timeout ${formatInteger(errors.timeout)}`);
  if (errors.status) parts.push(`non-2xx/3xx ${formatInteger(errors.status)}`);
  return `${formatInteger(total)} (${parts.join(", ")})`;
}

function formatRatio(value: number | null): string {
  return value === null ? "n/a" : `${value.toFixed(2)}×`;
}

function formatMs(value: number): string {
  if (!Number.isFinite(value)) return "n/a";
  return value < 10 ? value.toFixed(2) : value.toFixed(1);
}

/** Renders the section that goes between the BENCHMARKS.md markers. */
export function renderMarkdown(
  report: BenchReport,
  systems: SystemSpec[],
  modes: ModeSpec[],
  jsonPath: string,
): string {
  const { environment: env, config } = report;
  const labels = new Map(systems.map((s) => [s.name, s.label]));
  const lines: string[] = [];
  lines.push("## Hello-world serving cost (`bench/serve_bench.ts`)");
  lines.push("");
  lines.push(
    `Measured ${env.date}: ${config.rounds} round(s) × ${config.durationSeconds} s ` +
      `per (system, mode), run round-robin across systems (the order rotates ` +
      `every round); each cell is the median over the rounds.`,
  );
  lines.push("");
  lines.push(
    `Machine: ${env.nproc} CPUs (\`nproc\`), ${env.cpuModel}, ` +
      `Deno ${env.deno} (V8 ${env.v8}), Linux ${env.kernel}, ${env.wrk}. ` +
      `Load average at start: ${env.loadAverageAtStart}.`,
  );
  lines.push("");
  lines.push("Reproduce (from the repository root):");
  lines.push("");
  lines.push("```sh");
  lines.push(env.command);
  lines.push("```");
  lines.push("");
  lines.push(
    `Method: every run starts a fresh server pinned to CPU ${config.serverCpu} ` +
      `(\`taskset -c ${config.serverCpu}\`; /proc confirms the pid is Deno ` +
      `itself, holds the listening socket and has no children), checks that ` +
      `\`GET /\` answers 200 "Hello, World!", warms it up with ` +
      `${config.warmupSeconds} s of the same load, then runs ` +
      `\`taskset -c ${config.clientCpu} wrk -t${config.threads} ` +
      `-c${config.connections} -d${config.durationSeconds}s --latency\` ` +
      `(with \`-H "Connection: close"\` in the close mode). CPU µs/req is the ` +
      `server's utime + stime (/proc/<pid>/stat) over the measured run ÷ ` +
      `completed requests. Errors are wrk's socket errors plus non-2xx/3xx ` +
      `responses, summed over the rounds. Server CPU is the server's CPU ` +
      `time ÷ wall time (100% = its core saturated); wrk core is how busy ` +
      `CPU ${config.clientCpu} was (wrk plus the kernel's loopback work). ` +
      `The machine may be shared: before each measured run the bench waits ` +
      `(up to ${config.quietMaxWaitSeconds} s) until other processes use ` +
      `under ${config.maxForeignPercent}% of a core, and measures again (up ` +
      `to ${config.maxAttempts} attempts, keeping the least disturbed) when ` +
      `they used more during the run.`,
  );
  for (const mode of modes) {
    const rows = report.summaries.filter((s) => s.mode === mode.name);
    if (rows.length === 0) continue;
    lines.push("");
    lines.push(`### ${mode.label}`);
    lines.push("");
    lines.push(
      "| System | req/s | req/s range | CPU µs/req | server CPU | wrk core | p50 / p99 latency (ms) | errors |",
    );
    lines.push("| --- | --: | --: | --: | --: | --: | --: | --: |");
    for (const s of rows) {
      lines.push(
        `| ${labels.get(s.system)} | ${
          formatInteger(s.requestsPerSecond.median)
        } | ` +
          `${formatInteger(s.requestsPerSecond.min)}–${
            formatInteger(s.requestsPerSecond.max)
          } | ${s.cpuUsPerRequest.median.toFixed(1)} | ` +
          `${s.serverCpuPercent.median.toFixed(0)}% | ` +
          `${s.clientCoreBusyPercent.median.toFixed(0)}% | ` +
          `${formatMs(s.latencyMs.p50)} / ${formatMs(s.latencyMs.p99)} | ` +
          `${formatErrors(s.errors)} |`,
      );
    }
  }
  lines.push("");
  lines.push("### Ratios");
  lines.push("");
  lines.push(
    "Throughput = system req/s ÷ baseline req/s. CPU efficiency = baseline " +
      "µs/req ÷ system µs/req (above 1× = cheaper per request than the " +
      "baseline). Both from the medians above.",
  );
  lines.push("");
  const header = ["Comparison"];
  for (const mode of modes) {
    header.push(`${mode.label} throughput`, `${mode.label} CPU efficiency`);
  }
  lines.push(`| ${header.join(" | ")} |`);
  lines.push(`| --- |${" --: |".repeat(header.length - 1)}`);
  for (const [system, baseline] of COMPARISONS) {
    const cells = [`${labels.get(system)} ÷ ${labels.get(baseline)}`];
    for (const mode of modes) {
      const ratio = report.ratios.find((r) =>
        r.system === system && r.baseline === baseline && r.mode === mode.name
      );
      cells.push(
        formatRatio(ratio?.throughput ?? null),
        formatRatio(ratio?.cpuEfficiency ?? null),
      );
    }
    lines.push(`| ${cells.join(" | ")} |`);
  }
  lines.push("");
  lines.push("### Targets");
  lines.push("");
  lines.push(
    `Disturbed runs: runs behind the verdict during which other processes ` +
      `used more than ${config.maxForeignPercent}% of a core; a verdict ` +
      `that rests on disturbed runs is weak evidence either way.`,
  );
  lines.push("");
  lines.push("| Target | Measured | Result | Disturbed runs |");
  lines.push("| --- | --: | --- | --: |");
  for (const target of report.targets) {
    const result = target.pass === null
      ? "not measured"
      : target.pass
      ? "**pass**"
      : "**FAIL**";
    lines.push(
      `| ${target.description} | ${formatRatio(target.value)} | ${result} | ` +
        `${target.disturbedRuns} of ${target.runs} |`,
    );
  }
  lines.push("");
  lines.push("### Notes");
  lines.push("");
  if (report.notes.length === 0) {
    lines.push(
      "- Nothing unusual: no errors, every server kept its core busy.",
    );
  }
  for (const note of report.notes) lines.push(`- ${note}`);
  lines.push("");
  lines.push(
    `Per-run numbers (CPU ticks, latencies, errors): \`${jsonPath}\`.`,
  );
  return lines.join("\n");
}

/** The markers around the generated section in BENCHMARKS.md. */
export const MARKERS: SectionMarkers = sectionMarkers("serve-bench");
