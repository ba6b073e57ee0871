/**
 * A socket-activated HTTPS service under a real systemd 252 (nspawn, see
 * harness.ts): the shipped units with `--cert`/`--key` added, reloaded under
 * wrk load over TLS; no request may fail, and the native engine (Deno.serve
 * transplanted onto systemd's socket) serves it.
 *
 * @module
 */

import {
  assert,
  assertEquals,
  assertMatch,
  assertNotEquals,
} from "../assert.ts";
import {
  bootContainer,
  type Container,
  startSocketUnits,
  systemdIgnore,
} from "./harness.ts";
import { ROOT } from "../helpers.ts";
import { selfSignedCert } from "../../bench/lib/tls_cert.ts";

const RELOADS = 3;

Deno.test({
  name:
    "systemd suite (nspawn, systemd 252): a socket-activated HTTPS service reloads under load with 0 failed requests",
  ignore: await systemdIgnore(),
  async fn() {
    let port = 0;
    const tls = await selfSignedCert();
    const client = Deno.createHttpClient({ caCerts: [tls.cert] });
    const pidOf = async () => {
      const res = await fetch(`https://localhost:${port}/pid`, {
        client,
        headers: { connection: "close" },
      });
      return Number((await res.text()).trim());
    };
    const c: Container = await bootContainer({
      denoDir: "/var/cache/myapp/deno",
    });
    try {
      await c.writeFile("/opt/myapp/tls/cert.pem", tls.cert);
      await c.writeFile("/opt/myapp/tls/key.pem", tls.key, 0o600);
      port = await startSocketUnits(
        c,
        Deno.readTextFileSync(`${ROOT}/systemd/myapp.service`).replace(
          /^(ExecStart=.*)$/m,
          "$1 --cert /opt/myapp/tls/cert.pem --key /opt/myapp/tls/key.pem",
        ),
      );
      let previous = await pidOf();
      assertMatch(
        await c.journal("myapp.service"),
        /native engine: Deno\.serve transplanted/,
      );

      const wrk = new Deno.Command("wrk", {
        args: [
          "-t1",
          "-c20",
          `-d${RELOADS * 3 + 4}s`,
          `https://127.0.0.1:${port}/`,
        ],
        stdout: "piped",
        stderr: "piped",
      }).output();
      await new Promise((r) => setTimeout(r, 1000));
      for (let i = 0; i < RELOADS; i++) {
        const reload = await c.exec(["systemctl", "reload", "myapp.service"], {
          timeoutMs: 120_000,
        });
        assertEquals(
          reload.code,
          0,
          reload.stderr + await c.journal("myapp.service"),
        );
        const { MainPID } = await c.show("myapp.service", ["MainPID"]);
        const now = Number(MainPID);
        assertNotEquals(now, previous);
        // Not a timing check: the reload returned once the new one served.
        while ((await pidOf()) !== now) {
          await new Promise((r) => setTimeout(r, 50));
        }
        previous = now;
        await new Promise((r) => setTimeout(r, 1000));
      }
      const load = await wrk;
      const report = new TextDecoder().decode(load.stdout);
      assertEquals(load.code, 0, report);
      assertMatch(report, /requests in/);
      assert(!/Socket errors/.test(report), report);
      assert(!/Non-2xx/.test(report), report);
      console.log(
        `MEASURE https reloads: ${RELOADS}, wrk: ${
          report.match(/\d+ requests in [^,]+/)?.[0]
        }, 0 errors`,
      );
    } catch (error) {
      console.error(await c.journal("myapp.service").catch(() => ""));
      throw error;
    } finally {
      client.close();
      await c.stop();
    }
  },
});
