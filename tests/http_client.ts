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
  /**
   * Stop after this many responses instead of reading to the end of the
   * connection. Bytes already received past them still fail the exchange;
   * bytes that come later are seen only by reading to the end (send
   * `Connection: close`) or by a follow-up request on the connection.
   */
  count?: number;
  /** Give up waiting after this many ms (default 10000): an error. */
  timeoutMs?: number;
}

const encoder = new TextEncoder();
const decoder = new TextDecoder();

/**
 * Sends `request` on a new connection to 127.0.0.1:`target` (or on the given
 * connection), then parses responses until the server closes the connection
 * or `count` responses arrived.
 *
 * Only those two are a normal end. It rejects, naming what it saw, when:
 * bytes are left that are no complete response (a body after a response
 * that has none, such as HEAD, 204 or 304; a body cut short; garbage), a
 * read fails (e.g. a reset), or `timeoutMs` passes first.
 */
export async function rawExchange(
  target: number | Deno.Conn,
  request: string | Uint8Array,
  options: RawOptions = {},
): Promise<RawResponse[]> {
  const conn = typeof target === "number"
    ? await Deno.connect({ hostname: "127.0.0.1", port: target })
    : target;
  const timeoutMs = options.timeoutMs ?? 10_000;
  let timedOut = false;
  const timer = setTimeout(() => {
    timedOut = true;
    try {
      conn.close();
    } catch {
      // already closed
    }
  }, timeoutMs);
  let buffer = new Uint8Array(0);
  const responses: RawResponse[] = [];
  const head = options.head ?? false;
  const timeout = () => `no end of the exchange in ${timeoutMs} ms`;
  const seen = () =>
    `after ${responses.length} complete response(s)` +
    (responses.length > 0 ? ` (last: ${responses.at(-1)!.status})` : "") +
    `, ${buffer.length} byte(s) left: ${preview(buffer)}`;
  try {
    await conn.write(
      typeof request === "string" ? encoder.encode(request) : request,
    );
    const chunk = new Uint8Array(64 * 1024);
    while (options.count === undefined || responses.length < options.count) {
      const parsed = parseOne(buffer, head);
      if (parsed) {
        responses.push(parsed.response);
        buffer = buffer.subarray(parsed.used);
        continue;
      }
      let n: number | null;
      try {
        n = await conn.read(chunk);
      } catch (error) {
        if (timedOut) throw new Error(`${timeout()} ${seen()}`);
        throw new Error(`read failed ${seen()}: ${error}`);
      }
      if (timedOut) throw new Error(`${timeout()} ${seen()}`);
      if (n === null) {
        const last = parseOne(buffer, head, true);
        if (last) {
          responses.push(last.response);
          buffer = buffer.subarray(last.used);
        }
        break;
      }
      const next = new Uint8Array(buffer.length + n);
      next.set(buffer);
      next.set(chunk.subarray(0, n), buffer.length);
      buffer = next;
    }
    if (buffer.length > 0) {
      throw new Error(`bytes that are no complete response ${seen()}`);
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

/** Up to 60 bytes, as a JSON string. */
function preview(data: Uint8Array): string {
  const text = decoder.decode(data.subarray(0, 60));
  return JSON.stringify(text) + (data.length > 60 ? "..." : "");
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
