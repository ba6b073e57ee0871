/**
 * Zero-downtime restarts and systemd socket activation for Deno HTTP servers.
 *
 * `serveGraceful` is a drop-in for `Deno.serve` (same handler contract) that
 * serves on sockets passed through `LISTEN_FDS` (sd_listen_fds(3) semantics),
 * or opens them itself when none are passed, and drains gracefully.
 *
 * Run as a program, this module is the CLI: `deno run -A mod.ts --help`.
 *
 * @example Drop-in for Deno.serve
 * ```ts
 * import { serveGraceful } from "@graceful/serve";
 *
 * const server = serveGraceful(
 *   { hostname: "127.0.0.1", port: 0 }, // 0: any free port
 *   (_request, info) => new Response(`Hello ${info.remoteAddr.transport}!`),
 * );
 * await server.ready;
 * // ... until SIGTERM, or:
 * await server.shutdown();
 * ```
 *
 * @module
 */

import { trace } from "./src/restart/trace.ts";

export { serveGraceful } from "./src/server/serve.ts";
export type {
  EngineName,
  GracefulServeOptions,
  GracefulServer,
} from "./src/server/options.ts";
export type {
  Addr,
  ErrorHandler,
  GracefulHandler,
  GracefulHandlerInfo,
} from "./src/listen/types.ts";
export {
  type GenerationInfo,
  type LastRestart,
  RestartError,
  type RestartOptions,
  type RestartResult,
  type RestartTrigger,
} from "./src/restart/handover_types.ts";
export type { ProcessStatus } from "./src/restart/generation.ts";
export type { AdminOptions } from "./src/server/admin.ts";

if (import.meta.main) {
  trace("mod.ts evaluated");
  // No top-level await: an APP.ts that the CLI runs may import this module,
  // and it must not wait for the CLI that is waiting for it.
  import("./src/cli/main.ts")
    .then(({ main }) => {
      trace("cli.ts loaded");
      return main(Deno.args);
    })
    .then((code) => Deno.exit(code));
}
