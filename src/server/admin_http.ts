/**
 * The admin routes' HTTP plumbing: the request's real target, JSON bodies in
 * and out with the headers every admin response carries, and logged
 * refusals.
 *
 * @module
 */

import { logger } from "../util/log.ts";

const log = logger("admin");

/** Headers on every admin response. */
export const COMMON_HEADERS: Record<string, string> = {
  "cache-control": "no-store",
  "x-content-type-options": "nosniff",
  "x-frame-options": "DENY",
  "referrer-policy": "no-referrer",
};

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
export function requestTarget(
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

/** The JSON object of an action body, or the response refusing it. */
export async function readJsonBody(
  request: Request,
  max: number,
): Promise<Record<string, unknown> | Response> {
  // A declared type must be JSON even on an empty body: an HTML form can
  // send only form or text types, so refusing them closes that door for
  // every action whatever it carries. No Content-Type at all (a plain
  // `curl -X POST`) is not a form's and stays accepted when the body is
  // empty.
  const declaredType = request.headers.get("content-type");
  if (declaredType !== null && !isJsonType(declaredType)) {
    await request.body?.cancel().catch(() => {});
    return json(415, { error: "the body must be application/json" });
  }
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
  if (declaredType === null) {
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

/** Whether a Content-Type header names JSON (`application/json`, any parameters). */
function isJsonType(header: string): boolean {
  return header.split(";")[0].trim().toLowerCase() === "application/json";
}

/** A JSON response with the admin headers. */
export function json(
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

/** A logged refusal: who asked for what, and why not. */
export function refuse(
  request: Request,
  remoteAddr: Deno.Addr,
  status: 400 | 401 | 403,
  error: string,
  headers: Record<string, string> = {},
): Response {
  log.warn("admin: refused {method} {path} from {client}: {error}", {
    method: request.method,
    path: requestTarget(request)?.url.pathname,
    client: describeAddr(remoteAddr),
    error,
  });
  return json(status, { error }, headers);
}

/** A client address for the log. */
export function describeAddr(addr: Deno.Addr): string {
  if ("hostname" in addr) return `${addr.hostname}:${addr.port}`;
  if ("path" in addr) return `unix:${addr.path}`;
  return addr.transport;
}

/** The length of `text` in UTF-8 bytes. */
export function utf8Length(text: string): number {
  return new TextEncoder().encode(text).byteLength;
}
