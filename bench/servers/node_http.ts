/**
 * Bench system "node_http": plain `node:http` in Deno, the reference for the
 * node engine.
 *
 *   deno run -A bench/servers/node_http.ts [port]
 *
 * @module
 */

import { createServer } from "node:http";
import type { AddressInfo } from "node:net";
import { portFromArgs } from "./port.ts";

const server = createServer((_req, res) => {
  res.end("Hello, World!");
});
server.listen(portFromArgs(), "127.0.0.1", () => {
  console.log((server.address() as AddressInfo).port);
});
