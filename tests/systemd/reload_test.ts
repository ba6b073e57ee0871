/**
 * The shipped units under a real systemd 252 (systemd-nspawn, see
 * harness.ts): socket activation, N × `systemctl reload` under wrk load,
 * `systemctl stop` draining, Restart= after a SIGKILL, and a broken reload.
 *
 * The units are installed as the README's deployment section says, with
 * only the socket's port changed (a free one, so that runs do not collide).
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
  freePort,
  systemdIgnore,
} from "./harness.ts";
import { ROOT } from "../helpers.ts";

const RELOADS = 5;

async function installUnits(c: Container, port: number): Promise<void> {
  const socket = Deno.readTextFileSync(`${ROOT}/systemd/myapp.socket`)
    .replace(/^ListenStream=.*$/m, `ListenStream=127.0.0.1:${port}`);
  await c.writeFile("/etc/systemd/system/myapp.socket", socket);
  await c.writeFile(
    "/etc/systemd/system/myapp.service",
    Deno.readTextFileSync(`${ROOT}/systemd/myapp.service`),
  );
  await c.systemctl("daemon-reload");
}

async function show(c: Container) {
  const props = await c.show("myapp.service", [
    "MainPID",
    "InvocationID",
    "NRestarts",
    "ActiveState",
    "SubState",
  ]);
  return { ...props, MainPID: Number(props.MainPID) };
}

async function pidOf(port: number): Promise<number> {
  // A fresh connection each time: not a pooled one to a draining generation.
  const res = await fetch(`http://127.0.0.1:${port}/pid`, {
    headers: { connection: "close" },
  });
  return Number((await res.text()).trim());
}

async function alive(c: Container, pid: number): Promise<boolean> {
  return (await c.exec(["test", "-d", `/proc/${pid}`])).code === 0;
}

async function waitFor(check: () => Promise<boolean>, ms = 60_000) {
  const deadline = Date.now() + ms;
  while (!(await check())) {
    if (Date.now() > deadline) throw new Error("condition not met in time");
    await new Promise((r) => setTimeout(r, 50));
  }
}

Deno.test({
  name:
    "systemd suite (nspawn, systemd 252): the shipped units reload with zero downtime, stop drains, Restart= and a broken reload",
  ignore: await systemdIgnore(),
  async fn() {
    const port = freePort();
    const c = await bootContainer({
      denoDir: "/var/cache/myapp/deno",
      // Another checkout to install instead (to check that the test fails
      // against a deliberately broken copy).
      projectDir: Deno.env.get("GRACEFUL_SYSTEMD_PROJECT") || undefined,
    });
    try {
      await installUnits(c, port);
      await c.systemctl("start", "myapp.socket");
      // The first request activates the service.
      const first = await pidOf(port);
      const start = await show(c);
      assertEquals(start.MainPID, first, await c.journal("myapp.service"));
      assertEquals(start.ActiveState, "active");

      // N reloads under load.
      const wrk = new Deno.Command("wrk", {
        args: [
          "-t1",
          "-c20",
          `-d${RELOADS * 2 + 4}s`,
          `http://127.0.0.1:${port}/`,
        ],
        stdout: "piped",
        stderr: "piped",
      }).output();
      await new Promise((r) => setTimeout(r, 1000));
      let previous = start.MainPID;
      for (let i = 0; i < RELOADS; i++) {
        const reload = await c.exec(["systemctl", "reload", "myapp.service"], {
          timeoutMs: 120_000,
        });
        assertEquals(
          reload.code,
          0,
          reload.stderr + await c.journal("myapp.service"),
        );
        // `systemctl reload` returned after the handover, not before.
        const now = await show(c);
        assertNotEquals(now.MainPID, previous);
        assert(await alive(c, now.MainPID));
        assertEquals(now.InvocationID, start.InvocationID);
        assertEquals(now.NRestarts, "0");
        assertEquals(now.ActiveState, "active");
        await waitFor(async () => !(await alive(c, previous)));
        await waitFor(async () => (await pidOf(port)) === now.MainPID);
        previous = now.MainPID;
        await new Promise((r) => setTimeout(r, 1000));
      }
      const load = await wrk;
      const report = new TextDecoder().decode(load.stdout);
      assertEquals(load.code, 0, report);
      assertMatch(report, /requests in/);
      assert(!/Socket errors/.test(report), report);
      assert(!/Non-2xx/.test(report), report);

      // A broken version: reload fails, the service keeps serving.
      await c.exec([
        "sh",
        "-c",
        "cp /opt/myapp/src/demo.ts /tmp/demo.ts.good && " +
        "echo 'throw new Error(\"broken release\");' >> /opt/myapp/src/demo.ts",
      ], { check: true });
      const broken = await c.exec(["systemctl", "reload", "myapp.service"], {
        timeoutMs: 120_000,
      });
      assertNotEquals(broken.code, 0);
      const afterBroken = await show(c);
      assertEquals(afterBroken.MainPID, previous);
      assertEquals(afterBroken.ActiveState, "active");
      assertEquals(await pidOf(port), previous);
      assertMatch(await c.journal("myapp.service"), /broken release/);
      await c.exec(["cp", "/tmp/demo.ts.good", "/opt/myapp/src/demo.ts"], {
        check: true,
      });

      // systemctl stop drains: a 3 s request in flight completes.
      const slow = fetch(`http://127.0.0.1:${port}/sleep?ms=3000`).then(
        async (r) => ({ status: r.status, text: await r.text() }),
      );
      await new Promise((r) => setTimeout(r, 300));
      const stop = await c.exec(["systemctl", "stop", "myapp.service"], {
        timeoutMs: 120_000,
      });
      assertEquals(stop.code, 0, stop.stderr);
      const answered = await slow;
      assertEquals(answered.status, 200);
      assertMatch(answered.text, new RegExp(`pid ${previous}`));
      assertEquals((await show(c)).ActiveState, "inactive");

      // The socket is still there: the next request activates it again, and
      // a SIGKILLed main process is restarted by Restart=on-failure.
      const again = await pidOf(port);
      const before = await show(c);
      assertEquals(before.MainPID, again);
      await c.exec(["kill", "-KILL", String(again)], { check: true });
      await waitFor(async () => {
        const s = await show(c);
        return s.NRestarts === "1" && s.MainPID !== 0 && s.MainPID !== again &&
          s.SubState === "running";
      });
      const restarted = await show(c);
      assertEquals(await pidOf(port), restarted.MainPID);
    } catch (error) {
      console.error(await c.journal("myapp.service").catch(() => ""));
      throw error;
    } finally {
      await c.stop();
    }
  },
});
