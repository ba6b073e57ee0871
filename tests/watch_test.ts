/**
 * Watch mode, end to end: `deno run -A mod.ts APP.ts --watch` with the app in
 * a temp dir, edited by the test. Every generation's command line holds the
 * temp dir's path, which is how the test finds (and finally kills) them all.
 */

import { assert, assertEquals, assertNotEquals } from "./assert.ts";
import {
  alive,
  Child,
  get,
  killAllWith,
  MOD,
  pidsWith,
  until,
} from "./helpers.ts";
import { versionedAppSource } from "./fixtures/versioned_app.ts";

async function startWatching(args: string[]) {
  const child = new Child(Deno.execPath(), [
    "run",
    "-A",
    MOD,
    ...args,
    "--watch",
    "--port",
    "0",
    "--hostname",
    "127.0.0.1",
  ]);
  const m = await child.waitFor(/Listening on http:\/\/127\.0\.0\.1:(\d+)\//);
  return { child, port: Number(m[1]) };
}

async function text(port: number, path: string): Promise<string> {
  return (await get(port, path)).text;
}

/** Waits until `/version` answers `version`; returns the pid that serves it. */
async function servesVersion(port: number, version: string): Promise<number> {
  await until(async () => {
    try {
      return (await text(port, "/version")) === version;
    } catch {
      return false;
    }
  }, 20_000);
  return Number(await text(port, "/pid"));
}

/** How many output lines match `re` so far. */
function count(child: Child, re: RegExp): number {
  return child.lines.filter((line) => re.test(line)).length;
}

async function cleanup(dir: string, child: Child): Promise<void> {
  killAllWith(dir);
  child.kill("SIGKILL");
  await child.exited;
  await until(() => pidsWith(dir).length === 0);
  await Deno.remove(dir, { recursive: true });
}

Deno.test("watch e2e: edits restart gracefully; a broken edit keeps the old generation; the next good one recovers", async () => {
  const dir = await Deno.makeTempDir({ prefix: "graceful-watch-e2e-" });
  const main = `${dir}/app.ts`;
  await Deno.writeTextFile(main, versionedAppSource("v1"));
  // The pidfile sits in the watched directory: each generation rewrites it,
  // which must not count as an edit (else: a restart loop).
  const { child, port } = await startWatching([
    main,
    "--pidfile",
    `${dir}/app.pid`,
  ]);
  try {
    const first = await servesVersion(port, "v1");
    assertEquals(first, child.pid);

    // A slow request in flight, then an edit: it completes on the old pid.
    const slow = get(port, "/sleep?ms=2000");
    await new Promise((r) => setTimeout(r, 300));
    await Deno.writeTextFile(main, versionedAppSource("v2"));
    const second = await servesVersion(port, "v2");
    assertNotEquals(second, first);
    const res = await slow;
    assertEquals(res.status, 200);
    assertEquals(res.text, `slept in ${first}`);
    await until(() => !alive(first), 20_000);
    assertEquals((await child.exited).code, 0);

    // A syntax error: the second generation keeps serving, and says why.
    const failures = count(child, /restart failed/);
    await Deno.writeTextFile(main, "export default {");
    await until(() => count(child, /restart failed/) > failures, 20_000);
    assertEquals(await text(port, "/pid"), String(second));
    assertEquals(await text(port, "/version"), "v2");
    await until(() => pidsWith(dir).length === 1);
    assertEquals(pidsWith(dir), [second]);

    // The next good edit: a third generation serves.
    await Deno.writeTextFile(main, versionedAppSource("v3"));
    const third = await servesVersion(port, "v3");
    assertNotEquals(third, second);
    await until(() => !alive(second), 20_000);

    // And then it stays put: no restart without an edit (the pidfile, its
    // status file and their temp files are written by every generation).
    await new Promise((r) => setTimeout(r, 1500));
    assertEquals(await text(port, "/pid"), String(third));
    assertEquals(pidsWith(dir), [third]);
    assert(
      child.lines.filter((l) => /changed: restarting/.test(l)).length === 3,
      child.output,
    );
  } finally {
    await cleanup(dir, child);
  }
});

Deno.test("watch e2e: the demo watches the current directory", async () => {
  const dir = await Deno.makeTempDir({ prefix: "graceful-watch-e2e-" });
  await Deno.writeTextFile(`${dir}/config.json`, "{}\n");
  // Child has no cwd option: start from the temp dir through the shell. The
  // pidfile's path puts the temp dir in every generation's command line.
  const child = new Child("sh", [
    "-c",
    'cd "$0" && exec "$1" run -A "$2" --watch --port 0 ' +
    '--hostname 127.0.0.1 --pidfile "$0/demo.pid"',
    dir,
    Deno.execPath(),
    MOD,
  ]);
  try {
    const m = await child.waitFor(/Listening on http:\/\/127\.0\.0\.1:(\d+)\//);
    const port = Number(m[1]);
    const first = Number(await text(port, "/pid"));
    assertEquals(first, child.pid);
    await Deno.writeTextFile(`${dir}/config.json`, '{ "changed": true }\n');
    let now = first;
    await until(async () => {
      now = Number(await text(port, "/pid"));
      return now !== first;
    }, 20_000);
    assertEquals(await text(port, "/"), "Hello!\n");
    await until(() => !alive(first), 20_000);
    assertEquals(pidsWith(dir), [now]);
  } finally {
    await cleanup(dir, child);
  }
});

Deno.test("watch e2e: an edit saved while the next generation starts is not lost", async () => {
  const dir = await Deno.makeTempDir({ prefix: "graceful-watch-e2e-" });
  const main = `${dir}/app.ts`;
  await Deno.writeTextFile(main, versionedAppSource("v1"));
  const { child, port } = await startWatching([main]);
  try {
    const first = await servesVersion(port, "v1");
    // v2 takes 1.5 s to start; v3 is saved meanwhile, after v2 was loaded.
    await Deno.writeTextFile(
      main,
      'console.log("loading v2");\n' +
        "await new Promise((r) => setTimeout(r, 1500));\n" +
        versionedAppSource("v2"),
    );
    await child.waitFor(/loading v2/);
    await Deno.writeTextFile(main, versionedAppSource("v3"));
    // The first generation hands over to v2 and stops watching; v2 finds
    // that app.ts changed after it started, and restarts into v3.
    const third = await servesVersion(port, "v3");
    assertNotEquals(third, first);
    assert(
      child.lines.some((l) => /app\.ts changed while this process/.test(l)),
      child.output,
    );
    await until(() => pidsWith(dir).length === 1, 20_000);
    assertEquals(pidsWith(dir), [third]);
  } finally {
    await cleanup(dir, child);
  }
});
