import { deepStrictEqual as assertEquals } from "node:assert/strict";
import { mean, median, percentile, round } from "./stats.ts";

Deno.test("median of odd and even counts", () => {
  assertEquals(median([3, 1, 2]), 2);
  assertEquals(median([4, 1, 3, 2]), 2.5);
  assertEquals(Number.isNaN(median([])), true);
});

Deno.test("percentile interpolates linearly", () => {
  assertEquals(percentile([1, 2, 3, 4], 50), 2.5);
  assertEquals(percentile([10], 95), 10);
  assertEquals(round(percentile([1, 2, 3, 4, 5, 6, 7, 8, 9, 10], 95), 2), 9.55);
  assertEquals(percentile([5, 1, 3], 0), 1);
  assertEquals(percentile([5, 1, 3], 100), 5);
  assertEquals(Number.isNaN(percentile([], 50)), true);
});

Deno.test("percentile does not reorder its input", () => {
  const values = [3, 1, 2];
  percentile(values, 50);
  assertEquals(values, [3, 1, 2]);
});

Deno.test("mean", () => {
  assertEquals(mean([1, 2, 3, 4]), 2.5);
  assertEquals(Number.isNaN(mean([])), true);
});

Deno.test("round to decimals", () => {
  assertEquals(round(1.25), 1.3);
  assertEquals(round(1.234, 2), 1.23);
  assertEquals(round(2.5, 0), 3);
  assertEquals(Number.isNaN(round(NaN)), true);
});
