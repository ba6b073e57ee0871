/**
 * What `serveGraceful` takes and returns: its options, the server it gives
 * back, and the reading of both call forms and of the options' defaults.
 *
 * @module
 */

import type {
  Addr,
  ErrorHandler,
  GracefulHandler,
  TlsOptions,
} from "../listen/types.ts";
import { type ListenSpec, parseListenAddress } from "../listen/address.ts";
import { logger, print } from "../util/log.ts";
import type { ProcessStatus } from "../restart/generation.ts";
import type {
  RestartOptions,
  RestartResult,
} from "../restart/handover_types.ts";
import type { AdminOptions } from "./admin.ts";

const log = logger("server");

/** Which HTTP engine serves connections. */
export type EngineName = "auto" | "native" | "node";

/** Options of {@linkcode serveGraceful}. */
export interface GracefulServeOptions {
  /** The handler (alternatively pass it as the second argument, or as `fetch`). */
  handler?: GracefulHandler;
  /** The same as `handler`, for `export default { fetch }` style modules. */
  fetch?: GracefulHandler;
  /**
   * The server's name. Inherited sockets whose LISTEN_FDNAMES name (systemd
   * FileDescriptorName=) equals it belong to this server. Default "http".
   */
  name?: string;
  /** Port to listen on when no socket was inherited. Default 8000, as Deno.serve. */
  port?: number;
  /** Hostname for `port`. Default "0.0.0.0". */
  hostname?: string;
  /**
   * Several addresses: `"127.0.0.1:8000"`, `"[::1]:8001"`, `"unix:/run/app.sock"`.
   * Inherited sockets with a matching address are used instead of opening new ones.
   */
  listen?: string[];
  /** PEM certificate chain; with `key`, serves HTTPS (HTTP/2 by ALPN, and HTTP/1.1). */
  cert?: string;
  /** PEM private key. */
  key?: string;
  /**
   * "auto" (default) and "native": Deno.serve itself on every listener, once
   * a self-check proved it accepts there; node:http when the check fails
   * (with a warning that says why). "node": node:http.
   */
  engine?: EngineName;
  /** Called once per listener when it is serving. Default: log like Deno.serve. */
  onListen?: (addr: Addr) => void;
  /** Turns a handler exception into a response. Default: log it and answer 500. */
  onError?: ErrorHandler;
  /** Aborting it shuts the server down gracefully. */
  signal?: AbortSignal;
  /** The longest a graceful shutdown may take before connections are cut (ms). Default 30000. */
  drainTimeout?: number;
  /** How long idle keep-alive connections may stay once draining starts (ms). Default 500. */
  idleGrace?: number;
  /**
   * Stop gracefully (and exit 0 once every server has drained) on these
   * signals. Default ["SIGTERM", "SIGINT", "SIGQUIT"]; `false` leaves signals alone.
   */
  shutdownSignals?: Deno.Signal[] | false;
  /**
   * Restart (hand over to a new generation of this program) on these signals.
   * Default ["SIGUSR2", "SIGUSR1"], and SIGHUP when the process has no
   * controlling terminal (in a terminal, SIGHUP shuts down; ignored from the
   * start, as under nohup, it stays ignored). SIGHUP, SIGUSR1 and SIGUSR2
   * left out are logged and ignored. `false` leaves them alone.
   */
  restartSignals?: Deno.Signal[] | false;
  /**
   * Hold 127.0.0.1:9229 in every generation, so that a SIGUSR1 cannot open
   * Deno's V8 inspector there for other local users. Default true; `false`
   * (or GRACEFUL_NO_INSPECTOR_GUARD=1) for debugging. It stands aside when
   * the process runs with --inspect.
   */
  inspectorGuard?: boolean;
  /** How long a new generation may take to become ready (ms). Default 30000. */
  startTimeout?: number;
  /**
   * Write this pidfile (and `<pidfile>.json` with the status) once ready;
   * every generation rewrites it; it is removed on shutdown.
   */
  pidfile?: string;
  /**
   * Application state handed from generation to generation: `save()` runs in
   * the old process just before the handover, `restore()` in the new one
   * before it listens. The state must be JSON.
   */
  handover?: {
    save(): unknown | Promise<unknown>;
    restore(state: unknown): void | Promise<void>;
  };
  /**
   * The admin page and API (off by default): `true` for the defaults, or
   * `{ path, token, listen, allowEntryOverride }`. Default path
   * `/debug/admin`. Without a token it is served only on a listener of its
   * own (default: a 0600 unix socket in a private directory, named in the
   * log); with one, on the app's listeners. The admin routes never reach the
   * handler.
   */
  admin?: boolean | AdminOptions;
  /**
   * A health check path for load balancers and orchestrators (off by
   * default): 200 while serving, 503 once this generation is shutting down.
   * A restart does not flip it: the next generation takes over the sockets.
   */
  healthPath?: string;
  /**
   * On shutdown (SIGTERM, `shutdown()`), answer the health check with 503 and
   * keep accepting for this long (ms) before draining, so that a load
   * balancer takes the instance out of rotation first. Default 0.
   */
  shutdownDelay?: number;
  /**
   * Must resolve before this process counts as ready (for example a cache
   * warm-up); in a restart, the old generation stops accepting only then.
   */
  readiness?: () => void | Promise<void>;
}

/** The server returned by {@linkcode serveGraceful}. */
export interface GracefulServer extends AsyncDisposable {
  /** The server's name. */
  readonly name: string;
  /** Resolves once every listener serves; rejects when listening failed. */
  readonly ready: Promise<void>;
  /** Resolves when the server has shut down; rejects when it could not start. */
  readonly finished: Promise<void>;
  /** The addresses served (empty until `ready`). */
  readonly addrs: Addr[];
  /** The first address served, like Deno.serve's `addr` (after `ready`). */
  readonly addr: Addr | undefined;
  /** The engine serving each listener, in `addrs` order. */
  readonly engines: ("native" | "node")[];
  /** Requests being served right now. */
  readonly inFlight: number;
  /** Open client connections. */
  readonly connections: number;
  /** Graceful shutdown: stop accepting, finish in-flight requests, close. */
  shutdown(): Promise<void>;
  /** Keep the process alive while serving (the default). */
  ref(): void;
  /** Let the process exit even though this server is serving. */
  unref(): void;
  /**
   * Restarts the whole process (every server in it): resolves when the new
   * generation serves; rejects with the reason when it did not, and this
   * generation keeps serving.
   */
  restart(options?: RestartOptions): Promise<RestartResult>;
  /** This process's generation, restarts and last restart outcome. */
  readonly status: ProcessStatus;
}

/** The three ways to call `serveGraceful`. */
export type ServeArgs =
  | [GracefulHandler]
  | [GracefulServeOptions, GracefulHandler]
  | [
    & GracefulServeOptions
    & ({ handler: GracefulHandler } | { fetch: GracefulHandler }),
  ];

/** The options and the handler, whichever way they were passed. */
export function normalizeArgs(args: ServeArgs): {
  options: GracefulServeOptions;
  handler: GracefulHandler;
} {
  if (typeof args[0] === "function") return { options: {}, handler: args[0] };
  const options = args[0] ?? {};
  const handler = args[1] ?? options.handler ?? options.fetch;
  if (typeof handler !== "function") {
    throw new TypeError(
      "serveGraceful needs a handler: serveGraceful(handler), " +
        "serveGraceful(options, handler) or serveGraceful({ handler })",
    );
  }
  return { options, handler };
}

/** The addresses asked for, and the one to open when none is given or inherited. */
export function specsOf(options: GracefulServeOptions): {
  specs: ListenSpec[];
  fallback: ListenSpec;
} {
  const hostname = options.hostname ?? "0.0.0.0";
  const fallback: ListenSpec = {
    transport: "tcp",
    hostname,
    port: options.port ?? 8000,
  };
  const specs = (options.listen ?? []).map(parseListenAddress);
  if (options.port !== undefined || options.hostname !== undefined) {
    if (options.listen === undefined) specs.push(fallback);
  }
  return { specs, fallback };
}

/** The default `onError`: log the error and answer 500. */
export function defaultOnError(error: unknown): Response {
  log.error("handler failed: {error}", { error });
  print(console.error, error);
  return new Response("Internal Server Error", { status: 500 });
}

/** Says where it listens, as Deno.serve does (https:// with TLS). */
export function defaultOnListen(addr: Addr, tls: boolean): void {
  if ("path" in addr) {
    print(console.log, `Listening on ${addr.path}`);
  } else {
    const host = addr.hostname.includes(":")
      ? `[${addr.hostname}]`
      : addr.hostname;
    const scheme = tls ? "https" : "http";
    print(console.log, `Listening on ${scheme}://${host}:${addr.port}/`);
  }
}

/** The TLS options, when `cert` and `key` are both given. */
export function tlsOf(options: GracefulServeOptions): TlsOptions | undefined {
  if (options.cert === undefined && options.key === undefined) return undefined;
  if (!options.cert || !options.key) {
    throw new TypeError("serveGraceful: `cert` and `key` go together");
  }
  return { cert: options.cert, key: options.key };
}
