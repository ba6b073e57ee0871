/**
 * The admin API's own listener under `--workers 2`: one endpoint, whichever
 * worker takes the request, answered from the supervisor's view. Real
 * processes (the CLI, `reload`, curl, systemd-socket-activate), with /proc as
 * the oracle for which socket each worker holds.
 */

import { assert, assertEquals } from "./assert.ts";
import { curl } from "./curl.ts";
import { ignoreWithout, SOCKET_ACTIVATE } from "./capabilities.ts";
import {
  freePort,
  MOD,
  readStatus,
  runCli,
  socketActivate,
  TempApp,
  until,
  type WorkersStatus,
} from "./helpers.ts";
import { socketsOf } from "./inspector_race.ts";

const APP =
  `export default { fetch: () => new Response("hello " + Deno.pid) };`;

/** The inodes of the sockets listening on unix `path` (or its temp name). */
function unixListening(path: string): string[] {
  return Deno.readTextFileSync("/proc/net/unix").split("\n").slice(1)
    .map((line) => line.trim().split(/\s+/))
    .filter((f) => f.length >= 8 && f[5] === "01" && f[7].startsWith(path))
    .map((f) => f[6]);
}

/** The inodes of the sockets listening on 127.0.0.1:`port`. */
function tcpListening(port: number): string[] {
  const hex = `0100007F:${port.toString(16).toUpperCase().padStart(4, "0")}`;
  return Deno.readTextFileSync("/proc/net/tcp").split("\n").slice(1)
    .map((line) => line.trim().split(/\s+/))
    .filter((f) => f[1] === hex && f[3] === "0A")
    .map((f) => f[9]);
}

/** Exactly one listening socket, held by every worker; returns its inode. */
function assertOneShared(
  inodes: string[],
  status: WorkersStatus,
  what: string,
): string {
  assertEquals(inodes.length, 1, `${what}: listening sockets ${inodes}`);
  for (const worker of status.workers) {
    assert(
      socketsOf(worker.pid).has(inodes[0]),
      `${what}: worker pid ${worker.pid} does not hold the admin socket`,
    );
  }
  return inodes[0];
}

/** GETs the admin status `times` times; the set of pids that answered. */
async function statusPids(args: string[], times: number): Promise<number[]> {
  const pids = new Set<number>();
  for (let i = 0; i < times; i++) {
    const res = await curl([...args]);
    assertEquals(res.status, 200, res.body);
    const body = JSON.parse(res.body);
    assertEquals(body.workers.length, 2, res.body);
    pids.add(body.pid);
  }
  return [...pids];
}

Deno.test("workers: --admin-listen unix:PATH is one socket every worker shares, answered as the supervisor; a roll keeps it and the supervisor's exit removes it", async () => {
  const dir = await Deno.makeTempDir({ prefix: "graceful-workers-admin-" });
  const pidfile = `${dir}/app.pid`;
  const path = `${dir}/admin.sock`;
  const t = await TempApp.start(APP, [
    "--workers",
    "2",
    "--pidfile",
    pidfile,
    "--admin",
    "--admin-listen",
    `unix:${path}`,
  ]);
  try {
    await until(() => readStatus(pidfile)?.workers.length === 2);
    const supervisor = t.child.pid;
    const first = readStatus(pidfile)!;
    const inode = assertOneShared(unixListening(path), first, "generation 1");
    const url = ["--unix-socket", path, "http://localhost/debug/admin/status"];
    assertEquals(await statusPids(url, 6), [supervisor]);
    const file = readStatus(pidfile) as WorkersStatus & { admin?: string };
    assertEquals(file.admin, `unix:${path}`);

    const reload = await runCli(["reload", "--pidfile", pidfile]);
    assertEquals(reload.code, 0, reload.stderr);
    await until(() => {
      const s = readStatus(pidfile);
      return s?.workers.length === 2 &&
        s.workers.every((w) => w.generation === 2);
    });
    assert(Deno.lstatSync(path).isSocket, "the admin socket's path is gone");
    assertEquals(
      assertOneShared(unixListening(path), readStatus(pidfile)!, "rolled"),
      inode,
    );
    assertEquals(await statusPids(url, 4), [supervisor]);

    t.child.kill("SIGTERM");
    assertEquals((await t.child.exited).code, 0, t.child.output);
    let gone = false;
    try {
      Deno.lstatSync(path);
    } catch {
      gone = true;
    }
    assert(gone, "the admin socket outlived the supervisor");
  } finally {
    await t.stop();
    await Deno.remove(dir, { recursive: true }).catch(() => {});
  }
});

Deno.test({
  name:
    "workers: with the app's socket inherited (LISTEN_FDS), --admin-listen 127.0.0.1:PORT is still one socket every worker shares",
  ignore: ignoreWithout(SOCKET_ACTIVATE),
  async fn() {
    const dir = await Deno.makeTempDir({ prefix: "graceful-workers-admin-" });
    const pidfile = `${dir}/app.pid`;
    await Deno.writeTextFile(`${dir}/app.ts`, APP);
    const adminPort = freePort();
    const { child, ports: [port] } = await socketActivate(1, [
      Deno.execPath(),
      "run",
      "-A",
      MOD,
      `${dir}/app.ts`,
      "--workers",
      "2",
      "--pidfile",
      pidfile,
      "--admin",
      "--admin-listen",
      `127.0.0.1:${adminPort}`,
    ]);
    try {
      // The first connection activates the program (exec, same pid).
      const res = await curl([`http://127.0.0.1:${port}/`]);
      assertEquals(res.status, 200, res.body);
      await until(() => readStatus(pidfile)?.workers.length === 2);
      assertOneShared(tcpListening(adminPort), readStatus(pidfile)!, "tcp");
      const url = [`http://127.0.0.1:${adminPort}/debug/admin/status`];
      assertEquals(await statusPids(url, 6), [child.pid]);
      child.kill("SIGTERM");
      assertEquals((await child.done).code, 0, child.output);
    } finally {
      await child.cleanup();
      await Deno.remove(dir, { recursive: true }).catch(() => {});
    }
  },
});
