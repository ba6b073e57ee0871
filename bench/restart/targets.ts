/**
 * The restart bench's targets, checked against a report, with the reason for
 * each miss; and the small formatters the report shares with them.
 *
 * @module
 */

import type {
  ModeName,
  ModeRecord,
  RestartReport,
  RestartRunRecord,
  SystemRecord,
  TargetResult,
} from "./records.ts";

const TARGET_COLD_RATIO = 1.2;
const TARGET_WINDOW_RATIO = 0.8;
/** The engines the window, p95 and processes-left targets are for. */
const ENGINES: string[] = ["ours-native", "ours-node"];
/**
 * Ours over HTTPS and a unix socket: the failed-requests and window-against-
 * the-peers targets only (their handover is the native engine's, above).
 */
const TRANSPORTS: string[] = ["ours-native-tls", "ours-native-unix"];

/** A number for a table ("—" when unknown). */
export function fmt(value: number | null | undefined, digits = 0): string {
  if (value === null || value === undefined || !isFinite(value)) return "—";
  return value.toLocaleString("en-US", {
    minimumFractionDigits: digits,
    maximumFractionDigits: digits,
  });
}

/** A ratio with 2 digits. */
export function ratio(value: number | null | undefined): string {
  return fmt(value, 2);
}

/** A system's record of one mode. */
export function modeOf(
  system: SystemRecord,
  mode: ModeName,
): ModeRecord | undefined {
  return system.modes.find((m) => m.mode === mode);
}

/** A system's restart run in one mode. */
export function runOf(
  system: SystemRecord,
  mode: ModeName,
): RestartRunRecord | null {
  return modeOf(system, mode)?.restart ?? null;
}

/** Checks the issue's targets against a report. */
export function evaluateTargets(report: RestartReport): TargetResult[] {
  const targets: TargetResult[] = [];
  const ours = report.systems.filter((s) => s.spec.ours);
  const peers = report.systems.filter((s) => !s.spec.ours);
  for (const system of ours) {
    for (const mode of ["keep-alive", "close"] as ModeName[]) {
      const run = runOf(system, mode);
      const name = `${system.spec.label}, ${mode}: 0 failed requests`;
      if (run === null) {
        targets.push({
          name,
          value: "no data",
          pass: false,
          reason: modeOf(system, mode)?.error ?? system.error ??
            "the run did not happen",
        });
        continue;
      }
      const f = run.failures;
      const pass = f.total === 0 && run.completed === run.restarts.length &&
        run.error === null;
      targets.push({
        name,
        value: `${f.total} in ${run.completed} restarts`,
        pass,
        reason: pass ? "" : failureReason(run),
      });
    }
  }
  if (report.soak !== null) {
    const soak = report.soak;
    const f = soak.failures;
    targets.push({
      name: "soak (ours, native, keep-alive): 0 failed requests",
      value: `${f.total} in ${soak.completed} restarts`,
      pass: f.total === 0,
      reason: f.total === 0 ? "" : failureText(f),
    });
    const asked = report.config.soakRestarts;
    const failed = soak.restartErrors ?? [];
    targets.push({
      name: "soak: every restart completes",
      value:
        `${soak.completed} of ${soak.restarts.length} tried (${asked} asked)`,
      pass: soak.completed === asked && failed.length === 0,
      reason: failed.length === 0
        ? soak.error ?? ""
        : `${failed.length} restart(s) went wrong, the first: restart ${
          failed[0].index + 1
        }: ${
          failed[0].error
        } (the server's output around it is under "Anything odd")`,
    });
  }
  for (const mode of ["keep-alive", "close"] as ModeName[]) {
    const peerRatios = peers.map((p) => ({
      label: p.spec.label,
      ratio: runOf(p, mode)?.analysis.windowRatio ?? NaN,
    })).filter((p) => isFinite(p.ratio)).sort((a, b) => b.ratio - a.ratio);
    const best = peerRatios[0];
    for (const system of ours) {
      const value = runOf(system, mode)?.analysis.windowRatio ?? NaN;
      const name =
        `${system.spec.label}, ${mode}: restart-window throughput ÷ steady ≥ every peer's`;
      if (best === undefined || !isFinite(value)) {
        targets.push({ name, value: "no data", pass: false, reason: "" });
        continue;
      }
      const beaten = peerRatios.filter((p) => p.ratio > value);
      const pass = beaten.length === 0;
      targets.push({
        name,
        value: `${ratio(value)} vs best peer ${best.label} ${
          ratio(best.ratio)
        }`,
        pass,
        reason: pass
          ? ""
          : `${
            beaten.map((p) => `${p.label} ${ratio(p.ratio)}`).join(", ")
          } kept more throughput in the second after the trigger. ${
            windowReason(system, mode)
          }`,
      });
    }
  }
  for (const system of ours) {
    if (TRANSPORTS.includes(system.spec.id)) continue;
    const cold = system.coldStartMedianMs;
    for (const mode of ["keep-alive", "close"] as ModeName[]) {
      const run = runOf(system, mode);
      const ms = run?.handover.p50 ?? NaN;
      if (!ENGINES.includes(system.spec.id)) {
        // The portable modes: the p50 target only (bench/portable_report.ts).
        targets.push(coldTarget(system, mode, "p50", ms, cold));
        continue;
      }
      const window = run?.analysis.windowRatio ?? NaN;
      targets.push({
        name:
          `${system.spec.label}, ${mode}: restart-window throughput ÷ steady ≥ ${TARGET_WINDOW_RATIO}`,
        value: ratio(window),
        pass: window >= TARGET_WINDOW_RATIO,
        reason: window >= TARGET_WINDOW_RATIO ? "" : windowReason(system, mode),
      });
      for (const p of ["p50", "p95"] as const) {
        targets.push(
          coldTarget(system, mode, p, run?.handover[p] ?? NaN, cold),
        );
      }
      const left = run?.processesLeft;
      if (left === undefined) continue; // not counted by that run
      targets.push({
        name:
          `${system.spec.label}, ${mode}: 1 process left after the restarts`,
        value: fmt(left),
        pass: left === 1,
        reason: left === 1 ? "" : 'see the processes under "Anything odd"',
      });
    }
  }
  if (!report.config.quick) {
    for (const system of report.systems) {
      const counts = system.modes.map((m) => m.restart?.completed ?? 0);
      const pass = counts.length === 2 && counts.every((c) => c >= 20);
      if (!pass) {
        targets.push({
          name: `${system.spec.label}: at least 20 restarts per mode`,
          value: counts.join(" / "),
          pass,
          reason: system.error ??
            system.modes.map((m) => m.error ?? m.restart?.error).filter(
              Boolean,
            ).join("; "),
        });
      }
    }
  }
  if (report.soak !== null) {
    const s = report.soak;
    targets.push({
      name: "soak: fd count flat across generations",
      value:
        `all fds ${s.fds.min}–${s.fds.max} (generation 2: ${s.fds.first}, last: ${s.fds.last}); not sockets ${s.nonSocketFds.min}–${s.nonSocketFds.max}`,
      pass: s.fdsFlat,
      reason: s.fdsFlat
        ? ""
        : "the fd count changed from generation to generation (see the soak table and chart)",
    });
    targets.push({
      name: "soak: RSS flat across generations",
      value: `first-quarter median ${s.rssMiB.firstQuarterMedian} MiB, ` +
        `last-quarter ${s.rssMiB.lastQuarterMedian} MiB, slope ${s.rssMiB.slopePer100} MiB/100 gen.`,
      pass: s.rssFlat,
      reason: s.rssFlat
        ? ""
        : "RSS of later generations is > 10% above the early ones",
    });
  }
  return targets;
}

function coldTarget(
  system: SystemRecord,
  mode: ModeName,
  p: "p50" | "p95",
  ms: number,
  cold: number,
): TargetResult {
  const value = ms / cold;
  const pass = value <= TARGET_COLD_RATIO;
  return {
    name:
      `${system.spec.label}, ${mode}: handover ${p} ≤ ${TARGET_COLD_RATIO}× its cold start`,
    value: `${fmt(value, 2)}× (${fmt(ms)} ÷ ${fmt(cold)} ms)`,
    pass,
    reason: pass ? "" : handoverReason(system, ms),
  };
}

function failureText(f: RestartRunRecord["failures"]): string {
  return `connect ${f.connect}, read ${f.read}, write ${f.write}, timeout ${f.timeout}, non-2xx ${f.non2xx}`;
}

function failureReason(run: RestartRunRecord): string {
  const parts = [failureText(run.failures)];
  if (run.error !== null) parts.push(run.error);
  const lost = run.analysis.lost.events;
  if (lost.length > 0) {
    const placed = lost.slice(0, 5).map((e) =>
      `${e.count} at ${fmt(e.atMs)} ms`
    )
      .join(", ");
    parts.push(
      `lost requests located at ${placed} (ms after the first trigger)`,
    );
  }
  return parts.join("; ");
}

function windowReason(system: SystemRecord, mode: ModeName): string {
  const run = runOf(system, mode);
  if (run === null) return "";
  return `Ours: the new generation starts (${
    fmt(system.coldStartMedianMs)
  } ms cold start when idle) on the same CPU as the loaded old one, and takes over after ${
    fmt(run.handover.p50)
  } ms (p50); until then both share CPU 0.`;
}

function handoverReason(system: SystemRecord, p50: number): string {
  const idle = system.idleHandover.p50;
  return `the handover is a whole new process (\`deno run\`: module load and compile) plus the handshake on the control channel, and under load it shares CPU 0 with the loaded old generation; without load it took ${
    fmt(idle)
  } ms (p50), ${
    fmt(idle / system.coldStartMedianMs, 2)
  }× the cold start, and under load ${fmt(p50)} ms`;
}
