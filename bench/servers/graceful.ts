/**
 * The hello-world server of the bench systems "graceful_native" and
 * "graceful_node": `serveGraceful` on one engine, checked to really run on
 * it, printing its port once it is listening.
 *
 * @module
 */

import { serveGraceful } from "../../mod.ts";
import { portFromArgs } from "./port.ts";
import { transportFromArgs } from "./transport.ts";

/** Serves "Hello, World!" with `serveGraceful` on `engine`. */
export async function serveHelloGraceful(
  engine: "native" | "node",
): Promise<void> {
  const transport = transportFromArgs();
  const port = portFromArgs();
  const server = serveGraceful({
    engine,
    listen: transport.kind === "unix"
      ? [`127.0.0.1:${port}`, `unix:${transport.path}`]
      : [`127.0.0.1:${port}`],
    ...(transport.kind === "tls"
      ? { cert: transport.cert, key: transport.key }
      : {}),
    shutdownSignals: ["SIGTERM"],
    onListen() {},
  }, () => new Response("Hello, World!"));
  await server.ready;
  for (const used of server.engines) {
    if (used !== engine) {
      throw new Error(`expected the ${engine} engine, got ${used}`);
    }
  }
  const addr = server.addr;
  if (addr?.transport !== "tcp") throw new Error("no TCP address");
  console.log(addr.port);
}
