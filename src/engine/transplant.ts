/**
 * The "native" engine: Deno.serve itself serves the listening socket, by a
 * transplant. Deno.serve cannot listen on an fd (denoland/deno#6529,
 * #14006), so:
 *
 * 1. Deno.serve starts on a placeholder of the same kind: TCP on
 *    127.0.0.1:0 (with the cert and key for TLS), or a unix path in a
 *    private 0700 directory.
 * 2. The placeholder's fd is found in /proc/self/fd by its address, and the
 *    runtime's epoll registration of it in /proc/self/fdinfo.
 * 3. The real socket gets O_NONBLOCK (systemd passes blocking sockets, and
 *    the runtime would block in accept()), and is dup2()ed over the
 *    placeholder's fd. That closes the placeholder socket, and its epoll
 *    entry goes with it.
 * 4. The same fd is registered again with the same events and token, so
 *    that the runtime's accept loop, waiting on that token, now accepts
 *    from the real socket. No JavaScript runs per connection.
 *
 * All of it happens in one synchronous stretch after Deno.serve returns:
 * the runtime accepts only once the event loop turns, so the placeholder
 * never has a connection accepted (one queued on it is refused when it
 * closes), and the app's handler is not reached before the swap either.
 *
 * This relies on how the runtime registers a listener, so the server checks
 * each transplant (check.ts) before it counts on it.
 *
 * Steps 2 to 4 ({@linkcode swapListener}) work on a Deno.listen placeholder
 * as well, which the runtime registers the same way: the inspector guard
 * has its inherited socket accepted by a Deno.listen with them.
 *
 * Stopping accepting, without ending the server: the fd is taken out of the
 * epoll instance, and an inert socket is dup2()ed over it, so that the
 * runtime's fd number stays valid (it closes it with the server) while this
 * process no longer holds the listening socket.
 *
 * @module
 */

import type {
  Addr,
  Engine,
  EngineBinding,
  EngineServeOptions,
  GracefulHandlerInfo,
  Listener,
} from "../listen/types.ts";
import {
  acceptedFds,
  type EpollRegistration,
  epollRegistrationOf,
  listeningFdFor,
} from "./fds.ts";
import { engineCallsAvailable, epollAdd, epollDelete } from "../os/epoll.ts";
import { closeFd, dupFdOver, setNonBlocking } from "../os/fd.ts";
import { libcUnavailableReason } from "../os/libc.ts";
import { inertListeningSocket, shutdownSocket } from "../os/socket.ts";
import { trace } from "../restart/trace.ts";
import { formatAddr } from "../listen/address.ts";
import { errorMessage } from "../util/error_message.ts";

/**
 * Why the transplant cannot be tried in this process (no FFI, no /proc), or
 * undefined when it can.
 */
export function transplantUnavailable(): string | undefined {
  if (Deno.build.os !== "linux") return `it needs Linux, not ${Deno.build.os}`;
  if (!engineCallsAvailable()) {
    return `no FFI for dup2/epoll_ctl (${libcUnavailableReason()})`;
  }
  try {
    Deno.statSync("/proc/self/fdinfo");
  } catch (error) {
    return `/proc/self/fdinfo is not readable (${errorMessage(error)})`;
  }
  return undefined;
}

/** Where a swapped-in listening socket is: the runtime's fd, and its registration. */
export interface SwappedListener {
  /** The runtime's fd for the listener (the placeholder's number). */
  readonly fd: number;
  /** How it is registered now. */
  readonly registration: EpollRegistration;
}

/**
 * Steps 2 to 4 above: puts the listening socket `real` in place of the
 * runtime's listener bound to `placeholder` (a Deno.serve's or a
 * Deno.listen's), so that the runtime's accept loop for it accepts from
 * `real`, under the placeholder's fd number. `real` stays open: the caller
 * closes it when it keeps no copy of its own. Throws naming the step that
 * failed; once the placeholder is gone, the runtime's fd is left inert.
 */
export function swapListener(
  real: number,
  placeholder: Addr,
): SwappedListener {
  const fd = listeningFdFor(placeholder, [real]);
  if (fd === undefined) {
    throw new Error(
      `the placeholder's fd (${formatAddr(placeholder)}) is not in ` +
        `/proc/self/fd`,
    );
  }
  const registration = epollRegistrationOf(fd);
  if (registration === undefined) {
    throw new Error(
      `the runtime's epoll registration of fd ${fd} is not in ` +
        `/proc/self/fdinfo`,
    );
  }
  if (!setNonBlocking(real)) {
    throw new Error(`cannot set O_NONBLOCK on fd ${real}`);
  }
  if (!dupFdOver(real, fd)) throw new Error(`dup2(${real}, ${fd}) failed`);
  const exclusive = exclusiveRegistration(registration);
  if (!epollAdd(registration.epollFd, fd, exclusive)) {
    // The placeholder is gone and the runtime's fd is the real socket, but
    // unregistered: this process must not hold the socket there.
    makeInert(registration.epollFd, fd);
    throw new Error(`epoll_ctl(ADD) of fd ${fd} failed`);
  }
  return { fd, registration: exclusive };
}

/**
 * This process stops holding the listening socket at the runtime's `fd`:
 * out of the epoll instance, and an inert socket in its place, so that the
 * fd number stays valid (the runtime closes it with its listener).
 */
export function makeInert(epollFd: number, fd: number): void {
  epollDelete(epollFd, fd);
  const inert = inertListeningSocket();
  if (inert >= 0) {
    dupFdOver(inert, fd);
    closeFd(inert);
  }
}

/** A transplanted listener: what the check and the server may ask of it. */
export interface TransplantBinding extends EngineBinding {
  /** The runtime's fd for the listener (the placeholder's number). */
  readonly fd: number;
  /** How the runtime registered it, as read before the swap. */
  readonly registration: EpollRegistration;
  /** The listener served. */
  readonly listener: Listener;
  /** Ends the transplanted server at once (a failed check): connections are cut. */
  discard(): Promise<void>;
}

/**
 * Creates the transplant engine (named "native": Deno's own HTTP engine).
 * Its `serve` throws, with the step that failed, when the transplant cannot
 * be done; nothing of the placeholder is left then.
 */
export function createTransplantEngine(): TransplantEngine {
  return {
    name: "native",
    serve(listener, options) {
      return new Transplant(listener, options);
    },
  };
}

/** The transplant engine: its bindings are {@linkcode TransplantBinding}s. */
export interface TransplantEngine extends Engine {
  /** Transplants Deno.serve onto `listener`; throws when it cannot. */
  serve(listener: Listener, options: EngineServeOptions): TransplantBinding;
}

/** The handler info given to the app: Deno's, plus `draining`. */
class TransplantInfo implements GracefulHandlerInfo {
  #info: Deno.ServeHandlerInfo;
  #unix: Deno.UnixAddr | undefined;
  readonly draining: AbortSignal;
  constructor(
    info: Deno.ServeHandlerInfo,
    draining: AbortSignal,
    unix: Deno.UnixAddr | undefined,
  ) {
    this.#info = info;
    this.draining = draining;
    this.#unix = unix;
  }
  get remoteAddr(): Addr {
    // On a unix socket Deno.serve reports its own listener's path: the
    // placeholder's here, so the real one is given instead.
    return this.#unix ?? this.#info.remoteAddr as Addr;
  }
  get completed(): Promise<void> {
    return this.#info.completed;
  }
}

/** A Deno.serve started on a placeholder, and where it is. */
interface Placeholder {
  server: Deno.HttpServer<Deno.NetAddr | Deno.UnixAddr>;
  addr: Addr;
  /** The private directory of a unix placeholder. */
  dir: string | undefined;
}

class Transplant implements TransplantBinding {
  readonly listener: Listener;
  readonly fd: number;
  readonly registration: EpollRegistration;
  #options: EngineServeOptions;
  #unix: Deno.UnixAddr | undefined;
  #server: Deno.HttpServer<Deno.NetAddr | Deno.UnixAddr>;
  #swapped = false;
  #draining = false;
  #inFlight = 0;
  #sockets = new Set<WebSocket>();
  #stopped = false;
  #drained: Promise<void> | undefined;
  #shutdown: Promise<void> | undefined;
  #aborted = false;
  #abortedSignal = Promise.withResolvers<void>();

  constructor(listener: Listener, options: EngineServeOptions) {
    this.listener = listener;
    this.#options = options;
    if ("path" in listener.addr) {
      this.#unix = { transport: "unix", path: listener.addr.path };
    }
    const placeholder = this.#startPlaceholder();
    this.#server = placeholder.server;
    try {
      const swapped = swapListener(listener.fd, placeholder.addr);
      this.fd = swapped.fd;
      this.registration = swapped.registration;
      this.#swapped = true;
      trace("transplant: swapped");
    } catch (error) {
      placeholder.server.shutdown().catch(noop);
      throw new Error(
        `transplant onto ${formatAddr(listener.addr)}: ${errorMessage(error)}`,
        {
          cause: error,
        },
      );
    } finally {
      if (placeholder.dir !== undefined) removeQuietly(placeholder.dir);
    }
  }

  #startPlaceholder(): Placeholder {
    // Deno.serve gives a handler that takes no arguments no Request at all
    // (it skips making one): so does the wrapper of such an app handler.
    const handler = this.#options.handler.length === 0
      ? () => this.#handleBare()
      : this.#handle.bind(this);
    const onError = this.#options.onError;
    const onListen = noop;
    if ("path" in this.listener.addr) {
      // mkdtemp: a directory only this user can enter, so that nobody else
      // can connect to the placeholder while it exists.
      const dir = Deno.makeTempDirSync({ prefix: "graceful-placeholder-" });
      const path = `${dir}/s`;
      try {
        const server = Deno.serve({ path, handler, onError, onListen });
        return { server, addr: { transport: "unix", path }, dir };
      } catch (error) {
        removeQuietly(dir);
        throw error;
      }
    }
    const tls = this.#options.tls;
    const server = Deno.serve({
      hostname: "127.0.0.1",
      port: 0,
      handler,
      onError,
      onListen,
      ...(tls ? { cert: tls.cert, key: tls.key } : {}),
    });
    const addr = server.addr as Deno.NetAddr;
    return {
      server,
      addr: { transport: "tcp", hostname: addr.hostname, port: addr.port },
      dir: undefined,
    };
  }

  get connections(): number {
    return acceptedFds(this.listener.addr).length;
  }

  get inFlight(): number {
    return this.#inFlight;
  }

  #handle(
    request: Request,
    info: Deno.ServeHandlerInfo,
  ): Response | Promise<Response> {
    return this.#run(() =>
      this.#options.handler(
        request,
        new TransplantInfo(info, this.#options.draining, this.#unix),
      )
    );
  }

  #handleBare(): Response | Promise<Response> {
    return this.#run(this.#options.handler as () => Response);
  }

  /** Runs the app's handler, counted in flight until it returned. */
  #run(
    call: () => Response | Promise<Response>,
  ): Response | Promise<Response> {
    // Only a connection accepted from the placeholder could get here before
    // the swap, and none is: the runtime accepts once the event loop turns.
    if (!this.#swapped) return new Response(null, { status: 503 });
    this.#inFlight++;
    let result: Response | Promise<Response>;
    try {
      result = call();
    } catch (error) {
      this.#inFlight--;
      throw error;
    }
    if (result instanceof Promise) {
      return result.then(
        (response) => this.#respond(response),
        (error) => {
          this.#inFlight--;
          throw error;
        },
      );
    }
    return this.#respond(result);
  }

  #respond(response: Response): Response {
    this.#inFlight--;
    if (!(response instanceof Response)) return response;
    if (response.status === 101) {
      this.#track(response);
      return response;
    }
    // While draining, a keep-alive connection ends after this response.
    // (HTTP/2 drops the header; its connections get a GOAWAY at shutdown.)
    if (this.#draining) return withConnectionClose(response);
    return response;
  }

  /** Tracks an upgraded WebSocket until it closes. */
  #track(response: Response): void {
    const socket = webSocketOf(response);
    if (!socket) return;
    this.#sockets.add(socket);
    socket.addEventListener("open", () => {
      if (this.#draining) socket.close(1001, "server restarting");
    }, { once: true });
    socket.addEventListener("close", () => {
      this.#sockets.delete(socket);
    }, { once: true });
  }

  stopAccepting(): Promise<void> {
    if (!this.#stopped) {
      this.#stopped = true;
      if (this.#swapped) makeInert(this.registration.epollFd, this.fd);
      trace("transplant: stopped accepting");
    }
    return Promise.resolve();
  }

  drain(idleGraceMs: number): Promise<void> {
    this.#drained ??= this.#drainFor(idleGraceMs);
    return this.#drained;
  }

  async #drainFor(idleGraceMs: number): Promise<void> {
    this.#draining = true;
    // Responses carry `Connection: close` for idleGrace first; a shutdown
    // right away would close idle keep-alive connections while their
    // clients may be sending on them.
    if (idleGraceMs > 0 && this.connections > 0) {
      await new Promise((resolve) => setTimeout(resolve, idleGraceMs));
    }
    // Deno.serve's shutdown closes its WebSockets (1001), and they are the
    // app's to close while draining (or the drain timeout's): the shutdown
    // waits for them. Keep-alive connections meanwhile end after their next
    // response.
    while (this.#sockets.size > 0 && !this.#aborted) {
      await Promise.race([
        this.#abortedSignal.promise,
        ...[...this.#sockets].map((socket) =>
          new Promise((resolve) =>
            socket.addEventListener("close", resolve, { once: true })
          )
        ),
      ]);
    }
    await this.#end();
  }

  /** Deno.serve's graceful shutdown: GOAWAY, in-flight requests finish. */
  #end(): Promise<void> {
    this.#shutdown ??= (async () => {
      await this.#server.shutdown();
      await this.#server.finished;
    })();
    return this.#shutdown;
  }

  abort(): void {
    this.#aborted = true;
    this.#abortedSignal.resolve();
    // Deno.serve has no way to cut its connections: shut down the sockets
    // themselves, and the runtime closes them.
    for (const fd of acceptedFds(this.listener.addr)) shutdownSocket(fd);
    this.#end().catch(noop);
  }

  async discard(): Promise<void> {
    await this.stopAccepting();
    this.abort();
    await this.#end().catch(noop);
  }

  ref(): void {
    this.#server.ref();
  }

  unref(): void {
    this.#server.unref();
  }
}

function noop(): void {}

function removeQuietly(path: string): void {
  try {
    Deno.removeSync(path, { recursive: true });
  } catch {
    // already gone
  }
}

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

const EPOLLRDHUP = 0x2000;
const EPOLLEXCLUSIVE = 0x10000000;

/**
 * The listener's registration with EPOLLEXCLUSIVE: when processes share one
 * accept queue (workers, or two generations during a handover), a new
 * connection wakes one epoll instance that waits, not all of them, and a busy
 * one is passed over. The kernel refuses EPOLLRDHUP with it; a listening
 * socket never gets that event anyway.
 */
function exclusiveRegistration(
  registration: EpollRegistration,
): EpollRegistration {
  return {
    ...registration,
    events: ((registration.events & ~EPOLLRDHUP) | EPOLLEXCLUSIVE) >>> 0,
  };
}
