/**
 * Bench system "deno_serve": plain `Deno.serve`, the baseline.
 *
 *   deno run -A bench/servers/deno_serve.ts [port]
 *
 * @module
 */

import { portFromArgs } from "./port.ts";

Deno.serve({
  hostname: "127.0.0.1",
  port: portFromArgs(),
  onListen(addr) {
    console.log(addr.port);
  },
}, () => new Response("Hello, World!"));
