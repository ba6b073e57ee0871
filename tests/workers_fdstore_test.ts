/**
 * systemd's fd store under `--workers`, against a real unix datagram socket
 * standing in for systemd's notify socket (tests/notify_receiver.ts): the
 * supervisor, not a worker, stores the socket the first worker opened, once.
 *
 * @module
 */

import { assertEquals, assertMatch } from "./assert.ts";
import { ignoreWithout, PYTHON } from "./capabilities.ts";
import { Child, MOD, until } from "./helpers.ts";
import { datagrams, startNotifyReceiver } from "./notify_receiver.ts";

Deno.test({
  name:
    "workers: with $FDSTORE the supervisor (its pid, not a worker's) stores the socket its first worker opened, once, before READY=1",
  ignore: ignoreWithout(PYTHON),
  async fn() {
    const dir = await Deno.makeTempDir({ prefix: "graceful-workers-store-" });
    const notify = `${dir}/notify.sock`;
    const pidfile = `${dir}/app.pid`;
    const receiver = await startNotifyReceiver(notify);
    let server: Child | undefined;
    try {
      server = new Child(Deno.execPath(), [
        "run",
        "-A",
        MOD,
        "--workers",
        "2",
        "--port",
        "0",
        "--hostname",
        "127.0.0.1",
        "--pidfile",
        pidfile,
      ], { NOTIFY_SOCKET: notify, FDSTORE: "16" });
      await receiver.waitFor(/READY=1/);
      let status: { listeners: string[]; workers: unknown[] } | undefined;
      await until(() => {
        try {
          status = JSON.parse(Deno.readTextFileSync(`${pidfile}.json`));
        } catch {
          status = undefined; // written just after READY=1
        }
        return status?.workers.length === 2;
      });
      const port = Number(status!.listeners[0].split(":").pop());
      const ready = datagrams(receiver).find((d) => /READY=1/.test(d.text))!;
      assertEquals(ready.pid, server.pid);
      const stored = datagrams(receiver).filter((d) =>
        /^FDSTORE=1$/m.test(d.text)
      );
      assertEquals(stored.length, 1, receiver.output);
      assertEquals(stored[0].pid, server.pid, "stored by the supervisor");
      assertMatch(stored[0].text, /^FDNAME=[\x20-\x7e]+$/m);
      assertEquals(stored[0].fds, [{ port, listening: 1 }]);
      // Both workers are ready by now: none stored a socket of its own.
      assertEquals(
        datagrams(receiver).filter((d) => /^FDSTORE=1$/m.test(d.text))
          .length,
        1,
      );
    } finally {
      server?.kill("SIGTERM");
      await server?.done;
      receiver.kill("SIGKILL");
      await receiver.done;
      await Deno.remove(dir, { recursive: true });
    }
  },
});
