/**
 * The slow part of the fd store suite (GRACEFUL_SLOW_TESTS=1, `deno task
 * test:slow`, with GRACEFUL_SYSTEMD_TESTS=1 to fail instead of skip): 50
 * reloads under wrk with each standalone unit, the ExecReload one under
 * systemd 252 and the notify-reload one under systemd 257. None may fail a
 * request.
 *
 * @module
 */

import { SLOW } from "../slow.ts";
import { assertEquals } from "../assert.ts";
import {
  bootContainer,
  startOnFreePort,
  type Suite,
  systemdIgnore,
} from "./harness.ts";
import { installStandalone, reloadsUnderWrk, show } from "./standalone.ts";

const RELOADS = 50;

for (
  const [suite, unit] of [
    ["bookworm", "myapp-standalone.service"],
    ["trixie", "myapp-notify-reload.service"],
  ] as [Suite, string][]
) {
  Deno.test({
    name:
      `systemd suite (nspawn, ${suite}): ${RELOADS} reloads of ${unit} under wrk fail no request`,
    ignore: !SLOW || await systemdIgnore(),
    async fn() {
      const c = await bootContainer({
        suite,
        denoDir: "/var/cache/myapp/deno",
      });
      try {
        const port = await startOnFreePort(
          c,
          unit,
          (port) => installStandalone(c, unit, port),
        );
        const report = await reloadsUnderWrk(c, unit, port, RELOADS);
        console.log(
          `${unit} (${suite}), ${RELOADS} reloads under wrk:\n${report}`,
        );
        const end = await show(c, unit);
        assertEquals(end.NRestarts, "0");
        assertEquals(end.ActiveState, "active");
      } catch (error) {
        console.error(await c.journal(unit).catch(() => ""));
        throw error;
      } finally {
        await c.stop();
      }
    },
  });
}
