/**
 * The RSS phase of the serve bench: how much memory the serving process
 * holds after a long `Connection: close` load (20 s in a full run), for
 * serveGraceful native against Deno.serve. Every run is a fresh server
 * measured as in the main runs (serve/measure.ts: its warm-up is the first
 * seconds of the same load, and VmRSS is read right after the load); the
 * two systems alternate, and the first of them changes every round.
 *
 * @module
 */

import { median } from "../lib/stats.ts";
import { measure, type MeasureOptions, WARMUP_SECONDS } from "./measure.ts";
import type {
  BenchConfig,
  ModeSpec,
  RunRecord,
  SystemSpec,
} from "./records.ts";
import {
  formatErrors,
  formatInteger,
  RSS_SYSTEMS,
  rssOf,
  sumErrors,
} from "./summary.ts";

/** What the phase needs besides {@linkcode MeasureOptions}. */
export interface RssPhaseOptions extends MeasureOptions {
  /** Rounds (each runs both systems). */
  rssRounds: number;
  /** Seconds of load before the reading, warm-up included. */
  rssSeconds: number;
}

/**
 * Runs the phase over those of `RSS_SYSTEMS` (summary.ts) that are in
 * `systems` (none unless both are); the runs' sequence numbers follow
 * `afterSequence`.
 */
export async function runRssPhase(
  systems: SystemSpec[],
  close: ModeSpec,
  options: RssPhaseOptions,
  clockTicks: number,
  afterSequence: number,
): Promise<RunRecord[]> {
  const pair = RSS_SYSTEMS.map((name) => systems.find((s) => s.name === name));
  if (pair.some((s) => s === undefined) || options.rssRounds === 0) return [];
  const runs: RunRecord[] = [];
  const measured = {
    ...options,
    duration: options.rssSeconds - WARMUP_SECONDS,
  };
  for (let round = 1; round <= options.rssRounds; round++) {
    for (let i = 0; i < pair.length; i++) {
      const system = pair[(i + round - 1) % pair.length]!;
      const sequence = afterSequence + runs.length + 1;
      const run = await measure(
        { round, sequence, system, mode: close },
        measured,
        clockTicks,
      );
      runs.push(run);
      console.log(
        `[rss ${round}/${options.rssRounds}] ${system.name.padEnd(15)} ` +
          `RSS ${run.rssMiB ?? "?"} MiB after ${options.rssSeconds} s of ` +
          `close load (${formatInteger(run.wrk.requestsPerSecond)} req/s, ` +
          `errors ${formatErrors(run.wrk.errors)})`,
      );
    }
  }
  return runs;
}

/** The section's table of the phase (nothing when it did not run). */
export function rssPhaseLines(
  runs: RunRecord[],
  config: BenchConfig,
  labels: Map<string, string>,
): string[] {
  if (runs.length === 0) return [];
  const [system, baseline] = RSS_SYSTEMS;
  const base = median(rssOf(runs, baseline));
  const lines = [
    "",
    `### RSS after ${config.rssSeconds} s of \`Connection: close\` load`,
    "",
    `${config.rssRounds} round(s), ${labels.get(system)} and ` +
    `${labels.get(baseline)} alternating (the first of the two changes ` +
    `every round), each a fresh server under the close-mode wrk load for ` +
    `${config.rssSeconds} s (${config.warmupSeconds} s warm-up, then ` +
    `${(config.rssSeconds ?? 0) - config.warmupSeconds} s measured); its ` +
    "VmRSS (/proc/<pid>/status) read right after the load.",
    "",
    "| System | RSS after (MiB), median | samples (MiB) | ÷ Deno.serve | req/s, median | errors |",
    "| --- | --: | --- | --: | --: | --: |",
  ];
  for (const name of RSS_SYSTEMS) {
    const own = runs.filter((r) => r.system === name);
    const rss = median(rssOf(runs, name));
    lines.push(
      `| ${labels.get(name)} | ${rss.toFixed(1)} | ${
        own.map((r) => r.rssMiB ?? "?").join(", ")
      } | ${(rss / base).toFixed(2)}× | ${
        formatInteger(median(own.map((r) => r.wrk.requestsPerSecond)))
      } | ${formatErrors(sumErrors(own.map((r) => r.wrk.errors)))} |`,
    );
  }
  return lines;
}
