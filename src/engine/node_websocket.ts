/**
 * WebSocket upgrades on the node engine: `Deno.upgradeWebSocket(request)`
 * works through a wrapper installed on `Deno.upgradeWebSocket` by the first
 * `serve()`, which hands Deno the node:http upgrade socket behind the request.
 * It needs the very Request the handler got (not a clone) and a plain TCP
 * listener: Deno can only take over a TCP socket, not a TLS or unix one, so
 * the call throws there.
 *
 * @module
 */

import { STATUS_CODES } from "node:http";
import type { IncomingMessage } from "node:http";
import {
  type Exchange,
  ignoreRejection,
  onSocketClose,
  type UpgradeTarget,
} from "./node_exchange.ts";

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
 * and calls the original unchanged for every other request. Returns where
 * the engine registers each upgrade request's socket.
 */
export function upgradeTargets(): WeakMap<Request, UpgradeTarget> {
  const global = globalThis as typeof globalThis & {
    [kUpgradeRegistry]?: UpgradeRegistry;
  };
  const existing = global[kUpgradeRegistry];
  if (existing !== undefined) return existing.targets;

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
  return registry.targets;
}

/**
 * node:http's `shouldUpgradeCallback`: only WebSocket upgrades leave the
 * request path; other upgrades (h2c...) are ordinary requests, as with
 * Deno.serve.
 */
export function isWebSocketUpgrade(message: IncomingMessage): boolean {
  const upgrade = message.headers.upgrade;
  return upgrade !== undefined && /\bwebsocket\b/i.test(upgrade);
}

/**
 * Ends an upgrade exchange once the handler answered: upgraded, the socket
 * is Deno's from now on; not upgraded, the response goes out on the raw
 * socket, which then closes.
 */
export async function finishUpgrade(
  exchange: Exchange,
  response: Response,
): Promise<void> {
  const target = exchange.upgrade!;
  const connection = exchange.connection;
  const binding = exchange.binding;
  if (target.upgraded) {
    // Deno.upgradeWebSocket writes the 101 and owns the socket from now on.
    if (response.status !== 101 && response.body !== null) {
      ignoreRejection(response.body.cancel());
    }
    connection.socket.off("close", onSocketClose);
    binding.settle(exchange, true);
    binding.forget(connection);
    return;
  }
  if (exchange.settled) {
    if (response.body !== null) ignoreRejection(response.body.cancel());
    return;
  }
  // It is small as a rule (a refusal), so it is buffered and sent with a
  // length.
  const status = response.status;
  const bodiless = status === 204 || status === 304;
  const bytes = bodiless || response.body === null
    ? new Uint8Array(0)
    : await response.bytes();
  if (exchange.settled) return;
  const reason = response.statusText || STATUS_CODES[status] || "";
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
  socket.end(bytes, () => binding.settle(exchange, true));
}
