/**
 * The node engine's bookkeeping: one {@linkcode Connection} per accepted
 * socket, one {@linkcode Exchange} per request on it. The binding
 * (node.ts) counts them to drain gracefully; the request and response sides
 * (node_request.ts, node_response.ts) work on an exchange.
 *
 * @module
 */

import type { IncomingMessage, ServerResponse } from "node:http";
import type { Socket } from "node:net";
import type {
  Addr,
  EngineServeOptions,
  GracefulHandlerInfo,
  Listener,
} from "../listen/types.ts";

export const kExchange: unique symbol = Symbol("engineNode.exchange");
export const kConnection: unique symbol = Symbol("engineNode.connection");

/** A socket as this engine sees it: a raw socket, or a TLS socket wrapping one. */
export interface TrackedSocket extends Socket {
  [kConnection]?: Connection;
  /** Set by node:tls on a TLSSocket: the raw socket it wraps. */
  _parent?: TrackedSocket | null;
}

/** A response with the exchange it belongs to. */
export interface TrackedResponse extends ServerResponse {
  [kExchange]?: Exchange;
}

/** The node:http upgrade socket behind a request, for Deno.upgradeWebSocket. */
export interface UpgradeTarget {
  readonly socket: Socket;
  readonly head: Uint8Array;
  /** Set once Deno.upgradeWebSocket took over the socket. */
  upgraded: boolean;
}

/** The request body as an exchange ends it (node_request.ts feeds it). */
export interface RequestBody {
  readonly done: boolean;
  /** Fails the stream (if still open) and lets node discard the rest. */
  fail(error: Error): void;
}

/** What connections and exchanges need from the binding that serves them. */
export interface ExchangeOwner {
  readonly listener: Listener;
  readonly options: EngineServeOptions;
  /** False once `unref()` was called: timers and sockets are unref'd too. */
  readonly referenced: boolean;
  /** Ends an exchange: `ok` tells whether the response was sent. */
  settle(exchange: Exchange, ok: boolean): void;
  /** The connection closed (or was handed over): stop tracking it. */
  forget(connection: Connection): void;
}

export function noop(): void {}

export function ignoreRejection(promise: Promise<unknown>): void {
  promise.then(noop, noop);
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

/** The pending pieces of an exchange's `completed` promise. */
interface Completion {
  readonly promise: Promise<void>;
  resolve(): void;
  reject(error: Error): void;
}

/** One request and its response (or its upgrade). */
export class Exchange {
  readonly binding: ExchangeOwner;
  readonly connection: Connection;
  readonly message: IncomingMessage;
  /** The node response; null for upgrade requests. */
  readonly res: TrackedResponse | null;
  /** The upgrade socket; null for ordinary requests. */
  readonly upgrade: UpgradeTarget | null;
  readonly info: GracefulHandlerInfo;
  body: RequestBody | null = null;
  reader: ReadableStreamDefaultReader<Uint8Array> | null = null;
  /** Behind `request.signal`, created on first use. */
  abortController: AbortController | null = null;
  completion: Completion | null = null;
  drainWaiter: (() => void) | null = null;
  /** node emitted 'finish': the whole response was handed to the socket. */
  finished = false;
  /** Scratch state of the response's header copy (node_response.ts). */
  closing = false;
  cookies = false;
  /** The exchange is over: `ok` tells whether the response was sent. */
  settled = false;
  ok = false;

  constructor(
    binding: ExchangeOwner,
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

export function clientGone(): DOMException {
  return new DOMException("The client closed the connection", "AbortError");
}

export function notSent(): Error {
  return new Deno.errors.Interrupted("HTTP response was not sent successfully");
}

export function onResponseFinish(this: TrackedResponse): void {
  this[kExchange]!.finished = true;
}

export function onResponseClose(this: TrackedResponse): void {
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

/** One accepted connection and the exchanges on it. */
export class Connection {
  readonly binding: ExchangeOwner;
  /** The socket accepted by the binding's acceptor (below TLS, if any). */
  readonly socket: TrackedSocket;
  /** Exchanges on this connection that are not settled, oldest first. */
  readonly pending: Exchange[] = [];
  /** The client's address, read once: it is gone when the socket is. */
  readonly remoteAddr: Addr;
  idleTimer: ReturnType<typeof setTimeout> | undefined = undefined;
  closed = false;

  constructor(binding: ExchangeOwner, socket: TrackedSocket) {
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

export function onSocketClose(this: TrackedSocket): void {
  const connection = this[kConnection];
  if (connection !== undefined) connection.binding.forget(connection);
}

/** The connection an http-level socket (raw or TLS) belongs to. */
export function connectionOf(socket: TrackedSocket): Connection {
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

export function onSecureConnection(tlsSocket: TrackedSocket): void {
  // Requests arrive on the TLS socket; the bookkeeping lives on the raw one.
  const connection = tlsSocket._parent?.[kConnection];
  if (connection !== undefined) tlsSocket[kConnection] = connection;
}
