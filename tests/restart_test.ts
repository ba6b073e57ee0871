/**
 * Zero-downtime restarts, end to end: real `deno run -A mod.ts APP.ts`
 * processes, SIGUSR1, real sockets, wrk. Every test runs its own copy of the
 * app in a temp dir, whose path marks all its generations, so that nothing is
 * left behind.
 */

import {
  assert,
  assertEquals,
  assertMatch,
  assertNotEquals,
} from "./assert.ts";
import { alive, fdCount, get, pidsWith, TempApp, until } from "./helpers.ts";
import { rawExchange } from "./http_client.ts";
import { assertNoFailures, Load } from "./load.ts";
import { versionedAppSource } from "./fixtures/versioned_app.ts";

async function pidOf(port: number): Promise<number> {
  return Number((await get(port, "/pid")).text);
}

/** Sends SIGUSR1 to the serving pid and waits until another pid serves. */
async function restartOnce(
  port: number,
): Promise<{ old: number; now: number }> {
  const old = await pidOf(port);
  Deno.kill(old, "SIGUSR1");
  let now = old;
  await until(async () => {
    now = await pidOf(port);
    return now !== old;
  });
  return { old, now };
}

Deno.test("restart: with no traffic the new generation serves and the old one exits", async () => {
  const t = await TempApp.start(versionedAppSource("v1"));
  const { child, port, dir: marker } = t;
  try {
    const { old, now } = await restartOnce(port);
    assertEquals(old, child.pid);
    await until(() => !alive(old));
    assertEquals((await child.exited).code, 0);
    assertEquals(pidsWith(marker), [now]);
    await child.waitFor(/generation 2 .*ready|new generation 2 ready/);
  } finally {
    await t.stop();
  }
});

Deno.test("restart: a request in flight completes on the old generation", async () => {
  const t = await TempApp.start(versionedAppSource("v1"));
  const { port } = t;
  try {
    const old = await pidOf(port);
    const slow = get(port, "/sleep?ms=3000");
    await new Promise((r) => setTimeout(r, 300));
    const { now } = await restartOnce(port);
    assertNotEquals(now, old);
    assert(alive(old), "the old generation is still draining");
    const res = await slow;
    assertEquals(res.status, 200);
    assertEquals(res.text, `slept in ${old}`);
    await until(() => !alive(old));
  } finally {
    await t.stop();
  }
});

Deno.test("restart: 50 in a row, one process left, fd count stable", async () => {
  const t = await TempApp.start(versionedAppSource("v1"));
  const { port, dir: marker } = t;
  try {
    const fds: number[] = [];
    for (let i = 0; i < 50; i++) {
      const { old, now } = await restartOnce(port);
      await until(() => !alive(old));
      fds.push(fdCount(now));
    }
    assertEquals(pidsWith(marker).length, 1);
    // No fd leaks from one generation to the next: the last generation
    // settles at the smallest count any generation had. (Right after a handover a generation
    // may still hold its control-channel socket for a moment; a leak would
    // never go away.)
    const last = pidsWith(marker)[0];
    const baseline = Math.min(...fds);
    await until(() => fdCount(last) <= baseline);
  } finally {
    await t.stop();
  }
});

for (
  const [what, source] of [
    ["a syntax error", "export default {"],
    ["a throw at top level", "throw new Error('broken at load');"],
    ["Deno.exit(1)", "Deno.exit(1);"],
    [
      "a hang before ready",
      "setInterval(() => {}, 1000);\nawait new Promise(() => {});",
    ],
  ] as const
) {
  Deno.test(`restart: a new version with ${what} leaves the old one serving`, async () => {
    // Only the hang needs a short start timeout; everything else keeps the
    // default, so that a slow machine never fails a good generation.
    const hang = what === "a hang before ready";
    const t = await TempApp.start(
      versionedAppSource("v1"),
      hang ? ["--start-timeout", "4000"] : [],
    );
    const { app, child, port, dir: marker } = t;
    try {
      const old = await pidOf(port);
      await Deno.writeTextFile(app, source);
      Deno.kill(old, "SIGUSR1");
      await child.waitFor(/restart failed/);
      assertEquals(await pidOf(port), old);
      assertEquals((await get(port, "/version")).text, "v1");
      await until(() => pidsWith(marker).length === 1);
      assertEquals(pidsWith(marker), [old]);
      if (hang) return; // recovery is shown by the other cases
      // The next good version is picked up.
      await Deno.writeTextFile(app, versionedAppSource("v2"));
      const { now } = await restartOnce(port);
      assertNotEquals(now, old);
      assertEquals((await get(port, "/version")).text, "v2");
    } finally {
      await t.stop();
    }
  });
}

Deno.test("restart: a storm of 20 SIGUSR1 makes exactly one new generation", async () => {
  const t = await TempApp.start(versionedAppSource("v1"));
  const { child, port, dir: marker } = t;
  try {
    const old = await pidOf(port);
    for (let i = 0; i < 20; i++) {
      try {
        Deno.kill(old, "SIGUSR1");
      } catch {
        break; // already handed over and gone
      }
      await new Promise((r) => setTimeout(r, 5));
    }
    await until(() => !alive(old));
    const left = pidsWith(marker);
    assertEquals(left.length, 1);
    assertEquals(await pidOf(port), left[0]);
    const generations = child.lines.filter((l) =>
      /new generation \d+ ready/.test(l)
    );
    assertEquals(generations.length, 1, child.output);
  } finally {
    await t.stop();
  }
});

Deno.test("restart: SIGTERM in the middle of a restart leaves nothing behind", async () => {
  const t = await TempApp.start(versionedAppSource("v1"));
  const { app, child, port, dir: marker } = t;
  try {
    const old = await pidOf(port);
    await Deno.writeTextFile(
      app,
      "setInterval(() => {}, 1000);\nawait new Promise(() => {});",
    );
    Deno.kill(old, "SIGUSR1");
    await child.waitFor(/restarting/);
    await until(() => pidsWith(marker).length === 2);
    Deno.kill(old, "SIGTERM");
    assertEquals((await child.exited).code, 0);
    await until(() => pidsWith(marker).length === 0);
  } finally {
    await t.stop();
  }
});

Deno.test("restart: control-channel intruders are refused and the restart succeeds", async () => {
  const t = await TempApp.start(versionedAppSource("v1"));
  const { app, child, port, dir: marker } = t;
  try {
    const old = await pidOf(port);
    // The next version waits before it serves, so the intruders come first.
    await Deno.writeTextFile(
      app,
      "await new Promise((r) => setTimeout(r, 1500));\n" +
        versionedAppSource("v2"),
    );
    Deno.kill(old, "SIGUSR1");
    let childPid = 0;
    await until(() => {
      childPid = pidsWith(marker).find((p) => p !== old) ?? 0;
      return childPid !== 0;
    });
    let addr = "";
    await until(() => {
      const env = Deno.readTextFileSync(`/proc/${childPid}/environ`).split(
        "\0",
      );
      addr = env.find((e) =>
        e.startsWith("GRACEFUL_CONTROL_ADDR=")
      )?.split("=")[1] ?? "";
      return addr !== "";
    });
    const [hostname, p] = addr.split(":");
    for (
      const payload of [
        JSON.stringify({ type: "hello", token: "0".repeat(64), pid: 1 }) + "\n",
        "garbage\n",
        "x".repeat(2 * 1024 * 1024),
      ]
    ) {
      const conn = await Deno.connect({ hostname, port: Number(p) });
      await conn.write(new TextEncoder().encode(payload)).catch(() => {});
      const n = await conn.read(new Uint8Array(16)).catch(() => null);
      assertEquals(n, null, "the intruder got an answer");
      conn.close();
    }
    await until(async () => (await pidOf(port)) !== old);
    assertEquals((await get(port, "/version")).text, "v2");
    assertMatch(child.output, /refused/);
  } finally {
    await t.stop();
  }
});

/** Requests for / that each generation must answer while the load runs. */
const PER_GENERATION = 200;

/** Resolves once generation `pid` has answered `count` requests for /. */
async function served(port: number, pid: number, count: number) {
  await until(async () => {
    const [who, n] = (await get(port, "/served", {
      headers: { connection: "close" },
    })).text.split(" ").map(Number);
    return who === pid && n >= count;
  });
}

for (const mode of ["keep-alive", "Connection: close"]) {
  Deno.test(`restart: 4 restarts under wrk load (${mode}) lose no request`, async () => {
    const t = await TempApp.start(versionedAppSource("v1"));
    const { child, dir, port } = t;
    const load = Load.start(`http://127.0.0.1:${port}/`, {
      connectionClose: mode === "Connection: close",
    });
    try {
      let pid = await pidOf(port);
      await served(port, pid, PER_GENERATION);
      for (let i = 0; i < 4; i++) {
        // A request in flight on the old generation while it drains: it
        // must be answered there, not cut.
        const gate = `${dir}/gate-${i}`;
        const holding = child.lines.filter((l) => /holding in/.test(l)).length;
        const held = rawExchange(
          port,
          `GET /hold?gate=${gate} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n`,
          { timeoutMs: 120_000 },
        );
        await until(() =>
          child.lines.filter((l) => /holding in/.test(l)).length > holding
        );
        const drains = child.lines.filter((l) => /stopped accepting/.test(l))
          .length;
        load.assertRunning(`before restart ${i + 1}`);
        const { old, now } = await restartOnce(port);
        assertEquals(old, pid);
        await until(() =>
          child.lines.filter((l) => /stopped accepting/.test(l)).length > drains
        );
        await Deno.writeTextFile(gate, "");
        const [res] = await held;
        assertEquals([res?.status, res?.body], [200, `held in ${old}`]);
        await until(() => !alive(old));
        // The load went on: the new generation answers its share.
        await served(port, now, PER_GENERATION);
        load.assertRunning(`after restart ${i + 1}`);
        pid = now;
      }
      assertNoFailures(await load.stop(), 4 * PER_GENERATION);
    } finally {
      await load.kill();
      await t.stop();
    }
  });
}
