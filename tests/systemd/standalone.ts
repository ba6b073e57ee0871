/**
 * The standalone units (no socket unit: the app opens its own port) under a
 * real systemd, for fdstore_test.ts and fdstore_slow_test.ts: installing one
 * on a free port, and N reloads under wrk.
 *
 * @module
 */

import { assert, assertEquals, assertNotEquals } from "../assert.ts";
import type { Container } from "./harness.ts";
import { ROOT, until } from "../helpers.ts";

/** Installs systemd/`unit` as is, listening on 127.0.0.1:`port` instead. */
export async function installStandalone(
  c: Container,
  unit: string,
  port: number,
): Promise<void> {
  const text = Deno.readTextFileSync(`${ROOT}/systemd/${unit}`)
    .replace("--listen 0.0.0.0:8199", `--listen 127.0.0.1:${port}`);
  assert(text.includes(`127.0.0.1:${port}`), `${unit}: no --listen to change`);
  await c.writeFile(`/etc/systemd/system/${unit}`, text);
  await c.systemctl("daemon-reload");
}

/** The service's state, as systemctl shows it. */
export async function show(c: Container, unit: string) {
  const props = await c.show(unit, [
    "MainPID",
    "InvocationID",
    "NRestarts",
    "ActiveState",
    "SubState",
    "StatusText",
  ]);
  return { ...props, MainPID: Number(props.MainPID) };
}

/** The pid that answers /pid on a fresh connection. */
export async function pidOf(port: number): Promise<number> {
  const res = await fetch(`http://127.0.0.1:${port}/pid`, {
    headers: { connection: "close" },
  });
  return Number((await res.text()).trim());
}

/** Whether `pid` runs in the container. */
export async function alive(c: Container, pid: number): Promise<boolean> {
  return (await c.exec(["test", "-d", `/proc/${pid}`])).code === 0;
}

/**
 * `count` × `systemctl reload unit` under wrk (keep-alive, 20 connections);
 * each reload must succeed and hand over to a new main pid in the same
 * invocation. Returns wrk's report, which it checks for errors.
 */
export async function reloadsUnderWrk(
  c: Container,
  unit: string,
  port: number,
  count: number,
): Promise<string> {
  const start = await show(c, unit);
  const wrk = new Deno.Command("wrk", {
    args: ["-t1", "-c20", "-d3600s", `http://127.0.0.1:${port}/`],
    stdout: "piped",
    stderr: "piped",
  }).spawn();
  const output = wrk.output();
  try {
    await new Promise((r) => setTimeout(r, 500));
    let previous = start.MainPID;
    for (let i = 0; i < count; i++) {
      const reload = await c.exec(["systemctl", "reload", unit], {
        timeoutMs: 120_000,
      });
      assertEquals(reload.code, 0, `reload ${i + 1}: ${reload.stderr}`);
      const now = await show(c, unit);
      assertNotEquals(now.MainPID, previous, `reload ${i + 1}`);
      assertEquals(now.InvocationID, start.InvocationID);
      assertEquals(now.ActiveState, "active");
      await until(async () => !(await alive(c, previous)));
      await until(async () => (await pidOf(port)) === now.MainPID);
      previous = now.MainPID;
    }
    await new Promise((r) => setTimeout(r, 500));
  } finally {
    // wrk prints its report on SIGINT.
    wrk.kill("SIGINT");
  }
  const result = await output;
  const report = new TextDecoder().decode(result.stdout);
  assert(/requests in/.test(report), report);
  assert(!/Socket errors/.test(report), report);
  assert(!/Non-2xx/.test(report), report);
  return report;
}
