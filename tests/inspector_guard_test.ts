/**
 * The SIGUSR1 inspector guard (src/server/inspector_guard.ts), end to end: a local
 * user (nobody) racing for Deno's V8 inspector while armed generations get
 * SIGUSR1, with /proc as the oracle that the server itself holds
 * 127.0.0.1:9229 in every generation (see tests/inspector_race.ts). The long
 * race is in soak_test.ts.
 *
 * @module
 */

import { assert, assertEquals, assertMatch } from "./assert.ts";
import type { Child } from "./helpers.ts";
import { MOD, until } from "./helpers.ts";
import {
  assertGuardCloses,
  assertHoldsGuard,
  generationPid,
  inNetworkOf,
  inOwnNetwork,
  inspectorAttempts,
  inspectorListeners,
  raceIgnored,
  raceRestarts,
  signalUntilDenoTries,
  socketsOf,
  startGuardedApp,
  startRacer,
  stopGuardedApp,
} from "./inspector_race.ts";

Deno.test({
  name:
    "inspector guard: a local user racing during 2 SIGUSR1 restarts, each generation signalled until Deno tried its inspector, opens 0 sessions; each holds the same 127.0.0.1:9229 socket",
  ignore: raceIgnored(),
  async fn() {
    const seen = await raceRestarts(2);
    assertEquals(seen, { generations: 3, listed: 0, sessions: 0 });
  },
});

Deno.test({
  name:
    "inspector guard: with restartSignals SIGUSR2, stray SIGUSR1s until Deno tried its inspector open none, and the guard survives the SIGUSR2 restart",
  ignore: raceIgnored(),
  async fn() {
    const seen = await raceRestarts(1, true);
    assertEquals(seen, { generations: 2, listed: 0, sessions: 0 });
  },
});

Deno.test({
  name:
    "inspector guard: turned off (GRACEFUL_NO_INSPECTOR_GUARD=1), a SIGUSR1 opens the inspector and the racer gets in: the race can fail",
  ignore: raceIgnored(),
  async fn() {
    const app = await startGuardedApp(["SIGUSR2"], {
      GRACEFUL_NO_INSPECTOR_GUARD: "1",
    });
    const pid = await generationPid(app, 1);
    const racer = await startRacer(pid);
    try {
      assertEquals(inspectorListeners(pid), []);
      await signalUntilDenoTries(app, pid);
      await racer.child.waitFor(/^session$/);
      const report = await racer.stop();
      assert(report.sessions > 0, JSON.stringify(report));
      assertEquals(inspectorAttempts(app).opened, 1);
    } finally {
      await racer.stop().catch(() => {});
      await stopGuardedApp(app);
    }
  },
});

/** The CLI's command line (the demo on a free port), with `extra` options and Deno `flags`. */
/**
 * Another process, in a network namespace of its own, that holds
 * 127.0.0.1:9229 there; resolves once it does.
 */
async function holdInspectorPort(): Promise<Child> {
  const holder = inOwnNetwork([
    Deno.execPath(),
    "eval",
    `Deno.listen({ hostname: "127.0.0.1", port: 9229 }); console.log("held");
setInterval(() => {}, 1000);`,
  ]);
  await holder.waitFor(/^held$/);
  return holder;
}

function cli(extra: string[] = [], flags: string[] = []): string[] {
  return [
    Deno.execPath(),
    "run",
    "-A",
    ...flags,
    MOD,
    "--port",
    "0",
    "--hostname",
    "127.0.0.1",
    ...extra,
  ];
}

Deno.test({
  name:
    "inspector guard: 127.0.0.1:9229 taken by another process: said once (no line per retry), retried, and held once it is freed",
  ignore: raceIgnored(),
  async fn() {
    const holder = await holdInspectorPort();
    let server: Child | undefined;
    try {
      server = inNetworkOf(holder.pid, cli());
      await server.waitFor(/Listening on/);
      const line = await server.waitFor(
        /inspector guard: cannot hold 127\.0\.0\.1:9229 \(EADDRINUSE; `ss .*retrying/,
      );
      assertMatch(line[0], /Deno cannot open the inspector on SIGUSR1 either/);
      const taken = inspectorListeners(server.pid);
      assertEquals(taken.length, 1);
      assert(!socketsOf(server.pid).has(taken[0]));
      holder.kill("SIGKILL");
      await server.waitFor(/inspector guard: now holds 127\.0\.0\.1:9229/);
      assertHoldsGuard(server.pid, "after the port was freed");
      assertEquals(
        server.lines.filter((l) => /graceful·inspector/.test(l)).length,
        2,
        server.output,
      );
    } finally {
      holder.kill("SIGKILL");
      await holder.done;
      server?.kill("SIGKILL");
      await server?.done;
    }
  },
});

Deno.test({
  name:
    "inspector guard: a SIGUSR1 right after another process freed 127.0.0.1:9229 (the guard still waiting): the inspector Deno opens is closed at once, and the guard takes the port",
  ignore: raceIgnored(),
  async fn() {
    // The guard retries every 2 s: a SIGUSR1 sent as the holder dies finds
    // the port free and the guard still waiting, so Deno opens the inspector
    // and only the close-at-once fallback stands between it and a client.
    // Should the guard's retry come first, Deno is refused instead; the
    // scenario is then run again.
    for (let attempt = 1;; attempt++) {
      const holder = await holdInspectorPort();
      let server: Child | undefined;
      try {
        // SIGUSR1 is not a restart signal here: one process throughout.
        server = inNetworkOf(
          holder.pid,
          cli(["--restart-signal", "SIGUSR2"]),
        );
        await server.waitFor(/Listening on/);
        await server.waitFor(/inspector guard: cannot hold 127\.0\.0\.1:9229/);
        // Deno opens the inspector on SIGUSR1 only once its runtime has run
        // a while: a SIGUSR1 it refuses (the port is held) says it would.
        while (!/Failed to start inspector server/.test(server.output)) {
          Deno.kill(server.pid, "SIGUSR1");
          await new Promise((resolve) => setTimeout(resolve, 100));
        }
        const refusals = () =>
          server!.lines.filter((l) =>
            /Failed to start inspector server/.test(l)
          )
            .length;
        const refused = refusals();
        holder.kill("SIGKILL");
        await holder.done;
        // Until Deno tries again (a signal that comes while it handles one
        // may be folded into it).
        let sent = 0;
        await until(() => {
          if (
            /Debugger listening on ws:/.test(server!.output) ||
            refusals() > refused
          ) return true;
          if (sent++ % 5 === 0) Deno.kill(server!.pid, "SIGUSR1");
          return false;
        });
        if (!/Debugger listening on ws:/.test(server.output)) {
          assert(attempt < 3, `the guard's retry came first 3 times`);
          continue;
        }
        await server.waitFor(/inspector guard: now holds 127\.0\.0\.1:9229/);
        assertHoldsGuard(server.pid, "after the fallback closed the inspector");
        await assertGuardCloses(server.pid, "after the fallback");
        return;
      } finally {
        holder.kill("SIGKILL");
        await holder.done;
        server?.kill("SIGKILL");
        await server?.done;
      }
    }
  },
});

Deno.test({
  name:
    "inspector guard: stands aside under --inspect (Deno's own inspector holds 127.0.0.1:9229; no guard, no warning)",
  ignore: raceIgnored(),
  async fn() {
    const server = inOwnNetwork(cli([], ["--inspect"]));
    try {
      await server.waitFor(/Listening on/);
      await server.waitFor(/Debugger listening on ws:\/\/127\.0\.0\.1:9229\//);
      // The inspector's socket, and no guard (it would have failed to bind
      // and said so) nor a dup of it.
      assertEquals(inspectorListeners(server.pid).length, 1);
      assert(!/inspector guard/.test(server.output), server.output);
    } finally {
      server.kill("SIGKILL");
      await server.done;
    }
  },
});

Deno.test({
  name:
    "inspector guard: --no-inspector-guard (inspectorGuard: false) holds nothing, and says what that means",
  ignore: raceIgnored(),
  async fn() {
    const server = inOwnNetwork(cli(["--no-inspector-guard"]));
    try {
      await server.waitFor(/Listening on/);
      await server.waitFor(
        /inspector guard off: a SIGUSR1 opens the V8 inspector on 127\.0\.0\.1:9229/,
      );
      assertEquals(inspectorListeners(server.pid), []);
    } finally {
      server.kill("SIGKILL");
      await server.done;
    }
  },
});
