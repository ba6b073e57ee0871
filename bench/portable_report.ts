/**
 * The portable modes' restarts (issue 17), from a peers bench run that
 * measured ours in the posix and the windows mode beside Deno.serve killed
 * and started again: failed requests per restart, and the refusal window of
 * each restart (from the first refused /pid probe after the trigger to the
 * first one the next process answered).
 *
 *   deno run -A bench/restart_bench.ts --quick --restarts 10 --soak 0 \
 *     --systems deno-kill,ours-posix,ours-windows --out DIR --no-markdown
 *   deno run -A bench/portable_report.ts DIR/restart.json [--markdown]
 *
 * `--markdown` writes the portable-bench section of BENCHMARKS.md.
 *
 * @module
 */

import { median, round } from "./lib/stats.ts";
import { sectionMarkers, writeSection } from "./lib/markdown_section.ts";
import type { RestartReport } from "./restart/records.ts";
import type { RestartRecord } from "./restart/restart.ts";

const MARKERS = sectionMarkers("portable-bench");
const MARKDOWN_PATH = decodeURIComponent(
  new URL("../BENCHMARKS.md", import.meta.url).pathname,
);

/**
 * The ms during which new connections were refused in one restart: from
 * the first probe that failed to the first answer of another pid; 0 when no
 * probe failed.
 */
export function refusalWindowMs(record: RestartRecord): number | null {
  if (record.handoverMs === null) return null;
  const first = record.probeErrors[0];
  return first === undefined ? 0 : round(record.handoverMs - first.atMs);
}

/** The section's markdown for a peers report. */
export function portableSection(report: RestartReport, source: string): string {
  const rows = [
    "| System | Mode | Restarts | Failed requests per restart | Refusal window p50 / max (ms) | Handover p50 (ms) |",
    "| --- | --- | ---: | ---: | ---: | ---: |",
  ];
  for (const system of report.systems) {
    for (const mode of system.modes) {
      const restart = mode.restart;
      if (!restart) continue;
      const windows = restart.restarts.map(refusalWindowMs).filter((
        ms,
      ): ms is number => ms !== null);
      rows.push(
        `| ${system.spec.label} | ${mode.mode} | ${restart.completed} | ${
          round(restart.failures.perRestart)
        } | ${round(median(windows))} / ${
          windows.length ? Math.max(...windows) : NaN
        } | ${restart.handover.p50} |`,
      );
    }
  }
  return `## Outside Linux: the posix and windows modes (\`bench/portable_report.ts\`)

Measured on Linux (${report.date}, ${String(report.machine.cpuModel)}, ${
    String(report.machine.cpus)
  } CPUs),
through \`GRACEFUL_PORTABLE\`, in one peers bench run (\`bench/restart_bench.ts --quick --restarts 10
--soak 0 --systems deno-kill,ours-posix,ours-windows\`, then
\`bench/portable_report.ts ${source} --markdown\`): wrk with 50
connections pinned to CPU 1, the servers to CPU 0, a hello-world app. The
posix mode restarts on SIGUSR2 with the fds passed (node engine); the windows
mode serves with plain Deno.serve on the address each process opens itself and
restarts through the admin API as a complete one; Deno.serve is killed and
started again. The refusal window runs from the first refused /pid probe
(a new connection every 5 ms) to the first answer of the next process. In a
refusal window wrk reconnects in a tight loop, so its failure count there is
connection attempts, not users' requests: compare the windows.

${rows.join("\n")}

${ratios(report).join("\n")}
`;
}

/** Per mode: the windows mode's refusal window ÷ Deno.serve kill + start's. */
function ratios(report: RestartReport): string[] {
  const p50 = (id: string, mode: string) => {
    const record = report.systems.find((s) => s.spec.id === id)?.modes
      .find((m) => m.mode === mode)?.restart;
    if (!record) return NaN;
    return median(
      record.restarts.map(refusalWindowMs).filter((ms): ms is number =>
        ms !== null
      ),
    );
  };
  const cold = (id: string) =>
    report.systems.find((s) => s.spec.id === id)?.coldStartMedianMs;
  return ["keep-alive", "close"].map((mode) =>
    `- ${mode}: the windows mode's refusal window is ${
      round(p50("ours-windows", mode) / p50("deno-kill", mode), 2)
    }× Deno.serve kill + start's (p50); the posix mode refused ${
      p50("ours-posix", mode)
    } ms.`
  ).concat(
    `- A cold start (spawn to the first 200): ours ${
      cold("ours-windows")
    } ms, Deno.serve ${cold("deno-kill")} ms: the windows mode refuses while ` +
      "the next process starts (spawn, module load, listen), while the " +
      "requests in flight finish in the old one (killed, Deno.serve cuts them).",
  );
}

if (import.meta.main) {
  const path = Deno.args.find((a) => !a.startsWith("--"));
  if (path === undefined) {
    console.error("usage: bench/portable_report.ts PEERS.json [--markdown]");
    Deno.exit(2);
  }
  const report = JSON.parse(Deno.readTextFileSync(path)) as RestartReport;
  const section = portableSection(report, path);
  console.log(section);
  if (Deno.args.includes("--markdown")) {
    await writeSection(MARKDOWN_PATH, section, MARKERS);
  }
}
