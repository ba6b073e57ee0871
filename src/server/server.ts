/**
 * The server behind `serveGraceful`: it owns its listeners' lifecycle. It
 * starts joined with the previous generation's handover, puts the routes in
 * front of the handler (routes.ts), serves each listener with an engine
 * (engine_choice.ts), and shuts down through its drain (drain.ts); a
 * complete restart vacates and may reoccupy its addresses.
 *
 * @module
 */

import type {
  Addr,
  EngineBinding,
  EngineServeOptions,
  ErrorHandler,
  GracefulHandler,
  Listener,
  TlsOptions,
} from "../listen/types.ts";
import { formatAddr, type ListenSpec } from "../listen/address.ts";
import {
  acquireListeners,
  inheritedFds,
  releaseListener,
} from "../listen/registry.ts";
import type { TransplantBinding } from "../engine/transplant.ts";
import type { CheckResult } from "../engine/check.ts";
import { loadLogging, logger } from "../util/log.ts";
import { trace } from "../restart/trace.ts";
import { warnPlatformOnce } from "../os/platform.ts";
import { reopenedSpecs, specOf } from "../restart/complete_restart.ts";
import {
  advertiseAdmin,
  type ProcessStatus,
  processStatus,
  registerServer,
  restartProcess,
} from "../restart/generation.ts";
import type {
  RestartOptions,
  RestartResult,
} from "../restart/handover_types.ts";
import { helloSent, joinGeneration } from "../restart/join.ts";
import type { AdminOptions, AdminRouter } from "./admin.ts";
import {
  defaultOnError,
  defaultOnListen,
  type GracefulServeOptions,
  type GracefulServer,
  specsOf,
  tlsOf,
} from "./options.ts";
import {
  attachAll,
  type Attached,
  attachEngine,
  loadNodeEngine,
  logListening,
  notNativeReason,
  warnNodeFallback,
} from "./engine_choice.ts";
import { routedHandler } from "./routes.ts";
import { drainBindings } from "./drain.ts";

const log = logger("server");

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

/** One `serveGraceful` server. */
export class Server implements GracefulServer {
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
    // it hands over, so that a handover does not wait for the two in turn.
    // The hello goes out first: preparing blocks the event loop (module
    // loads), and with it the hello.
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
    const serveOptions = {
      handler,
      onError,
      tls,
      draining: this.#draining.signal,
    };
    // For reoccupy() (the windows mode's rollback), with the draining signal
    // of that time.
    this.#attachWith = (listener) =>
      attachEngine(
        listener,
        { ...serveOptions, draining: this.#draining.signal },
        notNative,
        false,
      );
    const listeners = await acquireListeners(
      { name: this.name, specs, fallback, restarted: state !== undefined },
    );
    const attached = await attachAll(
      listeners,
      serveOptions,
      notNative,
      state !== undefined,
    );
    const whys: string[] = [];
    for (
      const [index, { binding, engine, why, verify }] of attached.entries()
    ) {
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
      logListening(listener, this.#engines[index], whys[index]);
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
    const notNative = notNativeReason(options.engine ?? "auto");
    // The app handler, behind the health and admin routes when configured.
    const handler = await routedHandler(this.#handler, {
      healthPath: options.healthPath,
      admin: options.admin,
      stopping: () => this.#stopping,
      serveApart: (own, admin, router) =>
        this.#serveAdminApart(own, admin, router),
    });
    trace("server: engines ready");
    const onError = options.onError ?? defaultOnError;
    return { specs, fallback, tls, notNative, handler, onError };
  }

  /**
   * Serves the admin routes on a listener of their own (admin_listener.ts):
   * a server of this process like any other, so that its socket is passed to
   * the next generation.
   */
  #serveAdminApart(
    own: typeof import("./admin_listener.ts"),
    options: AdminOptions,
    router: AdminRouter,
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
    if (this.#vacated === undefined) {
      await this.#stopAccepting();
      await this.#drainOpen();
    } else {
      await this.#vacateDrain;
    }
    if (!finish) return;
    await this.#adminStopped;
    this.#unregister();
    log.info("shut down");
    this.#finish.resolve();
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
    await drainBindings([...this.#bindings], {
      drainTimeout: this.drainTimeout,
      idleGrace: this.#options.idleGrace ?? 500,
    });
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
