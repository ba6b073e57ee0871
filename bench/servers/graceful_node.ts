/**
 * Bench system "graceful_node": `serveGraceful` on the node:http engine.
 *
 *   deno run -A bench/servers/graceful_node.ts [port]
 *
 * @module
 */

import { serveHelloGraceful } from "./graceful.ts";

await serveHelloGraceful("node");
