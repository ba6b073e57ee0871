/**
 * A raw HTTP/1.1 client for tests: writes bytes exactly as given and parses
 * what comes back, so tests see what a client on the wire sees.
 *
 * @module
 */

/** One parsed response. */
export interface RawResponse {
  status: number;
  headers: Headers;
  body: string;
}

/** Options of {@linkcode rawExchange}. */
export interface RawOptions {
  /** The request was HEAD: responses have no body. */
  head?: boolean;
  /** Stop after this many responses instead of waiting for the server to close. */
  count?: number;
  /** Give up waiting after this many ms (default 10000). */
  timeoutMs?: number;
}

const encoder = new TextEncoder();
const decoder = new TextDecoder();

/**
 * Sends `request` on a new connection to 127.0.0.1:`target` (or on the given
 * connection), then parses responses until the server closes the connection,
 * `count` responses arrived, or the timeout.
 */
export async function rawExchange(
  target: number | Deno.Conn,
  request: string | Uint8Array,
  options: RawOptions = {},
): Promise<RawResponse[]> {
  const conn = typeof target === "number"
    ? await Deno.connect({ hostname: "127.0.0.1", port: target })
    : target;
  const timer = setTimeout(() => {
    try {
      conn.close();
    } catch {
      // already closed
    }
  }, options.timeoutMs ?? 10_000);
  let buffer = new Uint8Array(0);
  const responses: RawResponse[] = [];
  try {
    await conn.write(
      typeof request === "string" ? encoder.encode(request) : request,
    );
    const chunk = new Uint8Array(64 * 1024);
    while (options.count === undefined || responses.length < options.count) {
      const parsed = parseOne(buffer, options.head ?? false);
      if (parsed) {
        responses.push(parsed.response);
        buffer = buffer.subarray(parsed.used);
        continue;
      }
      let n: number | null;
      try {
        n = await conn.read(chunk);
      } catch {
        n = null;
      }
      if (n === null) {
        const last = parseOne(buffer, options.head ?? false, true);
        if (last) responses.push(last.response);
        break;
      }
      const next = new Uint8Array(buffer.length + n);
      next.set(buffer);
      next.set(chunk.subarray(0, n), buffer.length);
      buffer = next;
    }
  } finally {
    clearTimeout(timer);
    try {
      conn.close();
    } catch {
      // already closed
    }
  }
  return responses;
}

function indexOfCrlfCrlf(data: Uint8Array): number {
  for (let i = 0; i + 3 < data.length; i++) {
    if (
      data[i] === 13 && data[i + 1] === 10 && data[i + 2] === 13 &&
      data[i + 3] === 10
    ) return i;
  }
  return -1;
}

function parseOne(
  data: Uint8Array,
  head: boolean,
  eof = false,
): { response: RawResponse; used: number } | undefined {
  const end = indexOfCrlfCrlf(data);
  if (end < 0) return undefined;
  const lines = decoder.decode(data.subarray(0, end)).split("\r\n");
  const status = Number(lines[0].split(" ")[1]);
  const headers = new Headers();
  for (const line of lines.slice(1)) {
    const colon = line.indexOf(":");
    headers.append(line.slice(0, colon).trim(), line.slice(colon + 1).trim());
  }
  let offset = end + 4;
  const noBody = head || status === 204 || status === 304 ||
    (status >= 100 && status < 200);
  if (noBody) return { response: { status, headers, body: "" }, used: offset };
  const te = headers.get("transfer-encoding") ?? "";
  if (/chunked/i.test(te)) {
    const parts: Uint8Array[] = [];
    while (true) {
      let lineEnd = -1;
      for (let i = offset; i + 1 < data.length; i++) {
        if (data[i] === 13 && data[i + 1] === 10) {
          lineEnd = i;
          break;
        }
      }
      if (lineEnd < 0) return undefined;
      const size = parseInt(decoder.decode(data.subarray(offset, lineEnd)), 16);
      const start = lineEnd + 2;
      if (size === 0) {
        if (data.length < start + 2) return undefined;
        offset = start + 2;
        break;
      }
      if (data.length < start + size + 2) return undefined;
      parts.push(data.subarray(start, start + size));
      offset = start + size + 2;
    }
    const body = parts.map((p) => decoder.decode(p, { stream: true })).join("");
    return { response: { status, headers, body }, used: offset };
  }
  const length = headers.get("content-length");
  if (length !== null) {
    const n = Number(length);
    if (data.length < offset + n) return undefined;
    const body = decoder.decode(data.subarray(offset, offset + n));
    return { response: { status, headers, body }, used: offset + n };
  }
  if (!eof) return undefined;
  return {
    response: { status, headers, body: decoder.decode(data.subarray(offset)) },
    used: data.length,
  };
}
