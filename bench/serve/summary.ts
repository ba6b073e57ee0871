/**
 * Turns the runs of the serve bench into medians, ratios, targets and notes
 * (serve/markdown.ts renders them).
 *
 * @module
 */

import { median } from "../lib/stats.ts";
import { totalErrors, type WrkErrors } from "../lib/wrk.ts";
import type { ColdStartRecord } from "./cold_start.ts";
import type {
  BenchConfig,
  BenchReport,
  Environment,
  ModeName,
  ModeSpec,
  Ratio,
  RunRecord,
  Spread,
  Summary,
  SystemSpec,
  Target,
} from "./records.ts";

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

/** The RSS phase's system and its baseline (serve/rss_phase.ts). */
export const RSS_SYSTEMS = ["graceful_native", "deno_serve"] as const;
/** The RSS target: the system's median RSS at most this × the baseline's. */
const RSS_THRESHOLD = 1.3;

/** The cold-start target: the CLI (`mod.ts APP.ts`) against a bare script. */
const COLD_TARGET = {
  description:
    "cold start of `mod.ts APP.ts` ≤ 1.3× a bare Deno.serve script's",
  system: "graceful_cli",
  baseline: "deno_serve",
  mode: null,
  metric: "coldStart",
  threshold: 1.3,
  atMost: true,
} as const;

function spread(values: number[]): Spread {
  if (values.length === 0) return { median: NaN, min: NaN, max: NaN };
  return {
    median: median(values),
    min: Math.min(...values),
    max: Math.max(...values),
  };
}

/** Errors summed. */
export function sumErrors(list: WrkErrors[]): WrkErrors {
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
        rssMiB: spread(own.flatMap((r) => r.rssMiB ?? [])),
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
        rss: own && base && isFinite(own.rssMiB.median / base.rssMiB.median)
          ? own.rssMiB.median / base.rssMiB.median
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
    const value = ratio
      ? ratio[target.metric as "throughput" | "cpuEfficiency" | "rss"]
      : null;
    const involved = runs.filter((run) =>
      run.mode === target.mode &&
      (run.system === target.system || run.system === target.baseline)
    );
    return {
      ...target,
      value,
      pass: value === null ? null : passes(value, target),
      runs: involved.length,
      disturbedRuns: involved.filter((run) =>
        run.cpu.foreignPercent > config.maxForeignPercent
      ).length,
    };
  });
}

function passes(
  value: number,
  target: { threshold: number; atMost?: boolean },
): boolean {
  return target.atMost ? value <= target.threshold : value >= target.threshold;
}

/** The cold-start target against the measured cold starts. */
export function coldStartTarget(coldStarts: ColdStartRecord[]): Target {
  const own = coldStarts.find((c) => c.system === COLD_TARGET.system);
  const base = coldStarts.find((c) => c.system === COLD_TARGET.baseline);
  const value = own && base ? own.medianMs / base.medianMs : null;
  return {
    ...COLD_TARGET,
    value,
    pass: value === null ? null : passes(value, COLD_TARGET),
    runs: (own?.samplesMs.length ?? 0) + (base?.samplesMs.length ?? 0),
    disturbedRuns: 0,
  };
}

/** The RSS readings of `system`'s runs (MiB). */
export function rssOf(runs: RunRecord[], system: string): number[] {
  return runs.filter((r) => r.system === system).flatMap((r) => r.rssMiB ?? []);
}

/**
 * The RSS target, from the runs of the RSS phase (serve/rss_phase.ts; not
 * measured without them).
 */
export function rssTarget(runs: RunRecord[], config: BenchConfig): Target {
  const [system, baseline] = RSS_SYSTEMS;
  const value = median(rssOf(runs, system)) / median(rssOf(runs, baseline));
  const measured = Number.isFinite(value);
  return {
    description: `native RSS after ${
      config.rssSeconds ?? 20
    } s of Connection: close load ≤ ${RSS_THRESHOLD}× Deno.serve's`,
    system,
    baseline,
    mode: "close",
    metric: "rss",
    threshold: RSS_THRESHOLD,
    atMost: true,
    value: measured ? value : null,
    pass: measured ? value <= RSS_THRESHOLD : null,
    runs: runs.length,
    disturbedRuns:
      runs.filter((r) => r.cpu.foreignPercent > config.maxForeignPercent)
        .length,
  };
}

/** Everything derived from the runs: summaries, ratios, targets, notes. */
export function buildReport(
  environment: Environment,
  config: BenchConfig,
  runs: RunRecord[],
  coldStarts: ColdStartRecord[],
  systems: SystemSpec[],
  modes: ModeSpec[],
  rssRuns: RunRecord[] = [],
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
    targets: [
      ...evaluateTargets(ratios, runs, config),
      rssTarget(rssRuns, config),
      ...(coldStarts.length > 0 ? [coldStartTarget(coldStarts)] : []),
    ],
    notes: collectNotes(summaries, runs, labels, modes, config),
    coldStarts,
    runs,
    rssRuns,
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
