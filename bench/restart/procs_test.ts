import { assertEquals } from "../../tests/assert.ts";
import { liveDescendants, type ProcRow } from "./procs.ts";

function row(pid: number, ppid: number, state = "S"): ProcRow {
  return { pid, ppid, state, comm: "x", ticks: 0, own: 0 };
}

Deno.test("liveDescendants walks the tree, skips zombies and skipped subtrees", () => {
  const table = new Map(
    [
      row(10, 1),
      row(11, 10),
      row(12, 11),
      row(13, 10, "Z"),
      row(14, 13),
      row(15, 10),
      row(16, 15),
      row(20, 1),
    ].map((r) => [r.pid, r]),
  );
  assertEquals(liveDescendants(table, 10, new Set()).sort(), [
    11,
    12,
    14,
    15,
    16,
  ]);
  assertEquals(liveDescendants(table, 10, new Set([15])).sort(), [11, 12, 14]);
  assertEquals(liveDescendants(table, 99, new Set()), []);
});
