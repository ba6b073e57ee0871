/**
 * A Hono app with its own deno.json under the shipped units and a real
 * systemd 252 (systemd-nspawn, see harness.ts): the CLI re-executes itself
 * in place under the app's configuration, so the socket-activated process
 * stays the service's MainPID and its READY=1 counts, and `systemctl reload`
 * keeps serving under that configuration.
 *
 * @module
 */

import { assertEquals, assertNotEquals } from "../assert.ts";
import {
  bootContainer,
  type Container,
  startSocketUnits,
  systemdIgnore,
} from "./harness.ts";
import { ROOT } from "../helpers.ts";

const APP_DIR = "/srv/hono";

/** Writes the app; returns the service that serves it from its directory. */
async function installApp(c: Container): Promise<string> {
  await c.writeFile(
    `${APP_DIR}/deno.json`,
    JSON.stringify({ imports: { hono: "npm:hono@^4.6.0" } }),
  );
  await c.writeFile(
    `${APP_DIR}/app.ts`,
    `import { Hono } from "hono";
const app = new Hono();
app.get("/pid", (c) => c.text(\`\${Deno.pid}\`));
export default app;
`,
  );
  return Deno.readTextFileSync(`${ROOT}/systemd/myapp.service`)
    .replace(/^WorkingDirectory=.*$/m, `WorkingDirectory=${APP_DIR}`)
    .replace(/^(ExecStart=\S+ run -A \/opt\/myapp\/mod\.ts)/m, "$1 app.ts");
}

async function pidOf(port: number): Promise<number> {
  const res = await fetch(`http://127.0.0.1:${port}/pid`, {
    headers: { connection: "close" },
    signal: AbortSignal.timeout(60_000),
  });
  return Number(await res.text());
}

async function argsOf(c: Container, pid: number): Promise<string[]> {
  const out = await c.exec(["cat", `/proc/${pid}/cmdline`], { check: true });
  return out.stdout.split("\0");
}

Deno.test({
  name:
    "systemd suite (nspawn, systemd 252): an app with its own deno.json is re-executed in place (MainPID unchanged) and reloads under it",
  ignore: await systemdIgnore(),
  async fn() {
    const c = await bootContainer({ denoDir: "/var/cache/myapp/deno" });
    try {
      const port = await startSocketUnits(c, await installApp(c));
      const first = await pidOf(port);
      const start = await c.show("myapp.service", [
        "MainPID",
        "ActiveState",
        "InvocationID",
      ]);
      assertEquals(Number(start.MainPID), first);
      assertEquals(start.ActiveState, "active");
      const config = `${APP_DIR}/deno.json`;
      assertEquals(
        (await argsOf(c, first)).filter((a) => a === config).length,
        1,
      );

      const reload = await c.exec(["systemctl", "reload", "myapp.service"], {
        timeoutMs: 120_000,
      });
      assertEquals(reload.code, 0, reload.stderr);
      const after = await c.show("myapp.service", [
        "MainPID",
        "ActiveState",
        "InvocationID",
      ]);
      assertNotEquals(Number(after.MainPID), first);
      assertEquals(after.InvocationID, start.InvocationID);
      assertEquals(await pidOf(port), Number(after.MainPID));
      assertEquals(
        (await argsOf(c, Number(after.MainPID))).filter((a) => a === config)
          .length,
        1,
      );
    } catch (error) {
      console.error(await c.journal("myapp.service").catch(() => ""));
      throw error;
    } finally {
      await c.stop();
    }
  },
});
