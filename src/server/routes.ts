/**
 * The routes in front of the application handler: the health check and the
 * admin API (loaded only when asked for). Admin paths never reach the app.
 *
 * @module
 */

import type { GracefulHandler } from "../listen/types.ts";
import { countServed, supervisorView } from "../workers/worker.ts";
import { processStatus, restartProcess } from "../restart/generation.ts";
import { processTotals } from "../restart/process_state.ts";
import { stopProcess } from "../restart/shutdown.ts";
import type { AdminOptions, AdminRouter } from "./admin.ts";
import type { AdminStatus } from "./admin_status.ts";

/** What {@linkcode routedHandler} needs from its server. */
export interface Routes {
  /** The health check's path, if any. */
  healthPath?: string;
  /** The admin API's options, if any (`true`: the defaults). */
  admin?: boolean | AdminOptions;
  /** True once this generation is shutting down: health answers 503. */
  stopping(): boolean;
  /**
   * Serves the admin router on a listener of its own (admin_listener.ts),
   * when its options ask for one.
   */
  serveApart(
    own: typeof import("./admin_listener.ts"),
    options: AdminOptions,
    router: AdminRouter,
  ): void;
}

/** The app handler, behind the health and admin routes when configured. */
export async function routedHandler(
  handler: GracefulHandler,
  routes: Routes,
): Promise<GracefulHandler> {
  const app = countServed(handler);
  const healthPath = routes.healthPath;
  const adminOptions = routes.admin === true ? {} : routes.admin || undefined;
  let admin = adminOptions
    ? (await import("./admin.ts")).createAdmin(
      adminOptions,
      {
        status() {
          // A worker answers from its supervisor's view.
          const view = supervisorView() as AdminStatus | undefined;
          return view ?? { ...processStatus(), ...processTotals() };
        },
        restart(options) {
          return restartProcess(options);
        },
        shutdown() {
          stopProcess("by the admin API");
        },
      },
    )
    : undefined;
  if (admin && adminOptions) {
    const own = await import("./admin_listener.ts");
    if (own.ownAdminListener(adminOptions)) {
      routes.serveApart(own, adminOptions, admin);
      admin = undefined;
    }
  }
  if (healthPath === undefined && admin === undefined) return app;
  const health = (): Response =>
    routes.stopping()
      ? new Response("shutting down\n", {
        status: 503,
        headers: { "cache-control": "no-store", "connection": "close" },
      })
      : new Response("ok\n", { headers: { "cache-control": "no-store" } });
  return function routed(request, info) {
    if (healthPath !== undefined && pathOf(request.url) === healthPath) {
      return health();
    }
    return admin?.handle(request, info) ?? app(request, info);
  };
}

/** The path of an absolute request URL, without parsing all of it. */
function pathOf(url: string): string {
  const start = url.indexOf("/", url.indexOf("//") + 2);
  if (start < 0) return "/";
  let end = url.length;
  const query = url.indexOf("?", start);
  if (query >= 0) end = query;
  const hash = url.indexOf("#", start);
  if (hash >= 0 && hash < end) end = hash;
  return url.slice(start, end);
}
