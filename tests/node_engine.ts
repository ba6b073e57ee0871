/**
 * The node engine's tests' harness: an engine binding on a fresh socket
 * (127.0.0.1:0, a unix socket, or TLS) and a raw HTTP/1.1 client that sees
 * the wire as a client does.
 *
 * @module
 */

import net from "node:net";
import { createNodeEngine } from "../src/engine/node.ts";
import { closeFd } from "../src/os/fd.ts";
import { listenUnix } from "../src/os/socket.ts";
import type {
  Addr,
  EngineBinding,
  ErrorHandler,
  GracefulHandler,
  Listener,
  TlsOptions,
} from "../src/listen/types.ts";

export interface TestServer extends AsyncDisposable {
  binding: EngineBinding;
  addr: Addr;
  /** The TCP port (0 for unix sockets). */
  port: number;
  /** "http://127.0.0.1:PORT" (or https://localhost:PORT). */
  origin: string;
  /** Aborts the `draining` signal handed to the engine. */
  draining: AbortController;
  /**
   * `binding.stopAccepting()`, then closes the fd duplicated by fdForIpc(),
   * as the listeners module does: until then the socket still listens.
   */
  stopAccepting(): Promise<void>;
}

export interface StartOptions {
  onError?: ErrorHandler;
  tls?: TlsOptions;
  /** Listen on this unix socket path instead of 127.0.0.1:0. */
  path?: string;
}

function listen(server: net.Server, path?: string): Promise<void> {
  return new Promise((resolve, reject) => {
    server.once("error", reject);
    if (path !== undefined) server.listen(path, resolve);
    else server.listen(0, "127.0.0.1", resolve);
  });
}

export async function startServer(
  handler: GracefulHandler,
  options: StartOptions = {},
): Promise<TestServer> {
  let listener: Listener;
  let port = 0;
  if (options.path !== undefined) {
    // node:net removes a unix socket's path when it closes: the socket is
    // made without it.
    const fd = listenUnix(options.path);
    if (typeof fd === "string") throw new Error(fd);
    const addr: Addr = { transport: "unix", path: options.path };
    listener = { name: "test", fd, addr, inherited: false };
  } else {
    const server = net.createServer();
    await listen(server);
    const address = server.address() as net.AddressInfo;
    port = address.port;
    listener = {
      name: "test",
      // deno-lint-ignore no-explicit-any
      fd: (server as any)._handle.fdForIpc(),
      addr: { transport: "tcp", hostname: address.address, port },
      inherited: false,
    };
    // The engine accepts on a copy of the fd; this server must not.
    server.close();
  }
  const addr = listener.addr;
  const draining = new AbortController();
  const binding = createNodeEngine().serve(listener, {
    handler,
    onError: options.onError ??
      ((error) => new Response(`onError: ${error}`, { status: 500 })),
    tls: options.tls,
    draining: draining.signal,
  });
  let fdClosed = false;
  async function stopAccepting(): Promise<void> {
    await binding.stopAccepting();
    if (!fdClosed) {
      fdClosed = true;
      closeFd(listener.fd);
    }
  }
  const origin = options.tls !== undefined
    ? `https://localhost:${port}`
    : `http://127.0.0.1:${port}`;
  return {
    binding,
    addr,
    port,
    origin,
    draining,
    stopAccepting,
    async [Symbol.asyncDispose]() {
      await stopAccepting();
      binding.abort();
      await binding.drain(0);
    },
  };
}

export type Bytes = Uint8Array<ArrayBuffer>;

export const encoder: TextEncoder = new TextEncoder();
export const decoder: TextDecoder = new TextDecoder();

export interface RawResponse {
  status: number;
  reason: string;
  /** Header lines as sent, names lowercased. */
  headers: [string, string][];
  body: Bytes;
}

export function header(
  response: RawResponse,
  name: string,
): string | undefined {
  return response.headers.find(([key]) => key === name)?.[1];
}

function concat(a: Uint8Array, b: Uint8Array): Bytes {
  const out = new Uint8Array(a.length + b.length);
  out.set(a);
  out.set(b, a.length);
  return out;
}

function indexOfSequence(haystack: Uint8Array, needle: Uint8Array): number {
  outer: for (let i = 0; i + needle.length <= haystack.length; i++) {
    for (let j = 0; j < needle.length; j++) {
      if (haystack[i + j] !== needle[j]) continue outer;
    }
    return i;
  }
  return -1;
}

/** A minimal HTTP/1.1 client over a raw connection, to see the wire. */
export class RawClient {
  readonly conn: Deno.Conn;
  #buffer: Bytes = new Uint8Array(0);
  #eof = false;

  constructor(conn: Deno.Conn) {
    this.conn = conn;
  }

  static async connect(addr: Addr): Promise<RawClient> {
    const conn = "path" in addr
      ? await Deno.connect({ transport: "unix", path: addr.path })
      : await Deno.connect({ hostname: addr.hostname, port: addr.port });
    return new RawClient(conn);
  }

  async send(text: string | Uint8Array): Promise<void> {
    const bytes = typeof text === "string" ? encoder.encode(text) : text;
    let written = 0;
    while (written < bytes.length) {
      written += await this.conn.write(bytes.subarray(written));
    }
  }

  /** Reads more bytes; false at EOF (or when the peer reset). */
  async #fill(): Promise<boolean> {
    if (this.#eof) return false;
    const chunk = new Uint8Array(64 * 1024);
    let n: number | null;
    try {
      n = await this.conn.read(chunk);
    } catch (error) {
      if (error instanceof Deno.errors.ConnectionReset) n = null;
      else throw error;
    }
    if (n === null) {
      this.#eof = true;
      return false;
    }
    this.#buffer = concat(this.#buffer, chunk.subarray(0, n));
    return true;
  }

  async #take(length: number): Promise<Bytes> {
    while (this.#buffer.length < length) {
      if (!await this.#fill()) throw new Error("unexpected EOF");
    }
    const out = this.#buffer.slice(0, length);
    this.#buffer = this.#buffer.slice(length);
    return out;
  }

  async #line(): Promise<string> {
    const crlf = encoder.encode("\r\n");
    for (;;) {
      const index = indexOfSequence(this.#buffer, crlf);
      if (index !== -1) {
        const line = decoder.decode(this.#buffer.subarray(0, index));
        this.#buffer = this.#buffer.slice(index + 2);
        return line;
      }
      if (!await this.#fill()) throw new Error("unexpected EOF");
    }
  }

  /** Reads the status line and headers of the next response. */
  async readHead(): Promise<RawResponse> {
    const statusLine = await this.#line();
    const match = /^HTTP\/1\.1 (\d{3}) ?(.*)$/.exec(statusLine);
    if (match === null) throw new Error(`bad status line: ${statusLine}`);
    const headers: [string, string][] = [];
    for (;;) {
      const line = await this.#line();
      if (line === "") break;
      const colon = line.indexOf(":");
      headers.push([
        line.slice(0, colon).toLowerCase(),
        line.slice(colon + 1).trim(),
      ]);
    }
    return {
      status: Number(match[1]),
      reason: match[2],
      headers,
      body: new Uint8Array(0),
    };
  }

  /** Reads one whole response; `head` is true for responses to HEAD. */
  async readResponse(head = false): Promise<RawResponse> {
    const response = await this.readHead();
    const status = response.status;
    if (head || status === 204 || status === 304 || status < 200) {
      return response;
    }
    const length = header(response, "content-length");
    if (header(response, "transfer-encoding") === "chunked") {
      let body: Bytes = new Uint8Array(0);
      for (;;) {
        const size = parseInt(await this.#line(), 16);
        if (size === 0) {
          await this.#line();
          break;
        }
        body = concat(body, await this.#take(size));
        await this.#line();
      }
      response.body = body;
    } else if (length !== undefined) {
      response.body = await this.#take(Number(length));
    } else {
      while (await this.#fill());
      response.body = this.#buffer;
      this.#buffer = new Uint8Array(0);
    }
    return response;
  }

  /** Resolves true once the server closed the connection. */
  async closedByPeer(): Promise<boolean> {
    while (await this.#fill());
    return this.#buffer.length === 0;
  }

  close(): void {
    try {
      this.conn.close();
    } catch {
      // Already closed.
    }
  }

  [Symbol.dispose](): void {
    this.close();
  }
}

export function text(response: RawResponse): string {
  return decoder.decode(response.body);
}

/** A promise with its resolvers, for handlers the test steers. */
export function deferred<T = void>(): PromiseWithResolvers<T> {
  return Promise.withResolvers<T>();
}

export async function sha256(data: Bytes): Promise<string> {
  const digest = await crypto.subtle.digest("SHA-256", data);
  return Array.from(new Uint8Array(digest), (b) => b.toString(16)).join("");
}

export function randomBytes(size: number): Bytes {
  const bytes = new Uint8Array(size);
  for (let offset = 0; offset < size; offset += 65536) {
    crypto.getRandomValues(bytes.subarray(offset, offset + 65536));
  }
  return bytes;
}
