/**
 * The serve-bench section of BENCHMARKS.md, rendered from a report.
 *
 * @module
 */

import {
  type SectionMarkers,
  sectionMarkers,
} from "../lib/markdown_section.ts";
import type { BenchReport, ModeSpec, SystemSpec } from "./records.ts";
import { rssPhaseLines } from "./rss_phase.ts";
import { COMPARISONS, formatErrors, formatInteger } from "./summary.ts";

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
      "| System | req/s | req/s range | CPU µs/req | server CPU | wrk core | p50 / p99 latency (ms) | RSS after (MiB) | errors |",
    );
    lines.push("| --- | --: | --: | --: | --: | --: | --: | --: | --: |");
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
          `${formatMs(s.rssMiB?.median ?? NaN)} | ${formatErrors(s.errors)} |`,
      );
    }
  }
  lines.push("");
  lines.push("### Ratios");
  lines.push("");
  lines.push(
    "Throughput = system req/s ÷ baseline req/s. CPU efficiency = baseline " +
      "µs/req ÷ system µs/req (above 1× = cheaper per request than the " +
      "baseline). RSS = system ÷ baseline VmRSS right after the load " +
      "(below 1× = smaller). All from the medians above.",
  );
  lines.push("");
  const header = ["Comparison"];
  for (const mode of modes) {
    header.push(
      `${mode.label} throughput`,
      `${mode.label} CPU efficiency`,
      `${mode.label} RSS`,
    );
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
        formatRatio(ratio?.rss ?? null),
      );
    }
    lines.push(`| ${cells.join(" | ")} |`);
  }
  lines.push(...rssPhaseLines(report.rssRuns ?? [], config, labels));
  if (report.coldStarts?.length > 0) {
    lines.push("");
    lines.push("### Cold start");
    lines.push("");
    lines.push(
      "Spawn → first 200 on `GET /` (a new connection, polled every 1 ms), " +
        "no load, the systems alternating sample by sample; the server " +
        `pinned to CPU ${config.serverCpu}.`,
    );
    lines.push("");
    lines.push(
      "| System | started as | median ms | ÷ Deno.serve | samples (ms) |",
    );
    lines.push("| --- | --- | --: | --: | --- |");
    const base = report.coldStarts.find((c) => c.system === "deno_serve");
    for (const c of report.coldStarts) {
      lines.push(
        `| ${c.label} | \`${c.command}\` | ${formatMs(c.medianMs)} | ${
          formatRatio(base ? c.medianMs / base.medianMs : null)
        } | ${c.samplesMs.join(", ")} |`,
      );
    }
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
