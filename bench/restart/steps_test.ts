import { deepStrictEqual as assertEquals } from "node:assert/strict";
import { medianSteps, stepsOf } from "./steps.ts";

const AT = Date.parse("2026-12-04T10:00:00.000Z");

Deno.test("stepsOf reads trace lines and log milestones of the old and the new pid, from the trigger on", () => {
  const lines = [
    `graceful-trace pid=10 t=${AT - 50} restart: start`, // before: ignored
    `graceful-trace pid=10 t=${AT + 1.5} restart: start`,
    `graceful-trace pid=11 t=${AT + 40.25} join: hello sent`,
    `graceful-trace pid=11 t=${AT + 41} join: hello sent`, // the first counts
    `graceful-trace pid=99 t=${AT + 5} restart: start`, // another pid
    "2026-12-04 10:00:00.070 +00:00 INF [pid 11 gen 2] graceful·server: listening on 127.0.0.1:8000 (fd 3, native engine: inherited)",
    "2026-12-04 10:00:00.072 +00:00 INF [pid 11 gen 2] graceful·restart: generation 2 (pid 11) is ready",
    "2026-12-04 10:00:00.080 +00:00 INF [pid 11 gen 2] graceful·server: something else",
  ];
  assertEquals(stepsOf(lines, AT, 10, 11), {
    "old: restart: start": 1.5,
    "new: join: hello sent": 40.3,
    "new: listening (log)": 70,
    "new: ready (log)": 72,
  });
  assertEquals(stepsOf(lines, AT, null, 11)["old: restart: start"], undefined);
});

Deno.test("medianSteps: the median of each step, ordered by it", () => {
  assertEquals(
    medianSteps([{ b: 10, a: 1 }, { b: 30, a: 3 }, { b: 20 }]),
    { a: 2, b: 20 },
  );
});
