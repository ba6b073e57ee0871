/**
 * The admin API and page: status, restart and shutdown over HTTP, for one
 * process. Think of GoFrame's `EnableAdmin`, but locked down by default.
 *
 * `createAdmin(options, deps)` returns a router that the server puts in front
 * of the application handler. It answers every request under `path` (default
 * `/debug/admin`) and returns `undefined` for anything else, so that the app
 * handler runs; admin paths never reach the app, not even a 404.
 *
 * - `GET {path}` (or `{path}/`): the HTML page.
 * - `GET {path}/status`: JSON with pid, generation, startedAt, firstStartedAt,
 *   uptimeMs, restarts, phase, listeners, inFlight, connections, lastRestart.
 * - `POST {path}/restart`: 200 `{ pid, generation }` once the new generation
 *   serves; 503 `{ error }` when it did not (this generation keeps serving).
 * - `POST {path}/shutdown`: 202 `{ shutting_down: true }`, then, once the
 *   response has been sent, a graceful shutdown of the process.
 *
 * ## Who may do what
 *
 * - **With a `token`** (at least 16 visible ASCII characters): status and the
 *   actions need `Authorization: Bearer <token>`, from any client address
 *   (the token is what makes remote use possible); a missing or wrong token is
 *   answered 401 with `WWW-Authenticate: Bearer`. The comparison hashes both
 *   sides and compares the digests in constant time. The page itself is served
 *   without the token (a browser cannot send one on navigation); it holds no
 *   process data, asks for the token in a password field, keeps it in
 *   `sessionStorage` (gone when the tab closes), and sends it as a bearer
 *   token on every fetch.
 * - **Without a token**, the page, status and actions are served to loopback
 *   clients only (127.0.0.0/8, ::1, ::ffff:127.0.0.0/104, unix sockets); any
 *   other client gets 403. The server never mounts such a router on the app's
 *   listeners, but on one of its own (admin_listener.ts: a 0600 unix socket
 *   by default): a reverse proxy on the same host makes every client look
 *   local, and a default nginx `proxy_pass` adds no header that would say so.
 *   On a TCP listener two traps are closed as well: a request that carries
 *   `Forwarded`, `X-Forwarded-For` or `X-Real-IP` is treated as not local,
 *   and a TCP request must name a loopback host (`localhost`, `*.localhost`,
 *   127.x.y.z, `[::1]`) in `Host` (DNS rebinding: a hostile page whose name
 *   resolves to 127.0.0.1 would otherwise be same-origin with this API).
 * - **A `Host` header that is no host** (`127.0.0.1:8000/debug/admin/status?`)
 *   cannot move the route: Deno builds `request.url` from Host and target, so
 *   the router cuts the target back out; an admin target then gets 400.
 *
 * ## CSRF
 *
 * A browser on the operator's machine is a loopback client, so any web page it
 * opens could try to POST to `http://127.0.0.1:PORT{path}/shutdown`. Hence:
 *
 * - actions are `POST` only (a GET is 405 with `Allow: POST`), and no CORS
 *   header is ever sent, so a preflighted cross-origin request fails;
 * - without a token, every action needs the header `X-Admin-CSRF` with this
 *   process's CSRF token, 256 random bits made when the router is created
 *   (compared in constant time). The page embeds it; scripts can read it from
 *   the `X-Admin-CSRF` header of a `{path}/status` response. Cross-site pages
 *   can read neither (same-origin policy, no CORS), and HTML forms cannot set
 *   headers;
 * - with a token, the bearer header is the proof instead: a browser never
 *   attaches one on its own, so a cross-site page cannot send it, and
 *   `curl -X POST -H "Authorization: Bearer $T" …/restart` needs nothing else
 *   (the CSRF token is no secret from whoever can load the page, which is
 *   served without the bearer token);
 * - status and actions are refused (403) when `Sec-Fetch-Site` is present and
 *   is not `same-origin` or `none`, or when `Origin` is present and is `null`
 *   or names another host than the request's `Host` (a reverse proxy must
 *   pass `Host` through);
 * - a non-empty action body must be `application/json` (415 otherwise): no
 *   form encodings. An empty body is accepted whatever its `Content-Type`.
 *
 * Every response carries `Cache-Control: no-store`,
 * `X-Content-Type-Options: nosniff`, `X-Frame-Options: DENY` and
 * `Referrer-Policy: no-referrer`. The page is self-contained (inline CSS and
 * JS, no fonts, images or CDNs) under a strict CSP with a fresh nonce per
 * response: `default-src 'none'; script-src 'nonce-…'; style-src 'nonce-…';
 * connect-src 'self'; base-uri 'none'; form-action 'none';
 * frame-ancestors 'none'`. The JSON responses get `default-src 'none';
 * frame-ancestors 'none'`.
 *
 * ## Limits
 *
 * Query strings over 2 KiB are answered 414. Bodies over `maxBodyBytes`
 * (default 16 KiB) are answered 413: a declared `Content-Length` over the limit
 * is refused at once, and the body is counted as it streams, so a chunked body
 * without `Content-Length` is cut off too. Authorisation runs before any body
 * is read. Unknown subpaths are 404; wrong methods 405 with `Allow`.
 *
 * ## Another entry or executable
 *
 * `POST {path}/restart` takes an optional JSON body `{ entry?, execPath? }`
 * (absolute paths) to start the next generation from another main module or
 * Deno binary. It is refused (403) unless `allowEntryOverride` lists
 * directories, and then each path must: be absolute, contain no `..` segment,
 * exist, be a regular file (executable, for `execPath`), and, once resolved
 * with `realpath` (every symlink followed), lie inside one of the directories
 * (themselves resolved the same way). The resolved path is what the restart
 * gets. Unknown fields or wrong types are 400. Known limit: a directory on the
 * way that someone else may write to could still be swapped between the check
 * and the spawn; list only directories that only the service's owner writes.
 *
 * There is no rate limit on wrong tokens; a 16-character minimum keeps guessing
 * out of reach, and longer random tokens are better.
 *
 * @example
 * ```ts ignore
 * import { createAdmin } from "./admin.ts";
 *
 * const admin = createAdmin({ token: Deno.env.get("ADMIN_TOKEN") }, deps);
 * Deno.serve((req, info) => admin.handle(req, info) ?? app(req));
 * ```
 *
 * @module
 */

import type { LastRestart } from "../restart/handover_types.ts";
export type { LastRestart, RestartTrigger } from "../restart/handover_types.ts";
import { renderAdminPage } from "./admin_page.ts";
import { logger } from "../util/log.ts";
import { workerSecret } from "../workers/worker.ts";
import { randomHex } from "../util/random.ts";
import { completeRestarts } from "../restart/complete_restart.ts";
import { errorMessage } from "../util/error_message.ts";

const log = logger("admin");

/** The default mount point of the admin routes. */
export const DEFAULT_ADMIN_PATH = "/debug/admin";
/** The default largest request body (bytes). */
export const DEFAULT_ADMIN_MAX_BODY_BYTES = 16 * 1024;
/** The largest query string (bytes, without the `?`) before a 414. */
export const ADMIN_MAX_QUERY_BYTES = 2048;
/** The request header that carries the CSRF token. */
export const ADMIN_CSRF_HEADER = "X-Admin-CSRF";

const MIN_TOKEN_LENGTH = 16;

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

/** What the status route reports (the process's view of itself). */
export interface AdminStatus {
  /** This process's pid. */
  pid: number;
  /** This process's generation (the first process is 1). */
  generation: number;
  /** When this process started (ms since the epoch). */
  startedAt: number;
  /** When generation 1 started (ms since the epoch). */
  firstStartedAt: number;
  /** Restarts before this generation. */
  restarts: number;
  /** "serving", "spawning", "handshaking", "handing-over" or "exited". */
  phase: string;
  /** Where it listens, formatted (`127.0.0.1:8000`, `unix:/run/app.sock`). */
  listeners: string[];
  /** Requests whose response has not been completely sent yet. */
  inFlight: number;
  /** Open client connections. */
  connections: number;
  /** The outcome of the last restart this generation attempted. */
  lastRestart?: LastRestart;
  /** Under a supervisor (`--workers`): its workers, as it sees them. */
  workers?: unknown[];
}

/** What the router asks of the process when restarting. */
export interface AdminRestartRequest {
  /** Another main module (an absolute, resolved path), when allowed. */
  entry?: string;
  /** Another executable (an absolute, resolved path), when allowed. */
  execPath?: string;
  /** Always "admin". */
  trigger: "admin";
}

/** The process the router administers. */
export interface AdminDeps {
  /** The current status. */
  status(): AdminStatus;
  /**
   * Restarts; resolves once the new generation serves, rejects with the
   * reason when it did not (this generation keeps serving).
   */
  restart(
    options: AdminRestartRequest,
  ): Promise<{ pid: number; generation: number }>;
  /** Starts a graceful shutdown of the whole process. */
  shutdown(): void;
}

/** The part of the handler info the router uses. */
export interface AdminRequestInfo {
  /** The client's address. */
  remoteAddr: Deno.Addr;
  /** Resolves (or rejects) when the response has been sent, when known. */
  completed?: Promise<void>;
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
  tokenDigest: Promise<Uint8Array> | undefined;
  shuttingDown: boolean;
}

type Route = "page" | "status" | "restart" | "shutdown";

const ROUTES: Record<string, Route> = {
  "": "page",
  "status": "status",
  "restart": "restart",
  "shutdown": "shutdown",
};

const COMMON_HEADERS: Record<string, string> = {
  "cache-control": "no-store",
  "x-content-type-options": "nosniff",
  "x-frame-options": "DENY",
  "referrer-policy": "no-referrer",
};

/**
 * Creates the admin router. Throws a `TypeError` on a bad `path`, `token` or
 * `maxBodyBytes`.
 *
 * @example
 * ```ts ignore
 * import { createAdmin } from "./admin.ts";
 *
 * const admin = createAdmin({}, {
 *   status: () => myStatus(),
 *   restart: (options) => restartProcess(options),
 *   shutdown: () => void shutdownAll("by the admin API"),
 * });
 * Deno.serve((req, info) => admin.handle(req, info) ?? new Response("app"));
 * ```
 */
export function createAdmin(
  options: AdminOptions,
  deps: AdminDeps,
): AdminRouter {
  const state: RouterState = {
    config: resolveOptions(options),
    deps,
    // Workers share one (a page's next request may reach another worker).
    csrf: workerSecret() ?? randomHex(32),
    tokenDigest: undefined,
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
          refuse(request, info, 400, "invalid Host header"),
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

/**
 * Why `token` cannot be an admin token, or undefined when it can.
 *
 * @example
 * ```ts
 * import { adminTokenProblem } from "./admin.ts";
 *
 * adminTokenProblem("short"); // "admin token must be at least 16 characters"
 * ```
 */
export function adminTokenProblem(token: unknown): string | undefined {
  if (typeof token !== "string" || !/^[\x21-\x7e]+$/.test(token)) {
    return "admin token must be visible ASCII characters (no spaces)";
  }
  if (token.length < MIN_TOKEN_LENGTH) {
    return `admin token must be at least ${MIN_TOKEN_LENGTH} characters`;
  }
  return undefined;
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

/** What a Host header may hold: a host name or IP literal, and a port. */
const VALID_HOST =
  /^(?:\[[0-9A-Fa-f:.]+\]|[A-Za-z0-9._~!$&'()*+,;=%-]*)(?::\d*)?$/;

/**
 * The request's URL as the client's request target says it. Deno's engines
 * build `request.url` as scheme + Host header + target, so a Host with a
 * path in it (`127.0.0.1:8000/debug/admin/status?`) would move the path into
 * the query string and make another route answer. Then the path is cut out
 * of `request.url` after the Host header as sent, and `hostOk` is false.
 */
function requestTarget(
  request: Request,
): { url: URL; hostOk: boolean } | undefined {
  const raw = request.url;
  const host = request.headers.get("host");
  if (host !== null && !VALID_HOST.test(host)) {
    const scheme = raw.slice(0, raw.indexOf("://") + 3);
    const prefix = scheme + host;
    if (raw.startsWith(prefix) && raw.charAt(prefix.length) === "/") {
      try {
        const url = new URL(raw.slice(prefix.length), `${scheme}invalid`);
        return { url, hostOk: false };
      } catch {
        return undefined;
      }
    }
  }
  try {
    return {
      url: new URL(raw),
      hostOk: host === null || VALID_HOST.test(host),
    };
  } catch {
    return undefined;
  }
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
    if (crossSite) return refuse(request, info, 403, crossSite);
  }
  const denied = await authorise(state, request, info, url, name);
  if (denied) return denied;

  switch (name) {
    case "page":
      return page(state);
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
      info,
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

// ---------------------------------------------------------------------------
// Access control

async function authorise(
  state: RouterState,
  request: Request,
  info: AdminRequestInfo,
  url: URL,
  name: Route,
): Promise<Response | undefined> {
  const { token } = state.config;
  if (token !== undefined) {
    // The page holds no process data: it asks for the token.
    if (name === "page") return undefined;
    const given = bearerToken(request.headers.get("authorization"));
    state.tokenDigest ??= digest(token);
    const ok = given !== undefined &&
      equalBytes(await digest(given), await state.tokenDigest);
    if (ok) return undefined;
    const error = given === undefined ? "bearer token required" : "wrong token";
    const challenge = given === undefined
      ? 'Bearer realm="admin"'
      : 'Bearer realm="admin", error="invalid_token"';
    return refuse(request, info, 401, error, {
      "www-authenticate": challenge,
    });
  }
  const why = notLocalReason(request, info.remoteAddr, url);
  if (why) return refuse(request, info, 403, why);
  return undefined;
}

function bearerToken(header: string | null): string | undefined {
  const match = header?.match(/^\s*bearer\s+(\S+)\s*$/i);
  return match?.[1];
}

function notLocalReason(
  request: Request,
  addr: Deno.Addr,
  url: URL,
): string | undefined {
  if (!isLoopbackAddr(addr)) {
    return "the admin API without a token serves loopback clients only";
  }
  for (const header of ["forwarded", "x-forwarded-for", "x-real-ip"]) {
    if (request.headers.has(header)) {
      return "proxied request: the admin API behind a proxy needs a token";
    }
  }
  if (addr.transport !== "unix" && addr.transport !== "unixpacket") {
    if (!isLoopbackHost(url.hostname)) {
      return "the Host header must name a loopback address (localhost, 127.0.0.1, [::1])";
    }
  }
  return undefined;
}

function crossSiteReason(request: Request, url: URL): string | undefined {
  const site = request.headers.get("sec-fetch-site");
  if (site !== null && site !== "same-origin" && site !== "none") {
    return `cross-site request refused (Sec-Fetch-Site: ${site})`;
  }
  const origin = request.headers.get("origin");
  if (origin !== null) {
    let host: string | undefined;
    try {
      host = origin === "null" ? undefined : new URL(origin).host;
    } catch {
      host = undefined;
    }
    if (host === undefined || host !== url.host) {
      return "cross-origin request refused (Origin does not match Host)";
    }
  }
  return undefined;
}

/** True for 127.0.0.0/8, ::1, IPv4-mapped 127/8, and unix sockets. */
function isLoopbackAddr(addr: Deno.Addr): boolean {
  const transport: string = addr.transport;
  if (transport === "unix" || transport === "unixpacket") return true;
  if (transport !== "tcp" && transport !== "udp") return false;
  return isLoopbackIp((addr as Deno.NetAddr).hostname);
}

function isLoopbackIp(text: string): boolean {
  let host = text.toLowerCase();
  if (host.startsWith("[") && host.endsWith("]")) host = host.slice(1, -1);
  const zone = host.indexOf("%");
  if (zone >= 0) host = host.slice(0, zone);
  const v4 = ipv4Bytes(host);
  if (v4) return v4[0] === 127;
  const words = ipv6Words(host);
  if (!words) return false;
  const zeros = words.slice(0, 5).every((w) => w === 0);
  if (zeros && words[5] === 0 && words[6] === 0 && words[7] === 1) return true;
  return zeros && words[5] === 0xffff && words[6] >> 8 === 127;
}

function isLoopbackHost(hostname: string): boolean {
  const host = hostname.toLowerCase().replace(/\.$/, "");
  return host === "localhost" || host.endsWith(".localhost") ||
    isLoopbackIp(host);
}

function ipv4Bytes(text: string): number[] | undefined {
  const parts = text.split(".");
  if (parts.length !== 4) return undefined;
  const bytes = parts.map((p) => /^\d{1,3}$/.test(p) ? Number(p) : NaN);
  return bytes.every((b) => b <= 255) ? bytes : undefined;
}

function ipv6Words(text: string): number[] | undefined {
  let host = text;
  const lastColon = host.lastIndexOf(":");
  if (lastColon < 0) return undefined;
  const tail = host.slice(lastColon + 1);
  if (tail.includes(".")) {
    const v4 = ipv4Bytes(tail);
    if (!v4) return undefined;
    host = host.slice(0, lastColon + 1) +
      ((v4[0] << 8) | v4[1]).toString(16) + ":" +
      ((v4[2] << 8) | v4[3]).toString(16);
  }
  const halves = host.split("::");
  if (halves.length > 2) return undefined;
  const parse = (s: string) => s === "" ? [] : s.split(":");
  const head = parse(halves[0]);
  const rest = halves.length === 2 ? parse(halves[1]) : [];
  const groups = [...head, ...rest];
  if (!groups.every((g) => /^[0-9a-f]{1,4}$/.test(g))) return undefined;
  if (halves.length === 1 ? groups.length !== 8 : groups.length > 7) {
    return undefined;
  }
  const fill = new Array(8 - groups.length).fill("0");
  return [...head, ...fill, ...rest].map((g) => parseInt(g, 16));
}

// ---------------------------------------------------------------------------
// Routes

function page(state: RouterState): Response {
  const nonce = randomHex(16);
  const html = renderAdminPage({
    base: state.config.path,
    csrf: state.csrf,
    nonce,
    auth: state.config.token === undefined ? "loopback" : "token",
    status: state.config.token === undefined
      ? statusBody(state.deps.status())
      : undefined,
  });
  return new Response(html, {
    status: 200,
    headers: {
      ...COMMON_HEADERS,
      "content-type": "text/html; charset=utf-8",
      "content-security-policy": `default-src 'none'; ` +
        `script-src 'nonce-${nonce}'; style-src 'nonce-${nonce}'; ` +
        `connect-src 'self'; base-uri 'none'; form-action 'none'; ` +
        `frame-ancestors 'none'`,
    },
  });
}

/** The status JSON: the listed fields only, plus the server's clock. */
function statusBody(status: AdminStatus): AdminStatusBody {
  const now = Date.now();
  return {
    pid: status.pid,
    generation: status.generation,
    phase: status.phase,
    startedAt: status.startedAt,
    firstStartedAt: status.firstStartedAt,
    uptimeMs: Math.max(0, now - status.startedAt),
    now,
    restarts: status.restarts,
    listeners: [...status.listeners],
    inFlight: status.inFlight,
    connections: status.connections,
    lastRestart: status.lastRestart ?? null,
    ...(status.workers ? { workers: status.workers } : {}),
  };
}

/** The JSON of `GET {path}/status`. */
export interface AdminStatusBody {
  /** This process's pid. */
  pid: number;
  /** This process's generation. */
  generation: number;
  /** The restart state machine's phase. */
  phase: string;
  /** When this process started (ms since the epoch). */
  startedAt: number;
  /** When generation 1 started (ms since the epoch). */
  firstStartedAt: number;
  /** How long this process has run (ms). */
  uptimeMs: number;
  /** The server's clock when answering (ms since the epoch). */
  now: number;
  /** Restarts before this generation. */
  restarts: number;
  /** Where it listens. */
  listeners: string[];
  /** Requests in flight. */
  inFlight: number;
  /** Open client connections. */
  connections: number;
  /** The last restart this generation attempted, or null. */
  lastRestart: LastRestart | null;
  /** Under a supervisor: its workers (slot, pid, generation, phase, ...). */
  workers?: unknown[];
}

async function restart(
  state: RouterState,
  body: Record<string, unknown>,
  info: AdminRequestInfo,
): Promise<Response> {
  const unknown = Object.keys(body).filter((k) =>
    k !== "entry" && k !== "execPath"
  );
  if (unknown.length > 0) {
    return json(400, { error: `unknown field(s): ${unknown.join(", ")}` });
  }
  const options: AdminRestartRequest = { trigger: "admin" };
  for (const key of ["entry", "execPath"] as const) {
    const value = body[key];
    if (value === undefined) continue;
    if (typeof value !== "string" || value === "" || value.includes("\0")) {
      return json(400, { error: `${key} must be a non-empty path string` });
    }
    const dirs = state.config.dirs;
    if (!dirs) {
      return json(403, {
        error: `${key} override is not allowed (allowEntryOverride is off)`,
      });
    }
    const checked = await checkOverride(value, key, dirs);
    if (!checked.ok) return json(403, { error: `${key}: ${checked.error}` });
    options[key] = checked.path;
  }
  const who = describeAddr(info.remoteAddr);
  log.info("admin: restart requested by {client}", { client: who, options });
  if (completeRestarts()) {
    // A complete restart first drains this very request: answer, then go.
    afterResponse(info.completed, () => {
      state.deps.restart(options).catch(() => {}); // logged by the restart
    });
    return json(202, { restarting: true, complete: true });
  }
  try {
    const { pid, generation } = await state.deps.restart(options);
    return json(200, { pid, generation });
  } catch (error) {
    const reason = errorMessage(error);
    log.warn("admin: restart failed, this generation keeps serving: {reason}", {
      reason,
    });
    return json(503, { error: reason });
  }
}

function shutdown(
  state: RouterState,
  body: Record<string, unknown>,
  info: AdminRequestInfo,
): Response {
  if (Object.keys(body).length > 0) {
    return json(400, { error: "shutdown takes no fields" });
  }
  if (!state.shuttingDown) {
    state.shuttingDown = true;
    log.info("admin: shutdown requested by {client}", {
      client: describeAddr(info.remoteAddr),
    });
    afterResponse(info.completed, () => {
      try {
        state.deps.shutdown();
      } catch (error) {
        log.error("admin: shutdown failed: {error}", { error });
      }
    });
  }
  return json(202, { shutting_down: true });
}

/**
 * Runs `fn` once the response has been sent (or failed), on a later macrotask;
 * without `completed`, or if it never settles, after a short delay anyway.
 */
function afterResponse(
  completed: Promise<void> | undefined,
  fn: () => void,
): void {
  let done = false;
  const run = () => {
    if (done) return;
    done = true;
    clearTimeout(fallback);
    setTimeout(fn, 0);
  };
  const fallback = setTimeout(run, completed ? 1000 : 0);
  completed?.then(run, run);
}

async function checkOverride(
  raw: string,
  key: "entry" | "execPath",
  dirs: string[],
): Promise<{ ok: true; path: string } | { ok: false; error: string }> {
  if (!raw.startsWith("/")) {
    return { ok: false, error: "must be an absolute path" };
  }
  if (raw.split("/").some((segment) => segment === "..")) {
    return { ok: false, error: 'must not contain ".." segments' };
  }
  let real: string;
  let info: Deno.FileInfo;
  try {
    real = await Deno.realPath(raw);
    info = await Deno.stat(real);
  } catch {
    return { ok: false, error: "does not exist (or cannot be read)" };
  }
  if (!info.isFile) return { ok: false, error: "is not a regular file" };
  if (key === "execPath" && ((info.mode ?? 0o111) & 0o111) === 0) {
    return { ok: false, error: "is not executable" };
  }
  for (const dir of dirs) {
    let root: string;
    try {
      root = await Deno.realPath(dir);
    } catch {
      continue;
    }
    const prefix = root.endsWith("/") ? root : root + "/";
    if (real.startsWith(prefix)) return { ok: true, path: real };
  }
  return {
    ok: false,
    error: "resolves outside the allowed directories",
  };
}

// ---------------------------------------------------------------------------
// Bodies and responses

async function readJsonBody(
  request: Request,
  max: number,
): Promise<Record<string, unknown> | Response> {
  const declared = request.headers.get("content-length");
  if (declared !== null && Number(declared) > max) {
    return json(413, { error: `body larger than ${max} bytes` });
  }
  const chunks: Uint8Array[] = [];
  let size = 0;
  if (request.body) {
    const reader = request.body.getReader();
    for (;;) {
      const { done, value } = await reader.read();
      if (done) break;
      size += value.byteLength;
      if (size > max) {
        await reader.cancel().catch(() => {});
        return json(413, { error: `body larger than ${max} bytes` });
      }
      chunks.push(value);
    }
  }
  if (size === 0) return {};
  const type = (request.headers.get("content-type") ?? "").split(";")[0]
    .trim().toLowerCase();
  if (type !== "application/json") {
    return json(415, { error: "the body must be application/json" });
  }
  const bytes = new Uint8Array(size);
  let offset = 0;
  for (const chunk of chunks) {
    bytes.set(chunk, offset);
    offset += chunk.byteLength;
  }
  let value: unknown;
  try {
    value = JSON.parse(new TextDecoder("utf-8", { fatal: true }).decode(bytes));
  } catch {
    return json(400, { error: "the body is not valid JSON" });
  }
  if (typeof value !== "object" || value === null || Array.isArray(value)) {
    return json(400, { error: "the body must be a JSON object" });
  }
  return value as Record<string, unknown>;
}

function json(
  status: number,
  body: unknown,
  headers: Record<string, string> = {},
): Response {
  return new Response(JSON.stringify(body), {
    status,
    headers: {
      ...COMMON_HEADERS,
      "content-type": "application/json; charset=utf-8",
      "content-security-policy": "default-src 'none'; frame-ancestors 'none'",
      ...headers,
    },
  });
}

function refuse(
  request: Request,
  info: AdminRequestInfo,
  status: 400 | 401 | 403,
  error: string,
  headers: Record<string, string> = {},
): Response {
  log.warn("admin: refused {method} {path} from {client}: {error}", {
    method: request.method,
    path: requestTarget(request)?.url.pathname,
    client: describeAddr(info.remoteAddr),
    error,
  });
  return json(status, { error }, headers);
}

function describeAddr(addr: Deno.Addr): string {
  if ("hostname" in addr) return `${addr.hostname}:${addr.port}`;
  if ("path" in addr) return `unix:${addr.path}`;
  return addr.transport;
}

// ---------------------------------------------------------------------------
// Secrets

async function digest(text: string): Promise<Uint8Array> {
  const data = new TextEncoder().encode(text);
  return new Uint8Array(await crypto.subtle.digest("SHA-256", data));
}

function equalBytes(a: Uint8Array, b: Uint8Array): boolean {
  if (a.length !== b.length) return false;
  let diff = 0;
  for (let i = 0; i < a.length; i++) diff |= a[i] ^ b[i];
  return diff === 0;
}

/** Constant-time equality of two secrets (of any length) via their digests. */
async function sameSecret(given: string, expected: string): Promise<boolean> {
  return equalBytes(await digest(given), await digest(expected));
}

function utf8Length(text: string): number {
  return new TextEncoder().encode(text).byteLength;
}
