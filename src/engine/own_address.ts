/**
 * The windows mode's engine: plain Deno.serve on the address the process
 * opens itself. No fd is passed, no FFI is used and /proc is not read, so it
 * runs wherever Deno.serve does (Windows included), with everything Deno.serve
 * has (HTTP/2 by ALPN and with prior knowledge, WebSockets).
 *
 * The registry only reserves the address in this mode (a listener with no
 * fd); {@linkcode serveOwnAddress} opens it, and writes the address the
 * kernel gave (port 0) back into the listener, where the pidfile, the status
 * and the next generation read it.
 *
 * Deno.serve cannot stop accepting without ending its server: stopping
 * accepting is its graceful shutdown, which frees the address at once while
 * the requests in flight finish (idle keep-alive connections close then, as
 * a complete restart refuses new connections anyway).
 *
 * @module
 */

import type {
  Addr,
  EngineBinding,
  EngineServeOptions,
  GracefulHandlerInfo,
  Listener,
} from "../listen/types.ts";
import { formatAddr } from "../listen/address.ts";
import { errorMessage } from "../util/error_message.ts";

/** One listener served, the engine's name and why, for the start-up line. */
export interface OwnAddressAttached {
  /** The binding that serves the listener. */
  binding: EngineBinding;
  /** Deno's own HTTP engine. */
  engine: "native";
  /** Why this engine serves. */
  why: string;
}

/**
 * Serves `listener`'s address with Deno.serve, opened here (the windows
 * mode). Throws a one-line error naming the address when it cannot listen.
 */
export function serveOwnAddress(
  listener: Listener,
  options: EngineServeOptions,
): OwnAddressAttached {
  return {
    binding: new OwnAddress(listener, options),
    engine: "native",
    why: "Deno.serve on the address it opened itself (windows mode)",
  };
}

class OwnAddress implements EngineBinding {
  #options: EngineServeOptions;
  #server: Deno.HttpServer<Deno.NetAddr | Deno.UnixAddr>;
  #inFlight = 0;
  #shutdown: Promise<void> | undefined;
  #aborted = Promise.withResolvers<void>();

  constructor(listener: Listener, options: EngineServeOptions) {
    this.#options = options;
    const handler = options.handler.length === 0
      ? () => this.#run(options.handler as () => Response)
      : (request: Request, info: Deno.ServeHandlerInfo) =>
        this.#run(() => options.handler(request, infoOf(info, options)));
    const common = { handler, onError: options.onError, onListen: noop };
    const addr = listener.addr;
    const tls = options.tls;
    try {
      this.#server = "path" in addr
        ? Deno.serve({ ...common, path: addr.path })
        : Deno.serve({
          ...common,
          hostname: addr.hostname,
          port: addr.port,
          ...(tls ? { cert: tls.cert, key: tls.key } : {}),
        });
    } catch (error) {
      throw new Error(
        `cannot listen on ${formatAddr(addr)}: ${errorMessage(error)}`,
        { cause: error },
      );
    }
    listener.addr = addrOf(this.#server.addr, addr);
  }

  /** Deno.serve does not count its connections: the requests in flight do. */
  get connections(): number {
    return this.#inFlight;
  }

  get inFlight(): number {
    return this.#inFlight;
  }

  /** Runs the app's handler, counted in flight until it returned. */
  #run(call: () => Response | Promise<Response>): Response | Promise<Response> {
    this.#inFlight++;
    let result: Response | Promise<Response>;
    try {
      result = call();
    } catch (error) {
      this.#inFlight--;
      throw error;
    }
    if (!(result instanceof Promise)) {
      this.#inFlight--;
      return result;
    }
    return result.finally(() => this.#inFlight--);
  }

  /** Deno.serve's graceful shutdown: the address is free at once. */
  stopAccepting(): Promise<void> {
    this.#shutdown ??= this.#server.shutdown()
      .then(() => this.#server.finished)
      .catch(noop);
    return Promise.resolve();
  }

  drain(_idleGraceMs: number): Promise<void> {
    this.stopAccepting();
    return Promise.race([this.#shutdown!, this.#aborted.promise]);
  }

  /**
   * Deno.serve cannot cut its connections: the drain stops waiting for them,
   * and the process's exit ends them.
   */
  abort(): void {
    this.#aborted.resolve();
  }

  ref(): void {
    this.#server.ref();
  }

  unref(): void {
    this.#server.unref();
  }
}

/** Deno's handler info, plus `draining`. */
function infoOf(
  info: Deno.ServeHandlerInfo,
  options: EngineServeOptions,
): GracefulHandlerInfo {
  return {
    get remoteAddr() {
      return info.remoteAddr as Addr;
    },
    get completed() {
      return info.completed;
    },
    draining: options.draining,
  };
}

/** The address Deno.serve listens on, in the listener's form. */
function addrOf(served: Deno.NetAddr | Deno.UnixAddr, asked: Addr): Addr {
  if ("path" in asked || !("port" in served)) return asked;
  return { transport: "tcp", hostname: served.hostname, port: served.port };
}

function noop(): void {}
