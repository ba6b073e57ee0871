/**
 * `--workers` with the CLI's operator paths: `reload` trusting the
 * supervisor's status file (its identity, and its restart signals, also
 * after its execve in place), and an app with its own deno.json (the
 * supervisor runs again under it once; the workers start under it and are
 * not re-executed).
 *
 * @module
 */

import { assert, assertEquals } from "./assert.ts";
import { Child, MOD, readStatus, runCli, TempApp, until } from "./helpers.ts";

const APP =
  `export default { fetch: () => new Response("pid " + Deno.pid) };\n`;

function cmdline(pid: number): string[] {
  return Deno.readTextFileSync(`/proc/${pid}/cmdline`).split("\0");
}

Deno.test("workers: `reload` sends the supervisor's own restart signal (--restart-signal SIGHUP, from its status file) and trusts it after its execve", async () => {
  const pidfile = `${await Deno.makeTempDir()}/app.pid`;
  const t = await TempApp.start(APP, [
    "--workers",
    "2",
    "--restart-signal",
    "SIGHUP",
    "--pidfile",
    pidfile,
  ]);
  try {
    await until(() => readStatus(pidfile)?.workers.length === 2);
    const supervisor = readStatus(pidfile)!.pid;
    assertEquals(readStatus(pidfile)!.restartSignals, ["SIGHUP"]);
    for (const generation of [2, 3]) {
      const reload = await runCli(["reload", "--pidfile", pidfile]);
      assertEquals(reload.code, 0, reload.stdout + reload.stderr);
      await until(() => {
        const st = readStatus(pidfile);
        return st?.generation === generation && st.workers.length === 2 &&
          st.workers.every((w) => w.generation === generation);
      });
      assertEquals(readStatus(pidfile)!.pid, supervisor);
    }
    const status = await runCli(["status", "--pidfile", pidfile]);
    assertEquals(status.code, 0, status.stdout + status.stderr);
  } finally {
    await t.stop();
  }
});

Deno.test("workers: an app with its own deno.json: the supervisor runs again under it once, and its workers start under it (no second execve)", async () => {
  const dir = await Deno.makeTempDir({ prefix: "graceful-workers-config-" });
  const pidfile = `${dir}/app.pid`;
  await Deno.writeTextFile(
    `${dir}/deno.json`,
    JSON.stringify({ imports: { "greeting": "./greeting.ts" } }),
  );
  await Deno.writeTextFile(
    `${dir}/greeting.ts`,
    `export const greeting = "hello from the app's import map";\n`,
  );
  await Deno.writeTextFile(
    `${dir}/app.ts`,
    `import { greeting } from "greeting";
export default { fetch: () => new Response(greeting) };
`,
  );
  const child = new Child(Deno.execPath(), [
    "run",
    "-A",
    MOD,
    `${dir}/app.ts`,
    "--workers",
    "2",
    "--port",
    "0",
    "--hostname",
    "127.0.0.1",
    "--pidfile",
    pidfile,
  ]);
  try {
    const m = await child.waitFor(/Listening on http:\/\/127\.0\.0\.1:(\d+)\//);
    await until(() => readStatus(pidfile)?.workers.length === 2);
    const status = readStatus(pidfile)!;
    assertEquals(status.pid, child.pid, "the supervisor kept its pid");
    const configFlags = (pid: number) =>
      cmdline(pid).filter((arg) => arg === "--config").length;
    assertEquals(configFlags(status.pid), 1);
    for (const worker of status.workers) {
      assertEquals(configFlags(worker.pid), 1, `worker ${worker.pid}`);
    }
    const res = await fetch(`http://127.0.0.1:${m[1]}/`);
    assertEquals(await res.text(), "hello from the app's import map");
    assert(
      !/cannot run again/.test(child.output),
      child.output,
    );
  } finally {
    child.kill("SIGTERM");
    await child.done;
    await Deno.remove(dir, { recursive: true });
  }
});
