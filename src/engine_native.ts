/**
 * The "native" engine: node:net accepts on the (possibly inherited) listening
 * fd, and each accepted connection is served by Deno's own HTTP engine, the one
 * behind Deno.serve.
 *
 * Deno.serve cannot listen on an fd (denoland/deno#6529, #14006), but its
 * engine can serve a single connection: `Deno[Deno.internal]
 * .serveHttpOnConnection`. This module feeds it connections at the handle
 * level, without creating a net.Socket per connection:
 *
 *   listening TCPWrap --onconnection--> new TCPWrap + accept() --takeStream()-->
 *   stream rid --TcpConn--> serveHttpOnConnection (one tiny HTTP server each)
 *
 * All of this is internal API, so {@linkcode detectNativeSupport} checks every
 * piece first; the server falls back to the node engine when it is missing.
 *
 * WebSockets: when a per-connection server's connection ends after a 101, Deno
 * force-closes that server, and with it every WebSocket registered on it
 * ("Failed to send frame"). As soon as the WebSocket is open (its stream has
 * left the HTTP connection), this engine closes the per-connection server's
 * resource, so that the force close finds nothing to close.
 *
 * @module
 */

import type {
  Engine,
  EngineBinding,
  EngineServeOptions,
  GracefulHandlerInfo,
  Listener,
} from "./types.ts";
import { trace } from "./trace.ts";

/** The internal pieces the native engine needs. */
export interface NativeSupport {
  /** `Deno[Deno.internal].serveHttpOnConnection`. */
  serveHttpOnConnection: (
    conn: Deno.Conn,
    signal: AbortSignal | undefined,
    handler: (req: Request, info: Deno.ServeHandlerInfo) => unknown,
    onError: (error: unknown) => Response | Promise<Response>,
    onListen: () => void,
  ) => Deno.HttpServer;
  /** The TcpConn class, recovered from a Deno.connect() connection. */
  TcpConn: new (
    rid: number,
    remoteAddr: unknown,
    localAddr: unknown,
  ) => Deno.Conn;
  /** `Deno[Deno.internal].core`, for resources() and close(). */
  core: {
    resources(): Record<number, string>;
    close(rid: number): void;
  };
}

let supportPromise: Promise<NativeSupport | string> | undefined;

/**
 * Checks, once per process, that every internal API the native engine relies
 * on exists. Resolves to the pieces, or to a string that says what is missing.
 *
 * @example Detect the native engine
 * ```ts ignore
 * const support = await detectNativeSupport();
 * if (typeof support === "string") console.warn(support);
 * ```
 */
export function detectNativeSupport(): Promise<NativeSupport | string> {
  supportPromise ??= probeNativeSupport();
  return supportPromise;
}

async function probeNativeSupport(): Promise<NativeSupport | string> {
  // deno-lint-ignore no-explicit-any
  const denoAny = Deno as any;
  const internal = denoAny.internal ? denoAny[denoAny.internal] : undefined;
  const core = internal?.core;
  if (
    typeof core?.resources !== "function" || typeof core?.close !== "function"
  ) {
    return "Deno[Deno.internal].core.resources/close are missing";
  }
  const TcpConn = await probeTcpConn();
  if (typeof TcpConn === "string") return TcpConn;
  // After the network round trip above, not before it: the first read of
  // serveHttpOnConnection loads Deno's HTTP serving code (about 4 ms of CPU),
  // which in a new generation then runs while its control handshake with
  // the old one is in flight, instead of holding the handshake back.
  const serveHttpOnConnection = internal.serveHttpOnConnection;
  if (typeof serveHttpOnConnection !== "function") {
    return "Deno[Deno.internal].serveHttpOnConnection is missing";
  }
  return { serveHttpOnConnection, TcpConn, core };
}

/**
 * Recovers the TcpConn class from a loopback connection; a string says why
 * it could not.
 */
async function probeTcpConn(): Promise<NativeSupport["TcpConn"] | string> {
  let listener: Deno.TcpListener | undefined;
  let conn: Deno.TcpConn | undefined;
  let accepted: Deno.TcpConn | undefined;
  try {
    listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
    const accepting = listener.accept();
    conn = await Deno.connect({
      hostname: "127.0.0.1",
      port: listener.addr.port,
    });
    accepted = await accepting;
    const TcpConn = Object.getPrototypeOf(conn).constructor;
    if (typeof TcpConn !== "function" || TcpConn.length < 3) {
      return "the TcpConn constructor is not reachable";
    }
    return TcpConn;
  } catch (error) {
    return `probing TcpConn failed: ${error}`;
  } finally {
    accepted?.close();
    conn?.close();
    listener?.close();
  }
}

/** Checks that a listener's node handle can accept at the handle level. */
function nativeHandleOf(listener: Listener): NodeTcpHandle | undefined {
  // deno-lint-ignore no-explicit-any
  const handle = (listener.server as any)._handle;
  if (
    handle && typeof handle.accept === "function" &&
    typeof handle.constructor === "function" &&
    typeof handle.constructor.prototype?.takeStream === "function"
  ) {
    return handle as NodeTcpHandle;
  }
  return undefined;
}

/** The parts of Deno's node TCPWrap handle that this engine uses. */
interface NodeTcpHandle {
  onconnection: ((status: number) => void) | null;
  accept(client: NodeTcpHandle): number;
  takeStream(): number;
  close(callback?: () => void): void;
  constructor: new (type: number) => NodeTcpHandle;
}

/** TCPWrap constructor argument for a connected stream (node's TCPConstants.SOCKET). */
const TCP_SOCKET = 0;

/**
 * Whether the native engine can serve this listener: TCP, no TLS, and the
 * internal APIs present.
 *
 * @example
 * ```ts ignore
 * if (!canServeNatively(listener, options)) useNodeEngine();
 * ```
 */
export function canServeNatively(
  listener: Listener,
  options: Pick<EngineServeOptions, "tls">,
): boolean {
  return options.tls === undefined && listener.addr.transport === "tcp" &&
    nativeHandleOf(listener) !== undefined;
}

/**
 * Creates the native engine from the detected internals.
 *
 * @example
 * ```ts ignore
 * const support = await detectNativeSupport();
 * if (typeof support !== "string") {
 *   const engine = createNativeEngine(support);
 * }
 * ```
 */
export function createNativeEngine(support: NativeSupport): Engine {
  return {
    name: "native",
    serve(listener: Listener, options: EngineServeOptions): EngineBinding {
      return new NativeBinding(support, listener, options);
    },
  };
}

/** One accepted connection and its private HTTP server. */
interface NativeConnection {
  http: Deno.HttpServer | undefined;
  /** Resource id of the per-connection HTTP server (the stream rid + 1). */
  httpRid: number;
  inFlight: number;
  idleTimer: ReturnType<typeof setTimeout> | undefined;
  closing: boolean;
}

/** The handler info given to the app: Deno's, plus `draining`. */
class NativeInfo implements GracefulHandlerInfo {
  #info: Deno.ServeHandlerInfo;
  readonly draining: AbortSignal;
  constructor(info: Deno.ServeHandlerInfo, draining: AbortSignal) {
    this.#info = info;
    this.draining = draining;
  }
  get remoteAddr(): Deno.NetAddr {
    return this.#info.remoteAddr as Deno.NetAddr;
  }
  get completed(): Promise<void> {
    return this.#info.completed;
  }
}

class NativeBinding implements EngineBinding {
  #support: NativeSupport;
  #listener: Listener;
  #options: EngineServeOptions;
  #handle: NodeTcpHandle;
  #conns = new Set<NativeConnection>();
  #sockets = new Set<WebSocket>();
  #inFlight = 0;
  #draining = false;
  #idleGraceMs = 0;
  #drained: PromiseWithResolvers<void> | undefined;
  #refed = true;
  #stopped: Promise<void> | undefined;

  constructor(
    support: NativeSupport,
    listener: Listener,
    options: EngineServeOptions,
  ) {
    this.#support = support;
    this.#listener = listener;
    this.#options = options;
    const handle = nativeHandleOf(listener);
    if (!handle) {
      throw new TypeError(
        `listener ${listener.name} cannot be served by the native engine`,
      );
    }
    this.#handle = handle;
    handle.onconnection = (status) => this.#accept(status);
  }

  get connections(): number {
    return this.#conns.size + this.#sockets.size;
  }

  get inFlight(): number {
    return this.#inFlight;
  }

  #accept(status: number): void {
    if (status !== 0) return; // EMFILE and friends: the next accept retries.
    trace("accepted a connection");
    const handle = this.#handle;
    const client = new handle.constructor(TCP_SOCKET);
    if (handle.accept(client) !== 0) return;
    let rid: number;
    try {
      rid = client.takeStream();
    } catch {
      return;
    } finally {
      // Taken or not, the handle must be closed (once taken, the stream is
      // Deno's resource and stays open), or the event loop keeps the handle
      // and its wrapper for good.
      client.close();
    }
    const conn = new this.#support.TcpConn(rid, null, this.#listener.addr);
    const record: NativeConnection = {
      http: undefined,
      httpRid: rid + 1,
      inFlight: 0,
      idleTimer: undefined,
      closing: false,
    };
    const http = this.#support.serveHttpOnConnection(
      conn,
      undefined,
      (request, info) => this.#handle_request(record, request, info),
      this.#options.onError,
      noop,
    );
    record.http = http;
    if (!this.#refed) http.unref();
    this.#conns.add(record);
    http.finished.then(
      () => this.#closed(record),
      () => this.#closed(record),
    );
    if (this.#draining) this.#armIdleTimer(record);
  }

  #handle_request(
    record: NativeConnection,
    request: Request,
    info: Deno.ServeHandlerInfo,
  ): Response | Promise<Response> {
    record.inFlight++;
    this.#inFlight++;
    if (record.idleTimer !== undefined) {
      clearTimeout(record.idleTimer);
      record.idleTimer = undefined;
    }
    let result: Response | Promise<Response>;
    try {
      result = this.#options.handler(
        request,
        new NativeInfo(info, this.#options.draining),
      );
    } catch (error) {
      this.#requestDone(record);
      throw error;
    }
    if (result instanceof Promise) {
      return result.then(
        (response) => this.#respond(record, response),
        (error) => {
          this.#requestDone(record);
          throw error;
        },
      );
    }
    return this.#respond(record, result);
  }

  #respond(record: NativeConnection, response: Response): Response {
    this.#requestDone(record);
    if (!(response instanceof Response)) return response;
    if (response.status === 101) {
      this.#adoptWebSocket(record, response);
      return response;
    }
    if (this.#draining) {
      response = withConnectionClose(response);
      this.#closeConnection(record);
    }
    return response;
  }

  #requestDone(record: NativeConnection): void {
    record.inFlight--;
    this.#inFlight--;
  }

  /** Keeps an upgraded WebSocket alive past its per-connection server. */
  #adoptWebSocket(record: NativeConnection, response: Response): void {
    const socket = webSocketOf(response);
    if (!socket) return;
    const core = this.#support.core;
    socket.addEventListener("open", () => {
      if (core.resources()[record.httpRid] === "http") {
        core.close(record.httpRid);
      }
      this.#sockets.add(socket);
      if (this.#draining) socket.close(1001, "server restarting");
    }, { once: true });
    socket.addEventListener("close", () => {
      this.#sockets.delete(socket);
      this.#checkDrained();
    }, { once: true });
  }

  #closed(record: NativeConnection): void {
    if (record.idleTimer !== undefined) clearTimeout(record.idleTimer);
    this.#conns.delete(record);
    this.#checkDrained();
  }

  /** Graceful: lets the response in flight finish, then closes. */
  #closeConnection(record: NativeConnection): void {
    if (record.closing) return;
    record.closing = true;
    record.http?.shutdown().catch(noop);
  }

  #armIdleTimer(record: NativeConnection): void {
    if (record.inFlight > 0 || record.closing) return;
    record.idleTimer = setTimeout(() => {
      record.idleTimer = undefined;
      if (record.inFlight === 0) this.#closeConnection(record);
    }, this.#idleGraceMs);
  }

  #checkDrained(): void {
    if (this.#drained && this.connections === 0) this.#drained.resolve();
  }

  stopAccepting(): Promise<void> {
    this.#stopped ??= new Promise((resolve) => {
      this.#handle.onconnection = null;
      this.#listener.server.close(() => resolve());
    });
    return this.#stopped;
  }

  drain(idleGraceMs: number): Promise<void> {
    if (!this.#drained) {
      this.#drained = Promise.withResolvers();
      this.#draining = true;
      this.#idleGraceMs = idleGraceMs;
      for (const record of this.#conns) this.#armIdleTimer(record);
      this.#checkDrained();
    }
    return this.#drained.promise;
  }

  abort(): void {
    for (const record of this.#conns) {
      if (record.idleTimer !== undefined) clearTimeout(record.idleTimer);
      if (this.#support.core.resources()[record.httpRid] === "http") {
        this.#support.core.close(record.httpRid);
      }
    }
    for (const socket of this.#sockets) socket.close(1001, "server shutdown");
  }

  ref(): void {
    this.#refed = true;
    this.#listener.server.ref();
    for (const record of this.#conns) record.http?.ref();
  }

  unref(): void {
    this.#refed = false;
    this.#listener.server.unref();
    for (const record of this.#conns) record.http?.unref();
  }
}

function noop(): void {}

/** Returns the response with `Connection: close`, copying it if its headers are immutable. */
function withConnectionClose(response: Response): Response {
  try {
    response.headers.set("connection", "close");
    return response;
  } catch {
    const copy = new Response(response.body, response);
    copy.headers.set("connection", "close");
    return copy;
  }
}

/** The WebSocket that Deno.upgradeWebSocket attached to its 101 response. */
function webSocketOf(response: Response): WebSocket | undefined {
  for (const symbol of Object.getOwnPropertySymbols(response)) {
    // deno-lint-ignore no-explicit-any
    const value = (response as any)[symbol];
    if (value instanceof WebSocket) return value;
  }
  return undefined;
}
