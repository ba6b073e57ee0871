/**
 * Bench system "graceful_native": `serveGraceful` on the native engine.
 *
 *   deno run -A bench/servers/graceful_native.ts [port]
 *
 * @module
 */

import { serveHelloGraceful } from "./graceful.ts";

await serveHelloGraceful("native");
