/**
 * A raw WebSocket client (RFC 6455) over any Deno.Conn, so a test can reach a
 * server on TLS with a test CA or on a unix socket, where Deno's WebSocket
 * client cannot. It reports what is on the wire: the handshake as sent, and
 * each server frame with its flags, unparsed beyond the payload.
 *
 * @module
 */

import { parseOne } from "./http_client.ts";

const GUID = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11";
const encoder = new TextEncoder();

/** One frame from the server, its payload unmasked. */
export interface WsFrame {
  fin: boolean;
  opcode: number;
  masked: boolean;
  payload: Uint8Array;
}

/** An upgraded connection. */
export interface WsSession {
  status: number;
  headers: Headers;
  /** Sec-WebSocket-Accept is the SHA-1 of our key and the GUID. */
  acceptValid: boolean;
  /** Sends one masked, final frame (1 text, 8 close) of up to 125 bytes. */
  send(opcode: number, payload: Uint8Array): Promise<void>;
  /** The next frame, or null at the end of the connection. */
  receive(): Promise<WsFrame | null>;
  close(): void;
}

function base64(bytes: ArrayBuffer | Uint8Array): string {
  return btoa(String.fromCharCode(...new Uint8Array(bytes)));
}

/**
 * Sends the upgrade request for `/` on `conn` and reads the response head.
 * The connection is closed after `timeoutMs`, so a server that never answers
 * fails the read instead of hanging the test.
 */
export async function wsConnect(
  conn: Deno.Conn,
  timeoutMs = 10_000,
): Promise<WsSession> {
  const timer = setTimeout(close, timeoutMs);
  function close() {
    clearTimeout(timer);
    try {
      conn.close();
    } catch {
      // already closed
    }
  }
  let buffer = new Uint8Array(0);
  const chunk = new Uint8Array(64 * 1024);
  /** Reads until `buffer` holds at least `n` bytes; false at EOF. */
  async function fill(n: number): Promise<boolean> {
    while (buffer.length < n) {
      const got = await conn.read(chunk);
      if (got === null) return false;
      buffer = new Uint8Array([...buffer, ...chunk.subarray(0, got)]);
    }
    return true;
  }
  function take(n: number): Uint8Array {
    const out = buffer.slice(0, n);
    buffer = buffer.subarray(n);
    return out;
  }

  const key = base64(crypto.getRandomValues(new Uint8Array(16)));
  let head;
  try {
    await conn.write(encoder.encode(
      `GET / HTTP/1.1\r\nHost: localhost\r\nUpgrade: websocket\r\n` +
        `Connection: Upgrade\r\nSec-WebSocket-Key: ${key}\r\n` +
        "Sec-WebSocket-Version: 13\r\n\r\n",
    ));
    while (!(head = parseOne(buffer, true))) {
      if (!(await fill(buffer.length + 1))) {
        throw new Error("the connection ended before the upgrade response");
      }
    }
  } catch (error) {
    close();
    throw error;
  }
  take(head.used);
  const { status, headers } = head.response;
  const digest = await crypto.subtle.digest(
    "SHA-1",
    encoder.encode(key + GUID),
  );

  return {
    status,
    headers,
    acceptValid: headers.get("sec-websocket-accept") === base64(digest),
    async send(opcode, payload) {
      if (payload.length > 125) throw new RangeError("payload over 125 bytes");
      const mask = crypto.getRandomValues(new Uint8Array(4));
      const head = [0x80 | opcode, 0x80 | payload.length, ...mask];
      const masked = payload.map((b, i) => b ^ mask[i % 4]);
      await conn.write(new Uint8Array([...head, ...masked]));
    },
    async receive() {
      if (!(await fill(2))) return null;
      const [b0, b1] = take(2);
      let length = b1 & 0x7f;
      const extra = length === 126 ? 2 : length === 127 ? 8 : 0;
      if (extra > 0) {
        if (!(await fill(extra))) throw new Error("frame cut in its length");
        const view = new DataView(take(extra).buffer);
        length = extra === 2 ? view.getUint16(0) : Number(view.getBigUint64(0));
      }
      const masked = (b1 & 0x80) !== 0;
      const maskLength = masked ? 4 : 0;
      if (!(await fill(maskLength + length))) {
        throw new Error(`frame cut short: ${buffer.length} of ${length} bytes`);
      }
      const mask = take(maskLength);
      const payload = take(length);
      return {
        fin: (b0 & 0x80) !== 0,
        opcode: b0 & 0x0f,
        masked,
        payload: masked ? payload.map((b, i) => b ^ mask[i % 4]) : payload,
      };
    },
    close,
  };
}
