import { deepStrictEqual as assertEquals } from "node:assert/strict";
import { isAlive, signalPid } from "./pids.ts";

Deno.test("isAlive and signalPid on a child before and after it ends", async () => {
  const child = new Deno.Command("sleep", {
    args: ["30"],
    stdin: "null",
    stdout: "null",
    stderr: "null",
  }).spawn();
  assertEquals(isAlive(child.pid), true);
  assertEquals(signalPid(child.pid, "SIGKILL"), true);
  await child.status;
  assertEquals(isAlive(child.pid), false);
  assertEquals(signalPid(child.pid, "SIGTERM"), false);
});

Deno.test("isAlive of this process", () => {
  assertEquals(isAlive(Deno.pid), true);
});
