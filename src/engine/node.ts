/**
 * The "node" HTTP engine: serves a {@linkcode Listener} with `node:http` (or
 * `node:https`) and adapts every request to the fetch API, so the application
 * keeps Deno.serve's `(request, info) => Response` contract.
 *
 * The binding here feeds the connections a node:net server accepts on a
 * duplicate of the listener's fd into an `http.Server` that has no socket of
 * its own, and keeps the bookkeeping (open connections, responses in flight)
 * needed to drain gracefully. The fetch adapter is in node_request.ts and
 * node_response.ts, WebSocket upgrades in node_websocket.ts.
 *
 * Known limit: `request.signal` is created on first use and aborts when the
 * client goes away before the response is sent; signals of clones
 * (`request.clone()`, `new Request(request)`) do not follow it.
 *
 * @module
 */

import * as http from "node:http";
import * as https from "node:https";
import type { IncomingMessage } from "node:http";
import net from "node:net";
import type { Socket } from "node:net";
import type { Duplex } from "node:stream";
import type {
  Engine,
  EngineBinding,
  EngineServeOptions,
  Listener,
} from "../listen/types.ts";
import { trace } from "../restart/trace.ts";
import { dupFd } from "../os/fd.ts";
import {
  clientGone,
  Connection,
  connectionOf,
  Exchange,
  ignoreRejection,
  kConnection,
  kExchange,
  noop,
  notSent,
  onResponseClose,
  onResponseFinish,
  onSecureConnection,
  onSocketClose,
  type TrackedResponse,
  type TrackedSocket,
  type UpgradeTarget,
} from "./node_exchange.ts";
import { bodyCut, createRequest, hostOf } from "./node_request.ts";
import {
  answerBadRequest,
  BAD_REQUEST,
  errorResponse,
  failResponse,
  writeResponse,
} from "./node_response.ts";
import {
  finishUpgrade,
  isWebSocketUpgrade,
  upgradeTargets,
} from "./node_websocket.ts";

/** One listener served by node:http. */
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
  /** Where upgrade requests' sockets are registered (node_websocket.ts). */
  readonly upgrades: WeakMap<Request, UpgradeTarget>;

  constructor(listener: Listener, options: EngineServeOptions) {
    this.listener = listener;
    this.options = options;
    this.upgrades = upgradeTargets();
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
        socket.end(BAD_REQUEST);
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
        request = createRequest(exchange, this);
      } catch {
        return answerBadRequest(exchange);
      }
      let response: Response;
      try {
        const result = this.options.handler(request, exchange.info);
        response = result instanceof Response ? result : await result;
        if (!(response instanceof Response)) {
          throw new TypeError("The handler did not return a Response");
        }
      } catch (error) {
        response = await errorResponse(this.options.onError, error);
      }
      try {
        if (exchange.upgrade !== null) {
          await finishUpgrade(exchange, response);
        } else {
          const closing = this.draining || this.options.draining.aborted;
          await writeResponse(exchange, response, closing);
        }
      } catch (error) {
        failResponse(exchange, error);
      }
    } catch {
      // node refused to write even an error: give up on the connection.
      exchange.connection.socket.destroy();
    }
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
