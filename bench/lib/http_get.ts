/**
 * A one-shot HTTP/1.1 GET on a fresh connection (`Connection: close`): TCP
 * to 127.0.0.1, TLS there, or a unix socket.
 *
 * The handover probe must not reuse a connection: a kept-alive connection
 * stays with the process that accepted it, so it would keep seeing the old
 * generation until that one drains. `fetch` pools connections, so this opens
 * its own.
 *
 * @module
 */

/** What a GET answered. */
export interface HttpAnswer {
  status: number;
  body: string;
}

/** Where a GET goes: 127.0.0.1:`port`, over TLS, or a unix socket. */
export interface Endpoint {
  port: number;
  /** HTTPS, trusting this PEM certificate (for 127.0.0.1). */
  caCert?: string;
  /** This unix socket instead of the port. */
  unixPath?: string;
}

const encoder = new TextEncoder();
const decoder = new TextDecoder();

/**
 * GETs `path` from `to` (a port on 127.0.0.1, or an {@linkcode Endpoint}) on
 * a new connection; rejects on any socket error, a malformed answer, or when
 * it takes longer than `timeoutMs`.
 */
export async function httpGet(
  to: number | Endpoint,
  path: string,
  timeoutMs: number,
): Promise<HttpAnswer> {
  const endpoint = typeof to === "number" ? { port: to } : to;
  const port = endpoint.port;
  const timedOut = { value: false };
  const conn = await connectWithin(endpoint, timeoutMs);
  const timer = setTimeout(() => {
    timedOut.value = true;
    closeQuietly(conn);
  }, timeoutMs);
  try {
    await writeAll(
      conn,
      encoder.encode(
        `GET ${path} HTTP/1.1\r\nHost: 127.0.0.1:${port}\r\n` +
          `Connection: close\r\n\r\n`,
      ),
    );
    const raw = await readToEnd(conn);
    return parseAnswer(raw);
  } catch (error) {
    if (timedOut.value) {
      throw new Error(`GET ${path}: no answer within ${timeoutMs} ms`);
    }
    throw error;
  } finally {
    clearTimeout(timer);
    closeQuietly(conn);
  }
}

/** GETs /pid and returns the pid it names. */
export async function getPid(
  to: number | Endpoint,
  timeoutMs: number,
): Promise<number> {
  const answer = await httpGet(to, "/pid", timeoutMs);
  const pid = Number(answer.body.trim());
  if (answer.status !== 200 || !Number.isInteger(pid) || pid <= 0) {
    throw new Error(
      `GET /pid answered ${answer.status} ${JSON.stringify(answer.body)}`,
    );
  }
  return pid;
}

/** Parses a whole HTTP/1.1 response (fixed length, chunked or until close). */
export function parseAnswer(raw: Uint8Array): HttpAnswer {
  const text = decoder.decode(raw);
  const headEnd = text.indexOf("\r\n\r\n");
  if (headEnd === -1) {
    throw new Error(
      `incomplete HTTP response (${raw.length} bytes): ${
        JSON.stringify(text.slice(0, 80))
      }`,
    );
  }
  const head = text.slice(0, headEnd).split("\r\n");
  const statusMatch = /^HTTP\/1\.[01] (\d{3})/.exec(head[0]);
  if (statusMatch === null) {
    throw new Error(`bad status line ${JSON.stringify(head[0])}`);
  }
  const chunked = head.some((line) =>
    /^transfer-encoding:\s*chunked/i.test(line)
  );
  const rest = text.slice(headEnd + 4);
  return {
    status: Number(statusMatch[1]),
    body: chunked ? dechunk(rest) : rest,
  };
}

function dechunk(text: string): string {
  let body = "";
  let at = 0;
  while (at < text.length) {
    const lineEnd = text.indexOf("\r\n", at);
    if (lineEnd === -1) break;
    const size = parseInt(text.slice(at, lineEnd), 16);
    if (!Number.isFinite(size) || size === 0) break;
    body += text.slice(lineEnd + 2, lineEnd + 2 + size);
    at = lineEnd + 2 + size + 2;
  }
  return body;
}

async function writeAll(conn: Deno.Conn, data: Uint8Array): Promise<void> {
  let written = 0;
  while (written < data.length) {
    written += await conn.write(data.subarray(written));
  }
}

async function readToEnd(conn: Deno.Conn): Promise<Uint8Array> {
  const chunks: Uint8Array[] = [];
  let length = 0;
  const buffer = new Uint8Array(4096);
  while (true) {
    const n = await conn.read(buffer);
    if (n === null) break;
    chunks.push(buffer.slice(0, n));
    length += n;
  }
  const all = new Uint8Array(length);
  let offset = 0;
  for (const chunk of chunks) {
    all.set(chunk, offset);
    offset += chunk.length;
  }
  return all;
}

function closeQuietly(conn: Deno.Conn): void {
  try {
    conn.close();
  } catch {
    // already closed
  }
}

function connect(endpoint: Endpoint): Promise<Deno.Conn> {
  const { port, caCert, unixPath } = endpoint;
  if (unixPath !== undefined) {
    return Deno.connect({ transport: "unix", path: unixPath });
  }
  if (caCert !== undefined) {
    return Deno.connectTls({ hostname: "127.0.0.1", port, caCerts: [caCert] });
  }
  return Deno.connect({ hostname: "127.0.0.1", port });
}

async function connectWithin(
  endpoint: Endpoint,
  ms: number,
): Promise<Deno.Conn> {
  const connecting = connect(endpoint);
  let timer: ReturnType<typeof setTimeout> | undefined;
  const timeout = new Promise<"timeout">((resolve) => {
    timer = setTimeout(() => resolve("timeout"), ms);
  });
  const first = await Promise.race([connecting, timeout]);
  clearTimeout(timer);
  if (first === "timeout") {
    // Close the connection should it still be made.
    connecting.then(closeQuietly, () => {});
    throw new Error(`connect: no answer within ${ms} ms`);
  }
  return first;
}
