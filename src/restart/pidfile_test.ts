/**
 * The pidfile writer against planted symlinks and a umask of 000, the
 * directory check, and the identity check, in this process (the CLI's use of
 * them against real servers: tests/cli_commands_test.ts).
 */

import { assert, assertEquals, assertMatch } from "../../tests/assert.ts";
import {
  checkPidfileDir,
  readStatus,
  startTimeOf,
  verifyServer,
  writePidfile,
} from "./pidfile.ts";

function status(pid = Deno.pid) {
  return {
    pid,
    generation: 1,
    startedAt: Date.now(),
    firstStartedAt: Date.now(),
    restarts: 0,
    listeners: ["127.0.0.1:1"],
  };
}

function throwsMessage(fn: () => void): string {
  try {
    fn();
  } catch (error) {
    return (error as Error).message;
  }
  throw new Error("did not throw");
}

async function rejectsMessage(promise: Promise<unknown>): Promise<string> {
  try {
    await promise;
  } catch (error) {
    return (error as Error).message;
  }
  throw new Error("did not reject");
}

Deno.test("pidfile: symlinks planted at the temp and final names are never followed", async () => {
  const dir = await Deno.makeTempDir();
  const victim = `${dir}/victim`;
  try {
    await Deno.writeTextFile(victim, "precious\n");
    const pidfile = `${dir}/app.pid`;
    // The names an attacker would plant: the final ones, and the temp names
    // the writer used to take (<path>.<pid>.tmp).
    for (const path of [pidfile, `${pidfile}.json`]) {
      await Deno.symlink(victim, path);
      await Deno.symlink(victim, `${path}.${Deno.pid}.tmp`);
    }
    await writePidfile(pidfile, status());
    assertEquals(await Deno.readTextFile(victim), "precious\n");
    assert((await Deno.lstat(pidfile)).isFile);
    assert((await Deno.lstat(`${pidfile}.json`)).isFile);
    assertEquals((await Deno.readTextFile(pidfile)).trim(), String(Deno.pid));
    // No temp file is left behind.
    const left = [...Deno.readDirSync(dir)].map((e) => e.name)
      .filter((name) => name.endsWith(".tmp") && !name.includes(`${Deno.pid}`));
    assertEquals(left, []);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("pidfile: mode 0644 with a umask of 000", async () => {
  const dir = await Deno.makeTempDir();
  const old = Deno.umask(0);
  try {
    const pidfile = `${dir}/app.pid`;
    await writePidfile(pidfile, status());
    for (const path of [pidfile, `${pidfile}.json`]) {
      assertEquals((await Deno.stat(path)).mode! & 0o7777, 0o644, path);
    }
  } finally {
    Deno.umask(old);
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("pidfile: a directory others or the group may write is refused unless sticky", async () => {
  const dir = await Deno.makeTempDir();
  try {
    await Deno.chmod(dir, 0o777);
    const message = throwsMessage(() => checkPidfileDir(`${dir}/app.pid`));
    assertMatch(
      message,
      new RegExp(
        `^pidfile directory ${dir} is writable by others and not sticky \\(mode 0777\\)`,
      ),
    );
    assertMatch(
      await rejectsMessage(writePidfile(`${dir}/app.pid`, status())),
      /is writable by others and not sticky/,
    );
    await Deno.chmod(dir, 0o770);
    assertMatch(
      throwsMessage(() => checkPidfileDir(`${dir}/app.pid`)),
      /is writable by its group and not sticky \(mode 0770\)/,
    );
    await Deno.chmod(dir, 0o1777);
    checkPidfileDir(`${dir}/app.pid`);
    await Deno.chmod(dir, 0o755);
    checkPidfileDir(`${dir}/app.pid`);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("pidfile: the status file records who wrote it, and another process is refused", async () => {
  const dir = await Deno.makeTempDir();
  const sleeper = new Deno.Command("sleep", { args: ["60"] }).spawn();
  try {
    const pidfile = `${dir}/app.pid`;
    await writePidfile(pidfile, status());
    const written = readStatus(pidfile)!;
    assertEquals(written.startTime, startTimeOf(Deno.pid));
    assertMatch(written.cmdlineSha256!, /^[0-9a-f]{64}$/);
    await verifyServer(pidfile, Deno.pid, written);
    // The status file pointed at another process (as a forger would).
    const forged = { ...written, pid: sleeper.pid };
    assertMatch(
      await rejectsMessage(verifyServer(pidfile, sleeper.pid, forged)),
      new RegExp(
        `^pidfile ${pidfile} names pid ${sleeper.pid}, but that process is not the server that wrote it .*: refused$`,
      ),
    );
    const sameStart = { ...forged, startTime: startTimeOf(sleeper.pid) };
    assertMatch(
      await rejectsMessage(verifyServer(pidfile, sleeper.pid, sameStart)),
      /command line is not the server's: refused$/,
    );
    assertMatch(
      await rejectsMessage(verifyServer(pidfile, sleeper.pid, written)),
      new RegExp(`its status file names pid ${Deno.pid}: refused$`),
    );
  } finally {
    sleeper.kill("SIGKILL");
    await sleeper.status;
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("pidfile: a status file from before startTime (an older version serving) is trusted only for a process that started before it was written", async () => {
  const dir = await Deno.makeTempDir();
  const sleeper = new Deno.Command("sleep", { args: ["60"] }).spawn();
  try {
    const pidfile = `${dir}/app.pid`;
    const legacy = status();
    await Deno.writeTextFile(`${pidfile}.json`, JSON.stringify(legacy));
    await Deno.writeTextFile(pidfile, `${Deno.pid}\n`);
    // This process started before the file was written: trusted.
    await verifyServer(pidfile, Deno.pid, legacy);
    // A file written an hour ago, and a process started since: refused.
    const hourAgo = new Date(Date.now() - 3600_000);
    await Deno.utime(`${pidfile}.json`, hourAgo, hourAgo);
    const forged = { ...legacy, pid: sleeper.pid };
    assertMatch(
      await rejectsMessage(verifyServer(pidfile, sleeper.pid, forged)),
      /that process started after its status file was written .*: refused$/,
    );
  } finally {
    sleeper.kill("SIGKILL");
    await sleeper.status;
    await Deno.remove(dir, { recursive: true });
  }
});
