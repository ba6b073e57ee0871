/**
 * How the workers wait on their shared listening socket: each worker's
 * runtime has it in its epoll instance with EPOLLEXCLUSIVE (one waiting
 * worker woken per connection) and without EPOLLRDHUP (which the kernel
 * refuses with it). Real processes; /proc/PID/fdinfo is the oracle.
 */

import { assert, assertEquals } from "./assert.ts";
import { listeningInodes, readStatus, TempApp, until } from "./helpers.ts";

const EPOLLRDHUP = 0x2000;
const EPOLLEXCLUSIVE = 0x10000000;

/** The event masks `pid`'s epoll instances register socket `inode` with. */
function epollEvents(pid: number, inode: string): number[] {
  const events: number[] = [];
  for (const entry of Deno.readDirSync(`/proc/${pid}/fd`)) {
    let target = "";
    try {
      target = Deno.readLinkSync(`/proc/${pid}/fd/${entry.name}`);
    } catch {
      continue; // closed meanwhile
    }
    if (target !== "anon_inode:[eventpoll]") continue;
    const info = Deno.readTextFileSync(`/proc/${pid}/fdinfo/${entry.name}`);
    for (
      const m of info.matchAll(
        /^tfd:.*events:\s*([0-9a-f]+).*ino:\s*([0-9a-f]+)/gm,
      )
    ) {
      if (parseInt(m[2], 16) === Number(inode)) events.push(parseInt(m[1], 16));
    }
  }
  return events;
}

Deno.test("workers: every worker waits on the shared listener with EPOLLEXCLUSIVE and without EPOLLRDHUP", async () => {
  const dir = await Deno.makeTempDir({ prefix: "graceful-workers-epoll-" });
  const pidfile = `${dir}/app.pid`;
  const t = await TempApp.start(
    `export default { fetch: () => new Response("hello") };`,
    ["--workers", "2", "--pidfile", pidfile],
  );
  try {
    await until(() => readStatus(pidfile)?.workers.length === 2);
    for (const worker of readStatus(pidfile)!.workers) {
      const listening = listeningInodes(worker.pid);
      assertEquals(listening.map((l) => l.port), [t.port]);
      const events = epollEvents(worker.pid, listening[0].inode);
      assert(events.length > 0, `worker ${worker.pid}: not registered`);
      for (const mask of events) {
        assert(
          (mask & EPOLLEXCLUSIVE) !== 0 && (mask & EPOLLRDHUP) === 0,
          `worker ${worker.pid}: events 0x${mask.toString(16)}`,
        );
      }
    }
  } finally {
    await t.stop();
    await Deno.remove(dir, { recursive: true }).catch(() => {});
  }
});
