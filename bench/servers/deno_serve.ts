/**
 * Bench system "deno_serve" (and its TLS and unix variants): plain
 * `Deno.serve`, the baseline.
 *
 *   deno run -A bench/servers/deno_serve.ts [port] [tls:DIR | unix:PATH]
 *
 * @module
 */

import { portFromArgs } from "./port.ts";
import { transportFromArgs } from "./transport.ts";

const transport = transportFromArgs();
const hello = () => new Response("Hello, World!");
if (transport.kind === "unix") {
  Deno.serve({ path: transport.path, onListen() {} }, hello);
}
Deno.serve({
  hostname: "127.0.0.1",
  port: portFromArgs(),
  ...(transport.kind === "tls"
    ? { cert: transport.cert, key: transport.key }
    : {}),
  onListen(addr) {
    console.log(addr.port);
  },
}, hello);
