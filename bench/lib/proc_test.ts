import { deepStrictEqual as assertEquals } from "node:assert/strict";
import { foreignTicks, statFields } from "./proc.ts";

Deno.test("statFields counts from the last parenthesis", () => {
  const stat = "4242 (a (b) c) S 1 4242 4242 0 -1 4194560 1 0 0 0 " +
    "17 5 3 2 20 0 1 0 100 0 0";
  const fields = statFields(stat);
  assertEquals(fields[0], "S");
  assertEquals(fields[4 - 3], "1");
  assertEquals(fields[14 - 3], "17");
  assertEquals(fields[17 - 3], "2");
});

Deno.test("foreignTicks counts everyone but the excluded, new pids in full", () => {
  const before = new Map([[1, 100], [2, 50], [3, 10]]);
  const after = new Map([[1, 104], [2, 70], [3, 5], [4, 8]]);
  assertEquals(foreignTicks(before, after, new Set([2])), 4 + 0 + 8);
});
