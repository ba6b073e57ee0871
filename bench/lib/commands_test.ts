import { deepStrictEqual as assertEquals } from "node:assert/strict";
import { denoRunCommand, pinnedToCpu } from "./commands.ts";

Deno.test("pinnedToCpu and denoRunCommand", () => {
  assertEquals(pinnedToCpu(1, ["wrk", "-t1"]), [
    "taskset",
    "-c",
    "1",
    "wrk",
    "-t1",
  ]);
  assertEquals(
    pinnedToCpu(0, denoRunCommand(["mod.ts", "--port", "8000"])),
    [
      "taskset",
      "-c",
      "0",
      Deno.execPath(),
      "run",
      "-A",
      "mod.ts",
      "--port",
      "8000",
    ],
  );
});
