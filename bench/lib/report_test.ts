import {
  deepStrictEqual as assertEquals,
  throws as assertThrows,
} from "node:assert/strict";
import {
  type BenchConfig,
  END_MARKER,
  evaluateTargets,
  formatMarkdown,
  type Ratio,
  type RunRecord,
  spliceSection,
  START_MARKER,
} from "./report.ts";

Deno.test("spliceSection creates the file with an intro", () => {
  const text = spliceSection(undefined, "body");
  assertEquals(text.startsWith("# Benchmarks\n"), true);
  assertEquals(
    text.endsWith(`${START_MARKER}\n\nbody\n\n${END_MARKER}\n`),
    true,
  );
});

Deno.test("spliceSection replaces only between the markers", () => {
  const before = `# B\n\nhand\n\n${START_MARKER}\nold\n${END_MARKER}\n\ntail\n`;
  assertEquals(
    spliceSection(before, "new"),
    `# B\n\nhand\n\n${START_MARKER}\n\nnew\n\n${END_MARKER}\n\ntail\n`,
  );
});

Deno.test("spliceSection appends when the markers are missing", () => {
  assertEquals(
    spliceSection("# B\n", "x"),
    `# B\n\n${START_MARKER}\n\nx\n\n${END_MARKER}\n`,
  );
});

Deno.test("a new file with a formatted section is deno-fmt clean", async () => {
  const section = await formatMarkdown(
    "## Title\n\nSome text long enough to need wrapping by the formatter, " +
      "which wraps prose at eighty columns.\n\n| a | b |\n| --- | --: |\n| 1 | 2 |",
  );
  const document = spliceSection(undefined, section);
  assertEquals(await formatMarkdown(document) + "\n", document);
});

Deno.test("spliceSection refuses a broken marker pair", () => {
  assertThrows(() => spliceSection(`${END_MARKER}\n${START_MARKER}\n`, "x"));
  assertThrows(() => spliceSection(`${START_MARKER}\n`, "x"));
});

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
    },
    {
      system: "graceful_native",
      baseline: "deno_serve",
      mode: "close",
      throughput: 0.7,
      cpuEfficiency: 1,
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
  assertEquals(targets.map((t) => t.pass), [true, false, null, null]);
  assertEquals(targets.map((t) => [t.disturbedRuns, t.runs]), [
    [1, 2],
    [0, 1],
    [1, 1],
    [0, 0],
  ]);
});
