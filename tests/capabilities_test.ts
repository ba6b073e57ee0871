/**
 * Strict mode (capabilities.ts): a real `deno test` run of a test that
 * needs something the machine lacks skips it by default and fails in strict
 * mode.
 *
 * @module
 */

import { assertEquals, assertMatch, assertThrows } from "./assert.ts";
import { strictMode } from "./capabilities.ts";
import { ROOT } from "./helpers.ts";

Deno.test("capabilities: strict mode from CI and GRACEFUL_STRICT", () => {
  const cases: [Record<string, string>, boolean][] = [
    [{}, false],
    [{ CI: "true" }, true],
    [{ CI: "1" }, true],
    [{ CI: "false" }, false],
    [{ GRACEFUL_STRICT: "1" }, true],
    [{ CI: "true", GRACEFUL_STRICT: "0" }, false],
    [{ GRACEFUL_STRICT: "" }, false],
  ];
  for (const [env, strict] of cases) {
    assertEquals(strictMode(env), strict, JSON.stringify(env));
  }
  assertMatch(
    assertThrows(() => strictMode({ GRACEFUL_STRICT: "yes" })).message,
    /GRACEFUL_STRICT="yes": expected 1 or 0/,
  );
});

const GATED = `
import { canRun, capability, ignoreWithout } from ${
  JSON.stringify(`${ROOT}/tests/capabilities.ts`)
};
const NOTHING = capability(
  "no-such-tool",
  "there is none",
  () => canRun("no-such-tool-" + crypto.randomUUID()),
);
Deno.test({ name: "needs it", ignore: ignoreWithout(NOTHING), fn() {} });
Deno.test({ name: "needs it too", ignore: ignoreWithout(NOTHING), fn() {} });
Deno.test("needs nothing", () => {});
`;

async function runGated(
  env: Record<string, string>,
): Promise<{ code: number; output: string }> {
  const dir = await Deno.makeTempDir({ prefix: "graceful-capabilities-" });
  try {
    await Deno.writeTextFile(`${dir}/gated_test.ts`, GATED);
    const out = await new Deno.Command(Deno.execPath(), {
      args: ["test", "-A", "--no-check", `${dir}/gated_test.ts`],
      env: { NO_COLOR: "1", CI: "", GRACEFUL_STRICT: "", ...env },
      stdin: "null",
    }).output();
    const decoder = new TextDecoder();
    return {
      code: out.code,
      output: decoder.decode(out.stdout) + decoder.decode(out.stderr),
    };
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
}

Deno.test("capabilities: without strict mode a missing tool skips, and says so once", async () => {
  const { code, output } = await runGated({});
  assertEquals(code, 0, output);
  assertMatch(output, /1 passed \| 0 failed \| 2 ignored/);
  assertEquals(
    output.match(/skipped: tests that need no-such-tool is missing/g)?.length,
    1,
    output,
  );
});

Deno.test("capabilities: in strict mode (CI=true) a missing tool fails the run, named", async () => {
  const { code, output } = await runGated({ CI: "true" });
  assertEquals(code, 1, output);
  assertMatch(output, /capability: no-such-tool \.\.\. FAILED/);
  assertMatch(
    output,
    /strict mode .*no-such-tool is missing \(there is none\)/,
  );
  assertMatch(output, /1 passed \| 1 failed \| 2 ignored/);
});

Deno.test("capabilities: no test is skipped on a bare tool probe (onPath, canRun), which strict mode would not see", async () => {
  const bypasses: string[] = [];
  for (const dir of ["tests", "src", "bench"]) {
    for await (const path of testFiles(`${ROOT}/${dir}`)) {
      const lines = (await Deno.readTextFile(path)).split("\n");
      lines.forEach((line, i) => {
        if (/\bignore:.*\b(onPath|canRun)\(/.test(line)) {
          bypasses.push(`${path.slice(ROOT.length + 1)}:${i + 1}: ${line}`);
        }
      });
    }
  }
  assertEquals(bypasses, [], "use ignoreWithout(CAPABILITY) instead");
});

async function* testFiles(dir: string): AsyncGenerator<string> {
  for await (const entry of Deno.readDir(dir)) {
    const path = `${dir}/${entry.name}`;
    if (entry.isDirectory) yield* testFiles(path);
    else if (entry.name.endsWith("_test.ts")) yield path;
  }
}
