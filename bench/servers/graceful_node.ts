/**
 * Bench system "graceful_node": `serveGraceful` on the node:http engine.
 *
 *   deno run -A bench/servers/graceful_node.ts [port]
 *
 * @module
 */

import { serveGraceful } from "../../mod.ts";
import { portFromArgs } from "./port.ts";

const server = serveGraceful({
  engine: "node",
  hostname: "127.0.0.1",
  port: portFromArgs(),
  shutdownSignals: ["SIGTERM"],
}, () => new Response("Hello, World!"));
await server.ready;
if (server.engines[0] !== "node") {
  throw new Error(`expected the node engine, got ${server.engines[0]}`);
}
const addr = server.addr;
if (addr?.transport !== "tcp") throw new Error("no TCP address");
console.log(addr.port);
