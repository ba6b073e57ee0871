/**
 * The admin API and page: status, restart and shutdown over HTTP, for one
 * process. Think of GoFrame's `EnableAdmin`, but locked down by default.
 *
 * `createAdmin(options, deps)` returns a router that the server puts in front
 * of the application handler. It answers every request under `path` (default
 * `/debug/admin`) and returns `undefined` for anything else, so that the app
 * handler runs; admin paths never reach the app, not even a 404.
 *
 * - `GET {path}` (or `{path}/`): the HTML page (admin_page.ts).
 * - `GET {path}/status`: JSON with pid, generation, startedAt, firstStartedAt,
 *   uptimeMs, restarts, phase, listeners, inFlight, connections, lastRestart
 *   (admin_status.ts).
 * - `POST {path}/restart`: 200 `{ pid, generation }` once the new generation
 *   serves; 503 `{ error }` when it did not (this generation keeps serving).
 * - `POST {path}/shutdown`: 202 `{ shutting_down: true }`, then, once the
 *   response has been sent, a graceful shutdown of the process
 *   (admin_actions.ts).
 *
 * Who may do what (admin_auth.ts), the CSRF defences, the limits and the
 * entry override's checks are described, with their reasons, in
 * docs/admin_security.md.
 *
 * @module
 */

import { pageResponse } from "./admin_page.ts";
import { logger } from "../util/log.ts";
import { workerSecret } from "../workers/worker.ts";
import { randomHex } from "../util/random.ts";
import { statusBody } from "./admin_status.ts";
import {
  type AdminDeps,
  type AdminRequestInfo,
  restart,
  shutdown,
} from "./admin_actions.ts";
import {
  adminTokenProblem,
  authorise,
  crossSiteReason,
  sameSecret,
} from "./admin_auth.ts";
import {
  json,
  readJsonBody,
  refuse,
  requestTarget,
  utf8Length,
} from "./admin_http.ts";

const log = logger("admin");

/** The default mount point of the admin routes. */
export const DEFAULT_ADMIN_PATH = "/debug/admin";
/** The default largest request body (bytes). */
export const DEFAULT_ADMIN_MAX_BODY_BYTES = 16 * 1024;
/** The largest query string (bytes, without the `?`) before a 414. */
export const ADMIN_MAX_QUERY_BYTES = 2048;
/** The request header that carries the CSRF token. */
export const ADMIN_CSRF_HEADER = "X-Admin-CSRF";

/** Options of {@linkcode createAdmin}. */
export interface AdminOptions {
  /** Where the routes are mounted. Default `/debug/admin`. */
  path?: string;
  /**
   * A bearer token for status and actions, from any client; the admin routes
   * are then served on the app's listeners. Without one, they are served
   * only on a listener of their own (see `listen`), to loopback clients.
   * At least 16 visible ASCII characters.
   */
  token?: string;
  /**
   * The admin API's own listener: `unix:PATH`, or (without a token) a
   * loopback `127.0.0.1:PORT` or `[::1]:PORT`. Default without a token: a
   * unix socket (mode 0600) `admin-PID.sock` in `$XDG_RUNTIME_DIR/serve-graceful/`
   * (or `$RUNTIME_DIRECTORY/serve-graceful/`, systemd's RuntimeDirectory=),
   * else `/tmp/serve-graceful-UID/`. With a token and no `listen`, the admin
   * routes are served on the app's listeners.
   */
  listen?: string;
  /**
   * Whether `POST {path}/restart` may name another `entry` or `execPath`, and
   * in which directories they must lie. Default `false`: never.
   */
  allowEntryOverride?: false | { dirs: string[] };
  /** The largest request body accepted (bytes). Default 16 KiB. */
  maxBodyBytes?: number;
}

/** The admin routes, to put in front of the application handler. */
export interface AdminRouter {
  /** The mount point, normalised (no trailing slash). */
  readonly path: string;
  /**
   * Answers a request under `path`; returns `undefined` for any other request,
   * which the application handler should then serve.
   */
  handle(
    request: Request,
    info: AdminRequestInfo,
  ): Promise<Response> | undefined;
}

interface Config {
  path: string;
  token: string | undefined;
  dirs: string[] | undefined;
  maxBodyBytes: number;
}

interface RouterState {
  readonly config: Config;
  readonly deps: AdminDeps;
  readonly csrf: string;
  /** The token (config.token) and its digest, once computed. */
  readonly token: string | undefined;
  tokenDigest: Promise<Uint8Array> | undefined;
  /** Where an entry or execPath override may lie (config.dirs). */
  readonly dirs: string[] | undefined;
  shuttingDown: boolean;
}

type Route = "page" | "status" | "restart" | "shutdown";

const ROUTES: Record<string, Route> = {
  "": "page",
  "status": "status",
  "restart": "restart",
  "shutdown": "shutdown",
};

/**
 * Creates the admin router. Throws a `TypeError` on a bad `path`, `token` or
 * `maxBodyBytes`.
 */
export function createAdmin(
  options: AdminOptions,
  deps: AdminDeps,
): AdminRouter {
  const config = resolveOptions(options);
  const state: RouterState = {
    config,
    deps,
    // Workers share one (a page's next request may reach another worker).
    csrf: workerSecret() ?? randomHex(32),
    token: config.token,
    tokenDigest: undefined,
    dirs: config.dirs,
    shuttingDown: false,
  };
  return {
    path: state.config.path,
    handle(request, info) {
      const target = requestTarget(request);
      if (target === undefined) return undefined;
      const { url, hostOk } = target;
      const sub = subpathOf(url.pathname, state.config.path);
      if (sub === undefined) return undefined;
      if (!hostOk) {
        return Promise.resolve(
          refuse(request, info.remoteAddr, 400, "invalid Host header"),
        );
      }
      return route(state, request, info, url, sub).catch((error) => {
        log.error("admin: {method} {path} failed: {error}", {
          method: request.method,
          path: url.pathname,
          error,
        });
        return json(500, { error: "internal error" });
      });
    },
  };
}

function resolveOptions(options: AdminOptions): Config {
  const path = normalisePath(options.path ?? DEFAULT_ADMIN_PATH);
  const token = options.token;
  if (token !== undefined) {
    const problem = adminTokenProblem(token);
    if (problem) throw new TypeError(problem);
  }
  const maxBodyBytes = options.maxBodyBytes ?? DEFAULT_ADMIN_MAX_BODY_BYTES;
  if (!Number.isSafeInteger(maxBodyBytes) || maxBodyBytes < 0) {
    throw new TypeError("maxBodyBytes must be a non-negative integer");
  }
  const override = options.allowEntryOverride;
  let dirs: string[] | undefined;
  if (override) {
    if (!Array.isArray(override.dirs)) {
      throw new TypeError("allowEntryOverride.dirs must be an array of paths");
    }
    for (const dir of override.dirs) {
      if (typeof dir !== "string" || !dir.startsWith("/")) {
        throw new TypeError(
          `allowEntryOverride.dirs: ${
            JSON.stringify(dir)
          } is not an absolute path`,
        );
      }
    }
    dirs = [...override.dirs];
  }
  return { path, token, dirs, maxBodyBytes };
}

function normalisePath(path: string): string {
  const trimmed = path.replace(/\/+$/, "");
  const segments = trimmed.split("/").slice(1);
  const valid = trimmed.startsWith("/") && segments.length > 0 &&
    segments.every((s) => /^[A-Za-z0-9._~-]+$/.test(s) && !/^\.+$/.test(s));
  if (!valid) {
    throw new TypeError(
      `admin path ${
        JSON.stringify(path)
      } must be like "/debug/admin": absolute, not "/", ` +
        "segments of letters, digits and . _ ~ -",
    );
  }
  return trimmed;
}

/** "" for the page, "status" etc. for subpaths, undefined when not ours. */
function subpathOf(pathname: string, base: string): string | undefined {
  if (pathname === base) return "";
  if (pathname.startsWith(base + "/")) return pathname.slice(base.length + 1);
  return undefined;
}

async function route(
  state: RouterState,
  request: Request,
  info: AdminRequestInfo,
  url: URL,
  sub: string,
): Promise<Response> {
  if (utf8Length(url.search.slice(1)) > ADMIN_MAX_QUERY_BYTES) {
    return json(414, { error: "query string too long" });
  }
  const name = Object.hasOwn(ROUTES, sub) ? ROUTES[sub] : undefined;
  if (name === undefined) return json(404, { error: "not found" });
  const action = name === "restart" || name === "shutdown";
  const method = request.method;
  if (action ? method !== "POST" : method !== "GET" && method !== "HEAD") {
    return json(405, { error: "method not allowed" }, {
      allow: action ? "POST" : "GET, HEAD",
    });
  }

  if (name !== "page") {
    const crossSite = crossSiteReason(request, url);
    if (crossSite) return refuse(request, info.remoteAddr, 403, crossSite);
  }
  const denied = await authorise(
    state,
    request,
    info.remoteAddr,
    url,
    name === "page",
  );
  if (denied) {
    return refuse(
      request,
      info.remoteAddr,
      denied.status,
      denied.error,
      denied.headers,
    );
  }

  switch (name) {
    case "page":
      return pageResponse({
        base: state.config.path,
        csrf: state.csrf,
        auth: state.config.token === undefined ? "loopback" : "token",
        // With a token the page holds no process data: it asks for the token.
        status: state.config.token === undefined
          ? statusBody(state.deps.status())
          : undefined,
      });
    case "status":
      return json(200, statusBody(state.deps.status()), {
        [ADMIN_CSRF_HEADER]: state.csrf,
      });
  }

  // With a token, `authorise` checked the bearer header, which a browser
  // never sends on its own: that is the proof a cross-site page cannot give.
  const csrf = request.headers.get(ADMIN_CSRF_HEADER);
  const needsCsrf = state.config.token === undefined;
  if (needsCsrf && (csrf === null || !(await sameSecret(csrf, state.csrf)))) {
    return refuse(
      request,
      info.remoteAddr,
      403,
      `missing or wrong ${ADMIN_CSRF_HEADER} header`,
    );
  }
  const body = await readJsonBody(request, state.config.maxBodyBytes);
  if (body instanceof Response) return body;

  return name === "restart"
    ? await restart(state, body, info)
    : shutdown(state, body, info);
}
