/**
 * As a user's project uses the module: from a temporary project outside this
 * repo, importing it by path, by an http:// URL (served by a local file
 * server) and vendored, with a deno.json task that runs the CLI.
 */

import { assertEquals, assertMatch } from "./assert.ts";
import { type Child, get, killAllWith, MOD, ROOT } from "./helpers.ts";
import { childIn, tempProject } from "./project.ts";

const LISTENING = /Listening on http:\/\/127\.0\.0\.1:(\d+)\//;

/** Starts `command` in `dir`, waits until it serves; returns it and its port. */
async function serveIn(
  dir: string,
  command: string[],
): Promise<{ child: Child; port: number }> {
  const child = childIn(dir, command);
  const m = await child.waitFor(LISTENING);
  return { child, port: Number(m[1]) };
}

const MAIN = (from: string) =>
  `import { serveGraceful } from "${from}";
serveGraceful({ port: 0, hostname: "127.0.0.1" }, () =>
  new Response(\`project \${Deno.pid}\`));
`;

/** Serves this repo's files over http on a free port, as a web server would. */
function serveRepo(): { server: Deno.HttpServer; port: Promise<number> } {
  const port = Promise.withResolvers<number>();
  const server = Deno.serve({
    hostname: "127.0.0.1",
    port: 0,
    onListen: ({ port: p }) => port.resolve(p),
  }, async (request) => {
    const path = decodeURIComponent(new URL(request.url).pathname);
    if (path.includes("..")) return new Response("no", { status: 403 });
    try {
      const body = await Deno.readFile(`${ROOT}${path}`);
      const type = path.endsWith(".json")
        ? "application/json"
        : "application/typescript";
      return new Response(body, { headers: { "content-type": type } });
    } catch {
      return new Response("not found", { status: 404 });
    }
  });
  return { server, port: port.promise };
}

Deno.test("a project imports the module by path, with an import map of its own", async () => {
  const dir = await tempProject({
    "deno.json": JSON.stringify({ imports: { "lib/": "./lib/" } }),
    "main.ts": MAIN(MOD),
  });
  const { child, port } = await serveIn(dir, [
    Deno.execPath(),
    "run",
    "-A",
    "main.ts",
  ]);
  try {
    assertEquals((await get(port, "/")).text, `project ${child.pid}`);
    child.kill("SIGTERM");
    assertEquals((await child.exited).code, 0);
  } finally {
    await child.cleanup();
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("a project imports the module by an http:// URL, runs the CLI from a deno.json task, and vendored", async () => {
  const repo = serveRepo();
  const base = `http://127.0.0.1:${await repo.port}`;
  const dir = await tempProject({
    "deno.json": JSON.stringify({
      imports: { "@graceful/serve": `${base}/mod.ts` },
      tasks: {
        start: `deno run -A ${base}/mod.ts app.ts --port 0 ` +
          `--hostname 127.0.0.1`,
      },
      vendor: true,
    }),
    "main.ts": MAIN("@graceful/serve"),
    "app.ts":
      `export default { fetch: () => new Response(\`task \${Deno.pid}\`) };`,
  });
  const running: Child[] = [];
  try {
    const lib = await serveIn(dir, [Deno.execPath(), "run", "-A", "main.ts"]);
    running.push(lib.child);
    assertEquals((await get(lib.port, "/")).text, `project ${lib.child.pid}`);
    lib.child.kill("SIGTERM");
    assertEquals((await lib.child.exited).code, 0);

    // `deno task start` runs the CLI by URL; app.ts is served under the
    // project's deno.json (its task runner's child is the server).
    const task = await serveIn(dir, [Deno.execPath(), "task", "start"]);
    running.push(task.child);
    assertMatch((await get(task.port, "/")).text, /^task \d+$/);
    killAllWith(`${base}/mod.ts`);

    // Vendored: with the file server gone, the project still runs.
    await repo.server.shutdown();
    const vendored = await serveIn(dir, [
      Deno.execPath(),
      "run",
      "-A",
      "main.ts",
    ]);
    running.push(vendored.child);
    assertEquals(
      (await get(vendored.port, "/")).text,
      `project ${vendored.child.pid}`,
    );
    const host = `http_127.0.0.1_${await repo.port}`;
    assertEquals(
      (await Deno.stat(`${dir}/vendor/${host}/mod.ts`)).isFile,
      true,
    );
  } finally {
    killAllWith(`${base}/mod.ts`);
    for (const child of running) await child.cleanup();
    await repo.server.shutdown().catch(() => {});
    await Deno.remove(dir, { recursive: true });
  }
});
