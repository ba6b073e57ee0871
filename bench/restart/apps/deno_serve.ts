/**
 * The naive baseline of bench/restart_bench.ts: plain `Deno.serve`, restarted
 * by killing it (SIGTERM: Deno.serve has no handler, so the process ends at
 * once) and starting a new one on the same port, as a file watcher would.
 *
 *   deno run -A bench/peers/apps/deno_serve.ts PORT
 *
 * Routes: / answers "Hello!", /pid the serving pid, /sleep?ms=N sleeps N ms.
 *
 * @module
 */

const port = Number(Deno.args[0] ?? "8000");

Deno.serve({
  hostname: "127.0.0.1",
  port,
  onListen() {},
}, async (request) => {
  const url = new URL(request.url);
  switch (url.pathname) {
    case "/":
      return new Response("Hello!\n");
    case "/pid":
      return new Response(`${Deno.pid}\n`);
    case "/sleep": {
      const ms = Number(url.searchParams.get("ms") ?? "10000");
      await new Promise((resolve) => setTimeout(resolve, ms));
      return new Response(`slept ${ms} ms in pid ${Deno.pid}\n`);
    }
    default:
      return new Response("Not Found\n", { status: 404 });
  }
});
