/**
 * What a supervisor of workers tells systemd, read from a real notify socket
 * (tests/notify_receiver.ts): READY=1 once its workers are ready, RELOADING=1
 * (with MONOTONIC_USEC) then READY=1 around a roll, STATUS= with the ready
 * workers and with a failed roll's reason, and all of it from the supervisor's
 * pid: workers get no NOTIFY_SOCKET.
 *
 * @module
 */

import { assert, assertEquals, assertMatch } from "./assert.ts";
import { ignoreWithout, PYTHON } from "./capabilities.ts";
import { readStatus, runCli, TempApp, until } from "./helpers.ts";
import { datagrams, startNotifyReceiver } from "./notify_receiver.ts";
import { app } from "./workers_harness.ts";

Deno.test({
  name:
    "workers: READY=1 once 2 workers are ready, RELOADING=1 then READY=1 around each roll, STATUS= says a failed roll's reason; only the supervisor notifies",
  ignore: ignoreWithout(PYTHON),
  async fn() {
    const dir = await Deno.makeTempDir({ prefix: "graceful-workers-notify-" });
    const notify = `${dir}/notify.sock`;
    const pidfile = `${dir}/app.pid`;
    const receiver = await startNotifyReceiver(notify);
    let t: TempApp | undefined;
    try {
      t = await TempApp.start(
        app("v1"),
        ["--workers", "2", "--pidfile", pidfile],
        { NOTIFY_SOCKET: notify },
      );
      await receiver.waitFor(/READY=1/);
      await until(() => readStatus(pidfile)?.workers.length === 2);
      const supervisor = t.child.pid;
      const texts = () => datagrams(receiver).map((d) => d.text);
      const first = datagrams(receiver).find((d) => /READY=1/.test(d.text))!;
      assertMatch(first.text, /^STATUS=2\/2 workers ready, generation 1/m);

      // A roll that succeeds: RELOADING=1 with the clock, then READY=1.
      const before = texts().length;
      const rolled = await runCli(["reload", "--pidfile", pidfile]);
      assertEquals(rolled.code, 0, rolled.stderr);
      await until(() =>
        texts().slice(before).some((text) => /^READY=1$/m.test(text))
      );
      const roll = texts().slice(before);
      const reloading = roll.findIndex((text) => /^RELOADING=1$/m.test(text));
      assert(reloading >= 0, roll.join("\n---\n"));
      assertMatch(roll[reloading], /^MONOTONIC_USEC=\d+$/m);
      const ready = roll.findIndex((text) => /^READY=1$/m.test(text));
      assert(ready > reloading, roll.join("\n---\n"));

      // A roll that fails: READY=1 all the same (systemd leaves "reloading"),
      // and STATUS= says why.
      await t.write(app("v2", 'throw new Error("v2 cannot start");\n'));
      const failedAt = texts().length;
      const failed = await runCli(["reload", "--pidfile", pidfile]);
      assertEquals(failed.code, 1, failed.stdout);
      await until(() =>
        texts().slice(failedAt).some((text) => /^READY=1$/m.test(text))
      );
      const failedRoll = texts().slice(failedAt);
      assert(
        failedRoll.some((text) => /^RELOADING=1$/m.test(text)),
        failedRoll.join("\n---\n"),
      );
      assert(
        failedRoll.some((text) =>
          /^STATUS=.*rolling restart failed: worker \d+ .*did not start/m
            .test(text)
        ),
        failedRoll.join("\n---\n"),
      );

      // Every datagram came from the supervisor (its pid stays across the
      // execve of a signal reload), none from a worker.
      const senders = new Set(datagrams(receiver).map((d) => d.pid));
      assertEquals([...senders], [supervisor]);
    } finally {
      t?.child.kill("SIGTERM");
      await t?.child.done;
      receiver.kill("SIGKILL");
      await receiver.done;
      await Deno.remove(dir, { recursive: true });
      if (t) await Deno.remove(t.dir, { recursive: true });
    }
  },
});
