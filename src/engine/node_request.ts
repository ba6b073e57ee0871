/**
 * The request side of the node engine's fetch adapter: a fetch `Request`
 * made from a node `IncomingMessage`, with its body streamed under flow
 * control and its `signal` made on first use.
 *
 * @module
 */

import type { IncomingMessage } from "node:http";
import type { Addr } from "../listen/types.ts";
import type { Exchange, RequestBody, UpgradeTarget } from "./node_exchange.ts";

const kBodySource: unique symbol = Symbol("engineNode.bodySource");

/** A request message with the body source reading it. */
interface TrackedMessage extends IncomingMessage {
  [kBodySource]?: RequestBodySource;
}

/**
 * Feeds a request body from an IncomingMessage into a ReadableStream. The
 * stream has a high water mark of 0: the message is only resumed when the
 * application asks for data, and paused again once a chunk is queued, so TCP
 * flow control reaches the client.
 */
class RequestBodySource
  implements UnderlyingDefaultSource<Uint8Array>, RequestBody {
  readonly message: TrackedMessage;
  controller: ReadableStreamDefaultController<Uint8Array> | null = null;
  attached = false;
  done = false;

  constructor(message: TrackedMessage) {
    this.message = message;
  }

  start(controller: ReadableStreamDefaultController<Uint8Array>): void {
    this.controller = controller;
  }

  pull(): void {
    const message = this.message;
    if (!this.attached) {
      this.attached = true;
      message[kBodySource] = this;
      message.on("data", onBodyData);
      message.on("end", onBodyEnd);
      message.on("error", onBodyError);
      message.on("close", onBodyClose);
    }
    message.resume();
  }

  cancel(): void {
    this.done = true;
    this.detach();
  }

  /** Fails the stream (if still open) and lets node discard the rest. */
  fail(error: Error): void {
    if (this.done) return;
    this.done = true;
    this.controller!.error(error);
    this.detach();
  }

  detach(): void {
    const message = this.message;
    if (this.attached) {
      message.off("data", onBodyData);
      message.off("end", onBodyEnd);
      message.off("error", onBodyError);
      message.off("close", onBodyClose);
    }
    // Read and discard what is left, so that the connection can be reused.
    if (!message.destroyed) message.resume();
  }
}

function onBodyData(this: TrackedMessage, chunk: Uint8Array): void {
  const source = this[kBodySource]!;
  const controller = source.controller!;
  controller.enqueue(
    new Uint8Array(chunk.buffer, chunk.byteOffset, chunk.byteLength),
  );
  if (controller.desiredSize! <= 0) this.pause();
}

function onBodyEnd(this: TrackedMessage): void {
  const source = this[kBodySource]!;
  if (source.done) return;
  source.done = true;
  source.detach();
  source.controller!.close();
}

function onBodyError(this: TrackedMessage, error: Error): void {
  this[kBodySource]!.fail(error);
}

function onBodyClose(this: TrackedMessage): void {
  this[kBodySource]!.fail(bodyCut());
}

/** The error of a request body that the client did not send in full. */
export function bodyCut(): Error {
  return new Deno.errors.ConnectionReset(
    "The client closed the connection before sending the whole body",
  );
}

/**
 * A Request whose `signal` is created only when the application asks for it:
 * most handlers never look at it, and an AbortSignal per request is not free.
 */
class EngineRequest extends Request {
  #exchange: Exchange;

  constructor(
    url: string,
    init: RequestInit | undefined,
    exchange: Exchange,
  ) {
    super(url, init);
    this.#exchange = exchange;
  }

  override get signal(): AbortSignal {
    return this.#exchange.signal();
  }
}

/** Where a request came in: what its URL is made of. */
export interface RequestOrigin {
  /** "http://" or "https://". */
  readonly scheme: string;
  /** The Host used when a request has none (HTTP/1.0). */
  readonly defaultHost: string;
  /** Where the upgrade socket of an upgrade request is registered. */
  readonly upgrades: WeakMap<Request, UpgradeTarget>;
}

/**
 * The fetch Request of an exchange. Throws when the message makes no valid
 * Request (the caller answers 400).
 */
export function createRequest(
  exchange: Exchange,
  origin: RequestOrigin,
): Request {
  const message = exchange.message;
  const method = message.method!;
  const target = message.url!;
  const headers = message.headers;
  const host = headers.host ?? origin.defaultHost;
  const scheme = origin.scheme;
  const url = target.charCodeAt(0) === 47 /* / */
    ? scheme + host + target
    : target.startsWith("http://") || target.startsWith("https://")
    ? target
    : scheme + host + "/" + target;
  let init: RequestInit | undefined;
  if (method === "GET") {
    // No init dictionary at all: the cheapest Request to construct.
    init = undefined;
  } else if (
    method === "HEAD" || exchange.upgrade !== null ||
    ((headers["content-length"] === undefined ||
      headers["content-length"] === "0") &&
      headers["transfer-encoding"] === undefined)
  ) {
    init = { method };
  } else {
    const source = new RequestBodySource(message);
    exchange.body = source;
    init = {
      method,
      body: new ReadableStream(source, { highWaterMark: 0 }),
      duplex: "half",
    } as RequestInit;
  }
  const request = new EngineRequest(url, init, exchange);
  const requestHeaders = request.headers;
  const raw = message.rawHeaders;
  for (let i = 0; i < raw.length; i += 2) {
    requestHeaders.append(raw[i], raw[i + 1]);
  }
  if (exchange.upgrade !== null) {
    origin.upgrades.set(request, exchange.upgrade);
  }
  return request;
}

/** Hostname and port as a Host header says them (IPv6 in brackets). */
export function hostOf(addr: Addr): string {
  if ("path" in addr) return "localhost";
  const hostname = addr.hostname.includes(":")
    ? `[${addr.hostname}]`
    : addr.hostname;
  return `${hostname}:${addr.port}`;
}
