/**
 * One end of an authenticated control connection: ordered sends, and
 * receives from a checked background read loop, with timeouts.
 *
 * @module
 */

import {
  closeQuietly,
  type LineConn,
  type LineReader,
  writeAll,
} from "./control_lines.ts";
import type {
  ControlMessage,
  NewToOldMessage,
  OldToNewMessage,
} from "./control_messages.ts";
import {
  ControlError,
  DEFAULT_HELLO_TIMEOUT_MS,
  DEFAULT_RECEIVE_TIMEOUT_MS,
  encodeMessage,
  MAX_LINE_BYTES,
  parseControlMessage,
} from "./control_protocol.ts";
import { errorMessage } from "../util/error_message.ts";

/**
 * The most messages that may wait, unreceived, in a peer's queue. The
 * protocol never has more than a few in flight; more is a misbehaving peer.
 */
const MAX_QUEUED_MESSAGES = 64;

/** The longest delay setTimeout honours; longer waits are unbounded. */
export const MAX_TIMER_MS = 2 ** 31 - 1;

export function checkLineLimit(value: number | undefined): number {
  const limit = value ?? MAX_LINE_BYTES;
  if (!Number.isSafeInteger(limit) || limit < 1) {
    throw new RangeError(
      `maxLineBytes must be a positive integer, got ${limit}`,
    );
  }
  return limit;
}

export function checkHelloTimeout(value: number | undefined): number {
  const timeout = value ?? DEFAULT_HELLO_TIMEOUT_MS;
  if (!(timeout > 0 && timeout <= MAX_TIMER_MS)) {
    throw new RangeError(
      `helloTimeoutMs must be a number in (0, ${MAX_TIMER_MS}], got ${timeout}`,
    );
  }
  return timeout;
}

export function checkReceiveTimeout(value: number | undefined): number {
  const timeout = value ?? DEFAULT_RECEIVE_TIMEOUT_MS;
  if (!(timeout > 0)) {
    throw new RangeError(
      `receiveTimeoutMs must be a positive number or Infinity, got ${timeout}`,
    );
  }
  return timeout;
}

/**
 * One end of an authenticated control connection: the old process's view of
 * the new one is a {@linkcode ControlPeer}`<OldToNewMessage, NewToOldMessage>`
 * (an {@linkcode AcceptedPeer}), the new process's view of the old one a
 * `ControlPeer<NewToOldMessage, OldToNewMessage>`.
 *
 * Incoming lines are read continuously in the background and checked; a
 * protocol violation (bad JSON, wrong fields, an over-long line, a message not
 * meant for this side) ends the connection, and every later `receive()`
 * rejects with that error.
 *
 * @typeParam TSend What this side sends. Default: the new process's view.
 * @typeParam TReceive What this side receives. Default: the new process's
 * view.
 */
export interface ControlPeer<
  TSend extends ControlMessage = NewToOldMessage,
  TReceive extends ControlMessage = OldToNewMessage,
> {
  /**
   * Sends one message. Sends are written in call order, never interleaved.
   *
   * @throws {TypeError} When the message is not one this side may send, or
   * does not serialize into a valid message (e.g. `state: undefined`).
   * @throws {RangeError} When its line is longer than this side's line limit.
   * @throws {ControlError} When the connection has ended: `"closed"` after
   * {@linkcode ControlPeer.close}, otherwise the code of what ended it
   * (`"eof"`, `"protocol"`). A failing write rejects with the connection's
   * own error.
   */
  send(message: TSend): Promise<void>;
  /**
   * The next message. Messages that arrived before the call are queued.
   *
   * @param timeoutMs How long to wait; `Infinity` waits until a message or
   * the end of the connection. Default: the peer's `receiveTimeoutMs`
   * ({@linkcode DEFAULT_RECEIVE_TIMEOUT_MS} unless configured).
   * @throws {ControlError} `"timeout"` (the connection stays usable and the
   * late message goes to the next call), `"eof"`, `"protocol"` or `"closed"`.
   */
  receive(timeoutMs?: number): Promise<TReceive>;
  /**
   * Resolves (never rejects) once the connection has ended and all its
   * operations have settled: the other side closed it, it broke, a protocol
   * error ended it, or {@linkcode ControlPeer.close} was called.
   */
  readonly closed: Promise<void>;
  /**
   * Closes the connection: pending and later `receive()` and `send()` calls
   * reject with code `"closed"`. Resolves as {@linkcode ControlPeer.closed}
   * does; calling it again is harmless.
   */
  close(): Promise<void>;
}

/**
 * The old process's view of the new process, after a valid hello.
 */
export interface AcceptedPeer
  extends ControlPeer<OldToNewMessage, NewToOldMessage> {
  /** The new process's pid, as its hello said. */
  readonly pid: number;
  /** The client's TCP port on 127.0.0.1, to find who really holds the socket. */
  readonly remotePort: number;
  /** This side's TCP port on 127.0.0.1 (the control listener's). */
  readonly localPort: number;
}

export interface PeerOptions {
  maxLineBytes: number;
  receiveTimeoutMs: number;
  /** The message types this side may receive. */
  receives: ReadonlySet<string>;
  /** The message types this side may send. */
  sends: ReadonlySet<string>;
}

interface Waiter<T> {
  resolve(message: T): void;
  reject(error: ControlError): void;
  timer: ReturnType<typeof setTimeout> | undefined;
}

/** The implementation of both ends. */
export class Peer<TSend extends ControlMessage, TReceive extends ControlMessage>
  implements ControlPeer<TSend, TReceive> {
  readonly closed: Promise<void>;
  readonly #conn: LineConn;
  readonly #reader: LineReader;
  readonly #options: PeerOptions;
  readonly #queue: TReceive[] = [];
  #waiters: Waiter<TReceive>[] = [];
  /** Set once no more messages can arrive; delivered after the queue. */
  #end: ControlError | undefined;
  /** The last write in the chain; never rejects. */
  #writing: Promise<void> = Promise.resolve();
  #closing = false;
  #connClosed = false;

  constructor(conn: LineConn, reader: LineReader, options: PeerOptions) {
    this.#conn = conn;
    this.#reader = reader;
    this.#options = options;
    this.closed = this.#readLoop();
  }

  send(message: TSend): Promise<void> {
    if (this.#closing || this.#end !== undefined) {
      const code = this.#closing ? "closed" : this.#end?.code ?? "closed";
      return Promise.reject(
        new ControlError(code, "the control connection has ended", {
          cause: this.#end,
        }),
      );
    }
    const type = (message as { type?: unknown } | null)?.type;
    if (typeof type !== "string" || !this.#options.sends.has(type)) {
      return Promise.reject(
        new TypeError(`this side cannot send a ${String(type)} message`),
      );
    }
    let bytes: Uint8Array;
    try {
      bytes = encodeMessage(message, this.#options.maxLineBytes);
    } catch (error) {
      return Promise.reject(error);
    }
    const write = this.#writing.then(() => this.#write(bytes));
    this.#writing = write.catch(() => {});
    return write;
  }

  receive(
    timeoutMs: number = this.#options.receiveTimeoutMs,
  ): Promise<TReceive> {
    if (!(timeoutMs >= 0)) {
      return Promise.reject(
        new RangeError(`timeoutMs must be >= 0, got ${timeoutMs}`),
      );
    }
    const queued = this.#queue.shift();
    if (queued !== undefined) return Promise.resolve(queued);
    if (this.#end !== undefined) return Promise.reject(this.#end);
    return new Promise((resolve, reject) => {
      const waiter: Waiter<TReceive> = { resolve, reject, timer: undefined };
      if (timeoutMs <= MAX_TIMER_MS) {
        waiter.timer = setTimeout(() => {
          this.#waiters = this.#waiters.filter((other) => other !== waiter);
          reject(
            new ControlError("timeout", `no message within ${timeoutMs} ms`),
          );
        }, timeoutMs);
      }
      this.#waiters.push(waiter);
    });
  }

  close(): Promise<void> {
    this.#closing = true;
    this.#closeConn();
    return this.closed;
  }

  async #write(bytes: Uint8Array): Promise<void> {
    if (this.#closing) {
      throw new ControlError("closed", "the control connection was closed");
    }
    try {
      await writeAll(this.#conn, bytes);
    } catch (error) {
      if (this.#closing) {
        throw new ControlError("closed", "the control connection was closed", {
          cause: error,
        });
      }
      throw error;
    }
  }

  async #readLoop(): Promise<void> {
    try {
      while (true) {
        const line = await this.#reader.readLine();
        if (line === null) {
          this.#finish(
            new ControlError("eof", "the other side closed the connection"),
          );
          return;
        }
        const message = parseControlMessage(line);
        if (!this.#options.receives.has(message.type)) {
          throw new ControlError(
            "protocol",
            `unexpected ${message.type} message`,
          );
        }
        this.#deliver(message as TReceive);
        if (this.#queue.length > MAX_QUEUED_MESSAGES) {
          throw new ControlError(
            "protocol",
            `more than ${MAX_QUEUED_MESSAGES} messages were not received`,
          );
        }
      }
    } catch (error) {
      this.#finish(this.#toEndError(error));
    } finally {
      this.#closeConn();
      // Let a write cut short by the close settle before `closed` resolves.
      await this.#writing;
    }
  }

  #toEndError(error: unknown): ControlError {
    if (this.#closing) {
      return new ControlError("closed", "the control connection was closed", {
        cause: error,
      });
    }
    if (error instanceof ControlError) return error;
    return new ControlError(
      "eof",
      `the control connection broke: ${errorMessage(error)}`,
      { cause: error },
    );
  }

  #deliver(message: TReceive): void {
    const waiter = this.#waiters.shift();
    if (waiter === undefined) {
      this.#queue.push(message);
      return;
    }
    clearTimeout(waiter.timer);
    waiter.resolve(message);
  }

  #finish(error: ControlError): void {
    if (this.#end !== undefined) return;
    this.#end = error;
    const waiters = this.#waiters;
    this.#waiters = [];
    for (const waiter of waiters) {
      clearTimeout(waiter.timer);
      waiter.reject(error);
    }
  }

  #closeConn(): void {
    if (this.#connClosed) return;
    this.#connClosed = true;
    closeQuietly(this.#conn);
  }
}

/** The old process's end, with the pid from the hello. */
export class OldSidePeer extends Peer<OldToNewMessage, NewToOldMessage>
  implements AcceptedPeer {
  readonly pid: number;
  readonly remotePort: number;
  readonly localPort: number;

  constructor(
    conn: LineConn & Pick<Deno.Conn, "localAddr" | "remoteAddr">,
    reader: LineReader,
    pid: number,
    options: PeerOptions,
  ) {
    super(conn, reader, options);
    this.pid = pid;
    this.remotePort = (conn.remoteAddr as Deno.NetAddr).port;
    this.localPort = (conn.localAddr as Deno.NetAddr).port;
  }
}
