/**
 * `serveGraceful`: a drop-in for Deno.serve that serves on sockets passed via
 * LISTEN_FDS (or opens them itself), through Deno's own HTTP engine, and drains
 * gracefully. The server itself is in server.ts.
 *
 * @module
 */

import type { GracefulHandler } from "../listen/types.ts";
import { assertDenoVersion } from "../os/deno_version.ts";
import {
  type GracefulServeOptions,
  type GracefulServer,
  normalizeArgs,
  type ServeArgs,
} from "./options.ts";
import { Server } from "./server.ts";

/**
 * Serves HTTP like `Deno.serve`, on sockets inherited through systemd socket
 * activation (LISTEN_FDS) or opened here (port 8000 by default), and drains
 * gracefully on SIGTERM, SIGINT and SIGQUIT.
 *
 * @example Serve, answer a request, shut down gracefully
 * ```ts
 * import { serveGraceful } from "@graceful/serve";
 * import assert from "node:assert/strict";
 *
 * const server = serveGraceful(
 *   { hostname: "127.0.0.1", port: 0 }, // 0: any free port
 *   (_request, info) => new Response(`Hello ${info.remoteAddr.transport}!`),
 * );
 * await server.ready;
 * const { port } = server.addr as Deno.NetAddr;
 * const response = await fetch(`http://127.0.0.1:${port}/`);
 * assert.equal(await response.text(), "Hello tcp!");
 * await server.shutdown();
 * ```
 */
export function serveGraceful(handler: GracefulHandler): GracefulServer;
/**
 * Serves with options first and the handler second (like Deno.serve).
 *
 * @example Two addresses: TCP and a unix socket
 * ```ts
 * import { serveGraceful } from "@graceful/serve";
 * import assert from "node:assert/strict";
 *
 * const dir = Deno.makeTempDirSync();
 * const server = serveGraceful(
 *   { listen: ["127.0.0.1:0", `unix:${dir}/app.sock`] },
 *   () => new Response("ok"),
 * );
 * await server.ready;
 * assert.deepEqual(server.addrs.map((addr) => addr.transport), ["tcp", "unix"]);
 * await server.shutdown();
 * Deno.removeSync(dir, { recursive: true });
 * ```
 */
export function serveGraceful(
  options: GracefulServeOptions,
  handler: GracefulHandler,
): GracefulServer;
/**
 * Serves with the handler inside the options, as `handler` or `fetch` (an
 * `export default { fetch }` module's shape).
 *
 * @example A `{ fetch }` object
 * ```ts
 * import { serveGraceful } from "@graceful/serve";
 *
 * const app = { fetch: () => new Response("ok") };
 * const server = serveGraceful({ hostname: "127.0.0.1", port: 0, ...app });
 * await server.ready;
 * await server.shutdown();
 * ```
 */
export function serveGraceful(
  options:
    & GracefulServeOptions
    & ({ handler: GracefulHandler } | { fetch: GracefulHandler }),
): GracefulServer;
export function serveGraceful(...args: ServeArgs): GracefulServer {
  assertDenoVersion();
  const { options, handler } = normalizeArgs(args);
  return new Server(options, handler);
}
