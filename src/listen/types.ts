/**
 * Types shared by the listeners, the HTTP engines and the server.
 *
 * This module has no runtime code and imports nothing at runtime, so every
 * other module may depend on it without creating import cycles.
 *
 * @module
 */

/** The address of a listening or connected socket, as Deno.serve reports it. */
export type Addr = Deno.NetAddr | Deno.UnixAddr;

/** The second argument of a request handler: Deno.serve's, plus `draining`. */
export interface GracefulHandlerInfo {
  /** The client's address (and port, for TCP). */
  readonly remoteAddr: Addr;
  /** Resolves when the response has been sent, rejects if it was not. */
  readonly completed: Promise<void>;
  /**
   * Aborted when this process starts draining (graceful shutdown, or a handover
   * to a new generation). Long-lived responses (SSE, WebSockets) should watch it
   * and tell their clients to reconnect; they are cut at `drainTimeout`.
   */
  readonly draining: AbortSignal;
}

/** A request handler with Deno.serve's contract. */
export type GracefulHandler = (
  request: Request,
  info: GracefulHandlerInfo,
) => Response | Promise<Response>;

/** The error handler: turns an exception thrown by the handler into a response. */
export type ErrorHandler = (error: unknown) => Response | Promise<Response>;

/** TLS material, PEM encoded (the contents, not file paths). */
export interface TlsOptions {
  /** The certificate chain, PEM. */
  cert: string;
  /** The private key, PEM. */
  key: string;
}

/**
 * A listening socket owned by this process. Every listener is backed by a real
 * file descriptor, so that a new generation can inherit it.
 */
export interface Listener {
  /** The name (systemd FileDescriptorName / LISTEN_FDNAMES), or the server's name. */
  name: string;
  /**
   * A real file descriptor of the listening socket, for passing it on: the
   * inherited fd itself, or for a self-opened listener a dup (CLOEXEC). The
   * listener registry closes it when the listener is released; an engine
   * serves a copy of its own.
   */
  fd: number;
  /** Where it listens. */
  addr: Addr;
  /** True when the socket came from LISTEN_FDS rather than being opened here. */
  inherited: boolean;
}

/** What an engine needs to serve one listener. */
export interface EngineServeOptions {
  /** The application handler, already wrapped for errors and drain bookkeeping. */
  handler: GracefulHandler;
  /** Turns a handler exception into a response. */
  onError: ErrorHandler;
  /** Serve TLS on this listener. */
  tls?: TlsOptions;
  /** Aborted when draining starts; passed to the handler as `info.draining`. */
  draining: AbortSignal;
}

/**
 * One listener attached to an engine. The server drives draining through it.
 */
export interface EngineBinding {
  /** Open client connections on this listener. */
  readonly connections: number;
  /** Requests whose response has not been completely sent yet. */
  readonly inFlight: number;
  /**
   * Stop accepting new connections. Closes this process's copy of the listening
   * fd; when another process holds the same socket, it keeps accepting.
   */
  stopAccepting(): Promise<void>;
  /**
   * Drain: from now on every response carries `Connection: close`; connections
   * that stay idle for `idleGraceMs` are closed. Resolves once every connection
   * on this listener has closed.
   */
  drain(idleGraceMs: number): Promise<void>;
  /** Close every remaining connection now (the drain timeout expired). */
  abort(): void;
  /** Keep (or stop keeping) the process alive while this binding serves. */
  ref(): void;
  /** See {@linkcode EngineBinding.ref}. */
  unref(): void;
}

/** An HTTP engine: turns a listener into served connections. */
export interface Engine {
  /** "native" (Deno's own HTTP engine) or "node" (node:http). */
  readonly name: "native" | "node";
  /** Start serving `listener`. Must not close `listener.fd` until stopAccepting(). */
  serve(listener: Listener, options: EngineServeOptions): EngineBinding;
}

/** The LISTEN_FDNAMES name of the admin listener, between generations. */
export const ADMIN_SERVER_NAME = "graceful-admin";
