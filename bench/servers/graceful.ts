/**
 * The hello-world server of the bench systems "graceful_native" and
 * "graceful_node": `serveGraceful` on one engine, checked to really run on
 * it, printing its port once it is listening.
 *
 * @module
 */

import { serveGraceful } from "../../mod.ts";
import { portFromArgs } from "./port.ts";

/** Serves "Hello, World!" with `serveGraceful` on `engine`. */
export async function serveHelloGraceful(
  engine: "native" | "node",
): Promise<void> {
  const server = serveGraceful({
    engine,
    hostname: "127.0.0.1",
    port: portFromArgs(),
    shutdownSignals: ["SIGTERM"],
  }, () => new Response("Hello, World!"));
  await server.ready;
  if (server.engines[0] !== engine) {
    throw new Error(`expected the ${engine} engine, got ${server.engines[0]}`);
  }
  const addr = server.addr;
  if (addr?.transport !== "tcp") throw new Error("no TCP address");
  console.log(addr.port);
}
