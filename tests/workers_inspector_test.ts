/**
 * The inspector guard under `--workers`: the supervisor holds 127.0.0.1:9229
 * and passes that one socket to every worker and to its own execve'd image,
 * so that no process of the tree can have Deno open its inspector on
 * SIGUSR1. Run in a network namespace of its own (tests/inspector_race.ts),
 * with /proc as the oracle.
 *
 * @module
 */

import { assert, assertEquals } from "./assert.ts";
import { ignoreWithout, NET_NAMESPACE } from "./capabilities.ts";
import { MOD, readStatus, until, type WorkersStatus } from "./helpers.ts";
import { assertHoldsGuard, inOwnNetwork, socketsOf } from "./inspector_race.ts";

/** Every worker of `status` holds the guard socket `inode`. */
function assertWorkersHold(
  status: WorkersStatus,
  inode: string,
  what: string,
): void {
  assertEquals(status.workers.length, 2, `${what}: workers`);
  for (const worker of status.workers) {
    assert(
      socketsOf(worker.pid).has(inode),
      `${what}: worker pid ${worker.pid} does not hold the supervisor's ` +
        `127.0.0.1:9229 socket`,
    );
  }
}

Deno.test({
  name:
    "workers: the supervisor holds 127.0.0.1:9229 and every worker and its execve'd image hold that same socket (no second one)",
  ignore: ignoreWithout(NET_NAMESPACE),
  async fn() {
    const dir = await Deno.makeTempDir({ prefix: "graceful-workers-guard-" });
    const pidfile = `${dir}/app.pid`;
    const server = inOwnNetwork([
      Deno.execPath(),
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
    ]);
    try {
      let status: WorkersStatus | undefined;
      await until(() => {
        status = readStatus(pidfile);
        return status?.workers.length === 2;
      }, 60_000);
      const supervisor = status!.pid;
      assertEquals(supervisor, server.pid);
      // One socket on 127.0.0.1:9229 in the namespace, the supervisor's.
      const inode = assertHoldsGuard(supervisor, "supervisor");
      assertWorkersHold(status!, inode, "generation 1");
      const before = status!.workers.map((w) => w.pid);

      // A signal roll: the supervisor execs itself in place first.
      Deno.kill(supervisor, "SIGUSR2");
      await server.waitFor(/upgrading the supervisor in place/);
      await until(() => {
        status = readStatus(pidfile);
        return status?.generation === 2 && status.workers.length === 2 &&
          status.workers.every((w) =>
            w.generation === 2 && !before.includes(w.pid)
          );
      }, 60_000);
      assertEquals(status!.pid, supervisor, "the same pid after execve");
      assertEquals(
        assertHoldsGuard(supervisor, "the supervisor's new image"),
        inode,
        "the new image holds the same 127.0.0.1:9229 socket",
      );
      assertWorkersHold(status!, inode, "generation 2");
    } finally {
      server.kill("SIGTERM");
      await server.done;
      await Deno.remove(dir, { recursive: true });
    }
  },
});
