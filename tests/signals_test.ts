/**
 * Restart and shutdown signals with the defaults, against the real CLI, as
 * the process is started in real life: with no controlling terminal (setsid:
 * systemd, containers), in a terminal (script(1) gives it a pty), and under
 * nohup (SIGHUP ignored from the start). The terminal is set explicitly in
 * every test, so that the outcome does not depend on whether the suite
 * itself runs in one.
 *
 * @module
 */

import { assert, assertEquals, assertMatch } from "./assert.ts";
import { terminalArgs } from "./terminal.ts";
import { ignoreWithout, NOHUP, SCRIPT, SETSID } from "./capabilities.ts";
import { alive, Child, killAllWith, MOD, pidsWith, until } from "./helpers.ts";
import { versionedAppSource } from "./fixtures/versioned_app.ts";

interface App {
  dir: string;
  child: Child;
  port: number;
}

/**
 * Starts the CLI on the app through `wrapper` (setsid, nohup, ...), or in a
 * pseudo-terminal with `terminal`.
 */
async function start(
  how: { wrapper?: string[]; terminal?: boolean },
  extra: string[] = [],
): Promise<App> {
  const dir = await Deno.makeTempDir({ prefix: "graceful-signals-" });
  await Deno.writeTextFile(`${dir}/app.ts`, versionedAppSource("v1"));
  const command = [
    Deno.execPath(),
    "run",
    "-A",
    MOD,
    `${dir}/app.ts`,
    "--port",
    "0",
    "--hostname",
    "127.0.0.1",
    ...extra,
  ];
  const child = how.terminal
    ? new Child("script", terminalArgs(command))
    : new Child(how.wrapper![0], [...how.wrapper!.slice(1), ...command]);
  const m = await child.waitFor(/Listening on http:\/\/127\.0\.0\.1:(\d+)\//);
  return { dir, child, port: Number(m[1]) };
}

async function stop(app: App): Promise<void> {
  killAllWith(app.dir);
  app.child.kill("SIGKILL");
  await app.child.exited;
  await until(() => pidsWith(app.dir).length === 0);
  await Deno.remove(app.dir, { recursive: true });
}

/** The serving pid, on a fresh connection. */
async function pidOf(port: number): Promise<number> {
  const res = await fetch(`http://127.0.0.1:${port}/pid`, {
    headers: { connection: "close" },
  });
  return Number(await res.text());
}

/** Sends `signal` to the serving pid; resolves once another pid serves and it exited. */
async function restartBy(port: number, signal: Deno.Signal): Promise<number> {
  const old = await pidOf(port);
  Deno.kill(old, signal);
  let now = old;
  await until(async () => {
    now = await pidOf(port);
    return now !== old;
  });
  await until(() => !alive(old));
  return now;
}

/** The parent of `pid` (ppid in /proc/PID/stat). */
function parentOf(pid: number): number {
  const stat = Deno.readTextFileSync(`/proc/${pid}/stat`);
  return Number(stat.slice(stat.lastIndexOf(")") + 2).split(" ")[1]);
}

/** Whether `pid` has a controlling terminal (tty_nr in /proc/PID/stat). */
function hasTerminal(pid: number): boolean {
  const stat = Deno.readTextFileSync(`/proc/${pid}/stat`);
  return Number(stat.slice(stat.lastIndexOf(")") + 2).split(" ")[4]) !== 0;
}

Deno.test({
  name:
    "signals: with the defaults and no terminal (setsid), kill -HUP and kill -USR2 each restart",
  ignore: ignoreWithout(SETSID),
  async fn() {
    const app = await start({ wrapper: ["setsid"] });
    try {
      const first = await pidOf(app.port);
      assert(!hasTerminal(first));
      const second = await restartBy(app.port, "SIGHUP");
      const third = await restartBy(app.port, "SIGUSR2");
      assert(third !== second && second !== first);
      assertEquals(
        app.child.lines.filter((l) => /restarting \(by signal\)/.test(l))
          .length,
        2,
        app.child.output,
      );
      assertEquals(pidsWith(app.dir), [third]);
    } finally {
      await stop(app);
    }
  },
});

Deno.test({
  name:
    "signals: in a terminal (script), SIGHUP to the supervisor drains its worker (the request in flight is answered) and exits 0, with no restart",
  ignore: ignoreWithout(SCRIPT),
  async fn() {
    const app = await start({ terminal: true });
    try {
      // In a terminal the CLI supervises one worker (its own session).
      const pid = await pidOf(app.port);
      const supervisor = parentOf(pid);
      assert(hasTerminal(supervisor));
      assert(!hasTerminal(pid));
      const held = fetch(`http://127.0.0.1:${app.port}/hold?gate=go`)
        .then((res) => res.text(), (error) => String(error));
      await app.child.waitFor(new RegExp(`holding in ${pid}`));
      Deno.kill(supervisor, "SIGHUP");
      await app.child.waitFor(/SIGHUP: stopping 1 worker\(s\) gracefully/);
      await Deno.writeTextFile(`${app.dir}/go`, "");
      assertEquals(await held, `held in ${pid}`);
      // script -e exits with the program's status.
      assertEquals((await app.child.exited).code, 0, app.child.output);
      assert(!/restarting/.test(app.child.output), app.child.output);
      assertEquals(pidsWith(app.dir), []);
    } finally {
      await stop(app);
    }
  },
});

Deno.test({
  name:
    "signals: under nohup (SIGHUP ignored from the start), SIGHUP is ignored, also by the next generation",
  ignore: ignoreWithout(SETSID, NOHUP),
  async fn() {
    // No terminal either: SIGHUP would restart, were nohup not honoured.
    const app = await start({ wrapper: ["setsid", "nohup"] });
    const ignored = /SIGHUP ignored: it was ignored when this process started/;
    const count = () => app.child.lines.filter((l) => ignored.test(l)).length;
    try {
      const first = await pidOf(app.port);
      Deno.kill(first, "SIGHUP");
      await until(() => count() === 1);
      assertEquals(await pidOf(app.port), first);
      const second = await restartBy(app.port, "SIGUSR2");
      Deno.kill(second, "SIGHUP");
      await until(() => count() === 2);
      assertEquals(await pidOf(app.port), second);
      assert(alive(second));
      assertEquals(
        app.child.lines.filter((l) => /restarting \(by signal\)/.test(l))
          .length,
        1,
        app.child.output,
      );
    } finally {
      await stop(app);
    }
  },
});

Deno.test({
  name:
    "signals: with --restart-signal SIGUSR2, SIGHUP and SIGUSR1 are logged and ignored; the server keeps serving, and SIGUSR2 restarts",
  ignore: ignoreWithout(SETSID),
  async fn() {
    const app = await start({ wrapper: ["setsid"] }, [
      "--restart-signal",
      "SIGUSR2",
    ]);
    try {
      const first = await pidOf(app.port);
      for (const signal of ["SIGHUP", "SIGUSR1"] as const) {
        Deno.kill(first, signal);
        await app.child.waitFor(
          new RegExp(`${signal} ignored: it is not a restart signal here`),
        );
        assertEquals(await pidOf(app.port), first);
      }
      assert(!/restarting/.test(app.child.output), app.child.output);
      const second = await restartBy(app.port, "SIGUSR2");
      assertMatch(app.child.output, /restarting \(by signal\)/);
      assertEquals(pidsWith(app.dir), [second]);
    } finally {
      await stop(app);
    }
  },
});
