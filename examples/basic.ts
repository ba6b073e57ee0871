/**
 * GoFrame's graceful example 1: `/`, `/pid` and `/sleep`, on port 8199.
 *
 *   deno run -A examples/basic.ts
 *   curl localhost:8199/pid
 *   kill -TERM <pid>    # drains: in-flight /sleep requests still finish
 *
 * @module
 */

import { serveGraceful } from "../mod.ts";

serveGraceful({ port: Number(Deno.env.get("PORT") ?? 8199) }, async (req) => {
  const url = new URL(req.url);
  if (url.pathname === "/pid") return new Response(`${Deno.pid}\n`);
  if (url.pathname === "/sleep") {
    await new Promise((r) =>
      setTimeout(r, Number(url.searchParams.get("ms") ?? 10000))
    );
    return new Response(`slept in pid ${Deno.pid}\n`);
  }
  return new Response("Hello!\n");
});
