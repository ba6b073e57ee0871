/**
 * `serveGraceful`: a drop-in for Deno.serve that serves on sockets passed via
 * LISTEN_FDS (or opens them itself), through Deno's own HTTP engine, and drains
 * gracefully.
 *
 * @module
 */

import { countServed, supervisorView } from "../workers/worker.ts";
import type { AdminStatus } from "./admin.ts";
import type {
  Addr,
  Engine,
  EngineBinding,
  EngineServeOptions,
  ErrorHandler,
  GracefulHandler,
  Listener,
  TlsOptions,
} from "../listen/types.ts";
import {
  formatAddr,
  type ListenSpec,
  parseListenAddress,
} from "../listen/address.ts";
import {
  acquireListeners,
  inheritedFds,
  releaseListener,
} from "../listen/registry.ts";
import {
  createTransplantEngine,
  type TransplantBinding,
  transplantUnavailable,
} from "../engine/transplant.ts";
import { type CheckResult, checkTransplant } from "../engine/check.ts";
import { assertDenoVersion } from "../os/deno_version.ts";
import { loadLogging, logger, print } from "../util/log.ts";
import { trace } from "../restart/trace.ts";
import {
  opensOwnAddresses,
  portableEngine,
  warnPlatformOnce,
} from "../os/platform.ts";
import { serveOwnAddress } from "../engine/own_address.ts";
import { reopenedSpecs, specOf } from "../restart/complete_restart.ts";
import {
  advertiseAdmin,
  helloSent,
  joinGeneration,
  type ProcessStatus,
  processStatus,
  processTotals,
  registerServer,
  restartProcess,
  stopProcess,
} from "../restart/generation.ts";
import type { RestartOptions, RestartResult } from "../restart/handover.ts";
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

type ServeArgs =
  | [GracefulHandler]
  | [GracefulServeOptions, GracefulHandler]
  | [
    & GracefulServeOptions
    & ({ handler: GracefulHandler } | { fetch: GracefulHandler }),
  ];

let nodeFallbackWarned = false;

/**
 * Serves HTTP like `Deno.serve`, on sockets inherited through systemd socket
 * activation (LISTEN_FDS) or opened here, and drains gracefully on SIGTERM,
 * SIGINT and SIGQUIT.
 *
 * @example Hello world
 * ```ts ignore
 * import { serveGraceful } from "./mod.ts";
 * serveGraceful((_req) => new Response("Hello!"));
 * ```
 *
 * @example Two ports, options first
 * ```ts ignore
 * import { serveGraceful } from "./mod.ts";
 * const server = serveGraceful(
 *   { name: "s1", listen: ["127.0.0.1:8100", "127.0.0.1:8101"] },
 *   (req, info) => new Response(`hi ${info.remoteAddr.transport}`),
 * );
 * await server.ready;
 * ```
 */
export function serveGraceful(handler: GracefulHandler): GracefulServer;
/**
 * Serves with options first and the handler second (like Deno.serve).
 *
 * @example
 * ```ts ignore
 * import { serveGraceful } from "./mod.ts";
 * serveGraceful({ port: 8080 }, () => new Response("ok"));
 * ```
 */
export function serveGraceful(
  options: GracefulServeOptions,
  handler: GracefulHandler,
): GracefulServer;
/**
 * Serves with the handler inside the options, as `handler` or `fetch`.
 *
 * @example
 * ```ts ignore
 * import { serveGraceful } from "./mod.ts";
 * serveGraceful({ port: 8080, fetch: () => new Response("ok") });
 * ```
 */
export function serveGraceful(
  options:
    & GracefulServeOptions
    & ({ handler: GracefulHandler } | { fetch: GracefulHandler }),
): GracefulServer;
export function serveGraceful(...args: ServeArgs): GracefulServer {
  assertDenoVersion();
  const { options, handler } = normalizeArgs(args);
  return new Server(options, handler);
}

function normalizeArgs(args: ServeArgs): {
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

function specsOf(options: GracefulServeOptions): {
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

function defaultOnError(error: unknown): Response {
  log.error("handler failed: {error}", { error });
  print(console.error, error);
  return new Response("Internal Server Error", { status: 500 });
}

/** Says where it listens, as Deno.serve does (https:// with TLS). */
function defaultOnListen(addr: Addr, tls: boolean): void {
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

/** What {@linkcode Server} prepares before it listens. */
interface Prepared {
  specs: ListenSpec[];
  fallback: ListenSpec;
  tls: TlsOptions | undefined;
  /** Why the native engine is not tried; undefined when it is. */
  notNative: string | undefined;
  handler: GracefulHandler;
  onError: ErrorHandler;
}

/** Says once per process that a listener falls back to node:http, and why. */
function warnNodeFallback(addr: Addr, reason: string): void {
  if (nodeFallbackWarned) return;
  nodeFallbackWarned = true;
  log.warn(
    "{addr}: the native engine failed its check ({reason}); serving " +
      "with node:http",
    { addr: formatAddr(addr), reason },
  );
  print(
    console.warn,
    `serveGraceful: native engine unavailable on ${formatAddr(addr)} ` +
      `(${reason}); using node:http`,
  );
}

let nodeEngine: Promise<Engine> | undefined;

/** node:http, loaded the first time a listener needs it. */
function loadNodeEngine(): Promise<Engine> {
  nodeEngine ??= import("../engine/node.ts").then((m) => m.createNodeEngine());
  return nodeEngine;
}

/** One listener, the engine chosen for it and why. */
interface Attached {
  binding: EngineBinding;
  engine: "native" | "node";
  why: string;
  /** The accept check still to come (in a new generation). */
  verify?: () => Promise<CheckResult>;
}

/** How long a new generation's accept check may wait for the old one's drain. */
const LATE_CHECK_LIMIT_MS = 60_000;

/**
 * Serves one listener: Deno.serve transplanted onto it, once its check
 * passed; node:http otherwise. The reason goes into the start-up log line.
 */
async function attachEngine(
  listener: Listener,
  options: EngineServeOptions,
  notNative: string | undefined,
  handover: boolean,
): Promise<Attached> {
  if (opensOwnAddresses()) return serveOwnAddress(listener, options);
  let reason = notNative;
  if (reason === undefined) {
    let binding: TransplantBinding | undefined;
    try {
      binding = createTransplantEngine().serve(listener, options);
    } catch (error) {
      reason = error instanceof Error ? error.message : String(error);
    }
    if (binding !== undefined) {
      const result = await checkTransplant(binding, {
        registrationOnly: handover,
      });
      trace("server: transplant checked");
      if (result.failure === undefined) {
        const transplanted = binding;
        return {
          binding,
          engine: "native",
          why: whyNative(result),
          verify: handover
            ? () =>
              checkTransplant(transplanted, {
                limitMs: LATE_CHECK_LIMIT_MS,
                signal: options.draining,
              })
            : undefined,
        };
      }
      reason = result.failure;
      await binding.discard();
    }
    warnNodeFallback(listener.addr, reason!);
  }
  const node = await loadNodeEngine();
  return {
    binding: node.serve(listener, options),
    engine: "node",
    why: reason!,
  };
}

function whyNative(result: CheckResult): string {
  return result.proof === "accept"
    ? "Deno.serve transplanted, checked by its own accept"
    : `Deno.serve transplanted, checked by its epoll registration ` +
      `(${result.note})`;
}

class Server implements GracefulServer {
  readonly name: string;
  readonly ready: Promise<void>;
  readonly finished: Promise<void>;
  #options: GracefulServeOptions;
  #handler: GracefulHandler;
  #listeners: Listener[] = [];
  #bindings: EngineBinding[] = [];
  #engines: ("native" | "node")[] = [];
  #draining = new AbortController();
  #shutdown: Promise<void> | undefined;
  #finish = Promise.withResolvers<void>();
  #refed = true;
  #stopping = false;
  #unregister: () => void;
  /** The admin API's own server, when it has a listener of its own. */
  #admin: { server: Server; removed(): void } | undefined;
  /** Resolves once the admin server has shut down (not for a handover). */
  #adminStopped: Promise<void> | undefined;
  /** Serves a listener (set once started): a complete restart reuses it. */
  #attachWith: ((listener: Listener) => Promise<Attached>) | undefined;
  /** What a complete restart listens on again when the next one failed. */
  #vacated: ListenSpec[] | undefined;
  /** The drain that a complete restart started. */
  #vacateDrain: Promise<void> | undefined;

  constructor(options: GracefulServeOptions, handler: GracefulHandler) {
    this.name = options.name ?? "http";
    this.#options = options;
    this.#handler = handler;
    this.finished = this.#finish.promise;
    this.ready = this.#start();
    this.ready.catch((error) => this.#finish.reject(error));
    this.#unregister = registerServer(this, options);
    options.signal?.addEventListener("abort", () => this.shutdown(), {
      once: true,
    });
  }

  get addrs(): Addr[] {
    return this.#listeners.map((l) => l.addr);
  }

  get addr(): Addr | undefined {
    return this.#listeners[0]?.addr;
  }

  get drainTimeout(): number {
    return this.#options.drainTimeout ?? 30_000;
  }

  get engines(): ("native" | "node")[] {
    return [...this.#engines];
  }

  get inFlight(): number {
    return this.#bindings.reduce((n, b) => n + b.inFlight, 0);
  }

  get connections(): number {
    return this.#bindings.reduce((n, b) => n + b.connections, 0);
  }

  async #start(): Promise<void> {
    const options = this.#options;
    trace("server: starting");
    warnPlatformOnce();
    // Bad LISTEN_FDS fail here, before this process opens any socket (the
    // control connection, the native engine's probe) that could take the
    // number of an fd they name.
    let fdsError: unknown;
    try {
      inheritedFds();
    } catch (error) {
      fdsError = error;
    }
    // The handshake with the previous generation (when there is one) runs
    // while this one prepares everything that does not depend on the state
    // it hands over: a handover then takes about as long as a cold start.
    // The hello goes out first: preparing blocks the event loop for
    // milliseconds (module loads), and with it the hello.
    const joining = joinGeneration();
    joining.catch(() => {}); // settled below
    await helloSent();
    const [joined, prepared] = await Promise.allSettled([
      joining,
      fdsError === undefined ? this.#prepare() : Promise.reject(fdsError),
    ]);
    // A failed join comes first: without the channel, nobody hears why.
    if (joined.status === "rejected") throw joined.reason;
    if (prepared.status === "rejected") throw prepared.reason;
    const state = joined.value;
    if (state && options.handover && this.name in state.app) {
      await options.handover.restore(state.app[this.name]);
    }
    const { fallback, tls, notNative, handler, onError } = prepared.value;
    // The windows mode passes no fds: the next one opens the same addresses.
    const specs = reopenedSpecs(this.name, state) ?? prepared.value.specs;
    const draining = this.#draining.signal;
    // For reoccupy() (the windows mode's rollback), with the draining signal
    // of that time.
    this.#attachWith = (listener) =>
      attachEngine(
        listener,
        {
          handler,
          onError,
          tls,
          draining: this.#draining.signal,
        },
        notNative,
        false,
      );
    const listeners = await acquireListeners(
      { name: this.name, specs, fallback, restarted: state !== undefined },
    );
    const serveOptions = { handler, onError, tls, draining };
    const attached = await Promise.allSettled(
      listeners.map((l) =>
        attachEngine(l, serveOptions, notNative, state !== undefined)
      ),
    );
    const failed = attached.find((a) => a.status === "rejected");
    if (failed) {
      for (const a of attached) {
        if (a.status === "fulfilled") a.value.binding.abort();
      }
      await Promise.all(
        attached.map((a) =>
          a.status === "fulfilled" ? a.value.binding.stopAccepting() : undefined
        ),
      );
      for (const listener of listeners) releaseListener(listener);
      throw (failed as PromiseRejectedResult).reason;
    }
    const whys: string[] = [];
    for (const [index, result] of attached.entries()) {
      const { binding, engine, why, verify } =
        (result as PromiseFulfilledResult<Attached>).value;
      this.#bindings.push(binding);
      this.#engines.push(engine);
      this.#listeners.push(listeners[index]);
      whys.push(why);
      if (verify) this.#verifyLater(binding, verify, serveOptions);
    }
    trace("server: listening");
    if (this.#shutdown) return;
    if (!this.#refed) this.unref();
    const onListen = options.onListen ??
      ((addr: Addr) => defaultOnListen(addr, tls !== undefined));
    for (const listener of listeners) {
      const index = this.#listeners.indexOf(listener);
      log.info("listening on {addr} (fd {fd}{how}, {engine} engine: {why})", {
        addr: formatAddr(listener.addr),
        fd: listener.fd,
        how: listener.inherited ? ", inherited" : "",
        engine: this.#engines[index],
        why: whys[index],
      });
      onListen(listener.addr);
    }
    // LogTape (npm) loads once this server serves, off its way there.
    loadLogging().catch(() => {});
    try {
      await this.#admin?.server.ready;
      await options.readiness?.();
    } catch (error) {
      // It may already have accepted requests on the shared sockets: finish
      // them before reporting the failure (the process may exit right after).
      this.#stopping = true;
      await this.#drainNow(false);
      throw error;
    }
  }

  /**
   * A new generation's accept check, once the old one drains: on failure,
   * the listener moves to node:http.
   */
  #verifyLater(
    binding: EngineBinding,
    verify: () => Promise<CheckResult>,
    options: EngineServeOptions,
  ): void {
    this.ready.then(async () => {
      const result = await verify();
      const index = this.#bindings.indexOf(binding);
      if (result.failure === undefined) {
        trace("server: transplant accepted");
        return;
      }
      if (index < 0 || this.#stopping || this.#shutdown) return;
      const listener = this.#listeners[index];
      warnNodeFallback(listener.addr, result.failure);
      const node = (await loadNodeEngine()).serve(listener, options);
      if (!this.#refed) node.unref();
      this.#bindings[index] = node;
      this.#engines[index] = "node";
      await (binding as TransplantBinding).discard();
    }).catch(() => {});
  }

  /**
   * Everything the server needs before it listens that does not depend on
   * the previous generation's state: addresses, TLS, engines, the handler.
   */
  async #prepare(): Promise<Prepared> {
    const options = this.#options;
    const { specs, fallback } = specsOf(options);
    const tls = tlsOf(options);
    const asked = options.engine ?? "auto";
    const wanted = portableEngine(asked);
    const notNative = wanted !== "node"
      ? transplantUnavailable()
      : asked === "node"
      ? 'engine: "node" was asked for'
      : "this platform mode serves with node:http";
    const handler = await this.#routedHandler();
    trace("server: engines ready");
    const onError = options.onError ?? defaultOnError;
    return { specs, fallback, tls, notNative, handler, onError };
  }

  /** The app handler, behind the health and admin routes when configured. */
  async #routedHandler(): Promise<GracefulHandler> {
    const app = countServed(this.#handler);
    const healthPath = this.#options.healthPath;
    const adminOptions = this.#options.admin === true
      ? {}
      : this.#options.admin || undefined;
    let admin = adminOptions
      ? (await import("./admin.ts")).createAdmin(
        adminOptions,
        {
          status() {
            // A worker answers from its supervisor's view.
            const view = supervisorView() as AdminStatus | undefined;
            return view ?? { ...processStatus(), ...processTotals() };
          },
          restart(options) {
            return restartProcess(options);
          },
          shutdown() {
            stopProcess("by the admin API");
          },
        },
      )
      : undefined;
    if (admin && adminOptions) {
      const own = await import("./admin_listener.ts");
      if (own.ownAdminListener(adminOptions)) {
        this.#serveAdminApart(own, adminOptions, admin);
        admin = undefined;
      }
    }
    if (healthPath === undefined && admin === undefined) return app;
    const health = (): Response =>
      this.#stopping
        ? new Response("shutting down\n", {
          status: 503,
          headers: { "cache-control": "no-store", "connection": "close" },
        })
        : new Response("ok\n", { headers: { "cache-control": "no-store" } });
    return function routed(request, info) {
      if (healthPath !== undefined && pathOf(request.url) === healthPath) {
        return health();
      }
      return admin?.handle(request, info) ?? app(request, info);
    };
  }

  /**
   * Serves the admin routes on a listener of their own (admin_listener.ts):
   * a server of this process like any other, so that its socket is passed to
   * the next generation.
   */
  #serveAdminApart(
    own: typeof import("./admin_listener.ts"),
    options: AdminOptions,
    router: import("./admin.ts").AdminRouter,
  ): void {
    const plan = own.planAdminListener(options);
    const parent = this.#options;
    const server = new Server({
      name: own.ADMIN_SERVER_NAME,
      listen: [plan.listen],
      shutdownSignals: parent.shutdownSignals,
      restartSignals: parent.restartSignals,
      drainTimeout: parent.drainTimeout,
      onListen() {
        plan.placed();
        advertiseAdmin(plan.address);
        log.info("admin API on {address}", { address: plan.address });
      },
    }, (request, info) =>
      router.handle(request, info) ??
        new Response("not found\n", { status: 404 }));
    this.#admin = { server, removed: plan.removed };
  }

  saveState(): unknown {
    return this.#options.handover?.save();
  }

  restart(options?: RestartOptions): Promise<RestartResult> {
    return restartProcess(options);
  }

  get status(): ProcessStatus {
    return processStatus();
  }

  shutdown(): Promise<void> {
    if (!this.#shutdown) {
      this.#stopping = true;
      const delay = this.#options.shutdownDelay ?? 0;
      // The admin server stops with the app (`finished` waits for it); its
      // socket's path goes only here: a handover keeps it for the next
      // generation.
      const admin = this.#admin;
      this.#adminStopped = admin?.server.shutdown().then(() => admin.removed());
      this.#shutdown = delay > 0 ? this.#delayThenDrain(delay) : this.#drain();
    }
    return this.#shutdown;
  }

  async vacate(): Promise<void> {
    await this.ready;
    await this.#stopAccepting();
    this.#vacated = this.#listeners.map((l) => specOf(l.addr));
    // The addresses are free now: the next process may open them while the
    // requests in flight finish here.
    this.#vacateDrain = this.#drainOpen();
  }

  async reoccupy(): Promise<void> {
    const specs = this.#vacated;
    const attachWith = this.#attachWith;
    if (!specs || !attachWith || this.#shutdown) return;
    this.#vacated = undefined;
    this.#draining = new AbortController();
    this.#bindings = [];
    this.#listeners = [];
    this.#engines = [];
    const fallback = specs[0];
    const listeners = await acquireListeners({
      name: this.name,
      specs,
      fallback,
    });
    for (const listener of listeners) {
      const { binding, engine } = await attachWith(listener);
      this.#bindings.push(binding);
      this.#engines.push(engine);
      this.#listeners.push(listener);
    }
    if (!this.#refed) this.unref();
    for (const listener of this.#listeners) {
      log.info("listening again on {addr}", {
        addr: formatAddr(listener.addr),
      });
    }
  }

  drainForHandover(): Promise<void> {
    this.#shutdown ??= this.#drain();
    return this.#shutdown;
  }

  async #delayThenDrain(delay: number): Promise<void> {
    log.info("health answers 503; draining in {delay} ms", { delay });
    await new Promise((resolve) => setTimeout(resolve, delay));
    await this.#drain();
  }

  async #drain(): Promise<void> {
    try {
      await this.ready;
    } catch {
      this.#unregister();
      return; // never started (or drained already); `finished` rejected
    }
    await this.#drainNow();
  }

  /** Stop accepting, drain (up to drainTimeout); then resolve `finished` if asked. */
  async #drainNow(finish = true): Promise<void> {
    // Vacated for a complete restart: draining already.
    if (this.#vacated === undefined) await this.#stopAndDrain();
    else await this.#vacateDrain;
    if (!finish) return;
    await this.#adminStopped;
    this.#unregister();
    log.info("shut down");
    this.#finish.resolve();
  }

  async #stopAndDrain(): Promise<void> {
    await this.#stopAccepting();
    await this.#drainOpen();
  }

  async #stopAccepting(): Promise<void> {
    trace("server: stopping accepting");
    this.#draining.abort();
    await Promise.all(this.#bindings.map((b) => b.stopAccepting()));
    trace("server: stopped accepting");
    for (const listener of this.#listeners) releaseListener(listener);
  }

  /** Drains the open connections (up to drainTimeout). */
  async #drainOpen(): Promise<void> {
    const drainTimeout = this.drainTimeout;
    const idleGrace = this.#options.idleGrace ?? 500;
    const bindings = [...this.#bindings];
    log.info("draining {connections} connections ({inFlight} requests)", {
      connections: this.connections,
      inFlight: this.inFlight,
    });
    const drained = Promise.all(bindings.map((b) => b.drain(idleGrace)));
    let timer: ReturnType<typeof setTimeout> | undefined;
    const timedOut = new Promise<boolean>((resolve) => {
      timer = setTimeout(() => resolve(true), drainTimeout);
    });
    const expired = await Promise.race([drained.then(() => false), timedOut]);
    clearTimeout(timer);
    if (expired) {
      log.warn("drain timeout ({ms} ms): closing {connections} connections", {
        ms: drainTimeout,
        connections: this.connections,
      });
      for (const binding of bindings) binding.abort();
    }
  }

  ref(): void {
    this.#refed = true;
    for (const binding of this.#bindings) binding.ref();
    this.#admin?.server.ref();
  }

  unref(): void {
    this.#refed = false;
    for (const binding of this.#bindings) binding.unref();
    this.#admin?.server.unref();
  }

  [Symbol.asyncDispose](): Promise<void> {
    return this.shutdown();
  }
}

/** The path of an absolute request URL, without parsing all of it. */
function pathOf(url: string): string {
  const start = url.indexOf("/", url.indexOf("//") + 2);
  if (start < 0) return "/";
  let end = url.length;
  const query = url.indexOf("?", start);
  if (query >= 0) end = query;
  const hash = url.indexOf("#", start);
  if (hash >= 0 && hash < end) end = hash;
  return url.slice(start, end);
}

function tlsOf(options: GracefulServeOptions): TlsOptions | undefined {
  if (options.cert === undefined && options.key === undefined) return undefined;
  if (!options.cert || !options.key) {
    throw new TypeError("serveGraceful: `cert` and `key` go together");
  }
  return { cert: options.cert, key: options.key };
}
