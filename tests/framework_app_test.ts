/**
 * The CLI serves a framework app (the real Hono, from npm) that has its own
 * deno.json or package.json, from a temporary project outside this repo, in
 * every generation: `deno run -A <repo>/mod.ts app.ts` from the app's
 * directory.
 */

import { assertEquals, assertMatch } from "./assert.ts";
import {
  type Child,
  get,
  killAllWith,
  MOD,
  socketActivate,
  until,
} from "./helpers.ts";
import { childIn, installPackages, tempProject } from "./project.ts";
import { ignoreWithout, SOCKET_ACTIVATE } from "./capabilities.ts";

const HONO_APP = `import { Hono } from "hono";
const app = new Hono();
app.get("/", (c) => c.text(\`hono \${Deno.pid}\`));
export default app;
`;

const SERVE = [
  Deno.execPath(),
  "run",
  "-A",
  MOD,
  "app.ts",
  "--port",
  "0",
  "--hostname",
  "127.0.0.1",
  "--restart-signal",
  "SIGUSR2",
];

const LISTENING = /Listening on http:\/\/127\.0\.0\.1:(\d+)\//;

/** Kills every generation started in `dir` and removes the project. */
async function removeProject(dir: string, child: Child): Promise<void> {
  killAllWith(dir);
  await child.cleanup();
  await Deno.remove(dir, { recursive: true });
}

/** A project with a deno.json that maps `hono`, and a Hono app.ts. */
function honoProject(config = "deno.json"): Promise<string> {
  return tempProject({
    [config]: JSON.stringify({ imports: { hono: "npm:hono@^4.6.0" } }),
    "app.ts": HONO_APP,
  });
}

/** The arguments of process `pid`. */
function argsOf(pid: number): string[] {
  return Deno.readTextFileSync(`/proc/${pid}/cmdline`).split("\0");
}

function count(items: string[], item: string): number {
  return items.filter((each) => each === item).length;
}

/** Restarts the generation `pid` with SIGUSR2; returns the next one's pid. */
async function restart(port: number, pid: number): Promise<number> {
  Deno.kill(pid, "SIGUSR2");
  let next = pid;
  await until(async () => {
    next = Number((await get(port, "/")).text.split(" ")[1]);
    return next !== pid;
  });
  return next;
}

Deno.test("a Hono app with its own deno.json is served under it, in every generation", async () => {
  const dir = await honoProject();
  const child = childIn(dir, SERVE);
  try {
    const port = Number((await child.waitFor(LISTENING))[1]);
    // Re-executed in place: the pid the user started is the one serving.
    assertEquals((await get(port, "/")).text, `hono ${child.pid}`);
    const config = `${dir}/deno.json`;
    assertEquals(count(argsOf(child.pid), config), 1);
    // Generation 2 is started from generation 1's command line, and
    // generation 3 from generation 2's: each has the --config once.
    let pid = child.pid;
    for (const _ of [2, 3]) {
      pid = await restart(port, pid);
      assertEquals((await get(port, "/")).text, `hono ${pid}`);
      assertEquals(count(argsOf(pid), "--config"), 1);
      assertEquals(count(argsOf(pid), config), 1);
    }
    assertEquals((await child.exited).code, 0);
  } finally {
    await removeProject(dir, child);
  }
});

Deno.test("the CLI's --config chooses the app's configuration", async () => {
  const dir = await honoProject("hono.json");
  const child = childIn(dir, [...SERVE, "--config", "hono.json"]);
  try {
    const port = Number((await child.waitFor(LISTENING))[1]);
    assertEquals((await get(port, "/")).text, `hono ${child.pid}`);
    const pid = await restart(port, child.pid);
    assertEquals((await get(port, "/")).text, `hono ${pid}`);
  } finally {
    await removeProject(dir, child);
  }
});

Deno.test({
  name:
    "the re-execution keeps the sockets of socket activation (LISTEN_PID is the same pid)",
  ignore: ignoreWithout(SOCKET_ACTIVATE),
}, async () => {
  const dir = await honoProject();
  // systemd-socket-activate starts the command on the first connection.
  const { child, ports: [port] } = await socketActivate(1, [
    "/bin/sh",
    "-c",
    'cd "$0" && exec "$@"',
    dir,
    ...SERVE.slice(0, 5),
  ]);
  try {
    // A first connection starts it; it then serves the socket as fd 3.
    const first = await Deno.connect({ hostname: "127.0.0.1", port });
    await child.waitFor(/listening on 127\.0\.0\.1:\d+ \(fd 3, inherited/);
    first.close();
    const text = (await get(port, "/")).text;
    assertMatch(text, /^hono \d+$/);
    assertEquals(count(argsOf(Number(text.split(" ")[1])), "--config"), 1);
  } finally {
    await removeProject(dir, child);
  }
});

Deno.test("an app that fails under its deno.json exits 1 with the error", async () => {
  const dir = await tempProject({
    "deno.json": JSON.stringify({ imports: { hono: "npm:hono@^4.6.0" } }),
    "app.ts": `import "hono";\nthrow new Error("app-broken");\n`,
  });
  const child = childIn(dir, SERVE);
  try {
    assertEquals((await child.done).code, 1);
    assertMatch(
      child.output,
      /^error: cannot load app module app\.ts: .*app-broken/m,
    );
  } finally {
    await child.cleanup();
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("a Hono app with a package.json is served with its node_modules, and says when they are missing", async () => {
  const dir = await tempProject({
    // @logtape/logtape is serveGraceful's own npm dependency: what npm
    // installs along with @graceful/serve, run here from a checkout.
    "package.json": JSON.stringify({
      type: "module",
      dependencies: { hono: "^4.6.0", "@logtape/logtape": "^2.4.2" },
    }),
    "app.ts": HONO_APP,
  });
  try {
    const missing = childIn(dir, SERVE);
    assertEquals((await missing.done).code, 1);
    assertEquals(missing.lines, [
      `error: ${dir}/node_modules is missing: install the packages of ` +
      `${dir}/package.json first (npm install in ${dir}; serveGraceful ` +
      `installs nothing)`,
    ]);

    await installPackages(dir);

    const child = childIn(dir, SERVE);
    // The command line has no path of the project: kill by pid.
    let pid = child.pid;
    try {
      const port = Number((await child.waitFor(LISTENING))[1]);
      assertEquals((await get(port, "/")).text, `hono ${child.pid}`);
      pid = await restart(port, child.pid);
      assertEquals((await get(port, "/")).text, `hono ${pid}`);
      assertEquals(count(argsOf(pid), "--node-modules-dir=manual"), 1);
      assertEquals(count(argsOf(pid), "--no-config"), 1);
      assertEquals((await child.exited).code, 0);
    } finally {
      try {
        Deno.kill(pid, "SIGKILL");
      } catch {
        // gone
      }
      await child.cleanup();
    }
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});
