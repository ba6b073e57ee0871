import { deepStrictEqual as assertEquals } from "node:assert/strict";
import { epochNow, sleep, sleepSync, waitUntil } from "./time.ts";

Deno.test("epochNow is Date.now() with sub-ms resolution", () => {
  const before = Date.now();
  const now = epochNow();
  const after = Date.now();
  assertEquals(now >= before - 1 && now <= after + 1, true);
});

Deno.test("sleep and sleepSync wait at least that long", async () => {
  let started = performance.now();
  await sleep(20);
  assertEquals(performance.now() - started >= 19, true);
  started = performance.now();
  sleepSync(20);
  assertEquals(performance.now() - started >= 19, true);
  await sleep(-5);
});

Deno.test("waitUntil: true once the check holds, false at the timeout", async () => {
  let calls = 0;
  assertEquals(await waitUntil(() => ++calls >= 3, 1_000, 1), true);
  assertEquals(calls, 3);
  assertEquals(await waitUntil(() => false, 30, 5), false);
});
