/**
 * Where a start-up or a handover spends its time, read from what ours
 * printed: its log milestones (always on: the new generation joined the
 * handover, listens, is ready) and, when it runs with `GRACEFUL_TRACE=1`,
 * every step of src/restart/trace.ts. Each step is given in ms after the
 * trigger (or the spawn, for a cold start), prefixed `old:` or `new:` by the
 * pid that printed it.
 *
 * @module
 */

import { median, round } from "../lib/stats.ts";

/** Step name → ms after the trigger. */
export type Steps = Record<string, number>;

const TRACE_LINE = /^graceful-trace pid=(\d+) t=([\d.]+) (.*)$/;
const LOG_LINE =
  /^(\d{4}-\d\d-\d\d) (\d\d:\d\d:\d\d\.\d+) ([+-]\d\d:\d\d) \w+ \[pid (\d+) gen \d+\] \S+: (.*)$/;
const MILESTONES: [RegExp, string][] = [
  [/ joined the handover$/, "joined the handover (log)"],
  [/^listening on /, "listening (log)"],
  [/ is ready$/, "ready (log)"],
];

/** The steps (first time each) `oldPid` and `newPid` printed from `atMs` (epoch ms) on. */
export function stepsOf(
  lines: string[],
  atMs: number,
  oldPid: number | null,
  newPid: number | null,
): Steps {
  const steps: Steps = {};
  // A log line has ms resolution: it may show up to 1 ms before the trigger.
  const add = (pid: number, at: number, event: string, slackMs = 0) => {
    const who = pid === newPid ? "new" : pid === oldPid ? "old" : null;
    if (who === null || at < atMs - slackMs) return;
    steps[`${who}: ${event}`] ??= round(at - atMs, 1);
  };
  for (const line of lines) {
    const trace = TRACE_LINE.exec(line);
    if (trace !== null) {
      add(Number(trace[1]), Number(trace[2]), trace[3]);
      continue;
    }
    const log = LOG_LINE.exec(line);
    if (log === null) continue;
    const milestone = MILESTONES.find(([pattern]) => pattern.test(log[5]));
    if (milestone === undefined) continue;
    add(
      Number(log[4]),
      Date.parse(`${log[1]}T${log[2]}${log[3]}`),
      milestone[1],
      1,
    );
  }
  return steps;
}

/** The median of each step over `list`, in the order of those medians. */
export function medianSteps(list: Steps[]): Steps {
  const names = [...new Set(list.flatMap((steps) => Object.keys(steps)))];
  const medians = names.map((name): [string, number] => [
    name,
    round(median(list.flatMap((s) => name in s ? [s[name]] : [])), 1),
  ]);
  return Object.fromEntries(medians.sort((a, b) => a[1] - b[1]));
}
