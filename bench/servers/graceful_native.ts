/**
 * Bench system "graceful_native": `serveGraceful` on the native engine.
 *
 *   deno run -A bench/servers/graceful_native.ts [port]
 *
 * @module
 */

import { serveGraceful } from "../../mod.ts";
import { portFromArgs } from "./port.ts";

const server = serveGraceful({
  engine: "native",
  hostname: "127.0.0.1",
  port: portFromArgs(),
  shutdownSignals: ["SIGTERM"],
}, () => new Response("Hello, World!"));
await server.ready;
if (server.engines[0] !== "native") {
  throw new Error(`expected the native engine, got ${server.engines[0]}`);
}
const addr = server.addr;
if (addr?.transport !== "tcp") throw new Error("no TCP address");
console.log(addr.port);
