import { assertEquals, assertMatch, assertThrows } from "../../tests/assert.ts";
import { type AppConfigInput, planAppConfig } from "./app_config.ts";

const MAIN = ["run", "-A", "/repo/mod.ts", "app.ts", "--port", "0"];

function input(
  files: string[],
  overrides: Partial<AppConfigInput> = {},
): AppConfigInput {
  const set = new Set(files);
  return {
    args: MAIN,
    app: "app.ts",
    cwd: "/app",
    mainModule: "file:///repo/mod.ts",
    exists: (path) => set.has(path),
    ...overrides,
  };
}

Deno.test("planAppConfig: an app's deno.json is added before the main module", () => {
  const plan = planAppConfig(input(["/repo/deno.json", "/app/deno.json"]));
  assertEquals(plan, {
    action: "reexec",
    config: "/app/deno.json",
    args: [
      "run",
      "-A",
      "--config",
      "/app/deno.json",
      "/repo/mod.ts",
      "app.ts",
      "--port",
      "0",
    ],
  });
});

Deno.test("planAppConfig: the re-executed command line is served as it is", () => {
  const files = ["/repo/deno.json", "/app/deno.json"];
  const first = planAppConfig(input(files));
  if (first.action !== "reexec") throw new Error("expected a re-execution");
  assertEquals(planAppConfig(input(files, { args: first.args })), {
    action: "serve",
  });
});

Deno.test("planAppConfig: the nearest configuration counts, deno.json first", () => {
  const files = [
    "/repo/deno.json",
    "/app/deno.json",
    "/app/web/deno.jsonc",
    "/app/web/package.json",
  ];
  const plan = planAppConfig(input(files, { app: "web/src/app.ts" }));
  assertEquals(plan.action === "reexec" && plan.config, "/app/web/deno.jsonc");
});

Deno.test("planAppConfig: nothing to do when the app's configuration is active", () => {
  // The module vendored inside the app's project: the same deno.json.
  assertEquals(
    planAppConfig(input(["/app/deno.json"], {
      args: ["run", "-A", "/app/vendor/graceful/mod.ts", "app.ts"],
      mainModule: "file:///app/vendor/graceful/mod.ts",
    })),
    { action: "serve" },
  );
  // No configuration near the app.
  assertEquals(planAppConfig(input(["/repo/deno.json"])), { action: "serve" });
  // An app by URL.
  assertEquals(
    planAppConfig(input(["/repo/deno.json", "/app/deno.json"], {
      app: "https://example.com/app.ts",
    })),
    { action: "serve" },
  );
});

Deno.test("planAppConfig: Deno's own --config or --no-config is the user's choice", () => {
  const files = ["/repo/deno.json", "/app/deno.json"];
  for (
    const flags of [
      ["--config", "/other/deno.json"],
      ["--config=/other/deno.json"],
      ["-c", "/other/deno.json"],
      ["-c/other/deno.json"],
      ["--no-config"],
    ]
  ) {
    const args = ["run", "-A", ...flags, "/repo/mod.ts", "app.ts"];
    assertEquals(planAppConfig(input(files, { args })), { action: "serve" });
  }
});

Deno.test("planAppConfig: a remote main module has no configuration", () => {
  const plan = planAppConfig(input(["/app/deno.json"], {
    args: ["run", "-A", "http://127.0.0.1:1/mod.ts", "app.ts"],
    mainModule: "http://127.0.0.1:1/mod.ts",
  }));
  assertEquals(plan.action === "reexec" && plan.config, "/app/deno.json");
});

Deno.test("planAppConfig: a package.json app runs with its node_modules", () => {
  const files = [
    "/repo/deno.json",
    "/app/package.json",
    "/app/node_modules",
    "/app/node_modules/@logtape/logtape",
  ];
  assertEquals(planAppConfig(input(files)), {
    action: "reexec",
    config: "/app/package.json",
    args: [
      "run",
      "-A",
      "--no-config",
      "--node-modules-dir=manual",
      "/repo/mod.ts",
      "app.ts",
      "--port",
      "0",
    ],
  });
});

Deno.test("planAppConfig: a package.json app without node_modules is a one-line error naming them", () => {
  const files = ["/repo/deno.json", "/app/package.json"];
  const error = assertThrows(() => planAppConfig(input(files)));
  assertEquals(
    (error as Error).message,
    "/app/node_modules is missing: install the packages of " +
      "/app/package.json first (npm install in /app; serveGraceful " +
      "installs nothing)",
  );
  const moved = ["/repo/deno.json", "/app/package.json", "/app/node_modules"];
  assertMatch(
    assertThrows(() =>
      planAppConfig(input(moved, { cwd: "/", app: "app/app.ts" }))
    ).message,
    /from its directory \(cd \/app\)/,
  );
  assertMatch(
    assertThrows(() => planAppConfig(input(moved))).message,
    /^\/app\/node_modules has no @logtape\/logtape/,
  );
});

Deno.test("planAppConfig: a member of the active workspace is served as it is", () => {
  const files = ["/repo/deno.json", "/repo/examples/hono/deno.json"];
  const workspaces: Record<string, unknown> = {
    "/repo/deno.json": { workspace: ["./examples/hono"] },
  };
  const app = "/repo/examples/hono/app.ts";
  assertEquals(
    planAppConfig(input(files, { app, readJson: (p) => workspaces[p] })),
    { action: "serve" },
  );
  workspaces["/repo/deno.json"] = { workspace: ["./examples/*"] };
  assertEquals(
    planAppConfig(input(files, { app, readJson: (p) => workspaces[p] })),
    { action: "serve" },
  );
  workspaces["/repo/deno.json"] = { workspace: ["./other"] };
  assertEquals(
    planAppConfig(input(files, { app, readJson: (p) => workspaces[p] }))
      .action,
    "reexec",
  );
});

Deno.test("planAppConfig: the CLI's --config chooses the configuration", () => {
  const files = ["/repo/deno.json", "/app/deno.json", "/app/alt/deno.json"];
  const plan = planAppConfig(input(files, { config: "alt/deno.json" }));
  assertEquals(plan.action === "reexec" && plan.config, "/app/alt/deno.json");
  // The active one: nothing to do.
  assertEquals(
    planAppConfig(input(files, { config: "/repo/deno.json" })),
    { action: "serve" },
  );
  assertEquals(
    assertThrows(() => planAppConfig(input(files, { config: "nope.json" })))
      .message,
    "--config nope.json: no such file",
  );
});
