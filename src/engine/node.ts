/**
 * The "node" HTTP engine: serves a {@linkcode Listener} with `node:http` (or
 * `node:https`) and adapts every request to the fetch API, so the application
 * keeps Deno.serve's `(request, info) => Response` contract.
 *
 * The engine feeds the connections a node:net server accepts on a duplicate
 * of the listener's fd into an `http.Server` that has no socket of its own, and
 * keeps the bookkeeping (open connections, responses in flight) needed to
 * drain gracefully.
 *
 * Known limits:
 * - `Deno.upgradeWebSocket(request)` works through a wrapper installed on
 *   `Deno.upgradeWebSocket` by the first `serve()`; it needs the very Request
 *   the handler got (not a clone) and a plain TCP listener: Deno can only take
 *   over a TCP socket, not a TLS or unix one, so the call throws there.
 * - `request.signal` is created on first use and aborts when the client goes
 *   away before the response is sent; signals of clones (`request.clone()`,
 *   `new Request(request)`) do not follow it.
 *
 * @module
 */

import * as http from "node:http";
import * as https from "node:https";
import { Buffer } from "node:buffer";
import type { IncomingMessage, ServerResponse } from "node:http";
import net from "node:net";
import type { Socket } from "node:net";
import type { Duplex } from "node:stream";
import type {
  Addr,
  Engine,
  EngineBinding,
  EngineServeOptions,
  GracefulHandlerInfo,
  Listener,
} from "../listen/types.ts";
import { trace } from "../restart/trace.ts";
import { dupFd } from "../os/fd.ts";

// ---------------------------------------------------------------------------
// Node internals this module relies on
// ---------------------------------------------------------------------------

const kExchange: unique symbol = Symbol("engineNode.exchange");
const kConnection: unique symbol = Symbol("engineNode.connection");
const kBodySource: unique symbol = Symbol("engineNode.bodySource");

/** A socket as this engine sees it: a raw socket, or a TLS socket wrapping one. */
interface TrackedSocket extends Socket {
  [kConnection]?: Connection;
  /** Set by node:tls on a TLSSocket: the raw socket it wraps. */
  _parent?: TrackedSocket | null;
}

/** A response with the exchange it belongs to. */
interface TrackedResponse extends ServerResponse {
  [kExchange]?: Exchange;
}

/** A request message with the body source reading it. */
interface TrackedMessage extends IncomingMessage {
  [kBodySource]?: RequestBodySource;
}

function noop(): void {}

function ignoreRejection(promise: Promise<unknown>): void {
  promise.then(noop, noop);
}

// ---------------------------------------------------------------------------
// Deno.upgradeWebSocket on node:http upgrade sockets
// ---------------------------------------------------------------------------

/** The node:http upgrade socket behind a request, for Deno.upgradeWebSocket. */
interface UpgradeTarget {
  readonly socket: Socket;
  readonly head: Uint8Array;
  /** Set once Deno.upgradeWebSocket took over the socket. */
  upgraded: boolean;
}

type UpgradeWebSocket = typeof Deno.upgradeWebSocket;

/** Shared by every copy of this module loaded in the process. */
interface UpgradeRegistry {
  readonly targets: WeakMap<Request, UpgradeTarget>;
  readonly original: UpgradeWebSocket;
}

const kUpgradeRegistry = Symbol.for("@graceful/serve.engineNode.upgrade");

/**
 * Installs, once per process, a wrapper around `Deno.upgradeWebSocket` that
 * passes the node:http upgrade socket of the requests served by this engine,
 * and calls the original unchanged for every other request.
 */
function upgradeRegistry(): UpgradeRegistry {
  const global = globalThis as typeof globalThis & {
    [kUpgradeRegistry]?: UpgradeRegistry;
  };
  const existing = global[kUpgradeRegistry];
  if (existing !== undefined) return existing;

  const original = Deno.upgradeWebSocket;
  const registry: UpgradeRegistry = { targets: new WeakMap(), original };
  function upgradeWebSocket(
    request: Request,
    options?: Deno.UpgradeWebSocketOptions,
  ): Deno.WebSocketUpgrade {
    const target = registry.targets.get(request);
    if (target === undefined) return original(request, options);
    if (target.upgraded) {
      throw new TypeError("The request has already been upgraded");
    }
    const upgrade = original(request, {
      ...options,
      socket: target.socket,
      head: target.head,
    });
    target.upgraded = true;
    return upgrade;
  }
  Object.defineProperty(Deno, "upgradeWebSocket", {
    value: upgradeWebSocket,
    writable: true,
    enumerable: true,
    configurable: true,
  });
  Object.defineProperty(global, kUpgradeRegistry, {
    value: registry,
    enumerable: false,
    configurable: true,
  });
  return registry;
}

// ---------------------------------------------------------------------------
// Request side
// ---------------------------------------------------------------------------

/**
 * Feeds a request body from an IncomingMessage into a ReadableStream. The
 * stream has a high water mark of 0: the message is only resumed when the
 * application asks for data, and paused again once a chunk is queued, so TCP
 * flow control reaches the client.
 */
class RequestBodySource implements UnderlyingDefaultSource<Uint8Array> {
  readonly message: TrackedMessage;
  controller: ReadableStreamDefaultController<Uint8Array> | null = null;
  attached = false;
  done = false;

  constructor(message: TrackedMessage) {
    this.message = message;
  }

  start(controller: ReadableStreamDefaultController<Uint8Array>): void {
    this.controller = controller;
  }

  pull(): void {
    const message = this.message;
    if (!this.attached) {
      this.attached = true;
      message[kBodySource] = this;
      message.on("data", onBodyData);
      message.on("end", onBodyEnd);
      message.on("error", onBodyError);
      message.on("close", onBodyClose);
    }
    message.resume();
  }

  cancel(): void {
    this.done = true;
    this.detach();
  }

  /** Fails the stream (if still open) and lets node discard the rest. */
  fail(error: Error): void {
    if (this.done) return;
    this.done = true;
    this.controller!.error(error);
    this.detach();
  }

  detach(): void {
    const message = this.message;
    if (this.attached) {
      message.off("data", onBodyData);
      message.off("end", onBodyEnd);
      message.off("error", onBodyError);
      message.off("close", onBodyClose);
    }
    // Read and discard what is left, so that the connection can be reused.
    if (!message.destroyed) message.resume();
  }
}

function onBodyData(this: TrackedMessage, chunk: Uint8Array): void {
  const source = this[kBodySource]!;
  const controller = source.controller!;
  controller.enqueue(
    new Uint8Array(chunk.buffer, chunk.byteOffset, chunk.byteLength),
  );
  if (controller.desiredSize! <= 0) this.pause();
}

function onBodyEnd(this: TrackedMessage): void {
  const source = this[kBodySource]!;
  if (source.done) return;
  source.done = true;
  source.detach();
  source.controller!.close();
}

function onBodyError(this: TrackedMessage, error: Error): void {
  this[kBodySource]!.fail(error);
}

function onBodyClose(this: TrackedMessage): void {
  this[kBodySource]!.fail(bodyCut());
}

function bodyCut(): Error {
  return new Deno.errors.ConnectionReset(
    "The client closed the connection before sending the whole body",
  );
}

/**
 * A Request whose `signal` is created only when the application asks for it:
 * most handlers never look at it, and an AbortSignal per request is not free.
 */
class EngineRequest extends Request {
  #exchange: Exchange;

  constructor(
    url: string,
    init: RequestInit | undefined,
    exchange: Exchange,
  ) {
    super(url, init);
    this.#exchange = exchange;
  }

  override get signal(): AbortSignal {
    return this.#exchange.signal();
  }
}

/** What the handler gets as its second argument. */
class HandlerInfo implements GracefulHandlerInfo {
  readonly #exchange: Exchange;
  readonly draining: AbortSignal;

  constructor(exchange: Exchange, draining: AbortSignal) {
    this.#exchange = exchange;
    this.draining = draining;
  }

  get remoteAddr(): Addr {
    return this.#exchange.connection.remoteAddr;
  }

  get completed(): Promise<void> {
    return this.#exchange.completed();
  }
}

// ---------------------------------------------------------------------------
// One request/response exchange
// ---------------------------------------------------------------------------

/** The pending pieces of an exchange's `completed` promise. */
interface Completion {
  readonly promise: Promise<void>;
  resolve(): void;
  reject(error: Error): void;
}

class Exchange {
  readonly binding: NodeBinding;
  readonly connection: Connection;
  readonly message: IncomingMessage;
  /** The node response; null for upgrade requests. */
  readonly res: TrackedResponse | null;
  /** The upgrade socket; null for ordinary requests. */
  readonly upgrade: UpgradeTarget | null;
  readonly info: HandlerInfo;
  body: RequestBodySource | null = null;
  reader: ReadableStreamDefaultReader<Uint8Array> | null = null;
  /** Behind `request.signal`, created on first use. */
  abortController: AbortController | null = null;
  completion: Completion | null = null;
  drainWaiter: (() => void) | null = null;
  /** node emitted 'finish': the whole response was handed to the socket. */
  finished = false;
  /** Scratch state of {@linkcode copyResponseHeader}. */
  closing = false;
  cookies = false;
  /** The exchange is over: `ok` tells whether the response was sent. */
  settled = false;
  ok = false;

  constructor(
    binding: NodeBinding,
    connection: Connection,
    message: IncomingMessage,
    res: TrackedResponse | null,
    upgrade: UpgradeTarget | null,
  ) {
    this.binding = binding;
    this.connection = connection;
    this.message = message;
    this.res = res;
    this.upgrade = upgrade;
    this.info = new HandlerInfo(this, binding.options.draining);
  }

  signal(): AbortSignal {
    let controller = this.abortController;
    if (controller === null) {
      controller = this.abortController = new AbortController();
      if (this.settled && !this.ok) controller.abort(clientGone());
    }
    return controller.signal;
  }

  completed(): Promise<void> {
    let completion = this.completion;
    if (completion === null) {
      let resolve!: () => void;
      let reject!: (error: Error) => void;
      const promise = new Promise<void>((res, rej) => {
        resolve = res;
        reject = rej;
      });
      // Looking at `completed` must not turn a failed response into an
      // unhandled rejection; whoever awaits it still sees the error.
      ignoreRejection(promise);
      completion = this.completion = { promise, resolve, reject };
      if (this.settled) {
        if (this.ok) resolve();
        else reject(notSent());
      }
    }
    return completion.promise;
  }

  /** Resolves once the response may be written again, or the exchange ended. */
  waitDrain(): Promise<void> {
    return new Promise<void>((resolve) => {
      this.drainWaiter = resolve;
      this.res!.once("drain", onResponseDrain);
    });
  }
}

function clientGone(): DOMException {
  return new DOMException("The client closed the connection", "AbortError");
}

function notSent(): Error {
  return new Deno.errors.Interrupted("HTTP response was not sent successfully");
}

function onResponseFinish(this: TrackedResponse): void {
  this[kExchange]!.finished = true;
}

function onResponseClose(this: TrackedResponse): void {
  const exchange = this[kExchange]!;
  exchange.binding.settle(exchange, exchange.finished);
}

function onResponseDrain(this: TrackedResponse): void {
  const exchange = this[kExchange]!;
  const waiter = exchange.drainWaiter;
  if (waiter !== null) {
    exchange.drainWaiter = null;
    waiter();
  }
}

// ---------------------------------------------------------------------------
// One connection
// ---------------------------------------------------------------------------

class Connection {
  readonly binding: NodeBinding;
  /** The socket accepted by `listener.server` (below TLS, if any). */
  readonly socket: TrackedSocket;
  /** Exchanges on this connection that are not settled, oldest first. */
  readonly pending: Exchange[] = [];
  /** The client's address, read once: it is gone when the socket is. */
  readonly remoteAddr: Addr;
  idleTimer: ReturnType<typeof setTimeout> | undefined = undefined;
  closed = false;

  constructor(binding: NodeBinding, socket: TrackedSocket) {
    this.binding = binding;
    this.socket = socket;
    const local = binding.listener.addr;
    if ("path" in local) {
      // Like Deno.serve: unix clients have no address of their own.
      this.remoteAddr = { transport: local.transport, path: local.path };
    } else {
      this.remoteAddr = {
        transport: "tcp",
        hostname: socket.remoteAddress ?? "",
        port: socket.remotePort ?? 0,
      };
    }
  }

  remove(exchange: Exchange): void {
    const pending = this.pending;
    if (pending[0] === exchange) pending.shift();
    else {
      const index = pending.indexOf(exchange);
      if (index !== -1) pending.splice(index, 1);
    }
  }

  armIdleTimer(ms: number): void {
    if (this.closed || this.idleTimer !== undefined) return;
    this.idleTimer = setTimeout(onIdleTimeout, ms, this);
    if (!this.binding.referenced) Deno.unrefTimer(this.idleTimer);
  }

  clearIdleTimer(): void {
    if (this.idleTimer !== undefined) {
      clearTimeout(this.idleTimer);
      this.idleTimer = undefined;
    }
  }
}

function onIdleTimeout(connection: Connection): void {
  connection.idleTimer = undefined;
  if (connection.pending.length === 0) connection.socket.destroy();
}

function onSocketClose(this: TrackedSocket): void {
  const connection = this[kConnection];
  if (connection !== undefined) connection.binding.forget(connection);
}

/** The connection an http-level socket (raw or TLS) belongs to. */
function connectionOf(socket: TrackedSocket): Connection {
  let connection = socket[kConnection];
  if (connection === undefined) {
    connection = socket._parent?.[kConnection];
    if (connection === undefined) {
      throw new Error("Socket was not accepted by this engine");
    }
    socket[kConnection] = connection;
  }
  return connection;
}

// ---------------------------------------------------------------------------
// The binding
// ---------------------------------------------------------------------------

function isWebSocketUpgrade(message: IncomingMessage): boolean {
  const upgrade = message.headers.upgrade;
  return upgrade !== undefined && /\bwebsocket\b/i.test(upgrade);
}

function hostOf(addr: Addr): string {
  if ("path" in addr) return "localhost";
  const hostname = addr.hostname.includes(":")
    ? `[${addr.hostname}]`
    : addr.hostname;
  return `${hostname}:${addr.port}`;
}

const kPending: unique symbol = Symbol("engineNode.pending");
/** Bodies up to this size are written together with the head. */
const kDirectEndLimit = 16 * 1024;
const pendingMarker: Promise<typeof kPending> = Promise.resolve(kPending);

class NodeBinding implements EngineBinding {
  readonly listener: Listener;
  readonly options: EngineServeOptions;
  readonly server: http.Server;
  /** Accepts on a duplicate of the listener's fd (closed with it). */
  readonly acceptor: net.Server;
  /** "http://" or "https://". */
  readonly scheme: string;
  /** The Host used when a request has none (HTTP/1.0). */
  readonly defaultHost: string;
  readonly open: Set<Connection> = new Set();
  inFlightCount = 0;
  draining = false;
  idleGraceMs = 0;
  referenced = true;
  #stopped: Promise<void> | null = null;
  #drained: PromiseWithResolvers<void> | null = null;
  readonly #upgrades: WeakMap<Request, UpgradeTarget>;

  constructor(listener: Listener, options: EngineServeOptions) {
    this.listener = listener;
    this.options = options;
    this.#upgrades = upgradeRegistry().targets;
    const serverOptions = {
      noDelay: true,
      // Like Deno.serve: no limit on how long a request (an upload) may take;
      // node's headersTimeout still bounds how long the headers may take.
      requestTimeout: 0,
      // Other upgrades (h2c...) are ordinary requests, as with Deno.serve.
      shouldUpgradeCallback: isWebSocketUpgrade,
    };
    if (options.tls !== undefined) {
      this.server = https.createServer({
        ...serverOptions,
        cert: options.tls.cert,
        key: options.tls.key,
      });
      this.scheme = "https://";
      this.server.on("secureConnection", onSecureConnection);
    } else {
      this.server = http.createServer(serverOptions);
      this.scheme = "http://";
    }
    this.defaultHost = hostOf(listener.addr);
    // node:http drops keep-alive connections of a server that is not
    // listening; this one never listens: its listener does.
    Object.defineProperty(this.server, "listening", {
      value: true,
      configurable: true,
    });
    this.server.on("request", this.onRequest.bind(this));
    this.server.on("upgrade", this.onUpgrade.bind(this));
    // node's default answer to a malformed request destroys the socket, which
    // over TLS skips close_notify: the client cannot tell the end of the 400
    // from a cut. Ending it sends close_notify first.
    this.server.on("clientError", (_error: Error, socket: Duplex) => {
      if (socket.writable) {
        socket.end(
          "HTTP/1.1 400 Bad Request\r\nconnection: close\r\ncontent-length: 0\r\n\r\n",
        );
      } else {
        socket.destroy();
      }
    });
    // 'listening' starts node's (unref'd) check of headersTimeout.
    this.server.emit("listening");
    // Stays attached after stopAccepting(): a connection accepted just before
    // the close is still served (and counted).
    this.acceptor = acceptorOf(listener);
    this.acceptor.on("connection", this.accept.bind(this));
  }

  get connections(): number {
    return this.open.size;
  }

  get inFlight(): number {
    return this.inFlightCount;
  }

  // --- connections ---------------------------------------------------------

  accept(socket: TrackedSocket): void {
    trace("accepted a connection");
    const connection = new Connection(this, socket);
    socket[kConnection] = connection;
    this.open.add(connection);
    socket.on("close", onSocketClose);
    socket.on("error", noop);
    if (!this.referenced) socket.unref();
    if (this.draining) connection.armIdleTimer(this.idleGraceMs);
    this.server.emit("connection", socket);
  }

  /** The connection closed (or was handed over): stop tracking it. */
  forget(connection: Connection): void {
    if (connection.closed) return;
    connection.closed = true;
    connection.clearIdleTimer();
    this.open.delete(connection);
    const pending = connection.pending;
    while (pending.length > 0) this.settle(pending[0], false);
    if (this.open.size === 0) this.#finishIfDone();
  }

  /** Once nothing is left to serve, stop node's connection checks. */
  #finishIfDone(): void {
    this.#drained?.resolve();
    if (this.#stopped !== null && this.server.listening) {
      Object.defineProperty(this.server, "listening", { value: false });
      this.server.close();
    }
  }

  // --- exchanges -----------------------------------------------------------

  onRequest(message: IncomingMessage, res: TrackedResponse): void {
    const connection = connectionOf(message.socket as TrackedSocket);
    const exchange = new Exchange(this, connection, message, res, null);
    res[kExchange] = exchange;
    res.on("finish", onResponseFinish);
    res.on("close", onResponseClose);
    this.begin(exchange);
  }

  onUpgrade(message: IncomingMessage, socket: Socket, head: Uint8Array): void {
    const connection = connectionOf(socket as TrackedSocket);
    // node:http removed its own listeners from the socket.
    socket.on("error", noop);
    const target: UpgradeTarget = { socket, head, upgraded: false };
    const exchange = new Exchange(this, connection, message, null, target);
    this.begin(exchange);
  }

  begin(exchange: Exchange): void {
    const connection = exchange.connection;
    connection.clearIdleTimer();
    connection.pending.push(exchange);
    this.inFlightCount++;
    this.run(exchange);
  }

  /** Ends an exchange: `ok` tells whether the response was sent. */
  settle(exchange: Exchange, ok: boolean): void {
    if (exchange.settled) return;
    exchange.settled = true;
    exchange.ok = ok;
    this.inFlightCount--;
    const connection = exchange.connection;
    connection.remove(exchange);
    if (!ok) {
      exchange.abortController?.abort(clientGone());
      const reader = exchange.reader;
      if (reader !== null) ignoreRejection(reader.cancel());
    }
    const body = exchange.body;
    if (body !== null && !body.done) {
      body.fail(
        ok
          ? new Deno.errors.Interrupted(
            "The response was complete before the request body was read",
          )
          : bodyCut(),
      );
    }
    const waiter = exchange.drainWaiter;
    if (waiter !== null) {
      exchange.drainWaiter = null;
      waiter();
    }
    const completion = exchange.completion;
    if (completion !== null) {
      if (ok) completion.resolve();
      else completion.reject(notSent());
    }
    if (this.draining && connection.pending.length === 0) {
      connection.armIdleTimer(this.idleGraceMs);
    }
  }

  /** Serves one exchange, from the Request to the last byte. Never rejects. */
  async run(exchange: Exchange): Promise<void> {
    try {
      let request: Request;
      try {
        request = this.createRequest(exchange);
      } catch {
        return this.answerBadRequest(exchange);
      }
      let response: Response;
      try {
        const result = this.options.handler(request, exchange.info);
        response = result instanceof Response ? result : await result;
        if (!(response instanceof Response)) {
          throw new TypeError("The handler did not return a Response");
        }
      } catch (error) {
        response = await this.errorResponse(error);
      }
      try {
        if (exchange.upgrade !== null) {
          await this.finishUpgrade(exchange, response);
        } else {
          await this.writeResponse(exchange, response);
        }
      } catch (error) {
        this.failResponse(exchange, error);
      }
    } catch {
      // node refused to write even an error: give up on the connection.
      exchange.connection.socket.destroy();
    }
  }

  createRequest(exchange: Exchange): Request {
    const message = exchange.message;
    const method = message.method!;
    const target = message.url!;
    const headers = message.headers;
    const host = headers.host ?? this.defaultHost;
    const url = target.charCodeAt(0) === 47 /* / */
      ? this.scheme + host + target
      : target.startsWith("http://") || target.startsWith("https://")
      ? target
      : this.scheme + host + "/" + target;
    let init: RequestInit | undefined;
    if (method === "GET") {
      // No init dictionary at all: the cheapest Request to construct.
      init = undefined;
    } else if (
      method === "HEAD" || exchange.upgrade !== null ||
      ((headers["content-length"] === undefined ||
        headers["content-length"] === "0") &&
        headers["transfer-encoding"] === undefined)
    ) {
      init = { method };
    } else {
      const source = new RequestBodySource(message);
      exchange.body = source;
      init = {
        method,
        body: new ReadableStream(source, { highWaterMark: 0 }),
        duplex: "half",
      } as RequestInit;
    }
    const request = new EngineRequest(url, init, exchange);
    const requestHeaders = request.headers;
    const raw = message.rawHeaders;
    for (let i = 0; i < raw.length; i += 2) {
      requestHeaders.append(raw[i], raw[i + 1]);
    }
    if (exchange.upgrade !== null) {
      this.#upgrades.set(request, exchange.upgrade);
    }
    return request;
  }

  async errorResponse(error: unknown): Promise<Response> {
    try {
      const response = await this.options.onError(error);
      if (response instanceof Response) return response;
    } catch {
      // Fall through to the plain 500.
    }
    return new Response("Internal Server Error", {
      status: 500,
      headers: { "content-type": "text/plain;charset=UTF-8" },
    });
  }

  answerBadRequest(exchange: Exchange): void {
    const res = exchange.res;
    if (res !== null) {
      res.shouldKeepAlive = false;
      res.statusCode = 400;
      res.end();
    } else {
      const socket = exchange.upgrade!.socket;
      socket.end(
        "HTTP/1.1 400 Bad Request\r\nconnection: close\r\ncontent-length: 0\r\n\r\n",
      );
      this.settle(exchange, true);
    }
  }

  /** Writing the response failed half way: cut the connection. */
  failResponse(exchange: Exchange, error: unknown): void {
    const reader = exchange.reader;
    if (reader !== null) ignoreRejection(reader.cancel(error));
    const res = exchange.res;
    if (res !== null) {
      if (!exchange.settled && !res.headersSent) {
        // Nothing was sent yet: answer 500 rather than cutting.
        for (const name of res.getHeaderNames()) res.removeHeader(name);
        res.statusMessage = "";
        res.shouldKeepAlive = false;
        res.statusCode = 500;
        res.end();
        return;
      }
      res.destroy(error instanceof Error ? error : undefined);
    } else {
      exchange.upgrade!.socket.destroy();
      this.settle(exchange, false);
    }
  }

  /**
   * Copies the response status and headers onto `res`; nothing is written yet.
   */
  applyHead(exchange: Exchange, response: Response, closing: boolean): void {
    const res = exchange.res!;
    res.statusCode = response.status;
    const reason = response.statusText;
    if (reason !== "") res.statusMessage = reason;
    if (closing) res.shouldKeepAlive = false;
    exchange.closing = closing;
    exchange.cookies = false;
    const headers = response.headers;
    // forEach sorts and combines the list once; the iterator does it per step.
    headers.forEach(copyResponseHeader, exchange);
    if (exchange.cookies) res.setHeader("set-cookie", headers.getSetCookie());
  }

  async writeResponse(exchange: Exchange, response: Response): Promise<void> {
    const res = exchange.res!;
    const body = response.body;
    if (exchange.settled) {
      // The client went away while the handler ran.
      if (body !== null) ignoreRejection(body.cancel());
      return;
    }
    const closing = this.draining || this.options.draining.aborted;
    this.applyHead(exchange, response, closing);
    // node:http frames the body: Content-Length when end() gets all of it,
    // chunked otherwise; it sends no body for HEAD, 204 and 304.
    const status = response.status;
    if (status === 204 || status === 304) {
      res.end();
      if (body !== null) ignoreRejection(body.cancel());
      return;
    }
    // Like Deno.serve, HEAD gets the Content-Length a GET would get.
    const head = exchange.message.method === "HEAD";
    if (body === null) {
      if (head) setLengthIfUnset(res, 0);
      res.end();
      return;
    }

    const reader = body.getReader();
    exchange.reader = reader;
    let result = await reader.read();
    if (exchange.settled) return;
    if (result.done) {
      if (head) setLengthIfUnset(res, 0);
      res.end();
      return;
    }
    let chunk = checkChunk(result.value);
    let next = reader.read();
    // A body that is complete already (a string, bytes...) is sent in one
    // write with a Content-Length; anything else is streamed as it comes.
    const peek = await Promise.race([next, pendingMarker]);
    if (exchange.settled) return;
    if (peek !== kPending && peek.done) {
      if (head) {
        setLengthIfUnset(res, chunk.byteLength);
        res.end();
      } else if (chunk.byteLength <= kDirectEndLimit) {
        // node:http writes a string body and the head in a single write,
        // bypassing the stream machinery; latin1 maps bytes 1:1.
        res.end(latin1(chunk), "latin1");
      } else {
        res.end(chunk);
      }
      return;
    }
    if (head) {
      ignoreRejection(reader.cancel());
      res.end();
      return;
    }
    for (;;) {
      if (!res.write(chunk)) await exchange.waitDrain();
      if (exchange.settled) return;
      result = await next;
      if (exchange.settled) return;
      if (result.done) break;
      chunk = checkChunk(result.value);
      next = reader.read();
    }
    res.end();
  }

  async finishUpgrade(exchange: Exchange, response: Response): Promise<void> {
    const target = exchange.upgrade!;
    const connection = exchange.connection;
    if (target.upgraded) {
      // Deno.upgradeWebSocket writes the 101 and owns the socket from now on.
      if (response.status !== 101 && response.body !== null) {
        ignoreRejection(response.body.cancel());
      }
      connection.socket.off("close", onSocketClose);
      this.settle(exchange, true);
      this.forget(connection);
      return;
    }
    if (exchange.settled) {
      if (response.body !== null) ignoreRejection(response.body.cancel());
      return;
    }
    // Not upgraded: send the response on the raw socket and close it. It is
    // small as a rule (a refusal), so it is buffered and sent with a length.
    const status = response.status;
    const bodiless = status === 204 || status === 304;
    const bytes = bodiless || response.body === null
      ? new Uint8Array(0)
      : await response.bytes();
    if (exchange.settled) return;
    const reason = response.statusText || http.STATUS_CODES[status] || "";
    let head = `HTTP/1.1 ${status} ${reason}\r\n`;
    for (const [name, value] of response.headers) {
      if (
        name !== "connection" && name !== "keep-alive" &&
        name !== "content-length" && name !== "transfer-encoding"
      ) {
        head += `${name}: ${value}\r\n`;
      }
    }
    if (!bodiless) head += `content-length: ${bytes.byteLength}\r\n`;
    head += `date: ${new Date().toUTCString()}\r\nconnection: close\r\n\r\n`;
    const socket = target.socket;
    socket.write(head, "latin1");
    socket.end(bytes, () => this.settle(exchange, true));
  }

  // --- EngineBinding -------------------------------------------------------

  stopAccepting(): Promise<void> {
    if (this.#stopped === null) {
      const server = this.acceptor;
      if (server.listening) server.close();
      // Closing the handle releases the fd synchronously; net.Server's
      // 'close' event would wait for every connection, which is not wanted.
      this.#stopped = new Promise<void>((resolve) => setTimeout(resolve, 0));
      if (this.open.size === 0) this.#finishIfDone();
    }
    return this.#stopped;
  }

  drain(idleGraceMs: number): Promise<void> {
    if (this.#drained === null) {
      this.#drained = Promise.withResolvers<void>();
      this.draining = true;
      this.idleGraceMs = idleGraceMs;
      for (const connection of this.open) {
        if (connection.pending.length === 0) {
          connection.armIdleTimer(idleGraceMs);
        }
      }
      if (this.open.size === 0) this.#finishIfDone();
    }
    return this.#drained.promise;
  }

  abort(): void {
    for (const connection of this.open) connection.socket.destroy();
  }

  ref(): void {
    this.referenced = true;
    this.acceptor.ref();
    for (const connection of this.open) {
      connection.socket.ref();
      if (connection.idleTimer !== undefined) {
        Deno.refTimer(connection.idleTimer);
      }
    }
  }

  unref(): void {
    this.referenced = false;
    this.acceptor.unref();
    for (const connection of this.open) {
      connection.socket.unref();
      if (connection.idleTimer !== undefined) {
        Deno.unrefTimer(connection.idleTimer);
      }
    }
  }
}

/** A `Headers.forEach` callback: copies one response header onto `res`. */
function copyResponseHeader(this: Exchange, value: string, name: string): void {
  if (name === "set-cookie") {
    // Copied at once, from getSetCookie().
    this.cookies = true;
  } else if (
    !this.closing || (name !== "connection" && name !== "keep-alive")
  ) {
    this.res!.setHeader(name, value);
  }
}

function setLengthIfUnset(res: ServerResponse, length: number): void {
  if (!res.hasHeader("content-length")) {
    res.setHeader("content-length", String(length));
  }
}

/** Bytes as a latin1 string (one char per byte), for node's direct write. */
function latin1(bytes: Uint8Array): string {
  if (bytes.byteLength <= 64) {
    // Cheapest for tiny bodies; too many arguments for large ones.
    return String.fromCharCode.apply(null, bytes as unknown as number[]);
  }
  return Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength)
    .toString("latin1");
}

function checkChunk(chunk: unknown): Uint8Array {
  if (chunk instanceof Uint8Array) return chunk;
  throw new TypeError("Response body chunks must be Uint8Array");
}

function onSecureConnection(tlsSocket: TrackedSocket): void {
  // Requests arrive on the TLS socket; the bookkeeping lives on the raw one.
  const connection = tlsSocket._parent?.[kConnection];
  if (connection !== undefined) tlsSocket[kConnection] = connection;
}

/**
 * A node:net server listening on a duplicate of the listener's fd: node:net
 * owns (and closes) the fd it listens on, the listener registry its own.
 */
function acceptorOf(listener: Listener): net.Server {
  const fd = dupFd(listener.fd);
  if (fd < 0) {
    throw new Error(`cannot duplicate fd ${listener.fd} for node:http`);
  }
  const server = net.createServer();
  server.on("error", noop);
  server.listen({ fd });
  return server;
}

/**
 * Creates the "node" engine: each listener is served by a `node:http` (or
 * `node:https`) server fed with the connections accepted on the listener.
 *
 * @example Serve a listening socket's fd
 * ```ts ignore
 * import { createNodeEngine } from "./node.ts";
 *
 * const binding = createNodeEngine().serve({
 *   name: "http",
 *   fd: 3,
 *   addr: { transport: "tcp", hostname: "0.0.0.0", port: 8000 },
 *   inherited: true,
 * }, {
 *   handler: () => new Response("Hello"),
 *   onError: () => new Response("Oops", { status: 500 }),
 *   draining: new AbortController().signal,
 * });
 * await binding.stopAccepting();
 * await binding.drain(1000);
 * ```
 *
 * @returns An {@linkcode Engine} named "node".
 */
export function createNodeEngine(): Engine {
  return { name: "node", serve: serveNode };
}

function serveNode(
  listener: Listener,
  options: EngineServeOptions,
): EngineBinding {
  return new NodeBinding(listener, options);
}
