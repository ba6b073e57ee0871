/**
 * Workers under a real systemd 252 (systemd-nspawn, see harness.ts): the
 * shipped systemd/myapp-workers.service, socket-activated, reloaded under
 * wrk (the supervisor stays MAINPID, every worker is replaced, nothing
 * fails), STATUS= with ready/total, and a stop that drains.
 *
 * @module
 */

import {
  assert,
  assertEquals,
  assertMatch,
  assertNotEquals,
} from "../assert.ts";
import { bootContainer, startSocketUnits, systemdIgnore } from "./harness.ts";
import { ROOT } from "../helpers.ts";

const RELOADS = 2;

async function pidOf(port: number): Promise<number> {
  const res = await fetch(`http://127.0.0.1:${port}/pid`, {
    headers: { connection: "close" },
  });
  return Number((await res.text()).trim());
}

Deno.test({
  name:
    "systemd suite (nspawn, systemd 252): --workers 2 reloads roll the workers under wrk, MAINPID stays the supervisor",
  ignore: await systemdIgnore(),
  async fn() {
    const c = await bootContainer({ denoDir: "/var/cache/myapp/deno" });
    try {
      const port = await startSocketUnits(
        c,
        Deno.readTextFileSync(`${ROOT}/systemd/myapp-workers.service`),
      );
      const first = await pidOf(port); // activates the service
      const start = await c.show("myapp.service", [
        "MainPID",
        "InvocationID",
        "StatusText",
      ]);
      assertNotEquals(Number(start.MainPID), first, "a worker serves");
      const statusOf = async () =>
        (await c.show("myapp.service", ["StatusText"])).StatusText;
      // The status settles once a roll's last old worker has drained (it
      // counts N + 1 ready workers until then).
      const settled = async (pattern: RegExp) => {
        const deadline = Date.now() + 60_000;
        while (!pattern.test(await statusOf())) {
          assert(Date.now() < deadline, await statusOf());
          await new Promise((r) => setTimeout(r, 50));
        }
      };
      await settled(/^2\/2 workers ready/);
      const wrk = new Deno.Command("wrk", {
        args: ["-t1", "-c20", "-d120s", `http://127.0.0.1:${port}/`],
        stdout: "piped",
        stderr: "piped",
      }).spawn();
      const report = wrk.output();
      await new Promise((r) => setTimeout(r, 500));
      const seen = new Set<number>([first]);
      for (let i = 0; i < RELOADS; i++) {
        const reload = await c.exec(["systemctl", "reload", "myapp.service"], {
          timeoutMs: 120_000,
        });
        assertEquals(
          reload.code,
          0,
          reload.stderr + await c.journal("myapp.service"),
        );
        const now = await c.show("myapp.service", ["MainPID", "InvocationID"]);
        assertEquals(now.MainPID, start.MainPID);
        assertEquals(now.InvocationID, start.InvocationID);
        const serving = await pidOf(port);
        assert(!seen.has(serving), `pid ${serving} served before the reload`);
        seen.add(serving);
      }
      wrk.kill("SIGINT"); // within the load window: wrk prints its report
      const out = await report;
      const text = new TextDecoder().decode(out.stdout);
      assertEquals(out.code, 0, text);
      assertMatch(text, /requests in/);
      assert(!/Socket errors/.test(text), text);
      assert(!/Non-2xx/.test(text), text);
      await settled(/^2\/2 workers ready, generation 3/);

      const stop = await c.exec(["systemctl", "stop", "myapp.service"], {
        timeoutMs: 120_000,
      });
      assertEquals(stop.code, 0, stop.stderr);
      const after = await c.show("myapp.service", ["ActiveState", "Result"]);
      assertEquals([after.ActiveState, after.Result], ["inactive", "success"]);
    } catch (error) {
      console.error(await c.journal("myapp.service").catch(() => ""));
      throw error;
    } finally {
      await c.stop();
    }
  },
});
