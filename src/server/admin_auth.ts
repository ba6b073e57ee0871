/**
 * Who may use the admin routes: the bearer token, the loopback-only rule
 * without one, and the cross-site and CSRF checks. The reasoning behind each
 * rule is in docs/admin_security.md.
 *
 * @module
 */

import { isLoopbackIp } from "../listen/address.ts";

const MIN_TOKEN_LENGTH = 16;

/** Why a request is refused: its status, message and extra headers. */
export interface Refusal {
  status: 401 | 403;
  error: string;
  headers?: Record<string, string>;
}

/** The router's token, and its digest once computed. */
export interface TokenState {
  readonly token: string | undefined;
  tokenDigest: Promise<Uint8Array> | undefined;
}

/**
 * Why `token` cannot be an admin token, or undefined when it can: at least
 * 16 visible ASCII characters.
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

/**
 * Whether the client may use a route: with a token, the bearer header (the
 * page, which holds no process data, needs none); without one, a loopback
 * client that names a loopback host and came through no proxy.
 */
export async function authorise(
  state: TokenState,
  request: Request,
  remoteAddr: Deno.Addr,
  url: URL,
  isPage: boolean,
): Promise<Refusal | undefined> {
  const { token } = state;
  if (token !== undefined) {
    if (isPage) return undefined;
    const given = bearerToken(request.headers.get("authorization"));
    state.tokenDigest ??= digest(token);
    const ok = given !== undefined &&
      equalBytes(await digest(given), await state.tokenDigest);
    if (ok) return undefined;
    const error = given === undefined ? "bearer token required" : "wrong token";
    const challenge = given === undefined
      ? 'Bearer realm="admin"'
      : 'Bearer realm="admin", error="invalid_token"';
    return {
      status: 401,
      error,
      headers: { "www-authenticate": challenge },
    };
  }
  const why = notLocalReason(request, remoteAddr, url);
  return why ? { status: 403, error: why } : undefined;
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

/**
 * Why a status or action request comes from another site (Sec-Fetch-Site,
 * or an Origin that is not the request's Host), or undefined.
 */
export function crossSiteReason(
  request: Request,
  url: URL,
): string | undefined {
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

/** A Host name that can only reach this machine (DNS rebinding). */
function isLoopbackHost(hostname: string): boolean {
  const host = hostname.toLowerCase().replace(/\.$/, "");
  return host === "localhost" || host.endsWith(".localhost") ||
    isLoopbackIp(host);
}

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
export async function sameSecret(
  given: string,
  expected: string,
): Promise<boolean> {
  return equalBytes(await digest(given), await digest(expected));
}
