/**
 * `--watch` in a real terminal (script(1)'s pty), in each mode: after a
 * restart the command stays in the foreground, and Ctrl-C stops the serving
 * generation and the command, leaving no process behind. On Linux the
 * command is a supervisor with one worker; in the posix and windows modes
 * (what macOS and Windows run) the first process keeps the terminal as the
 * watch keeper while later generations serve.
 */

import { assert, assertEquals, assertNotEquals } from "./assert.ts";
import { terminalArgs } from "./terminal.ts";
import { ignoreWithout, SCRIPT } from "./capabilities.ts";
import { alive, get, killAllWith, MOD, pidsWith, until } from "./helpers.ts";

const APP = `export default {
  fetch(req) {
    const path = new URL(req.url).pathname;
    if (path === "/pid") return new Response(String(Deno.pid));
    return new Response("__VERSION__");
  },
};
`;

/** `get(port, path)`'s text, or undefined while nothing answers. */
async function tryGet(port: number, path: string): Promise<string | undefined> {
  try {
    return (await get(port, path, { headers: { connection: "close" } })).text;
  } catch {
    return undefined; // the windows mode's complete restart refuses a while
  }
}

for (
  const [mode, env] of [
    ["linux", {}],
    ["posix", { GRACEFUL_PORTABLE: "posix" }],
    ["windows", { GRACEFUL_PORTABLE: "windows" }],
  ] as [string, Record<string, string>][]
) {
  Deno.test({
    name:
      `watch keeper (${mode} mode): in a terminal, --watch stays in the foreground after a restart and Ctrl-C stops everything`,
    ignore: ignoreWithout(SCRIPT),
    async fn() {
      const dir = await Deno.makeTempDir({ prefix: "graceful-keeper-" });
      const app = `${dir}/app.ts`;
      await Deno.writeTextFile(app, APP.replace("__VERSION__", "v1"));
      const command = [
        Deno.execPath(),
        "run",
        "-A",
        MOD,
        app,
        "--watch",
        "--port",
        "0",
        "--hostname",
        "127.0.0.1",
      ];
      const terminal = new Deno.Command("script", {
        args: terminalArgs(command),
        env: { NO_COLOR: "1", ...env },
        stdin: "piped",
        stdout: "piped",
        stderr: "piped",
      }).spawn();
      let output = "";
      const reading = (async () => {
        for await (
          const chunk of terminal.stdout.pipeThrough(new TextDecoderStream())
        ) output += chunk;
      })();
      let ended = false;
      terminal.status.then(() => ended = true);
      const writer = terminal.stdin.getWriter();
      try {
        await until(() =>
          /Listening on http:\/\/127\.0\.0\.1:\d+\//.test(output)
        );
        const port = Number(output.match(/127\.0\.0\.1:(\d+)\//)![1]);
        // The command script(1) runs (it execs it): the foreground process.
        const [foreground] = pidsWith(dir).filter((pid) =>
          parentOf(pid) === terminal.pid
        );
        assert(foreground !== undefined, output);
        const first = Number(await tryGet(port, "/pid"));
        await Deno.writeTextFile(app, APP.replace("__VERSION__", "v2"));
        await until(async () => (await tryGet(port, "/")) === "v2");
        const second = Number(await tryGet(port, "/pid"));
        assertNotEquals(second, first);
        // The command still holds the terminal: the same process, alive,
        // and script(1) has not returned.
        assert(alive(foreground), output);
        assert(!ended, `the command left the foreground:\n${output}`);
        await writer.write(new Uint8Array([3])); // Ctrl-C
        const status = await terminal.status;
        assertEquals(status.code, 0, output);
        await until(() => !alive(second) && !alive(first));
        assertEquals(pidsWith(dir), []);
      } finally {
        await writer.close().catch(() => {});
        killAllWith(dir);
        try {
          terminal.kill("SIGKILL");
        } catch {
          // ended
        }
        await terminal.status;
        await reading.catch(() => {});
        await terminal.stderr.cancel().catch(() => {});
        await Deno.remove(dir, { recursive: true });
      }
    },
  });
}

/** The parent pid of `pid` (/proc/PID/stat), or 0. */
function parentOf(pid: number): number {
  try {
    const stat = Deno.readTextFileSync(`/proc/${pid}/stat`);
    return Number(stat.slice(stat.lastIndexOf(")") + 2).split(" ")[1]);
  } catch {
    return 0;
  }
}
