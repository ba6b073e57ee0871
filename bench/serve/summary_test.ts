import { deepStrictEqual as assertEquals } from "node:assert/strict";
import type { BenchConfig, Ratio, RunRecord } from "./records.ts";
import { coldStartTarget, evaluateTargets, rssTarget } from "./summary.ts";

function fakeRun(
  system: string,
  mode: "keep-alive" | "close",
  foreignPercent: number,
): RunRecord {
  return { system, mode, cpu: { foreignPercent } } as unknown as RunRecord;
}

Deno.test("evaluateTargets compares with the thresholds", () => {
  const ratios: Ratio[] = [
    {
      system: "graceful_native",
      baseline: "deno_serve",
      mode: "keep-alive",
      throughput: 0.9,
      cpuEfficiency: 0.96,
      rss: null,
    },
    {
      system: "graceful_native",
      baseline: "deno_serve",
      mode: "close",
      throughput: 0.7,
      cpuEfficiency: 0.85,
      rss: 1.4,
    },
  ];
  const runs = [
    fakeRun("graceful_native", "keep-alive", 1),
    fakeRun("deno_serve", "keep-alive", 9),
    fakeRun("node_http", "keep-alive", 50),
    fakeRun("graceful_native", "close", 0),
  ];
  const config = { maxForeignPercent: 5 } as BenchConfig;
  const targets = evaluateTargets(ratios, runs, config);
  assertEquals(targets.map((t) => t.pass), [
    true,
    false,
    null,
    null,
    null,
    null,
  ]);
  assertEquals(targets.map((t) => [t.disturbedRuns, t.runs]), [
    [1, 2],
    [0, 1],
    [0, 0],
    [0, 0],
    [1, 1],
    [0, 0],
  ]);
});

Deno.test("rssTarget: the RSS phase's medians, native ÷ Deno.serve, at most 1.3×", () => {
  const run = (system: string, rssMiB: number, foreignPercent = 0) =>
    ({ system, rssMiB, cpu: { foreignPercent } }) as unknown as RunRecord;
  const config = { maxForeignPercent: 5, rssSeconds: 20 } as BenchConfig;
  const miss = rssTarget([
    run("graceful_native", 60),
    run("deno_serve", 40, 9),
    run("graceful_native", 64),
    run("deno_serve", 40),
  ], config);
  assertEquals(
    [miss.value, miss.pass, miss.runs, miss.disturbedRuns],
    [1.55, false, 4, 1],
  );
  assertEquals(
    miss.description,
    "native RSS after 20 s of Connection: close load ≤ 1.3× Deno.serve's",
  );
  const met = rssTarget(
    [run("graceful_native", 50), run("deno_serve", 40)],
    config,
  );
  assertEquals([met.value, met.pass], [1.25, true]);
  assertEquals(rssTarget([], config).pass, null);
});

Deno.test("coldStartTarget: the CLI's median ÷ Deno.serve's, at most 1.3×", () => {
  const cold = (system: string, medianMs: number) => ({
    system,
    label: system,
    command: "",
    samplesMs: [medianMs],
    medianMs,
  });
  const miss = coldStartTarget([
    cold("deno_serve", 20),
    cold("graceful_cli", 60),
  ]);
  assertEquals([miss.value, miss.pass, miss.runs], [3, false, 2]);
  const met = coldStartTarget([
    cold("deno_serve", 20),
    cold("graceful_cli", 25),
  ]);
  assertEquals([met.value, met.pass], [1.25, true]);
  assertEquals(coldStartTarget([cold("deno_serve", 20)]).pass, null);
});
