import {
  assert,
  assertEquals,
  assertMatch,
  assertThrows,
} from "../../tests/assert.ts";
import { ROOT } from "../../tests/helpers.ts";
import {
  buildCommand,
  type CurrentCommand,
  parseCmdline,
  resolveCommand,
  stripDeletedSuffix,
  withoutAdminToken,
} from "./command_line.ts";
import { findMainModuleIndex } from "./deno_args.ts";

const PRINT_CMD = `${ROOT}/tests/fixtures/spawn_print_cmd.ts`;

async function runDeno(args: string[], cwd: string): Promise<string> {
  const output = await new Deno.Command(Deno.execPath(), {
    args,
    cwd,
    env: { NO_COLOR: "1" },
    stdin: "null",
    stdout: "piped",
    stderr: "piped",
  }).output();
  const stdout = new TextDecoder().decode(output.stdout);
  if (!output.success) {
    throw new Error(
      `deno ${args.join(" ")} failed (${output.code}):\n` +
        new TextDecoder().decode(output.stderr),
    );
  }
  return stdout;
}

// ---------------------------------------------------------------------------
// currentCommand
// ---------------------------------------------------------------------------

Deno.test("currentCommand() is deno and the original arguments", async () => {
  const stdout = await runDeno(
    ["run", "-A", "--seed", "1", "tests/fixtures/spawn_print_cmd.ts", "x", "y"],
    ROOT,
  );
  const printed = JSON.parse(stdout);
  assertEquals(printed.execPath, Deno.execPath());
  assertEquals(printed.args, [
    "run",
    "-A",
    "--seed",
    "1",
    "tests/fixtures/spawn_print_cmd.ts",
    "x",
    "y",
  ]);
  assertEquals(printed.compiled, false);
  assertEquals(printed.denoArgs, ["x", "y"]);
});

Deno.test("currentCommand() names the new binary after the old one was replaced", async () => {
  const directory = await Deno.makeTempDir({ prefix: "spawn_test_" });
  try {
    const deno = `${directory}/deno`;
    linkOrCopy(Deno.execPath(), deno);
    const go = `${directory}/go`;
    const child = new Deno.Command(deno, {
      args: ["run", "-A", PRINT_CMD, "after-replace"],
      env: { SPAWN_WAIT_FOR: go },
      stdin: "null",
      stdout: "piped",
      stderr: "inherit",
    }).spawn();
    const output = child.output();
    // Replace the executable the way a deploy does: a new file renamed over
    // it (here a script that runs deno: a new file without copying 100 MB).
    Deno.writeTextFileSync(
      `${deno}.new`,
      `#!/bin/sh\nexec ${Deno.execPath()} "$@"\n`,
      { mode: 0o755 },
    );
    Deno.renameSync(`${deno}.new`, deno);
    assertEquals(
      Deno.readLinkSync(`/proc/${child.pid}/exe`),
      `${deno} (deleted)`,
    );
    Deno.writeTextFileSync(go, "");
    const { success, stdout } = await output;
    assert(success, "spawn_print_cmd.ts failed");
    const printed = JSON.parse(new TextDecoder().decode(stdout));
    assertEquals(printed.execPath, deno);
    assertEquals(printed.args, ["run", "-A", PRINT_CMD, "after-replace"]);
  } finally {
    await Deno.remove(directory, { recursive: true });
  }
});

/** Hard-links `from` to `to` (a 100 MB copy only across file systems). */
function linkOrCopy(from: string, to: string): void {
  try {
    Deno.linkSync(from, to);
  } catch {
    Deno.copyFileSync(from, to);
  }
}

Deno.test("parseCmdline splits on NUL and keeps empty arguments", () => {
  const encode = (text: string) => new TextEncoder().encode(text);
  assertEquals(parseCmdline(encode("deno\0run\0main.ts\0")), [
    "deno",
    "run",
    "main.ts",
  ]);
  assertEquals(parseCmdline(encode("deno\0run\0\0main.ts\0\0")), [
    "deno",
    "run",
    "",
    "main.ts",
    "",
  ]);
  assertEquals(parseCmdline(encode("app\0héllo wörld\0")), [
    "app",
    "héllo wörld",
  ]);
  assertEquals(parseCmdline(new Uint8Array()), []);
});

Deno.test("stripDeletedSuffix drops only a trailing ' (deleted)'", () => {
  assertEquals(stripDeletedSuffix("/srv/app (deleted)"), "/srv/app");
  assertEquals(stripDeletedSuffix("/srv/app"), "/srv/app");
  assertEquals(stripDeletedSuffix("/srv/(deleted)/app"), "/srv/(deleted)/app");
});

Deno.test("resolveCommand: deno run uses the deno binary, not argv[0]", () => {
  assertEquals(
    resolveCommand(
      ["deno", "run", "-A", "main.ts"],
      "/usr/lib/deno/deno",
      false,
      () => true,
    ),
    {
      execPath: "/usr/lib/deno/deno",
      args: ["run", "-A", "main.ts"],
      compiled: false,
    },
  );
  assertEquals(
    resolveCommand(
      ["/usr/bin/deno", "main.ts"],
      "/usr/lib/deno/deno (deleted)",
      false,
      () => true,
    ).execPath,
    "/usr/lib/deno/deno",
  );
});

Deno.test("resolveCommand: a compiled binary reruns its own path", () => {
  // Started by an absolute path: kept as typed (a switched symlink runs the
  // new release).
  assertEquals(
    resolveCommand(
      ["/srv/app/current/app", "--port", "80"],
      "/srv/app/releases/7/app (deleted)",
      true,
      (path) => path === "/srv/app/current/app",
    ),
    {
      execPath: "/srv/app/current/app",
      args: ["--port", "80"],
      compiled: true,
    },
  );
  // Started by a relative path or through PATH: the executable, without the
  // " (deleted)" of a replaced file.
  assertEquals(
    resolveCommand(["./app", "x"], "/srv/app/app (deleted)", true, () => true),
    { execPath: "/srv/app/app", args: ["x"], compiled: true },
  );
  assertEquals(
    resolveCommand(["app"], "/usr/local/bin/app", true, () => true),
    { execPath: "/usr/local/bin/app", args: [], compiled: true },
  );
  // argv[0] that is no file (exec -a): the executable.
  assertEquals(
    resolveCommand(["/fake/name"], "/srv/app/app", true, () => false).execPath,
    "/srv/app/app",
  );
  assertThrows(() => resolveCommand([], "/srv/app/app", true, () => true));
});

// ---------------------------------------------------------------------------
// buildCommand
// ---------------------------------------------------------------------------

/** Command lines and the index of their main module (-1: none). */
const MAIN_MODULE_CASES: [string[], number][] = [
  [["run", "main.ts"], 1],
  [["run", "-A", "main.ts", "a", "b"], 2],
  [["run", "-A", "main.ts", "--seed", "1"], 2],
  [["run", "-A", "--seed", "1", "main.ts"], 4],
  [["run", "--seed=1", "main.ts"], 2],
  [["run", "-c", "deno.json", "main.ts"], 3],
  [["run", "--config", "deno.json", "main.ts"], 3],
  [["run", "--config=deno.json", "main.ts"], 2],
  [["run", "-cdeno.json", "main.ts"], 2],
  [["run", "-c=deno.json", "main.ts"], 2],
  [["run", "-Ac", "deno.json", "main.ts"], 3],
  [["run", "--import-map", "map.json", "main.ts"], 3],
  [["run", "--importmap", "map.json", "main.ts"], 3],
  [["run", "--import-map=map.json", "main.ts"], 2],
  [["run", "--lock", "deno.lock", "main.ts"], 3],
  [["run", "--lock", "-A", "main.ts"], 3],
  [["run", "--lock=deno.lock", "main.ts"], 2],
  [["run", "--env-file", "main.ts", "x"], 2],
  [["run", "--env-file=.env", "main.ts"], 2],
  [["run", "--env", "main.ts"], 2],
  [["run", "--location", "http://localhost/", "main.ts"], 3],
  [["run", "--location=http://localhost/", "main.ts"], 2],
  [["run", "--v8-flags=--max-old-space-size=64", "main.ts"], 2],
  [["run", "--v8-flags", "main.ts"], 2],
  [["run", "--preload", "a.ts", "--require", "b.cjs", "main.ts"], 5],
  [["run", "--import", "a.ts", "main.ts"], 3],
  [["run", "--conditions", "dev", "main.ts"], 3],
  [["run", "--cert", "ca.pem", "main.ts"], 3],
  [["run", "--ext", "ts", "main"], 3],
  [["run", "--min-dep-age", "0", "main.ts"], 3],
  [["run", "--node-modules-linker", "isolated", "main.ts"], 3],
  [["run", "--inspect-publish-uid", "stderr", "main.ts"], 3],
  [["run", "--inspect", "main.ts"], 2],
  [["run", "--inspect=127.0.0.1:0", "main.ts"], 2],
  [["run", "--cpu-prof-dir", "prof", "main.ts"], 3],
  [["run", "-R=/tmp", "-W", "main.ts"], 3],
  [["run", "-rA", "main.ts"], 2],
  [["run", "--allow-read", "main.ts"], 2],
  [["run", "--unstable-kv", "--no-check", "main.ts"], 3],
  [["run", "-A", "run.ts"], 2],
  [["run", "-A", "run"], 2],
  [["run", "-A", "-", "x"], 2],
  [["run", "-A", "--", "main.ts"], 3],
  [["-q", "run", "main.ts"], 2],
  [["-L", "info", "run", "main.ts"], 3],
  [["-Linfo", "run", "main.ts"], 2],
  [["--log-level=info", "run", "main.ts"], 2],
  [["--log-level", "info", "run", "main.ts"], 3],
  [["watch", "main.ts"], 1],
  [["main.ts"], 0],
  [["-A", "main.ts", "a"], 1],
  [["-A", "--seed", "1", "main.ts", "run"], 3],
  [[], -1],
  [["run"], -1],
  [["run", "-A"], -1],
  [["run", "-A", "--"], -1],
  [["run", "--config", "deno.json"], -1],
  [["task", "start"], -1],
  [["serve", "main.ts"], -1],
  [["-q", "test"], -1],
  [["eval", "console.log(1)"], -1],
];

Deno.test("findMainModuleIndex across deno's flag forms", () => {
  for (const [args, expected] of MAIN_MODULE_CASES) {
    assertEquals(
      findMainModuleIndex(args),
      expected,
      `deno ${args.join(" ")}`,
    );
  }
});

Deno.test("buildCommand replaces the entry and keeps everything else", () => {
  const current: CurrentCommand = {
    execPath: "/usr/bin/deno",
    args: [
      "run",
      "-A",
      "--config",
      "deno.json",
      "--env-file",
      "v1/main.ts",
      "--port",
      "80",
    ],
    compiled: false,
  };
  assertEquals(buildCommand(current, { entry: "v2/main.ts" }), {
    execPath: "/usr/bin/deno",
    args: [
      "run",
      "-A",
      "--config",
      "deno.json",
      "--env-file",
      "v2/main.ts",
      "--port",
      "80",
    ],
  });
  // current is not modified
  assertEquals(current.args[5], "v1/main.ts");

  for (const [args, index] of MAIN_MODULE_CASES) {
    if (index < 0) continue;
    const built = buildCommand(
      { execPath: "deno", args, compiled: false },
      { entry: "NEW.ts" },
    );
    const expected = [...args];
    expected[index] = "NEW.ts";
    assertEquals(built.args, expected, `deno ${args.join(" ")}`);
  }
});

Deno.test("buildCommand replaces the executable", () => {
  const current: CurrentCommand = {
    execPath: "/srv/app/app",
    args: ["--port", "80"],
    compiled: true,
  };
  assertEquals(buildCommand(current), {
    execPath: "/srv/app/app",
    args: ["--port", "80"],
  });
  assert(buildCommand(current).args !== current.args, "args must be a copy");
  assertEquals(buildCommand(current, { execPath: "/srv/app/app.new" }), {
    execPath: "/srv/app/app.new",
    args: ["--port", "80"],
  });
  assertEquals(
    buildCommand(
      { execPath: "/old/deno", args: ["run", "a.ts"], compiled: false },
      { execPath: "/new/deno", entry: "b.ts" },
    ),
    { execPath: "/new/deno", args: ["run", "b.ts"] },
  );
});

Deno.test("buildCommand refuses an entry it cannot place", () => {
  const compiled = assertThrows(() =>
    buildCommand(
      { execPath: "/srv/app", args: ["x"], compiled: true },
      { entry: "main.ts" },
    )
  );
  assertMatch(compiled.message, /compiled binary/);
  const task = assertThrows(() =>
    buildCommand(
      { execPath: "deno", args: ["task", "start"], compiled: false },
      { entry: "main.ts" },
    )
  );
  assertMatch(task.message, /cannot find the main module.*deno task start/);
  const empty = assertThrows(() =>
    buildCommand(
      { execPath: "deno", args: ["run", "a.ts"], compiled: false },
      { entry: "" },
    )
  );
  assertMatch(empty.message, /must not be empty/);
});

Deno.test("buildCommand's entry is the one deno itself runs", async () => {
  // Each command line has PLACEHOLDER.ts as its main module; the entry
  // replaces it, and deno must then run spawn_print_cmd.ts with the
  // arguments that follow.
  const forms: [string[], string[]][] = [
    [["run", "-A", "PLACEHOLDER.ts", "a"], ["a"]],
    [["run", "-A", "--seed", "1", "PLACEHOLDER.ts", "a"], ["a"]],
    [["run", "--seed=1", "-A", "PLACEHOLDER.ts"], []],
    [["run", "-A", "-c", "cfg.json", "PLACEHOLDER.ts"], []],
    [["run", "-A", "--config", "cfg.json", "PLACEHOLDER.ts", "b"], ["b"]],
    [["run", "-Accfg.json", "PLACEHOLDER.ts"], []],
    [["run", "-Ac", "cfg.json", "PLACEHOLDER.ts"], []],
    [["run", "-A", "--import-map", "map.json", "PLACEHOLDER.ts"], []],
    [["run", "-A", "--lock", "lock.json", "PLACEHOLDER.ts"], []],
    [["run", "-A", "--lock", "--seed", "1", "PLACEHOLDER.ts"], []],
    [["run", "-A", "--env-file", "PLACEHOLDER.ts", "x"], ["x"]],
    [["run", "-A", "--env-file=vars.env", "PLACEHOLDER.ts"], []],
    [["run", "-A", "--location", "http://localhost/", "PLACEHOLDER.ts"], []],
    [["run", "-A", "--v8-flags=--max-old-space-size=64", "PLACEHOLDER.ts"], []],
    [["run", "-A", "--v8-flags", "PLACEHOLDER.ts"], []],
    [["run", "-A", "--preload", "pre.ts", "PLACEHOLDER.ts"], []],
    [["run", "-A", "--conditions", "dev", "PLACEHOLDER.ts"], []],
    [["run", "-A", "--cert", "ca.pem", "PLACEHOLDER.ts"], []],
    [["run", "-A", "--ext", "ts", "PLACEHOLDER.ts"], []],
    [["run", "-A", "--min-dep-age", "0", "PLACEHOLDER.ts"], []],
    [["run", "-A", "--inspect-publish-uid", "stderr", "PLACEHOLDER.ts"], []],
    [["run", "-A", "--unstable-kv", "--no-check", "PLACEHOLDER.ts"], []],
    [["-q", "run", "-A", "PLACEHOLDER.ts", "a"], ["a"]],
    [["run", "-L", "info", "-A", "PLACEHOLDER.ts"], []],
    [["-A", "--seed", "1", "PLACEHOLDER.ts", "run"], ["run"]],
  ];
  const directory = await Deno.makeTempDir({ prefix: "spawn_test_" });
  try {
    Deno.writeTextFileSync(`${directory}/cfg.json`, "{}");
    Deno.writeTextFileSync(`${directory}/map.json`, '{ "imports": {} }');
    Deno.writeTextFileSync(`${directory}/.env`, "SPAWN_TEST_ENV=1\n");
    Deno.writeTextFileSync(`${directory}/vars.env`, "SPAWN_TEST_ENV=2\n");
    Deno.writeTextFileSync(`${directory}/pre.ts`, "export {};\n");
    Deno.writeTextFileSync(`${directory}/ca.pem`, "");
    await Promise.all(forms.map(async ([args, scriptArgs]) => {
      const built = buildCommand(
        { execPath: Deno.execPath(), args, compiled: false },
        { entry: PRINT_CMD },
      );
      const stdout = await runDeno(built.args, directory);
      const printed = JSON.parse(stdout.trim().split("\n").pop()!);
      const form = `deno ${args.join(" ")}`;
      assertEquals(printed.mainModule, `file://${PRINT_CMD}`, form);
      assertEquals(printed.denoArgs, scriptArgs, form);
      assertEquals(printed.args, built.args, form);
    }));
  } finally {
    await Deno.remove(directory, { recursive: true });
  }
});

Deno.test("withoutAdminToken strips the program's --admin-token, not deno's flags or what follows --", () => {
  const strip = (args: string[], compiled = false) =>
    withoutAdminToken({ execPath: "/usr/bin/deno", args }, compiled).args;
  assertEquals(
    strip(["run", "-A", "mod.ts", "--admin-token", "T", "--admin", "-p", "1"]),
    ["run", "-A", "mod.ts", "--admin", "-p", "1"],
  );
  assertEquals(strip(["run", "-A", "mod.ts", "--admin-token=T"]), [
    "run",
    "-A",
    "mod.ts",
  ]);
  assertEquals(strip(["run", "-A", "mod.ts", "--", "--admin-token", "T"]), [
    "run",
    "-A",
    "mod.ts",
    "--",
    "--admin-token",
    "T",
  ]);
  assertEquals(strip(["--admin-token", "T", "--port", "80"], true), [
    "--port",
    "80",
  ]);
});
