/**
 * The watcher on a real file system (a temp dir per test), with a `restart`
 * that records its calls and can be made slow or failing.
 * (tests/watch_test.ts does it end to end, with real generations.)
 */

import {
  assert,
  assertEquals,
  assertMatch,
  assertThrows,
} from "../../tests/assert.ts";
import { ROOT, until } from "../../tests/helpers.ts";
import { DENY_READ, ignoreWithout } from "../../tests/capabilities.ts";
import {
  watchAndRestart,
  type Watcher,
  type WatchLogLevel,
  type WatchOptions,
} from "./watch.ts";

const DEBOUNCE_MS = 150;
/** Long enough for a restart to have happened if one was coming. */
const SETTLE_MS = DEBOUNCE_MS * 3 + 200;

function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

/** A `restart` that records its calls; `delayMs` and `fail` script it. */
function recorder() {
  const rec = {
    calls: 0,
    active: 0,
    maxActive: 0,
    starts: [] as number[],
    ends: [] as number[],
    delayMs: 0,
    fail: undefined as Error | undefined,
    async restart(): Promise<void> {
      rec.calls++;
      rec.active++;
      rec.maxActive = Math.max(rec.maxActive, rec.active);
      rec.starts.push(performance.now());
      try {
        if (rec.delayMs > 0) await sleep(rec.delayMs);
        if (rec.fail) throw rec.fail;
      } finally {
        rec.active--;
        rec.ends.push(performance.now());
      }
    },
  };
  return rec;
}

type Recorder = ReturnType<typeof recorder>;

/** A temp dir with `app.ts`, `.git/` and `node_modules/` in it. */
async function tree(): Promise<string> {
  const dir = await Deno.makeTempDir({ prefix: "graceful-watch-" });
  await Deno.writeTextFile(`${dir}/app.ts`, "export const v = 1;\n");
  await Deno.mkdir(`${dir}/.git`);
  await Deno.mkdir(`${dir}/node_modules`);
  return dir;
}

/** Starts a watcher on `root`; its log lines are collected. */
function start(
  root: string,
  rec: Recorder,
  options: WatchOptions = {},
): { watcher: Watcher; logs: [WatchLogLevel, string][]; output(): string } {
  const logs: [WatchLogLevel, string][] = [];
  const watcher = watchAndRestart(root, {
    debounceMs: DEBOUNCE_MS,
    since: Date.now(), // nothing before this counts (see the catch-up tests)
    log: (level, message) => logs.push([level, message]),
    ...options,
  }, () => rec.restart());
  return {
    watcher,
    logs,
    output: () => logs.map(([level, m]) => `${level}: ${m}`).join("\n"),
  };
}

async function edit(path: string, text = `// ${Math.random()}\n`) {
  await Deno.writeTextFile(path, text);
}

/** Inode numbers the process's inotify instances watch (/proc/self/fdinfo). */
function watchedInodes(): Set<number> {
  const inodes = new Set<number>();
  for (const entry of Deno.readDirSync("/proc/self/fdinfo")) {
    let text = "";
    try {
      text = Deno.readTextFileSync(`/proc/self/fdinfo/${entry.name}`);
    } catch {
      continue; // closed meanwhile
    }
    for (const m of text.matchAll(/^inotify wd:\S+ ino:([0-9a-f]+) /gm)) {
      inodes.add(parseInt(m[1], 16));
    }
  }
  return inodes;
}

Deno.test("watch: one edit makes one restart", async () => {
  const dir = await tree();
  const rec = recorder();
  const { watcher, output } = start(dir, rec);
  try {
    await edit(`${dir}/app.ts`);
    await until(() => rec.calls === 1);
    await sleep(SETTLE_MS);
    assertEquals(rec.calls, 1);
    assertEquals(watcher.restarts, 1);
    assertMatch(output(), /info: app\.ts changed: restarting/);
  } finally {
    watcher.close();
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("watch: a burst of 20 writes makes one restart, after the quiet period", async () => {
  const dir = await tree();
  const rec = recorder();
  const { watcher } = start(dir, rec);
  try {
    let last = 0;
    for (let i = 0; i < 20; i++) {
      await edit(`${dir}/app.ts`, `export const v = ${i};\n`);
      await edit(`${dir}/other${i % 3}.ts`);
      last = performance.now();
      await sleep(5);
    }
    await until(() => rec.calls === 1);
    assert(
      rec.starts[0] - last >= DEBOUNCE_MS - 20,
      `the restart came ${rec.starts[0] - last} ms after the last write`,
    );
    await sleep(SETTLE_MS);
    assertEquals(rec.calls, 1);
  } finally {
    watcher.close();
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("watch: edits during a slow restart make exactly one more, after it", async () => {
  const dir = await tree();
  const rec = recorder();
  rec.delayMs = 800;
  const { watcher } = start(dir, rec);
  try {
    await edit(`${dir}/app.ts`);
    await until(() => rec.calls === 1);
    for (let i = 0; i < 5; i++) {
      await edit(`${dir}/app.ts`);
      await sleep(DEBOUNCE_MS / 2 + 40); // the quiet period ends meanwhile
    }
    await until(() => rec.calls === 2, 5000);
    assert(rec.starts[1] >= rec.ends[0], "the second began after the first");
    await until(() => rec.active === 0, 5000);
    await sleep(SETTLE_MS);
    assertEquals(rec.calls, 2);
    assertEquals(rec.maxActive, 1);
  } finally {
    watcher.close();
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("watch: an edit at the very end of a slow restart still makes one more", async () => {
  const dir = await tree();
  const rec = recorder();
  rec.delayMs = 400;
  const { watcher } = start(dir, rec);
  try {
    await edit(`${dir}/app.ts`);
    await until(() => rec.calls === 1);
    await sleep(rec.delayMs - 50); // its quiet period outlasts the restart
    await edit(`${dir}/app.ts`);
    await until(() => rec.calls === 2, 5000);
    await until(() => rec.active === 0, 5000);
    await sleep(SETTLE_MS);
    assertEquals(rec.calls, 2);
    assertEquals(rec.maxActive, 1);
  } finally {
    watcher.close();
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("watch: ignored paths make no restart", async () => {
  const dir = await tree();
  const pidfile = `${dir}/app.pid`;
  const rec = recorder();
  const { watcher } = start(dir, rec, {
    ignore: [pidfile, `${pidfile}.json`, "dist", /\.log$/, `${dir}/data/`],
  });
  try {
    await Deno.mkdir(`${dir}/sub/.git`, { recursive: true });
    await Deno.mkdir(`${dir}/.cache/deno`, { recursive: true });
    await Deno.mkdir(`${dir}/dist`);
    await Deno.mkdir(`${dir}/data`);
    await sleep(SETTLE_MS); // the mkdirs above count: let their restart pass
    const before = rec.calls;
    for (
      const name of [
        ".git/x",
        ".git/objects.pack",
        "node_modules/y",
        "node_modules/pkg.ts",
        "sub/.git/HEAD",
        ".cache/deno/gen.js",
        "app.ts.swp",
        ".app.ts.swp",
        ".app.ts.swo",
        ".app.ts.swx",
        "4913",
        "app.ts~",
        ".#app.ts",
        "#app.ts#",
        "x.tmp",
        ".DS_Store",
        "app.pid",
        "app.pid.json",
        `app.pid.${Deno.pid}.tmp`,
        "dist/bundle.js",
        "server.log",
        "data/db.sqlite",
      ]
    ) {
      await edit(`${dir}/${name}`);
    }
    // The pidfile's atomic write: temp file, then rename.
    await edit(`${pidfile}.${Deno.pid}.tmp`, "123\n");
    await Deno.rename(`${pidfile}.${Deno.pid}.tmp`, pidfile);
    await Deno.remove(`${dir}/4913`);
    await sleep(SETTLE_MS);
    assertEquals(rec.calls, before, "an ignored path made a restart");
    // The watcher is alive all along: a real edit still counts.
    await edit(`${dir}/app.ts`);
    await until(() => rec.calls === before + 1);
  } finally {
    watcher.close();
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("watch: editors' saves (atomic rename, vim's backup dance) make one restart each", async () => {
  const dir = await tree();
  const rec = recorder();
  const { watcher } = start(dir, rec);
  const app = `${dir}/app.ts`;
  try {
    // Write a temp file, rename it over the original (VS Code, JetBrains…).
    await edit(`${app}.tmp`, "export const v = 2;\n");
    await Deno.rename(`${app}.tmp`, app);
    await until(() => rec.calls === 1);
    await sleep(SETTLE_MS);
    assertEquals(rec.calls, 1);
    // vim: probe with 4913, move the original to app.ts~, write, drop app.ts~.
    await edit(`${dir}/4913`, "");
    await Deno.remove(`${dir}/4913`);
    await Deno.rename(app, `${app}~`);
    await edit(app, "export const v = 3;\n");
    await Deno.remove(`${app}~`);
    await until(() => rec.calls === 2);
    await sleep(SETTLE_MS);
    assertEquals(rec.calls, 2);
  } finally {
    watcher.close();
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("watch: new subdirectories are watched too", async () => {
  const dir = await tree();
  const rec = recorder();
  const { watcher } = start(dir, rec);
  try {
    await Deno.mkdir(`${dir}/lib/deep`, { recursive: true });
    await until(() => rec.calls === 1);
    await sleep(SETTLE_MS);
    await edit(`${dir}/lib/deep/util.ts`);
    await until(() => rec.calls === 2);
  } finally {
    watcher.close();
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("watch: a failed restart is logged with its reason; the next edit restarts again", async () => {
  const dir = await tree();
  const rec = recorder();
  rec.fail = new Error("the new generation exited with code 1: SyntaxError");
  const { watcher, logs, output } = start(dir, rec);
  try {
    await edit(`${dir}/app.ts`, "export default {");
    await until(() => logs.some(([level]) => level === "error"));
    assertEquals(rec.calls, 1);
    assertMatch(
      output(),
      /error: restart failed, the running generation keeps serving: the new generation exited with code 1: SyntaxError/,
    );
    rec.fail = undefined;
    await edit(`${dir}/app.ts`, "export default {};\n");
    await until(() => rec.calls === 2);
    await until(() => rec.active === 0);
    await sleep(SETTLE_MS);
    assertEquals(logs.filter(([level]) => level === "error").length, 1);
    assertEquals(watcher.restarts, 2);
  } finally {
    watcher.close();
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("watch: a restart that throws synchronously is logged like a rejection", async () => {
  const dir = await tree();
  const logs: string[] = [];
  let calls = 0;
  const watcher = watchAndRestart(dir, {
    debounceMs: DEBOUNCE_MS,
    since: Date.now(),
    log: (level, message) => logs.push(`${level}: ${message}`),
  }, () => {
    calls++;
    throw new Error("not a promise");
  });
  try {
    await edit(`${dir}/app.ts`);
    await until(() => logs.some((l) => /error: .*not a promise/.test(l)));
    await edit(`${dir}/app.ts`);
    await until(() => calls === 2);
  } finally {
    watcher.close();
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("watch: close() stops everything: no restart, no watch left", async () => {
  const dir = await tree();
  const ino = Deno.statSync(dir).ino!;
  const rec = recorder();
  const { watcher } = start(dir, rec);
  try {
    assert(watchedInodes().has(ino), "the root is watched");
    // Closed within the quiet period: the scheduled restart never runs.
    await edit(`${dir}/app.ts`);
    await sleep(DEBOUNCE_MS / 3);
    watcher.close();
    watcher.close(); // idempotent
    await edit(`${dir}/app.ts`);
    await sleep(SETTLE_MS);
    assertEquals(rec.calls, 0);
    assertEquals(watcher.restarts, 0);
    await until(() => !watchedInodes().has(ino), 2000);
  } finally {
    watcher.close();
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("watch: close() during a slow restart: it ends, and nothing follows", async () => {
  const dir = await tree();
  const rec = recorder();
  rec.delayMs = 500;
  rec.fail = new Error("cancelled: shutting down");
  const { watcher, logs } = start(dir, rec);
  try {
    await edit(`${dir}/app.ts`);
    await until(() => rec.calls === 1);
    await edit(`${dir}/app.ts`); // would make one more
    await sleep(DEBOUNCE_MS + 50);
    watcher.close(); // as the CLI does once this generation drains
    await edit(`${dir}/app.ts`);
    await until(() => rec.active === 0);
    await sleep(SETTLE_MS);
    assertEquals(rec.calls, 1);
    // A restart that fails because this generation is going away is no news.
    assertEquals(logs.filter(([level]) => level === "error"), []);
  } finally {
    watcher.close();
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("watch: close() from inside restart (the handover) leaves nothing running", async () => {
  const dir = await tree();
  let calls = 0;
  const watcher: Watcher = watchAndRestart(dir, {
    debounceMs: DEBOUNCE_MS,
    since: Date.now(),
    log: () => {},
  }, async () => {
    calls++;
    await sleep(100);
    watcher.close();
    return { pid: 1, generation: 2 };
  });
  try {
    await edit(`${dir}/app.ts`);
    await until(() => calls === 1);
    await edit(`${dir}/app.ts`);
    await sleep(SETTLE_MS + 100);
    assertEquals(calls, 1);
  } finally {
    watcher.close();
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("watch: the root disappearing is logged; once it is back, one restart", async () => {
  const dir = await tree();
  const rec = recorder();
  const { watcher, logs, output } = start(dir, rec);
  try {
    await Deno.remove(dir, { recursive: true });
    await until(() => logs.some(([level]) => level === "warn"));
    assertMatch(output(), /warn: .* disappeared: waiting for it to come back/);
    await sleep(SETTLE_MS);
    assertEquals(rec.calls, 0, "no restart while the app is gone");
    await Deno.mkdir(dir);
    await edit(`${dir}/app.ts`);
    await until(() => rec.calls === 1, 5000);
    assertMatch(output(), /info: watching .* again/);
    // And it watches again.
    await sleep(SETTLE_MS);
    await edit(`${dir}/app.ts`);
    await until(() => rec.calls === 2);
  } finally {
    watcher.close();
    await Deno.remove(dir, { recursive: true }).catch(() => {});
  }
});

Deno.test("watch: a root that does not exist is logged, not thrown; watched once it appears", async () => {
  const parent = await Deno.makeTempDir({ prefix: "graceful-watch-" });
  const dir = `${parent}/not-yet`;
  const rec = recorder();
  const { watcher, output } = start(dir, rec);
  try {
    assertMatch(
      output(),
      /error: cannot watch .*not-yet \(it does not exist\)/,
    );
    await Deno.mkdir(dir);
    await until(() => rec.calls === 1, 5000);
    await sleep(SETTLE_MS);
    await edit(`${dir}/app.ts`);
    await until(() => rec.calls === 2);
  } finally {
    watcher.close();
    await Deno.remove(parent, { recursive: true });
  }
});

/** The CLI's kind of filter: only some file types count. */
const ONLY_TS = /^(?!.*\.ts$)/;

Deno.test("watch: a file saved while this process was starting makes one restart", async () => {
  const dir = await tree();
  await edit(`${dir}/old.ts`);
  await sleep(30);
  const since = Date.now(); // "this process started"
  await sleep(30);
  await Deno.mkdir(`${dir}/lib`);
  await edit(`${dir}/lib/new.ts`);
  await edit(`${dir}/node_modules/ignored.ts`); // ignored: not a reason
  await edit(`${dir}/server.log`); // not a .ts file: not a reason
  const rec = recorder();
  // A RegExp filters changes; it does not keep the scan out of lib/.
  const { watcher, output } = start(dir, rec, { since, ignore: [ONLY_TS] });
  try {
    await until(() => rec.calls === 1);
    assertMatch(
      output(),
      /info: lib\/new\.ts changed while this process was starting/,
    );
    await sleep(SETTLE_MS);
    assertEquals(rec.calls, 1);
  } finally {
    watcher.close();
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("watch: the catch-up ignores old files, ignored files and future mtimes", async () => {
  const dir = await tree();
  const since = Date.now();
  await sleep(30);
  await edit(`${dir}/.git/index`);
  await edit(`${dir}/app.pid`);
  await edit(`${dir}/future.ts`);
  const tomorrow = new Date(Date.now() + 86_400_000);
  await Deno.utime(`${dir}/future.ts`, tomorrow, tomorrow);
  await Deno.utime(`${dir}/app.ts`, new Date(0), new Date(0));
  const rec = recorder();
  const { watcher } = start(dir, rec, { since, ignore: [`${dir}/app.pid`] });
  try {
    await sleep(SETTLE_MS);
    assertEquals(rec.calls, 0);
  } finally {
    watcher.close();
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("watch: by default, files changed since this process started count", async () => {
  const dir = await tree(); // written after this test process started
  const rec = recorder();
  const { watcher } = start(dir, rec, { since: undefined });
  try {
    await until(() => rec.calls === 1);
    await sleep(SETTLE_MS);
    assertEquals(rec.calls, 1);
  } finally {
    watcher.close();
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("watch: a bad debounceMs is refused", () => {
  for (const debounceMs of [-1, NaN, Infinity]) {
    const error = assertThrows(() =>
      watchAndRestart("/", { debounceMs }, () => Promise.resolve())
    );
    assert(error instanceof RangeError);
  }
});

const SUBPROCESS = `
import { watchAndRestart } from ${JSON.stringify(`${ROOT}/src/cli/watch.ts`)};
const [root, only] = Deno.args;
let calls = 0;
const watcher = watchAndRestart(root, {
  debounceMs: 100,
  since: Infinity,
  ignore: only ? [new RegExp(only)] : [],
  log: (level, message) => console.log(JSON.stringify({ level, message })),
}, () => {
  calls++;
  console.log(JSON.stringify({ restart: calls }));
  return Promise.resolve();
});
const wait = (ms) => new Promise((r) => setTimeout(r, ms));
async function step(write) {
  const before = calls;
  await write();
  for (let i = 0; i < 100 && calls === before; i++) await wait(20);
}
await step(() => Deno.writeTextFile(root + "/ok/a.ts", "1"));
const fresh = root + "/ok/new-" + (only ? "filtered" : "all");
await step(() => Deno.mkdir(fresh)); // a change, unless filtered
await wait(300);
await step(() => Deno.writeTextFile(fresh + "/b.ts", "2"));
watcher.close();
console.log(JSON.stringify({ calls, restarts: watcher.restarts }));
`;

Deno.test({
  name:
    "watch: an unreadable subdirectory: the readable ones are watched one by one",
  ignore: ignoreWithout(DENY_READ),
  async fn() {
    const dir = await Deno.makeTempDir({ prefix: "graceful-watch-" });
    await Deno.chmod(dir, 0o755);
    await Deno.mkdir(`${dir}/ok/sub`, { recursive: true });
    await Deno.mkdir(`${dir}/secret/inner`, { recursive: true });
    await Deno.writeTextFile(`${dir}/main.ts`, SUBPROCESS);
    try {
      await Deno.chmod(`${dir}/secret`, 0o000);
      const deno = [
        Deno.execPath(),
        "run",
        "-A",
        "--config",
        `${ROOT}/deno.json`,
      ];
      let command = deno;
      if (Deno.uid() === 0) {
        // Root reads everything; in a user namespace, a directory owned by an
        // unmapped user is unreadable even to the namespace's root.
        await Deno.chown(`${dir}/secret`, 65534, 65534);
        command = ["unshare", "-r", ...deno];
      }
      const run = async (...extra: string[]) => {
        const timeout = new AbortController();
        const timer = setTimeout(() => timeout.abort(), 30_000);
        const out = await new Deno.Command(command[0], {
          args: [...command.slice(1), `${dir}/main.ts`, dir, ...extra],
          stdout: "piped",
          stderr: "piped",
          signal: timeout.signal,
        }).output().finally(() => clearTimeout(timer));
        const text = new TextDecoder().decode(out.stdout) +
          new TextDecoder().decode(out.stderr);
        assert(out.success, text);
        assertMatch(
          text,
          /cannot watch .* recursively \(.*[Pp]ermission denied.*\): watching its readable directories one by one/,
        );
        return text;
      };
      // a.ts, the new directory, new/b.ts: three restarts.
      assertMatch(await run(), /"calls":3,"restarts":3/);
      // Only .ts files count: the new directory is no change, yet it is
      // watched, and new/b.ts in it is.
      assertMatch(await run(ONLY_TS.source), /"calls":2,"restarts":2/);
    } finally {
      await Deno.chmod(`${dir}/secret`, 0o755);
      await Deno.remove(dir, { recursive: true });
    }
  },
});
