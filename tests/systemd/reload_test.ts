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
  startSocketUnits,
  systemdIgnore,
} from "./harness.ts";
import { rawExchange, type RawResponse } from "../http_client.ts";
import { assertNoFailures, Load } from "../load.ts";

const RELOADS = 5;
/** Connections of each of the two loads (keep-alive, `Connection: close`). */
const CONNECTIONS = 10;
/** Requests each load must complete across the reloads. */
const MINIMUM_REQUESTS = 1000;

/** Installs the units; starts the socket on a free port, and returns it. */
function installUnits(c: Container): Promise<number> {
  return startSocketUnits(c);
}

/**
 * Established connections on `port` (from `clientPort`, if given) that
 * container process `pid` holds.
 */
async function connectionsOf(
  c: Container,
  port: number,
  pid: number,
  clientPort?: number,
): Promise<number> {
  const filter = clientPort === undefined
    ? `( sport = :${port} )`
    : `( sport = :${port} and dport = :${clientPort} )`;
  const ss = await c.exec(["ss", "-Htnp", "state", "established", filter], {
    check: true,
  });
  return ss.stdout.split("\n").filter((line) => line.includes(`pid=${pid},`))
    .length;
}

/**
 * Sends `/sleep?ms=8000` and resolves once process `pid` accepted it (it
 * holds the connection), with the response to come (wrapped: an async
 * function would wait for a promise it returns).
 */
async function inFlight(
  c: Container,
  port: number,
  pid: number,
): Promise<{ response: Promise<RawResponse[]> }> {
  const conn = await Deno.connect({ hostname: "127.0.0.1", port });
  const clientPort = (conn.localAddr as Deno.NetAddr).port;
  const response = rawExchange(
    conn,
    "GET /sleep?ms=8000 HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
    { timeoutMs: 120_000 },
  );
  response.catch(() => {}); // awaited by the caller
  await waitFor(async () => await connectionsOf(c, port, pid, clientPort) > 0);
  return { response };
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
    const c = await bootContainer({
      denoDir: "/var/cache/myapp/deno",
      // Another checkout to install instead (to check that the test fails
      // against a deliberately broken copy).
      projectDir: Deno.env.get("GRACEFUL_SYSTEMD_PROJECT") || undefined,
    });
    try {
      const port = await installUnits(c);
      // The first request activates the service.
      const first = await pidOf(port);
      const start = await show(c);
      assertEquals(start.MainPID, first, await c.journal("myapp.service"));
      assertEquals(start.ActiveState, "active");

      // N reloads under load: keep-alive and `Connection: close` at once,
      // until stopped, so that every reload falls inside the load window.
      const url = `http://127.0.0.1:${port}/`;
      const loads = [
        Load.start(url, { connections: CONNECTIONS }),
        Load.start(url, { connections: CONNECTIONS, connectionClose: true }),
      ];
      let previous = start.MainPID;
      try {
        // The keep-alive load's connections are on the serving generation.
        const loaded = async (pid: number) =>
          await connectionsOf(c, port, pid) >= CONNECTIONS;
        await waitFor(() => loaded(start.MainPID));
        for (let i = 0; i < RELOADS; i++) {
          for (const load of loads) {
            load.assertRunning(`before reload ${i + 1}`);
          }
          // On the first reload, a request in flight on the old generation
          // (8 s: a net far longer than a handover) must be answered there,
          // not cut: what `Connection: close` load may not catch.
          const slow = i > 0 ? undefined : await inFlight(c, port, previous);
          const reload = await c.exec(
            ["systemctl", "reload", "myapp.service"],
            { timeoutMs: 120_000 },
          );
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
          if (slow) {
            const [answered] = await slow.response;
            assertEquals(answered?.status, 200);
            assertMatch(answered.body, new RegExp(`pid ${previous}\\b`));
          }
          await waitFor(async () => !(await alive(c, previous)));
          await waitFor(async () => (await pidOf(port)) === now.MainPID);
          // The load went on: it reconnected to the new generation.
          await waitFor(() => loaded(now.MainPID));
          for (const load of loads) load.assertRunning(`after reload ${i + 1}`);
          previous = now.MainPID;
        }
        const [keepAlive, close] = [
          await loads[0].stop(),
          await loads[1].stop(),
        ];
        console.log(
          `${RELOADS} reloads under load: keep-alive ${keepAlive.requests}, ` +
            `Connection: close ${close.requests} requests`,
        );
        assertNoFailures(keepAlive, MINIMUM_REQUESTS);
        assertNoFailures(close, MINIMUM_REQUESTS);
      } finally {
        for (const load of loads) await load.kill();
      }

      // A broken version: reload fails, the service keeps serving.
      await c.exec([
        "sh",
        "-c",
        "cp /opt/myapp/src/cli/demo.ts /tmp/demo.ts.good && " +
        "echo 'throw new Error(\"broken release\");' >> /opt/myapp/src/cli/demo.ts",
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
      await c.exec(["cp", "/tmp/demo.ts.good", "/opt/myapp/src/cli/demo.ts"], {
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
