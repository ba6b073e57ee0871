/**
 * The soak of the restart bench: many restarts of ours (native) under
 * keep-alive load, with each generation's fd count and RSS.
 *
 * @module
 */

import type { WrkResult } from "../lib/wrk.ts";
import { freePort } from "../lib/server_process.ts";
import { median, round } from "../lib/stats.ts";
import { sleep } from "../lib/time.ts";
import type { TimelineAnalysis } from "./analysis.ts";
import { startTimelineRun, type WrkSetup } from "./load.ts";
import { fdCount, foreignOwnTicks, readProcTable, rssOf } from "./procs.ts";
import type { BenchConfig, SoakRecord, SoakSample } from "./records.ts";
import { currentPid, restartOnce, type RestartRecord } from "./restart.ts";
import {
  analyzeRestarts,
  BUCKET_MS,
  failuresOf,
  log,
  notableLines,
  SOAK_TIMING,
  spread,
  STOP_GRACE_MS,
  TIMING,
  waitQuiet,
} from "./runs.ts";
import { createSystem, type SystemContext } from "./systems.ts";

/** Restarts ours (native) `config.soakRestarts` times under keep-alive load. */
export async function soakRun(
  context: SystemContext,
  config: BenchConfig,
  ticksPerS: number,
): Promise<SoakRecord> {
  const port = freePort();
  const system = createSystem("ours-native", port, context);
  const setup: WrkSetup = {
    endpoint: system.endpoint,
    threads: config.threads,
    connections: config.connections,
    headers: [],
    cpu: config.clientCpu,
  };
  const samples: SoakSample[] = [];
  const restarts: RestartRecord[] = [];
  const restartErrors: SoakRecord["restartErrors"] = [];
  let error: string | null = null;
  const sample = (generation: number, pid: number) => {
    const fds = fdCount(pid);
    samples.push({
      generation,
      pid,
      fds: fds?.fds ?? null,
      sockets: fds?.sockets ?? null,
      rssKiB: rssOf(pid),
    });
  };
  await system.start();
  const quiet = await waitQuiet(config.quietWaitS, ticksPerS);
  const all0 = readProcTable();
  const started = performance.now();
  const out = `${context.workDir}/timeline-soak.json`;
  const maxSeconds = Math.ceil(
    config.soakRestarts * (config.soakIntervalMs + 20_000) / 1000,
  ) + 60;
  const run = startTimelineRun(setup, out, BUCKET_MS, maxSeconds);
  let result: WrkResult;
  let analysis: TimelineAnalysis;
  try {
    await sleep(config.leadMs);
    let pid = await currentPid(system.endpoint, TIMING);
    sample(1, pid);
    let consecutiveFailures = 0;
    for (let i = 0; i < config.soakRestarts; i++) {
      const triggerAt = performance.now();
      const record = await restartOnce(system, i, SOAK_TIMING);
      restarts.push(record);
      if (record.error !== null) {
        const tail = system.output().slice(-60);
        restartErrors.push({ index: i, error: record.error, outputTail: tail });
        error ??= `restart ${i + 1}: ${record.error}`;
        log(`  soak: restart ${i + 1}: ${record.error}`);
        for (const line of tail.slice(-15)) log(`    | ${line}`);
      }
      if (record.newPid === null) {
        if (++consecutiveFailures >= 3) break;
        await sleep(1_000);
        continue;
      }
      consecutiveFailures = 0;
      pid = record.newPid;
      const next = Math.max(
        triggerAt + config.soakIntervalMs,
        performance.now() + 200,
      );
      await sleep(next - performance.now());
      sample(samples.length + 1, pid);
      if ((i + 1) % 20 === 0) {
        const s = samples.at(-1)!;
        log(
          `  soak: ${i + 1} restarts, gen ${s.generation}: ${s.fds} fds, ` +
            `${round((s.rssKiB ?? 0) / 1024)} MiB`,
        );
      }
    }
    await sleep(config.windowMs + config.tailMs);
  } finally {
    const stopped = await run.stop();
    result = stopped.result;
    analysis = analyzeRestarts(stopped.timeline, restarts, config);
    await system.stop(STOP_GRACE_MS);
  }
  const all1 = readProcTable();
  const foreign = foreignOwnTicks(all0, all1);
  const seconds = (performance.now() - started) / 1000;
  const later = samples.slice(1);
  const fdValues = later.map((s) => s.fds).filter((v): v is number =>
    v !== null
  );
  const nonSocketValues = later.filter((s) =>
    s.fds !== null && s.sockets !== null
  ).map((s) => s.fds! - s.sockets!);
  const rssValues = later.map((s) => (s.rssKiB ?? NaN) / 1024).filter(
    isFinite,
  );
  const quarter = Math.max(1, Math.floor(rssValues.length / 4));
  const firstQ = median(rssValues.slice(0, quarter));
  const lastQ = median(rssValues.slice(-quarter));
  const fds = {
    min: Math.min(...fdValues),
    max: Math.max(...fdValues),
    first: fdValues[0] ?? NaN,
    last: fdValues.at(-1) ?? NaN,
  };
  const nonSocketFds = {
    min: Math.min(...nonSocketValues),
    max: Math.max(...nonSocketValues),
    first: nonSocketValues[0] ?? NaN,
    last: nonSocketValues.at(-1) ?? NaN,
  };
  return {
    restarts,
    completed: restarts.filter((r) => r.newPid !== null).length,
    samples,
    wrk: result,
    failures: failuresOf(result, analysis.non2xx, restarts.length),
    analysis,
    handover: spread(restarts.map((r) => r.handoverMs)),
    fds,
    nonSocketFds,
    rssMiB: {
      min: round(Math.min(...rssValues)),
      max: round(Math.max(...rssValues)),
      firstQuarterMedian: round(firstQ),
      lastQuarterMedian: round(lastQ),
      slopePer100: round(slope(rssValues) * 100, 2),
    },
    foreignCpuPercent: round(foreign / ticksPerS / seconds * 100),
    quiet,
    restartErrors,
    notable: notableLines(system.output()),
    fdsFlat: fds.max - fds.min <= 2 && fds.last <= fds.first + 1 &&
      nonSocketFds.max - nonSocketFds.min <= 1,
    rssFlat: lastQ <= firstQ * 1.1,
    error,
  };
}

function slope(values: number[]): number {
  const n = values.length;
  if (n < 2) return NaN;
  const xMean = (n - 1) / 2;
  const yMean = values.reduce((a, b) => a + b, 0) / n;
  let num = 0;
  let den = 0;
  values.forEach((y, x) => {
    num += (x - xMean) * (y - yMean);
    den += (x - xMean) ** 2;
  });
  return num / den;
}
