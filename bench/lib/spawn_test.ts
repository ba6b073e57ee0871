import { deepStrictEqual as assertEquals } from "node:assert/strict";
import { childEnv, spawnPiped } from "./spawn.ts";

Deno.test("childEnv drops LISTEN_* and adds the extra variables", () => {
  Deno.env.set("LISTEN_FDS", "3");
  Deno.env.set("LISTEN_PID", "1");
  try {
    const env = childEnv({ NO_COLOR: "1" });
    assertEquals(env.LISTEN_FDS, undefined);
    assertEquals(env.LISTEN_PID, undefined);
    assertEquals(env.NO_COLOR, "1");
    assertEquals(env.PATH, Deno.env.get("PATH"));
  } finally {
    Deno.env.delete("LISTEN_FDS");
    Deno.env.delete("LISTEN_PID");
  }
});

Deno.test("spawnPiped runs in the given directory with the extra variables", async () => {
  const child = spawnPiped(["sh", "-c", 'pwd; echo "$BENCH_SPAWN_TEST"'], {
    cwd: "/",
    env: { BENCH_SPAWN_TEST: "yes" },
  });
  const { code, stdout } = await child.output();
  assertEquals(code, 0);
  assertEquals(new TextDecoder().decode(stdout), "/\nyes\n");
});
