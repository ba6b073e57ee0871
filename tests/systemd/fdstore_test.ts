/**
 * systemd's fd store and Type=notify-reload with the standalone units (the
 * app opens its own port), under a real systemd (systemd-nspawn, see
 * harness.ts): `systemctl restart` and a crash (SIGKILL, Restart=) refuse no
 * connection of a client loop, `systemctl stop` closes the port; under
 * systemd 257 (Debian trixie), reloads through ReloadSignal= hand over under
 * wrk, and a failed one leaves the old generation serving.
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
  freePort,
  startOnFreePort,
  systemdIgnore,
} from "./harness.ts";
import { clientLoop, type LoopStats } from "./client_loop.ts";
import {
  installStandalone,
  pidOf,
  reloadsUnderWrk,
  show,
} from "./standalone.ts";
import { refused, ROOT, until } from "../helpers.ts";

const STANDALONE = "myapp-standalone.service";
const NOTIFY_RELOAD = "myapp-notify-reload.service";

function summary(what: string, stats: LoopStats): string {
  return `${what}: ${stats.attempts} connections, ${stats.ok} answered, ` +
    `${stats.refused} refused, ${stats.failed} failed otherwise` +
    `${stats.failures.length ? ` (${stats.failures.join("; ")})` : ""}; ` +
    `longest connect ${stats.maxConnectMs.toFixed(0)} ms, longest answer ` +
    `${stats.maxAnswerMs.toFixed(0)} ms`;
}

Deno.test({
  name:
    "systemd suite (nspawn, systemd 252): with the fd store, restart and a crash refuse no connection; a moved port is dropped from the store; stop closes the port",
  ignore: await systemdIgnore(),
  async fn() {
    const c = await bootContainer({ denoDir: "/var/cache/myapp/deno" });
    try {
      const port = await startOnFreePort(
        c,
        STANDALONE,
        (port) => installStandalone(c, STANDALONE, port),
      );
      const first = await show(c, STANDALONE);
      assertEquals(await pidOf(port), first.MainPID);
      assertMatch(
        await c.journal(STANDALONE),
        new RegExp(
          `stored fd \\d+ \\(127\\.0\\.0\\.1:${port}\\) in systemd's fd store as http`,
        ),
      );

      // systemctl restart: the old process drains and exits, systemd holds
      // the socket meanwhile, the new one gets it through LISTEN_FDS.
      let loop = clientLoop(port);
      await loop.answered(20);
      const restart = await c.exec(["systemctl", "restart", STANDALONE], {
        timeoutMs: 120_000,
      });
      assertEquals(restart.code, 0, restart.stderr);
      const restarted = await show(c, STANDALONE);
      assertNotEquals(restarted.MainPID, first.MainPID);
      assertNotEquals(restarted.InvocationID, first.InvocationID);
      await loop.answered(20);
      const restartStats = await loop.stop();
      console.log(summary("systemctl restart", restartStats));
      assertEquals(restartStats.refused, 0, summary("restart", restartStats));
      assertEquals(restartStats.failed, 0, summary("restart", restartStats));
      assertEquals(await pidOf(port), restarted.MainPID);
      const journal = await c.journal(STANDALONE);
      assertMatch(
        journal,
        new RegExp(
          `listening on 127\\.0\\.0\\.1:${port} \\(fd \\d+, inherited`,
        ),
      );

      // A crash: SIGKILL, then Restart=on-failure after RestartSec=1.
      loop = clientLoop(port);
      await loop.answered(20);
      await c.exec(["kill", "-KILL", String(restarted.MainPID)], {
        check: true,
      });
      await until(async () => {
        const s = await show(c, STANDALONE);
        return s.NRestarts === "1" && s.SubState === "running" &&
          s.MainPID !== 0 && s.MainPID !== restarted.MainPID;
      }, 120_000);
      const recovered = await show(c, STANDALONE);
      await loop.answered(20);
      const crashStats = await loop.stop();
      console.log(summary("SIGKILL + Restart=", crashStats));
      // Connections the killed process had accepted are reset; none is
      // refused.
      assertEquals(crashStats.refused, 0, summary("crash", crashStats));
      assert(crashStats.ok >= 40, summary("crash", crashStats));
      assertEquals(await pidOf(port), recovered.MainPID);

      // The configuration moves the server to another port: after a
      // restart it listens there, and the stored socket of the old port is
      // dropped from the store, so that the next restart closes that port.
      const port2 = freePort();
      await installStandalone(c, STANDALONE, port2);
      await c.exec(["systemctl", "restart", STANDALONE], {
        timeoutMs: 120_000,
        check: true,
      });
      const moved = await show(c, STANDALONE);
      assertEquals(await pidOf(port2), moved.MainPID);
      assertMatch(
        await c.journal(STANDALONE),
        new RegExp(
          `no server claimed the stored socket\\(s\\) http on 127\\.0\\.0\\.1:${port}: removed`,
        ),
      );
      await c.exec(["systemctl", "restart", STANDALONE], {
        timeoutMs: 120_000,
        check: true,
      });
      const settled = await show(c, STANDALONE);
      assertEquals(await pidOf(port2), settled.MainPID);
      assert(await refused(port), "the old port is still open");
      const lines = (await c.journal(STANDALONE, [`_PID=${settled.MainPID}`]))
        .split("\n");
      assert(
        lines.some((line) =>
          new RegExp(
            `listening on 127\\.0\\.0\\.1:${port2} \\(fd \\d+, inherited`,
          )
            .test(line)
        ),
        lines.join("\n"),
      );

      // systemctl stop empties the store: the port closes.
      const stop = await c.exec(["systemctl", "stop", STANDALONE], {
        timeoutMs: 120_000,
      });
      assertEquals(stop.code, 0, stop.stderr);
      assert(await refused(port2), "the port is still open after stop");

      // The template, one instance per port (--port %i, on 0.0.0.0).
      const port3 = freePort();
      const instance = `myapp@${port3}.service`;
      await c.writeFile(
        "/etc/systemd/system/myapp@.service",
        Deno.readTextFileSync(`${ROOT}/systemd/myapp@.service`),
      );
      await c.systemctl("daemon-reload");
      await c.systemctl("start", instance);
      const template = clientLoop(port3);
      await template.answered(20);
      await c.exec(["systemctl", "restart", instance], {
        timeoutMs: 120_000,
        check: true,
      });
      await template.answered(20);
      const templateStats = await template.stop();
      console.log(summary(`systemctl restart ${instance}`, templateStats));
      assertEquals(
        templateStats.refused,
        0,
        summary("template", templateStats),
      );
      assertEquals(templateStats.failed, 0, summary("template", templateStats));
    } catch (error) {
      console.error(await c.journal("myapp*").catch(() => ""));
      throw error;
    } finally {
      await c.stop();
    }
  },
});

Deno.test({
  name:
    "systemd suite (nspawn, systemd 257): Type=notify-reload reloads under wrk, a failed reload keeps the old generation, the fd store keeps the port through restart",
  ignore: await systemdIgnore(),
  async fn() {
    const c = await bootContainer({
      suite: "trixie",
      denoDir: "/var/cache/myapp/deno",
    });
    try {
      const version = await c.exec(["systemctl", "--version"], { check: true });
      assertMatch(version.stdout, /^systemd 25[3-9]|^systemd 2[6-9]\d/);
      const port = await startOnFreePort(
        c,
        NOTIFY_RELOAD,
        (port) => installStandalone(c, NOTIFY_RELOAD, port),
      );
      const verify = await c.exec([
        "systemd-analyze",
        "verify",
        "--man=no",
        `/etc/systemd/system/${NOTIFY_RELOAD}`,
      ]);
      assertEquals(verify.code, 0, verify.stdout + verify.stderr);
      const start = await show(c, NOTIFY_RELOAD);
      assertEquals(await pidOf(port), start.MainPID);

      const report = await reloadsUnderWrk(c, NOTIFY_RELOAD, port, 5);
      console.log(`notify-reload, 5 reloads under wrk:\n${report}`);
      const journal = await c.journal(NOTIFY_RELOAD);
      assert(!/Reload operation timed out/.test(journal), journal);
      assertEquals((await show(c, NOTIFY_RELOAD)).NRestarts, "0");

      // A broken version: systemd >= 253 takes the READY=1 that ends the
      // failed reload for success (README); the old generation serves on.
      const serving = await show(c, NOTIFY_RELOAD);
      await c.exec([
        "sh",
        "-c",
        "cp /opt/myapp/src/cli/demo.ts /tmp/demo.ts.good && " +
        "echo 'throw new Error(\"broken release\");' >> /opt/myapp/src/cli/demo.ts",
      ], { check: true });
      const broken = await c.exec(["systemctl", "reload", NOTIFY_RELOAD], {
        timeoutMs: 120_000,
      });
      assertEquals(broken.code, 0, broken.stderr);
      const after = await show(c, NOTIFY_RELOAD);
      assertEquals(after.MainPID, serving.MainPID);
      assertEquals(after.ActiveState, "active");
      assertMatch(after.StatusText, /restart failed/);
      assertEquals(await pidOf(port), serving.MainPID);
      await c.exec(["cp", "/tmp/demo.ts.good", "/opt/myapp/src/cli/demo.ts"], {
        check: true,
      });

      // The fd store under 257 ($FDSTORE set by systemd): restart refuses
      // nothing.
      const loop = clientLoop(port);
      await loop.answered(20);
      const restart = await c.exec(["systemctl", "restart", NOTIFY_RELOAD], {
        timeoutMs: 120_000,
      });
      assertEquals(restart.code, 0, restart.stderr);
      await loop.answered(20);
      const stats = await loop.stop();
      console.log(summary("systemctl restart (257)", stats));
      assertEquals(stats.refused, 0, summary("restart", stats));
      assertEquals(stats.failed, 0, summary("restart", stats));
      await c.systemctl("stop", NOTIFY_RELOAD);
      assert(await refused(port), "the port is still open after stop");
    } catch (error) {
      console.error(await c.journal(NOTIFY_RELOAD).catch(() => ""));
      throw error;
    } finally {
      await c.stop();
    }
  },
});
