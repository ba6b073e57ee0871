/**
 * The restart-bench section of BENCHMARKS.md: targets, tables, method and
 * reproduction, rendered from a report.
 *
 * @module
 */

import { formatMarkdown } from "../lib/deno_fmt.ts";
import {
  type SectionMarkers,
  sectionMarkers,
} from "../lib/markdown_section.ts";
import type { ModeName, RestartReport, SteadyRecord } from "./records.ts";
import { medianSteps, type Steps } from "./steps.ts";
import { fmt, modeOf, ratio, runOf } from "./targets.ts";

/** The markers around the generated section in BENCHMARKS.md. */
export const MARKERS: SectionMarkers = sectionMarkers("restart-bench");

/** Where the section links to. */
export interface SectionPaths {
  jsonPath: string;
  timelineSvg: string;
  soakSvg: string;
}

const MODE_TITLES: Record<ModeName, string> = {
  "keep-alive": "keep-alive",
  "close": "`Connection: close`",
};

function steadyTable(report: RestartReport): string[] {
  const lines = [
    "| system | cold start, median ms | req/s keep-alive | CPU µs/req keep-alive | req/s close | CPU µs/req close | server's CPU, % of its core, keep-alive / close | RSS MiB keep-alive / close (PSS) | processes |",
    "| --- | --: | --: | --: | --: | --: | --: | --: | --- |",
  ];
  for (const system of report.systems) {
    const ka = modeOf(system, "keep-alive")?.steady;
    const close = modeOf(system, "close")?.steady;
    const memory = (m: SteadyRecord["memory"] | undefined) =>
      m ? `${fmt(m.rssKiB / 1024, 1)} (${fmt(m.pssKiB / 1024, 1)})` : "—";
    const name = system.spec.ours
      ? `**${system.spec.label}**`
      : system.spec.label;
    lines.push(
      `| ${name} | ${fmt(system.coldStartMedianMs)} | ${fmt(ka?.rps)} | ${
        fmt(ka?.cpuUsPerRequest, 1)
      } | ${fmt(close?.rps)} | ${fmt(close?.cpuUsPerRequest, 1)} | ${
        fmt(ka?.serverCpuPercent)
      } / ${fmt(close?.serverCpuPercent)} | ${memory(ka?.memory)} / ${
        memory(close?.memory)
      } | ${system.spec.processes} |`,
    );
  }
  return lines;
}

function restartTable(report: RestartReport, mode: ModeName): string[] {
  const lines = [
    "| system | restarts | failed requests (connect / read / write / timeout / non-2xx) | failed per restart | lost (never answered) | window ÷ steady, mean (worst) | worst 100 ms ÷ steady | longest gap, ms | handover p50 / p95 / max, ms | old pid gone, p50 ms | processes left | wrk latency p50 / p99, ms | other processes, ≥ % of a core |",
    "| --- | --: | --: | --: | --: | --: | --: | --: | --: | --: | --: | --: | --: |",
  ];
  for (const system of report.systems) {
    const run = runOf(system, mode);
    const name = system.spec.ours
      ? `**${system.spec.label}**`
      : system.spec.label;
    if (run === null) {
      const error = modeOf(system, mode)?.error ?? system.error ?? "no run";
      lines.push(
        `| ${name} | failed: ${error.split("\n")[0]} | | | | | | | | | | | |`,
      );
      continue;
    }
    const f = run.failures;
    const a = run.analysis;
    lines.push(
      `| ${name} | ${run.completed} of ${run.restarts.length} | ${
        fmt(f.total)
      } (${f.connect} / ${f.read} / ${f.write} / ${f.timeout} / ${f.non2xx}) | ${
        fmt(f.perRestart, 1)
      } | ${fmt(a.lost.total)} | ${ratio(a.windowRatio)} (${
        ratio(a.worstWindowRatio)
      }) | ${ratio(a.worst100msRatio)} | ${fmt(a.longestGap.ms)} | ${
        fmt(run.handover.p50)
      } / ${fmt(run.handover.p95)} / ${fmt(run.handover.max)} | ${
        fmt(run.oldExit.p50)
      } | ${fmt(run.processesLeft)} | ${fmt(run.wrk.latencyMs.p50, 2)} / ${
        fmt(run.wrk.latencyMs.p99, 2)
      } | ${fmt(run.foreignCpuPercent)} |`,
    );
  }
  return lines;
}

function handoverTable(report: RestartReport): string[] {
  const lines = [
    "| system | cold start, median ms (samples) | idle handover p50 | keep-alive handover p50 | close handover p50 |",
    "| --- | --: | --: | --: | --: |",
  ];
  for (const system of report.systems) {
    const cold = system.coldStartMedianMs;
    const cell = (ms: number | undefined) =>
      ms === undefined || !isFinite(ms)
        ? "—"
        : `${fmt(ms)} ms (${fmt(ms / cold, 2)}×)`;
    lines.push(
      `| ${
        system.spec.ours ? `**${system.spec.label}**` : system.spec.label
      } | ${fmt(cold)} (${
        system.coldStartsMs.map((v) => fmt(v)).join(", ")
      }) | ${cell(system.idleHandover.p50)} | ${
        cell(runOf(system, "keep-alive")?.handover.p50)
      } | ${cell(runOf(system, "close")?.handover.p50)} |`,
    );
  }
  return lines;
}

/**
 * Ours, step by step: p50 ms after the spawn (cold) or the trigger, per
 * system and phase; idle and cold runs are traced, loaded ones have the log
 * milestones only.
 */
function stepsTable(report: RestartReport): string[] {
  const columns: { label: string; steps: Steps }[] = [];
  const engines = ["ours-native", "ours-node"];
  for (
    const system of report.systems.filter((s) => engines.includes(s.spec.id))
  ) {
    const name = system.spec.label.replace("ours, ", "");
    const phases: [string, Steps[]][] = [
      ["cold start", system.coldSteps ?? []],
      ["idle", system.idleRestarts.map((r) => r.steps ?? {})],
      ...system.modes.map((m): [string, Steps[]] => [
        m.mode,
        m.restart?.restarts.map((r) => r.steps ?? {}) ?? [],
      ]),
    ];
    for (const [phase, list] of phases) {
      columns.push({ label: `${name}, ${phase}`, steps: medianSteps(list) });
    }
  }
  const names = [...new Set(columns.flatMap((c) => Object.keys(c.steps)))];
  if (names.length === 0) return [];
  const order = (name: string) =>
    Math.min(...columns.map((c) => c.steps[name] ?? Infinity));
  names.sort((a, b) => order(a) - order(b));
  return [
    `| step | ${columns.map((c) => c.label).join(" | ")} |`,
    `| --- | ${columns.map(() => "--:").join(" | ")} |`,
    ...names.map((name) =>
      `| ${name} | ${columns.map((c) => fmt(c.steps[name], 1)).join(" | ")} |`
    ),
  ];
}

function oddities(report: RestartReport): string[] {
  const notes: string[] = [...report.notes];
  for (const failure of report.soak?.restartErrors ?? []) {
    notes.push(
      `soak, restart ${
        failure.index + 1
      }: ${failure.error}. The server's last lines then:\n\n` +
        "  ```\n" +
        failure.outputTail.slice(-12).map((line) => `  ${line}`).join("\n") +
        "\n  ```",
    );
  }
  for (const system of report.systems) {
    for (const mode of system.modes) {
      for (const failure of mode.restart?.restartErrors ?? []) {
        notes.push(
          `${system.spec.label}, ${mode.mode}, restart ${
            failure.index + 1
          }: ${failure.error}. Its last lines then:\n\n` +
            "  ```\n" +
            failure.outputTail.slice(-12).map((line) => `  ${line}`).join(
              "\n",
            ) +
            "\n  ```",
        );
      }
    }
  }
  for (const system of report.systems) {
    if (system.error) notes.push(`${system.spec.label}: ${system.error}`);
    for (const mode of system.modes) {
      if (mode.error) {
        notes.push(`${system.spec.label}, ${mode.mode}: ${mode.error}`);
      }
      const steady = mode.steady;
      if (steady && steady.clientCorePercent > 95) {
        notes.push(
          `${system.spec.label}, ${mode.mode}: wrk's core was ${
            fmt(steady.clientCorePercent)
          }% busy in the steady run while the server used ${
            fmt(steady.serverCpuPercent)
          }% of its core: the client is the limit, so req/s understates this server (CPU µs/req is still valid).`,
        );
      }
      if (steady && steady.foreignCpuPercent > 10) {
        notes.push(
          `${system.spec.label}, ${mode.mode}: other processes used ${
            fmt(steady.foreignCpuPercent)
          }% (at least) of a core during the steady run.`,
        );
      }
      const run = mode.restart;
      if (run && run.foreignCpuPercent > 10) {
        notes.push(
          `${system.spec.label}, ${mode.mode}: other processes used ${
            fmt(run.foreignCpuPercent)
          }% (at least) of a core during the restart run.`,
        );
      }
      if (run?.error) {
        notes.push(`${system.spec.label}, ${mode.mode}: ${run.error}`);
      }
      const statuses = Object.entries(run?.analysis.statuses ?? {});
      if (statuses.length > 0) {
        notes.push(
          `${system.spec.label}, ${mode.mode}: non-2xx statuses ${
            statuses.map(([s, n]) => `${s} × ${n}`).join(", ")
          }.`,
        );
      }
    }
    if (system.killedAtStop.length > 0) {
      notes.push(
        `${system.spec.label}: ${system.killedAtStop.length} process(es) did not stop within 10 s of the stop signal and were killed.`,
      );
    }
    for (const line of system.notable.slice(0, 3)) {
      notes.push(`${system.spec.label} printed: \`${line.slice(0, 160)}\``);
    }
  }
  return notes;
}

/** Renders the section (without the markers). */
export async function renderSection(
  report: RestartReport,
  paths: SectionPaths,
): Promise<string> {
  const c = report.config;
  const m = report.machine as Record<string, string | number | boolean>;
  const lines: string[] = [];
  lines.push("## Zero-downtime restarts under load: ours against the peers");
  lines.push("");
  lines.push(
    `Generated by \`bench/restart_bench.ts\` (${
      c.quick ? "quick" : "full"
    } run, ${report.date.slice(0, 10)}, ${
      fmt(report.durationS / 60, 1)
    } minutes); raw data in \`${paths.jsonPath}\`. Do not edit by hand: run the bench again.`,
  );
  lines.push("");
  const missed = report.targets.filter((t) => !t.pass);
  lines.push(
    `**Targets: ${
      report.targets.length - missed.length
    } of ${report.targets.length} met.**`,
  );
  lines.push("");
  lines.push("| target | measured | verdict |");
  lines.push("| --- | --- | --- |");
  for (const t of report.targets) {
    lines.push(`| ${t.name} | ${t.value} | ${t.pass ? "pass" : "**MISS**"} |`);
  }
  lines.push("");
  if (missed.length > 0) {
    lines.push("Why the misses:");
    lines.push("");
    for (const t of missed) lines.push(`- ${t.name}: ${t.reason}`);
    lines.push("");
  }
  lines.push(`![timeline](${paths.timelineSvg})`);
  lines.push("");
  lines.push(
    `The timeline ([${paths.timelineSvg}](${paths.timelineSvg})): req/s in 100 ms buckets, one line per system, t = 0 at each system's first restart; under each panel one lane per system with its triggers (▼), the handover (bar: trigger → another pid answers \`/pid\`), failed \`/pid\` probes (red bars: the port refused or reset) and the 100 ms buckets where wrk's requests were lost or answered non-2xx (red dots).`,
  );
  lines.push("");
  lines.push("### Steady state (no restarts)");
  lines.push("");
  lines.push(
    `Plain wrk (no Lua), ${c.steadyS} s after ${c.warmupS} s of warm-up, on the instance that is then restarted. CPU µs/req: utime + stime of every process of the system (children included), from /proc, before and after, ÷ requests. RSS: the sum over those processes near the end of the run (PSS in brackets: shared pages split). Server's CPU: its CPU time ÷ the run's wall time; well under 100% means it did not get its core (other processes on the machine, or the client was the limit), so its req/s is low while its CPU µs/req still holds.`,
  );
  lines.push("");
  lines.push(...steadyTable(report));
  lines.push("");
  for (const mode of ["keep-alive", "close"] as ModeName[]) {
    lines.push(`### Restarts under load, ${MODE_TITLES[mode]}`);
    lines.push("");
    lines.push(...restartTable(report, mode));
    lines.push("");
  }
  lines.push(
    "Failed requests: wrk's socket errors plus non-2xx answers. For the kill-and-start baseline most are write errors: while the port is closed, wrk's non-blocking connect is refused and the refusal surfaces on its first write; wrk reconnects at once, so that count measures how long the port was closed more than how many requests a client would lose (its read errors are the requests cut by SIGTERM). Window: the second after each trigger, its responses per second ÷ the steady rate of the same wrk run (the median of its 100 ms buckets after the first second that lie outside every window); worst 100 ms: the lowest 100 ms inside any window ÷ that steady rate. Longest gap: the longest time with no response at all, over the whole run.",
  );
  lines.push("");
  lines.push("### Handover latency against a cold start");
  lines.push("");
  lines.push(
    "Cold start: spawn of the start command → first 200 on `GET /` (new connection, polled every 2 ms), idle. Handover: trigger → first `GET /pid` on a new connection answered by another pid (polled every 5 ms). For pm2 the cold start includes starting its daemon; for nginx the new generation is the new worker.",
  );
  lines.push("");
  lines.push(...handoverTable(report));
  lines.push("");
  const steps = stepsTable(report);
  if (steps.length > 0) {
    lines.push("### Where the time goes (ours)");
    lines.push("");
    lines.push(
      "p50 ms after the spawn (cold start) or the trigger (handovers) at which each step was printed: `old:` by the serving generation, `new:` by the next one. Cold starts and idle restarts run with `GRACEFUL_TRACE=1` (every step of src/restart/trace.ts); the loaded runs, on a fresh instance without it, have the log milestones (log) only (ms resolution).",
    );
    lines.push("");
    lines.push(...steps);
    lines.push("");
  }
  if (report.soak !== null) {
    const s = report.soak;
    lines.push("### Soak: ours (native engine), restart after restart");
    lines.push("");
    lines.push(`![soak](${paths.soakSvg})`);
    lines.push("");
    lines.push(
      `${s.completed} restarts (SIGUSR2, one every ≥ ${
        c.soakIntervalMs / 1000
      } s, each after the previous old generation had exited) under wrk keep-alive load. Each generation's fd count (/proc/<pid>/fd) and RSS (VmRSS) are read just before the next trigger.`,
    );
    lines.push("");
    lines.push("| | value |");
    lines.push("| --- | --: |");
    lines.push(
      `| restarts completed | ${s.completed} of ${c.soakRestarts} |`,
    );
    lines.push(
      `| failed requests (connect / read / write / timeout / non-2xx) | ${s.failures.total} (${s.failures.connect} / ${s.failures.read} / ${s.failures.write} / ${s.failures.timeout} / ${s.failures.non2xx}) |`,
    );
    lines.push(`| requests completed | ${fmt(s.wrk.requests)} |`);
    lines.push(
      `| other processes on the machine, at least % of a core | ${
        fmt(s.foreignCpuPercent)
      } |`,
    );
    lines.push(
      `| window ÷ steady, mean (worst) | ${ratio(s.analysis.windowRatio)} (${
        ratio(s.analysis.worstWindowRatio)
      }) |`,
    );
    lines.push(
      `| handover p50 / p95 / max | ${fmt(s.handover.p50)} / ${
        fmt(s.handover.p95)
      } / ${fmt(s.handover.max)} ms |`,
    );
    lines.push(
      `| fds: generation 1 / 2 / last; min–max over generations 2… | ${
        s.samples[0]?.fds ?? "—"
      } / ${s.fds.first} / ${s.fds.last}; ${s.fds.min}–${s.fds.max} |`,
    );
    lines.push(
      `| fds that are not sockets: generation 2 / last; min–max | ${s.nonSocketFds.first} / ${s.nonSocketFds.last}; ${s.nonSocketFds.min}–${s.nonSocketFds.max} |`,
    );
    lines.push(
      `| RSS: min–max; median of the first / last quarter; slope | ${s.rssMiB.min}–${s.rssMiB.max} MiB; ${s.rssMiB.firstQuarterMedian} / ${s.rssMiB.lastQuarterMedian} MiB; ${s.rssMiB.slopePer100} MiB per 100 generations |`,
    );
    lines.push("");
  }
  lines.push("### Method");
  lines.push("");
  lines.push(
    `- Every system is started by the bench, pinned to CPU ${c.serverCpu} (\`taskset -c ${c.serverCpu}\`; every later generation inherits it); wrk runs on CPU ${c.clientCpu} (\`taskset -c ${c.clientCpu} wrk -t${c.threads} -c${c.connections}\`), and so does the bench itself (\`taskset -a -p\`). The bench is a child subreaper (\`prctl(PR_SET_CHILD_SUBREAPER)\`), so every generation, daemon and worker stays below it: a system's processes are the bench's descendants less its tools, and the bench kills all of them (by pid) on exit, error or signal.`,
  );
  lines.push(
    `- Per system: ${c.coldStarts} cold starts (the last one is the instance restarted idle), ${c.idleRestarts} restart(s) without load (ours: with \`GRACEFUL_TRACE=1\`; then a fresh instance without it takes the load), then per mode (keep-alive, then \`Connection: close\`): ${c.warmupS} s warm-up, the ${c.steadyS} s steady run, and the restart run: wrk with \`bench/lib/timeline.lua\` for ${
      c.leadMs / 1000
    } s, then ${c.restarts} restarts, each at least ${
      c.intervalMs / 1000
    } s after the previous trigger and only once the previous old generation has exited, then ${
      c.tailMs / 1000
    } s more; wrk is stopped with SIGINT (it then prints its summary and runs the Lua \`done()\`).`,
  );
  lines.push(
    "- A restart: `GET /pid` on a new connection gives the serving pid; the trigger (table below) is sent; `GET /pid` on a new connection every 5 ms until another pid answers: that is the handover latency. Then the bench waits for the trigger command to end and for the old pid to exit.",
  );
  lines.push(
    "- The timeline is recorded inside wrk: wrk 4.1's Lua has no wall clock (`os.time()` has 1 s resolution and `os.clock()` is CPU time), so `timeline.lua` reads `clock_gettime(CLOCK_REALTIME)` through LuaJIT's FFI and counts, per 10 ms bucket, the requests written (`request()`), the responses read (`response()`) and the non-2xx ones; the bench stamps its triggers with the same clock. wrk's own totals (socket errors) come from its summary. A second load generator for the timeline was rejected: it would share CPU 1 with wrk and change what wrk measures. Defining `request()`/`response()` costs wrk some throughput, so the restart runs' steady rate is below the plain steady run's for the fastest servers; each window ratio uses its own run's steady rate.",
  );
  lines.push(
    "- Ours (native engine) is also measured over HTTPS (`--cert`/`--key`, a self-signed certificate made with openssl for the run; wrk on `https://`, the `/pid` probes over TLS) and over a unix socket only (`--listen unix:PATH`): wrk cannot reach a unix socket, so there `bench/lib/unix_load.ts` (Deno, one process pinned like wrk, the same connection count, one request outstanding per connection) makes the load and keeps the same timeline (requests written, answered and non-2xx per 10 ms, with `performance.timeOrigin + performance.now()`), and the `/pid` probes go over the socket. Its failed requests are its connect and read errors plus non-2xx answers; its req/s is its own, not wrk's, and it measures no latencies (0 in the tables), so compare its window ratio, not its rate or latency.",
  );
  lines.push(
    "- Lost requests are located in time without an error callback: a connection has at most one request outstanding, so (written − answered) rising above the connection count marks a request that was written and never answered. Connect errors happen before `request()` and cannot be placed this way; the failed `/pid` probes show when a port refused.",
  );
  lines.push("");
  lines.push("| system | trigger | started as |");
  lines.push("| --- | --- | --- |");
  for (const system of report.systems) {
    const command = system.command.join(" ");
    lines.push(
      `| ${system.spec.label} | ${system.spec.trigger} | \`${command}\` |`,
    );
  }
  lines.push("");
  lines.push(
    "The hello servers are ours, each with `/` (Hello!), `/pid` and `/sleep?ms=N` (nginx: `/` and `/pid`, `return 200` with `$pid`): `bench/restart/apps/` (Go: the tableflip upgrade loop on SIGHUP with `upg.Exit()` then `http.Server.Shutdown`; `gracehttp.Serve`), nginx's configuration is generated into the run's temporary directory (own prefix, pid file, logs; `daemon off`, `worker_processes 1`), pm2 runs one `node:http` worker in cluster mode (`instances: 1`, the server has one core) with its own `PM2_HOME`, and the worker closes its server on SIGINT, as pm2 documents.",
  );
  lines.push("");
  lines.push("### Reproduce");
  lines.push("");
  lines.push("```sh");
  lines.push(...report.reproduce);
  lines.push("```");
  lines.push("");
  lines.push(
    `Machine: ${m.cpuModel}, ${m.cpus} CPUs${
      m.virtualized ? " (virtual machine)" : ""
    }, ${m.memoryGiB} GiB; Linux ${m.kernel}; Deno ${m.deno}; ${m.wrk}; ${
      Object.entries(report.versions).map(([k, v]) => `${k} ${v}`).join("; ")
    }; commit ${m.commit}.`,
  );
  lines.push("");
  const notes = oddities(report);
  if (notes.length > 0) {
    lines.push("### Anything odd");
    lines.push("");
    for (const note of notes) lines.push(`- ${note}`);
    lines.push("");
  }
  return await formatMarkdown(lines.join("\n"));
}
