/**
 * A counter handed from generation to generation: `handover.save()` runs in
 * the old process just before the handover, `handover.restore()` in the new
 * one before it listens.
 *
 *   deno run -A examples/state.ts
 *   curl localhost:8199/      # 1, 2, 3, ...
 *   kill -USR2 <pid>          # restart: the count goes on
 *
 * @module
 */

import { serveGraceful } from "../mod.ts";

let count = 0;

serveGraceful({
  port: Number(Deno.env.get("PORT") ?? 8199),
  hostname: Deno.env.get("HOSTNAME") ?? "0.0.0.0",
  restartSignals: ["SIGUSR1", "SIGUSR2"],
  handover: {
    save: () => ({ count }),
    restore(state) {
      count = (state as { count: number }).count;
    },
  },
}, (req) => {
  if (new URL(req.url).pathname === "/pid") {
    return new Response(`${Deno.pid}\n`);
  }
  count++;
  return new Response(`${count} (pid ${Deno.pid})\n`);
});
