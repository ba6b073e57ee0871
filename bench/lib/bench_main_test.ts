import { deepStrictEqual as assertEquals } from "node:assert/strict";
import { spawnPiped } from "./spawn.ts";

/** Runs a script that hands `body` (a main function) to runBenchMain. */
async function runScript(
  body: string,
): Promise<{ code: number; stdout: string; stderr: string }> {
  const moduleUrl = new URL("./bench_main.ts", import.meta.url).href;
  const script = `import { runBenchMain } from "${moduleUrl}";
await runBenchMain(${body}, {
  name: "test bench",
  stopping: "everything",
  cleanUp: () => console.log("cleaned up"),
  printStack: false,
});`;
  const output = await spawnPiped(
    [Deno.execPath(), "eval", "--no-check", script],
    { env: { NO_COLOR: "1" } },
  ).output();
  const decoder = new TextDecoder();
  return {
    code: output.code,
    stdout: decoder.decode(output.stdout),
    stderr: decoder.decode(output.stderr),
  };
}

Deno.test("runBenchMain exits with main's code, after cleaning up", async () => {
  const run = await runScript("async () => 3");
  assertEquals(run.code, 3);
  // Once at the end, once more on "unload".
  assertEquals(run.stdout.startsWith("cleaned up\n"), true);
  assertEquals(run.stderr, "");
});

Deno.test("runBenchMain reports a failure and exits with 1", async () => {
  const run = await runScript('async () => { throw new Error("no wrk"); }');
  assertEquals(run.code, 1);
  assertEquals(run.stderr, "test bench failed: no wrk\n");
  assertEquals(run.stdout.startsWith("cleaned up\n"), true);
});
