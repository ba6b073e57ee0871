/**
 * The response side of the node engine's fetch adapter: a fetch `Response`
 * written to a node `ServerResponse`, in one write when its body is complete
 * already, streamed under backpressure otherwise; and the answers for
 * requests that never reached the handler or whose response failed.
 *
 * @module
 */

import { Buffer } from "node:buffer";
import type { ServerResponse } from "node:http";
import type { ErrorHandler } from "../listen/types.ts";
import { type Exchange, ignoreRejection } from "./node_exchange.ts";

/** The whole answer to a request that cannot be parsed; the socket closes. */
export const BAD_REQUEST =
  "HTTP/1.1 400 Bad Request\r\nconnection: close\r\ncontent-length: 0\r\n\r\n";

const kPending: unique symbol = Symbol("engineNode.pending");
/** Bodies up to this size are written together with the head. */
const kDirectEndLimit = 16 * 1024;
const pendingMarker: Promise<typeof kPending> = Promise.resolve(kPending);

/** The response of `onError`, or a plain 500 when it has none. */
export async function errorResponse(
  onError: ErrorHandler,
  error: unknown,
): Promise<Response> {
  try {
    const response = await onError(error);
    if (response instanceof Response) return response;
  } catch {
    // Fall through to the plain 500.
  }
  return new Response("Internal Server Error", {
    status: 500,
    headers: { "content-type": "text/plain;charset=UTF-8" },
  });
}

/** Answers 400 to a request that makes no valid Request, and closes. */
export function answerBadRequest(exchange: Exchange): void {
  const res = exchange.res;
  if (res !== null) {
    res.shouldKeepAlive = false;
    res.statusCode = 400;
    res.end();
  } else {
    exchange.upgrade!.socket.end(BAD_REQUEST);
    exchange.binding.settle(exchange, true);
  }
}

/** Writing the response failed half way: cut the connection. */
export function failResponse(exchange: Exchange, error: unknown): void {
  const reader = exchange.reader;
  if (reader !== null) ignoreRejection(reader.cancel(error));
  const res = exchange.res;
  if (res !== null) {
    if (!exchange.settled && !res.headersSent) {
      // Nothing was sent yet: answer 500 rather than cutting.
      for (const name of res.getHeaderNames()) res.removeHeader(name);
      res.statusMessage = "";
      res.shouldKeepAlive = false;
      res.statusCode = 500;
      res.end();
      return;
    }
    res.destroy(error instanceof Error ? error : undefined);
  } else {
    exchange.upgrade!.socket.destroy();
    exchange.binding.settle(exchange, false);
  }
}

/** Copies the response status and headers onto `res`; nothing is written yet. */
function applyHead(
  exchange: Exchange,
  response: Response,
  closing: boolean,
): void {
  const res = exchange.res!;
  res.statusCode = response.status;
  const reason = response.statusText;
  if (reason !== "") res.statusMessage = reason;
  if (closing) res.shouldKeepAlive = false;
  exchange.closing = closing;
  exchange.cookies = false;
  const headers = response.headers;
  // forEach sorts and combines the list once; the iterator does it per step.
  headers.forEach(copyResponseHeader, exchange);
  if (exchange.cookies) res.setHeader("set-cookie", headers.getSetCookie());
}

/**
 * Writes `response` for an ordinary (not upgrade) exchange; `closing` asks
 * the client to close the connection after it.
 */
export async function writeResponse(
  exchange: Exchange,
  response: Response,
  closing: boolean,
): Promise<void> {
  const res = exchange.res!;
  const body = response.body;
  if (exchange.settled) {
    // The client went away while the handler ran.
    if (body !== null) ignoreRejection(body.cancel());
    return;
  }
  applyHead(exchange, response, closing);
  // node:http frames the body: Content-Length when end() gets all of it,
  // chunked otherwise; it sends no body for HEAD, 204 and 304.
  const status = response.status;
  if (status === 204 || status === 304) {
    res.end();
    if (body !== null) ignoreRejection(body.cancel());
    return;
  }
  // Like Deno.serve, HEAD gets the Content-Length a GET would get.
  const head = exchange.message.method === "HEAD";
  if (body === null) {
    if (head) setLengthIfUnset(res, 0);
    res.end();
    return;
  }

  const reader = body.getReader();
  exchange.reader = reader;
  let result = await reader.read();
  if (exchange.settled) return;
  if (result.done) {
    if (head) setLengthIfUnset(res, 0);
    res.end();
    return;
  }
  let chunk = checkChunk(result.value);
  let next = reader.read();
  // A body that is complete already (a string, bytes...) is sent in one
  // write with a Content-Length; anything else is streamed as it comes.
  const peek = await Promise.race([next, pendingMarker]);
  if (exchange.settled) return;
  if (peek !== kPending && peek.done) {
    if (head) {
      setLengthIfUnset(res, chunk.byteLength);
      res.end();
    } else if (chunk.byteLength <= kDirectEndLimit) {
      // node:http writes a string body and the head in a single write,
      // bypassing the stream machinery; latin1 maps bytes 1:1.
      res.end(latin1(chunk), "latin1");
    } else {
      res.end(chunk);
    }
    return;
  }
  if (head) {
    ignoreRejection(reader.cancel());
    res.end();
    return;
  }
  for (;;) {
    if (!res.write(chunk)) await exchange.waitDrain();
    if (exchange.settled) return;
    result = await next;
    if (exchange.settled) return;
    if (result.done) break;
    chunk = checkChunk(result.value);
    next = reader.read();
  }
  res.end();
}

/** A `Headers.forEach` callback: copies one response header onto `res`. */
function copyResponseHeader(this: Exchange, value: string, name: string): void {
  if (name === "set-cookie") {
    // Copied at once, from getSetCookie().
    this.cookies = true;
  } else if (
    !this.closing || (name !== "connection" && name !== "keep-alive")
  ) {
    this.res!.setHeader(name, value);
  }
}

function setLengthIfUnset(res: ServerResponse, length: number): void {
  if (!res.hasHeader("content-length")) {
    res.setHeader("content-length", String(length));
  }
}

/** Bytes as a latin1 string (one char per byte), for node's direct write. */
function latin1(bytes: Uint8Array): string {
  if (bytes.byteLength <= 64) {
    // Cheapest for tiny bodies; too many arguments for large ones.
    return String.fromCharCode.apply(null, bytes as unknown as number[]);
  }
  return Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength)
    .toString("latin1");
}

function checkChunk(chunk: unknown): Uint8Array {
  if (chunk instanceof Uint8Array) return chunk;
  throw new TypeError("Response body chunks must be Uint8Array");
}
