/**
 * `--watch` in a real terminal (script(1)'s pty): after a restart the command
 * stays in the foreground, and Ctrl-C stops the serving generation and the
 * command, leaving no process behind.
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

Deno.test({
  name:
    "watch keeper: in a terminal, --watch stays in the foreground after a restart and Ctrl-C stops everything",
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
      env: { NO_COLOR: "1" },
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
    const writer = terminal.stdin.getWriter();
    try {
      await until(() =>
        /Listening on http:\/\/127\.0\.0\.1:\d+\//.test(output)
      );
      const port = Number(output.match(/127\.0\.0\.1:(\d+)\//)![1]);
      const first = Number((await get(port, "/pid")).text);
      await Deno.writeTextFile(app, APP.replace("__VERSION__", "v2"));
      await until(async () => (await get(port, "/")).text === "v2");
      const second = Number((await get(port, "/pid")).text);
      assertNotEquals(second, first);
      // The first process handed over and stays: the command holds the
      // terminal.
      await until(() => /generation 2 .*is ready/.test(output));
      assert(alive(first), output);
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
