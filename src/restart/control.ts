/**
 * The control channel between two generations of a server during a
 * zero-downtime restart.
 *
 * The old process opens a TCP listener on 127.0.0.1 (random port) and passes
 * its address and a one-time secret to the new process through two
 * environment variables. The new process connects and introduces itself; then
 * both sides exchange line-delimited JSON messages (one object per
 * `\n`-terminated UTF-8 line):
 *
 * | direction | message                      | meaning                                 |
 * | --------- | ---------------------------- | --------------------------------------- |
 * | new → old | `{type:"hello", token, pid}` | authenticates the new process           |
 * | old → new | `{type:"state", state}`      | opaque state the old process hands over |
 * | new → old | `{type:"ready", pid}`        | the new process serves                  |
 * | old → new | `{type:"draining"}`          | the old process stopped accepting       |
 * | old → new | `{type:"done"}`              | the old process has finished            |
 * | either    | `{type:"fail", reason}`      | abort the handover                      |
 *
 * The listener accepts exactly one valid hello and then closes, so the secret
 * works once. Connections with a wrong secret, garbage, an over-long line or
 * no hello in time are closed and reported through `onReject`; they never
 * disturb the real handshake.
 *
 * @module
 */

import { loopbackTcpInode } from "../os/sock_diag.ts";

/**
 * The environment variable that carries the control address
 * (`"127.0.0.1:PORT"`) to the new process.
 *
 * @example Read it in the new process
 * ```ts
 * import { CONTROL_ADDR_ENV } from "./control.ts";
 *
 * const addr: string | undefined = Deno.env.get(CONTROL_ADDR_ENV);
 * ```
 */
export const CONTROL_ADDR_ENV = "GRACEFUL_CONTROL_ADDR";

/**
 * The environment variable that carries the one-time secret (64 hex digits)
 * to the new process.
 *
 * @example Check whether this process was started by an old generation
 * ```ts
 * import { CONTROL_TOKEN_ENV } from "./control.ts";
 *
 * const handover: boolean = Deno.env.has(CONTROL_TOKEN_ENV);
 * ```
 */
export const CONTROL_TOKEN_ENV = "GRACEFUL_CONTROL_TOKEN";

/**
 * The default longest line (in bytes, without the `\n`) either side accepts:
 * 1 MiB. A longer line ends the connection; at most this much (plus one read
 * chunk) is ever buffered for one connection.
 *
 * @example Allow a larger state for one server
 * ```ts
 * import { MAX_LINE_BYTES, openControlServer } from "./control.ts";
 *
 * const server = await openControlServer({ maxLineBytes: 4 * MAX_LINE_BYTES });
 * await server.close();
 * ```
 */
export const MAX_LINE_BYTES = 1024 * 1024;

/**
 * The default time (ms) a new connection has to deliver a valid hello before
 * it is closed.
 *
 * @example
 * ```ts
 * import { DEFAULT_HELLO_TIMEOUT_MS } from "./control.ts";
 *
 * console.log(`hello within ${DEFAULT_HELLO_TIMEOUT_MS} ms`);
 * ```
 */
export const DEFAULT_HELLO_TIMEOUT_MS = 5000;

/**
 * The default time (ms) {@linkcode ControlPeer.receive} waits for the next
 * message when no timeout is given.
 *
 * @example
 * ```ts
 * import { DEFAULT_RECEIVE_TIMEOUT_MS } from "./control.ts";
 *
 * console.log(`receive waits ${DEFAULT_RECEIVE_TIMEOUT_MS} ms by default`);
 * ```
 */
export const DEFAULT_RECEIVE_TIMEOUT_MS = 30_000;

/** The size of the secret, in random bytes (it travels as twice as many hex digits). */
const TOKEN_BYTES = 32;

/** How much one read asks for. */
const READ_CHUNK_BYTES = 64 * 1024;

/**
 * The most messages that may wait, unreceived, in a peer's queue. The
 * protocol never has more than a few in flight; more is a misbehaving peer.
 */
const MAX_QUEUED_MESSAGES = 64;

/** The longest delay setTimeout honours; longer waits are unbounded. */
const MAX_TIMER_MS = 2 ** 31 - 1;

/** "\n". */
const NEWLINE = 0x0a;

/** The only address the control channel uses. */
const LOOPBACK = "127.0.0.1";

/** Message types the new process may receive (the old one sends them). */
const OLD_TO_NEW_TYPES: ReadonlySet<string> = new Set([
  "state",
  "draining",
  "done",
  "fail",
  "save",
  "rolled",
  "view",
]);

/** Message types the old process may receive after the hello. */
const NEW_TO_OLD_TYPES: ReadonlySet<string> = new Set([
  "ready",
  "fail",
  "saved",
  "roll",
  "stats",
]);

const encoder = new TextEncoder();

// ---------------------------------------------------------------------------
// Messages
// ---------------------------------------------------------------------------

/**
 * new → old, first line on the connection: the secret and the new process's
 * pid.
 *
 * @example
 * ```ts
 * import type { HelloMessage } from "./control.ts";
 *
 * const hello: HelloMessage = { type: "hello", token: "ab12…", pid: Deno.pid };
 * ```
 */
export interface HelloMessage {
  /** The message type. */
  type: "hello";
  /** The secret from {@linkcode CONTROL_TOKEN_ENV}. */
  token: string;
  /** The new process's pid (a positive integer). */
  pid: number;
}

/**
 * old → new: the state the old process hands over, an opaque JSON value
 * chosen by the caller (it must not be `undefined`).
 *
 * @example
 * ```ts
 * import type { StateMessage } from "./control.ts";
 *
 * const message: StateMessage = { type: "state", state: { sessions: 3 } };
 * ```
 */
export interface StateMessage {
  /** The message type. */
  type: "state";
  /** Any JSON value. */
  state: unknown;
}

/**
 * new → old: the new process is serving.
 *
 * @example
 * ```ts
 * import type { ReadyMessage } from "./control.ts";
 *
 * const message: ReadyMessage = { type: "ready", pid: Deno.pid };
 * ```
 */
export interface ReadyMessage {
  /** The message type. */
  type: "ready";
  /** The new process's pid (a positive integer). */
  pid: number;
  /**
   * A worker's listening sockets (its fd numbers), so that a supervisor
   * that was given none can take them (pidfd_getfd) for the next workers.
   */
  listeners?: { fd: number; name: string; addr: string }[];
}

/**
 * supervisor → worker: send the app state (the `handover.save()` hooks) for
 * the worker that replaces you.
 *
 * @example
 * ```ts
 * import type { SaveMessage } from "./control.ts";
 *
 * const message: SaveMessage = { type: "save" };
 * ```
 */
export interface SaveMessage {
  /** The message type. */
  type: "save";
}

/**
 * supervisor → worker: the supervisor's status (its pid, generation, rolls,
 * workers...), for the admin API of whichever worker is asked.
 *
 * @example
 * ```ts
 * import type { ViewMessage } from "./control.ts";
 *
 * const message: ViewMessage = { type: "view", status: { pid: 1 } };
 * ```
 */
export interface ViewMessage {
  /** The message type. */
  type: "view";
  /** A JSON object. */
  status: Record<string, unknown>;
}

/**
 * worker → supervisor: its request counts, for the status.
 *
 * @example
 * ```ts
 * import type { StatsMessage } from "./control.ts";
 *
 * const message: StatsMessage = { type: "stats", inFlight: 2, served: 140 };
 * ```
 */
export interface StatsMessage {
  /** The message type. */
  type: "stats";
  /** Requests being served. */
  inFlight: number;
  /** Requests served since it started. */
  served: number;
}

/**
 * worker → supervisor: roll every worker (a restart asked of a worker: the
 * admin API, `server.restart()`).
 *
 * @example
 * ```ts
 * import type { RollMessage } from "./control.ts";
 *
 * const message: RollMessage = { type: "roll", trigger: "admin" };
 * ```
 */
export interface RollMessage {
  /** The message type. */
  type: "roll";
  /** What asked for it, for logs and status. */
  trigger: string;
}

/**
 * supervisor → worker: the outcome of the roll a {@linkcode RollMessage}
 * asked for.
 *
 * @example
 * ```ts
 * import type { RolledMessage } from "./control.ts";
 *
 * const message: RolledMessage = { type: "rolled", ok: true, generation: 2 };
 * ```
 */
export interface RolledMessage {
  /** The message type. */
  type: "rolled";
  /** Whether every worker was replaced. */
  ok: boolean;
  /** The workers' generation now. */
  generation: number;
  /** Why it failed. */
  reason?: string;
}

/**
 * worker → supervisor: the app state asked for by a {@linkcode SaveMessage},
 * by server name.
 *
 * @example
 * ```ts
 * import type { SavedMessage } from "./control.ts";
 *
 * const message: SavedMessage = { type: "saved", app: { http: { hits: 3 } } };
 * ```
 */
export interface SavedMessage {
  /** The message type. */
  type: "saved";
  /** The app state by server name. */
  app: Record<string, unknown>;
}

/**
 * old → new: the old process has stopped accepting and is draining.
 *
 * @example
 * ```ts
 * import type { DrainingMessage } from "./control.ts";
 *
 * const message: DrainingMessage = { type: "draining" };
 * ```
 */
export interface DrainingMessage {
  /** The message type. */
  type: "draining";
}

/**
 * old → new: the old process has finished; the handover is complete.
 *
 * @example
 * ```ts
 * import type { DoneMessage } from "./control.ts";
 *
 * const message: DoneMessage = { type: "done" };
 * ```
 */
export interface DoneMessage {
  /** The message type. */
  type: "done";
}

/**
 * Either direction: abort the handover, saying why.
 *
 * @example
 * ```ts
 * import type { FailMessage } from "./control.ts";
 *
 * const message: FailMessage = { type: "fail", reason: "port 8000 is busy" };
 * ```
 */
export interface FailMessage {
  /** The message type. */
  type: "fail";
  /** A human-readable reason. */
  reason: string;
}

/**
 * What the old process sends (and the new one receives).
 *
 * @example Handle a message in the new process
 * ```ts
 * import type { OldToNewMessage } from "./control.ts";
 *
 * function describe(message: OldToNewMessage): string {
 *   switch (message.type) {
 *     case "state":
 *       return `state ${JSON.stringify(message.state)}`;
 *     case "draining":
 *     case "done":
 *     case "save":
 *     case "rolled":
 *     case "view":
 *       return message.type;
 *     case "fail":
 *       return `failed: ${message.reason}`;
 *   }
 * }
 * console.log(describe({ type: "done" }));
 * ```
 */
export type OldToNewMessage =
  | StateMessage
  | DrainingMessage
  | DoneMessage
  | FailMessage
  | SaveMessage
  | RolledMessage
  | ViewMessage;

/**
 * What the new process sends after its hello (and the old one receives).
 *
 * @example
 * ```ts
 * import type { NewToOldMessage } from "./control.ts";
 *
 * const ready: NewToOldMessage = { type: "ready", pid: Deno.pid };
 * ```
 */
export type NewToOldMessage =
  | ReadyMessage
  | FailMessage
  | SavedMessage
  | RollMessage
  | StatsMessage;

/**
 * Every message of the protocol.
 *
 * @example
 * ```ts
 * import type { ControlMessage } from "./control.ts";
 *
 * const messages: ControlMessage[] = [{ type: "draining" }, { type: "done" }];
 * ```
 */
export type ControlMessage = HelloMessage | OldToNewMessage | NewToOldMessage;

// ---------------------------------------------------------------------------
// Errors
// ---------------------------------------------------------------------------

/**
 * Why a control operation failed:
 * - `"timeout"`: no message arrived in time (the connection stays usable);
 * - `"eof"`: the other side closed or reset the connection;
 * - `"protocol"`: the other side sent something invalid (bad JSON, a wrong
 *   field, an over-long line, a message not meant for this side);
 * - `"closed"`: this side closed the connection or server;
 * - `"env"`: the control environment variables are malformed.
 *
 * @example
 * ```ts
 * import type { ControlErrorCode } from "./control.ts";
 *
 * const code: ControlErrorCode = "timeout";
 * ```
 */
export type ControlErrorCode =
  | "timeout"
  | "eof"
  | "protocol"
  | "closed"
  | "env";

/**
 * An error of the control channel; `code` says what kind.
 *
 * @example Tell a timeout from a dead peer
 * ```ts
 * import { ControlError } from "./control.ts";
 *
 * function explain(error: unknown): string {
 *   if (error instanceof ControlError && error.code === "timeout") {
 *     return "the other process is slow";
 *   }
 *   return `the handover failed: ${error}`;
 * }
 * console.log(explain(new ControlError("timeout", "no message within 5 ms")));
 * ```
 */
export class ControlError extends Error {
  /** What kind of failure this is. */
  readonly code: ControlErrorCode;

  /**
   * Creates the error.
   *
   * @param code What kind of failure.
   * @param message What happened.
   * @param options The underlying error, if any, as `cause`.
   */
  constructor(code: ControlErrorCode, message: string, options?: ErrorOptions) {
    super(message, options);
    this.name = "ControlError";
    this.code = code;
  }
}

// ---------------------------------------------------------------------------
// Parsing
// ---------------------------------------------------------------------------

/**
 * Parses one line (without its `\n`) into a message, checking every field.
 * Unknown extra fields are dropped.
 *
 * @param line The line's text.
 * @returns The message.
 * @throws {ControlError} With code `"protocol"` when the line is not JSON, not
 * an object, has an unknown type, or lacks a field of its type.
 *
 * @example
 * ```ts
 * import { parseControlMessage } from "./control.ts";
 * import assert from "node:assert/strict";
 *
 * assert.deepStrictEqual(parseControlMessage('{"type":"ready","pid":42}'), {
 *   type: "ready",
 *   pid: 42,
 * });
 * assert.throws(() => parseControlMessage("[1, 2]"));
 * ```
 */
export function parseControlMessage(line: string): ControlMessage {
  let value: unknown;
  try {
    value = JSON.parse(line);
  } catch (error) {
    throw new ControlError("protocol", "the line is not JSON", {
      cause: error,
    });
  }
  return toControlMessage(value);
}

/** Checks a parsed JSON value and rebuilds it as a message with known fields only. */
function toControlMessage(value: unknown): ControlMessage {
  if (typeof value !== "object" || value === null || Array.isArray(value)) {
    throw new ControlError("protocol", "the line is not a JSON object");
  }
  const record = value as Record<string, unknown>;
  switch (record.type) {
    case "hello":
      if (typeof record.token !== "string") {
        throw new ControlError("protocol", "hello without a string token");
      }
      if (!isPid(record.pid)) {
        throw new ControlError("protocol", "hello without a valid pid");
      }
      return { type: "hello", token: record.token, pid: record.pid };
    case "state":
      if (!Object.hasOwn(record, "state")) {
        throw new ControlError("protocol", "state without a state field");
      }
      return { type: "state", state: record.state };
    case "ready":
      if (!isPid(record.pid)) {
        throw new ControlError("protocol", "ready without a valid pid");
      }
      if (record.listeners === undefined) {
        return { type: "ready", pid: record.pid };
      }
      return {
        type: "ready",
        pid: record.pid,
        listeners: toListeners(record.listeners),
      };
    case "save":
      return { type: "save" };
    case "view":
      if (
        typeof record.status !== "object" || record.status === null ||
        Array.isArray(record.status)
      ) {
        throw new ControlError("protocol", "view without a status object");
      }
      return {
        type: "view",
        status: record.status as Record<string, unknown>,
      };
    case "stats":
      if (!isCount(record.inFlight) || !isCount(record.served)) {
        throw new ControlError("protocol", "stats without counts");
      }
      return {
        type: "stats",
        inFlight: record.inFlight,
        served: record.served,
      };
    case "roll":
      if (typeof record.trigger !== "string") {
        throw new ControlError("protocol", "roll without a string trigger");
      }
      return { type: "roll", trigger: record.trigger };
    case "rolled":
      if (
        typeof record.ok !== "boolean" ||
        !Number.isSafeInteger(record.generation)
      ) {
        throw new ControlError("protocol", "rolled without ok and generation");
      }
      return {
        type: "rolled",
        ok: record.ok,
        generation: record.generation as number,
        ...(typeof record.reason === "string" ? { reason: record.reason } : {}),
      };
    case "saved":
      if (
        typeof record.app !== "object" || record.app === null ||
        Array.isArray(record.app)
      ) {
        throw new ControlError("protocol", "saved without an app object");
      }
      return { type: "saved", app: record.app as Record<string, unknown> };
    case "draining":
      return { type: "draining" };
    case "done":
      return { type: "done" };
    case "fail":
      if (typeof record.reason !== "string") {
        throw new ControlError("protocol", "fail without a string reason");
      }
      return { type: "fail", reason: record.reason };
    default:
      // The type is not echoed: it comes from an unauthenticated peer.
      throw new ControlError(
        "protocol",
        typeof record.type === "string"
          ? "unknown message type"
          : "no message type",
      );
  }
}

/** Checks a ready message's listener list. */
function toListeners(
  value: unknown,
): { fd: number; name: string; addr: string }[] {
  if (!Array.isArray(value)) {
    throw new ControlError("protocol", "ready with listeners not an array");
  }
  return value.map((item) => {
    const { fd, name, addr } = (item ?? {}) as Record<string, unknown>;
    if (
      !Number.isSafeInteger(fd) || (fd as number) < 0 ||
      typeof name !== "string" || typeof addr !== "string"
    ) {
      throw new ControlError("protocol", "ready with an invalid listener");
    }
    return { fd: fd as number, name, addr };
  });
}

function isCount(value: unknown): value is number {
  return typeof value === "number" && Number.isSafeInteger(value) && value >= 0;
}

function isPid(value: unknown): value is number {
  return typeof value === "number" && Number.isSafeInteger(value) && value > 0;
}

/**
 * Serializes a message into one line, `\n` included. The line is parsed back
 * and checked, so that nothing the other side would refuse is ever sent.
 */
function encodeMessage(
  message: ControlMessage,
  maxLineBytes: number,
): Uint8Array {
  const json = JSON.stringify(message);
  if (typeof json !== "string") {
    throw new TypeError("the message is not serializable as JSON");
  }
  try {
    toControlMessage(JSON.parse(json));
  } catch (error) {
    const why = (error as Error).message;
    throw new TypeError(`invalid control message: ${why}`, { cause: error });
  }
  const bytes = encoder.encode(`${json}\n`);
  const lineBytes = bytes.length - 1;
  if (lineBytes > maxLineBytes) {
    throw new RangeError(
      `the message is ${lineBytes} bytes, over the ${maxLineBytes}-byte limit`,
    );
  }
  return bytes;
}

// ---------------------------------------------------------------------------
// Socket helpers
// ---------------------------------------------------------------------------

/** Reads `\n`-terminated lines from a connection, never buffering more than one line's limit. */
class LineReader {
  readonly #conn: Deno.Conn;
  readonly #maxLineBytes: number;
  readonly #decoder = new TextDecoder("utf-8", { fatal: true });
  /** Bytes read; those from `#start` to `#end` are not consumed yet. */
  #buffer: Uint8Array;
  #start = 0;
  #end = 0;
  /** Bytes before this index are known to hold no newline. */
  #scanned = 0;

  constructor(conn: Deno.Conn, maxLineBytes: number) {
    this.#conn = conn;
    this.#maxLineBytes = maxLineBytes;
    this.#buffer = new Uint8Array(
      Math.min(READ_CHUNK_BYTES, maxLineBytes + 1) + READ_CHUNK_BYTES,
    );
  }

  /**
   * The next line, without its `\n`; null at a clean end of stream. Throws a
   * ControlError for an over-long line, invalid UTF-8 or a stream that ends
   * mid-line, and the connection's own error when a read fails.
   */
  async readLine(): Promise<string | null> {
    while (true) {
      const found = this.#buffer.subarray(this.#scanned, this.#end).indexOf(
        NEWLINE,
      );
      if (found >= 0) {
        const newline = this.#scanned + found;
        if (newline - this.#start > this.#maxLineBytes) {
          throw this.#tooLong();
        }
        const bytes = this.#buffer.subarray(this.#start, newline);
        this.#start = newline + 1;
        this.#scanned = this.#start;
        try {
          return this.#decoder.decode(bytes);
        } catch (error) {
          throw new ControlError("protocol", "the line is not valid UTF-8", {
            cause: error,
          });
        }
      }
      this.#scanned = this.#end;
      if (this.#end - this.#start > this.#maxLineBytes) {
        throw this.#tooLong();
      }
      this.#makeRoom();
      const count = await this.#conn.read(
        this.#buffer.subarray(this.#end, this.#end + READ_CHUNK_BYTES),
      );
      if (count === null) {
        if (this.#end > this.#start) {
          throw new ControlError(
            "eof",
            "the connection ended in the middle of a line",
          );
        }
        return null;
      }
      this.#end += count;
    }
  }

  #tooLong(): ControlError {
    return new ControlError(
      "protocol",
      `line longer than ${this.#maxLineBytes} bytes`,
    );
  }

  /** Ensures READ_CHUNK_BYTES free bytes after `#end`. */
  #makeRoom(): void {
    if (this.#buffer.length - this.#end >= READ_CHUNK_BYTES) return;
    const pending = this.#end - this.#start;
    if (pending + READ_CHUNK_BYTES <= this.#buffer.length) {
      // Enough room once the consumed bytes are dropped.
      this.#buffer.copyWithin(0, this.#start, this.#end);
    } else {
      // pending <= maxLineBytes here, so the buffer never exceeds the limit
      // plus one read chunk.
      const grown = new Uint8Array(
        Math.min(
          Math.max(this.#buffer.length * 2, pending + READ_CHUNK_BYTES),
          this.#maxLineBytes + READ_CHUNK_BYTES,
        ),
      );
      grown.set(this.#buffer.subarray(this.#start, this.#end), 0);
      this.#buffer = grown;
    }
    this.#scanned -= this.#start;
    this.#start = 0;
    this.#end = pending;
  }
}

/** Writes every byte (a write may be partial). */
async function writeAll(conn: Deno.Conn, bytes: Uint8Array): Promise<void> {
  let offset = 0;
  while (offset < bytes.length) {
    offset += await conn.write(bytes.subarray(offset));
  }
}

/** Closes a connection that may already be closed. */
function closeQuietly(closable: { close(): void }): void {
  try {
    closable.close();
  } catch {
    // Already closed: nothing to do.
  }
}

function checkLineLimit(value: number | undefined): number {
  const limit = value ?? MAX_LINE_BYTES;
  if (!Number.isSafeInteger(limit) || limit < 1) {
    throw new RangeError(
      `maxLineBytes must be a positive integer, got ${limit}`,
    );
  }
  return limit;
}

function checkHelloTimeout(value: number | undefined): number {
  const timeout = value ?? DEFAULT_HELLO_TIMEOUT_MS;
  if (!(timeout > 0 && timeout <= MAX_TIMER_MS)) {
    throw new RangeError(
      `helloTimeoutMs must be a number in (0, ${MAX_TIMER_MS}], got ${timeout}`,
    );
  }
  return timeout;
}

function checkReceiveTimeout(value: number | undefined): number {
  const timeout = value ?? DEFAULT_RECEIVE_TIMEOUT_MS;
  if (!(timeout > 0)) {
    throw new RangeError(
      `receiveTimeoutMs must be a positive number or Infinity, got ${timeout}`,
    );
  }
  return timeout;
}

// ---------------------------------------------------------------------------
// Peers
// ---------------------------------------------------------------------------

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
 *
 * @example The new process's side of the handshake
 * ```ts
 * import { connectControl } from "./control.ts";
 *
 * const old = await connectControl();
 * if (old) {
 *   const first = await old.receive();
 *   if (first.type === "state") console.log("state", first.state);
 *   await old.send({ type: "ready", pid: Deno.pid });
 *   await old.receive(); // draining
 *   await old.receive(); // done
 *   await old.close();
 * }
 * ```
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
 *
 * @example
 * ```ts ignore
 * import { openControlServer } from "./control.ts";
 *
 * const server = await openControlServer();
 * // …spawn the new process with server.env()…
 * const child = await server.accept(AbortSignal.timeout(10_000));
 * console.log(`new generation: pid ${child.pid}`);
 * ```
 */
export interface AcceptedPeer
  extends ControlPeer<OldToNewMessage, NewToOldMessage> {
  /** The new process's pid, as its hello said. */
  readonly pid: number;
  /** The client's TCP port on 127.0.0.1, to find who really holds the socket. */
  readonly remotePort: number;
}

interface PeerOptions {
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
class Peer<TSend extends ControlMessage, TReceive extends ControlMessage>
  implements ControlPeer<TSend, TReceive> {
  readonly closed: Promise<void>;
  readonly #conn: Deno.Conn;
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

  constructor(conn: Deno.Conn, reader: LineReader, options: PeerOptions) {
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
      `the control connection broke: ${(error as Error)?.message ?? error}`,
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
class OldSidePeer extends Peer<OldToNewMessage, NewToOldMessage>
  implements AcceptedPeer {
  readonly pid: number;
  readonly remotePort: number;

  constructor(
    conn: Deno.Conn,
    reader: LineReader,
    pid: number,
    options: PeerOptions,
  ) {
    super(conn, reader, options);
    this.pid = pid;
    this.remotePort = (conn.remoteAddr as Deno.NetAddr).port;
  }
}

/**
 * Whether process `pid` holds the TCP socket whose local port on 127.0.0.1
 * is `localPort` and whose peer is port `peerPort`: the hello's pid claim,
 * checked against the kernel, so that a same-user process that read the
 * secret cannot pose as the new generation. The kernel names the socket's
 * inode (a sock_diag(7) lookup by address, or, where netlink is not
 * available, /proc/net/tcp), and /proc/PID/fd says whether `pid` holds it.
 *
 * @example
 * ```ts ignore
 * if (!socketOwnedBy(child.pid, peer.remotePort, controlPort)) refuse();
 * ```
 */
export function socketOwnedBy(
  pid: number,
  localPort: number,
  peerPort: number,
): boolean {
  let inode = loopbackTcpInode(localPort, peerPort);
  if (inode === undefined) inode = procNetTcpInode(localPort, peerPort);
  if (inode === null || inode === 0) return false;
  return processHoldsSocket(pid, inode);
}

/**
 * The inode of the 127.0.0.1:`localPort` → 127.0.0.1:`peerPort` TCP socket
 * according to /proc/net/tcp, or null when it is not listed (or the table
 * cannot be read).
 *
 * @internal Exported for tests.
 *
 * @example
 * ```ts ignore
 * const inode = procNetTcpInode(conn.localAddr.port, conn.remoteAddr.port);
 * ```
 */
export function procNetTcpInode(
  localPort: number,
  peerPort: number,
): number | null {
  let table: string;
  try {
    table = Deno.readTextFileSync("/proc/net/tcp");
  } catch {
    return null;
  }
  const local = `0100007F:${
    localPort.toString(16).toUpperCase().padStart(4, "0")
  }`;
  const remote = `0100007F:${
    peerPort.toString(16).toUpperCase().padStart(4, "0")
  }`;
  let inode: number | null = null;
  for (const line of table.split("\n")) {
    const cols = line.trim().split(/\s+/);
    if (cols[1] === local && cols[2] === remote && /^\d+$/.test(cols[9])) {
      inode = Number(cols[9]);
    }
  }
  return inode;
}

/** Whether one of the fds of process `pid` is the socket `inode`. */
function processHoldsSocket(pid: number, inode: number): boolean {
  const target = `socket:[${inode}]`;
  try {
    for (const entry of Deno.readDirSync(`/proc/${pid}/fd`)) {
      try {
        if (Deno.readLinkSync(`/proc/${pid}/fd/${entry.name}`) === target) {
          return true;
        }
      } catch {
        // closed meanwhile
      }
    }
  } catch {
    return false;
  }
  return false;
}

// ---------------------------------------------------------------------------
// The old process: the server
// ---------------------------------------------------------------------------

/**
 * Options of {@linkcode openControlServer}.
 *
 * @example Fast timeouts and a report of every rejected connection
 * ```ts
 * import { type ControlServerOptions, openControlServer } from "./control.ts";
 *
 * const options: ControlServerOptions = {
 *   helloTimeoutMs: 1000,
 *   onReject: (reason) => console.warn(`control: ${reason}`),
 * };
 * const server = await openControlServer(options);
 * await server.close();
 * ```
 */
export interface ControlServerOptions {
  /**
   * How long (ms) a connection has, from the moment it is accepted, to send a
   * valid hello. Default: {@linkcode DEFAULT_HELLO_TIMEOUT_MS}.
   */
  helloTimeoutMs?: number;
  /**
   * The longest line (bytes, without `\n`), for the hello and for every later
   * message in either direction sent or received by this side. Default:
   * {@linkcode MAX_LINE_BYTES}.
   */
  maxLineBytes?: number;
  /**
   * The accepted peer's default `receive()` timeout (ms). Default:
   * {@linkcode DEFAULT_RECEIVE_TIMEOUT_MS}.
   */
  receiveTimeoutMs?: number;
  /**
   * Called once for every connection closed without being accepted, with the
   * reason and the remote address. It must not throw (what it throws is
   * ignored).
   */
  onReject?: (reason: string) => void;
}

/**
 * The old process's control listener; see {@linkcode openControlServer}.
 *
 * @example
 * ```ts
 * import { type ControlServer, openControlServer } from "./control.ts";
 *
 * const server: ControlServer = await openControlServer();
 * console.log(server.addr); // 127.0.0.1:PORT
 * await server.close();
 * ```
 */
export interface ControlServer {
  /** Where it listens: `"127.0.0.1:PORT"`. */
  readonly addr: string;
  /** The one-time secret: 64 lowercase hex digits. */
  readonly token: string;
  /**
   * The variables to add to the new process's environment:
   * {@linkcode CONTROL_ADDR_ENV} and {@linkcode CONTROL_TOKEN_ENV}.
   */
  env(): Record<string, string>;
  /**
   * Resolves with the new process once it has sent a valid hello; the
   * listener is closed by then. Every call resolves with that same peer.
   * From then on the caller owns the peer and must close it.
   *
   * @param signal Aborting it rejects with its reason and closes the server
   * (as {@linkcode ControlServer.close} does).
   * @throws {ControlError} `"closed"` when the server was closed first; or the
   * listener's error when accepting failed.
   */
  accept(signal?: AbortSignal): Promise<AcceptedPeer>;
  /**
   * Closes the listener and every connection not yet authenticated (each is
   * reported to `onReject`), rejects pending `accept()` calls, and closes an
   * authenticated peer that no `accept()` has returned yet. Resolves when all
   * of it has settled. Calling it again is harmless.
   */
  close(): Promise<void>;
}

/** A connection that has not sent a valid hello yet. */
interface Unauthenticated {
  conn: Deno.Conn;
  /** Why the server closed it, when it did. */
  dropReason: string | undefined;
  closed: boolean;
}

/** The implementation of {@linkcode ControlServer}. */
class Server implements ControlServer {
  readonly addr: string;
  readonly token: string;
  readonly #listener: Deno.TcpListener;
  readonly #token: string;
  readonly #helloTimeoutMs: number;
  readonly #peerOptions: PeerOptions;
  readonly #onReject: ((reason: string) => void) | undefined;
  readonly #unauthenticated = new Set<Unauthenticated>();
  readonly #tasks = new Set<Promise<void>>();
  readonly #result: PromiseWithResolvers<OldSidePeer>;
  readonly #loop: Promise<void>;
  #peer: OldSidePeer | undefined;
  #delivered = false;
  #listenerClosed = false;
  #closing = false;

  constructor(
    listener: Deno.TcpListener,
    token: string,
    helloTimeoutMs: number,
    peerOptions: PeerOptions,
    onReject: ((reason: string) => void) | undefined,
  ) {
    this.#listener = listener;
    this.addr = `${LOOPBACK}:${listener.addr.port}`;
    this.token = token;
    this.#token = token;
    this.#helloTimeoutMs = helloTimeoutMs;
    this.#peerOptions = peerOptions;
    this.#onReject = onReject;
    this.#result = Promise.withResolvers<OldSidePeer>();
    // Nobody may ever call accept(); its rejection is not an unhandled one.
    this.#result.promise.catch(() => {});
    this.#loop = this.#acceptLoop();
  }

  env(): Record<string, string> {
    return { [CONTROL_ADDR_ENV]: this.addr, [CONTROL_TOKEN_ENV]: this.token };
  }

  accept(signal?: AbortSignal): Promise<AcceptedPeer> {
    return new Promise((resolve, reject) => {
      if (signal?.aborted) {
        void this.close();
        reject(signal.reason);
        return;
      }
      const onAbort = () => {
        void this.close();
        reject(signal?.reason);
      };
      signal?.addEventListener("abort", onAbort, { once: true });
      this.#result.promise.then(
        (peer) => {
          signal?.removeEventListener("abort", onAbort);
          if (signal?.aborted) return;
          this.#delivered = true;
          resolve(peer);
        },
        (error) => {
          signal?.removeEventListener("abort", onAbort);
          reject(error);
        },
      );
    });
  }

  async close(): Promise<void> {
    if (!this.#closing) {
      this.#closing = true;
      this.#closeListener();
      for (const pending of this.#unauthenticated) {
        this.#drop(pending, "the control server was closed");
      }
      this.#result.reject(
        new ControlError("closed", "the control server was closed"),
      );
      if (this.#peer !== undefined && !this.#delivered) {
        void this.#peer.close();
      }
    }
    await this.#loop;
    await Promise.all(this.#tasks);
    if (this.#peer !== undefined && !this.#delivered) {
      await this.#peer.closed;
    }
  }

  async #acceptLoop(): Promise<void> {
    while (true) {
      let conn: Deno.TcpConn;
      try {
        conn = await this.#listener.accept();
      } catch (error) {
        if (this.#listenerClosed) return;
        if (
          error instanceof Deno.errors.ConnectionAborted ||
          error instanceof Deno.errors.ConnectionReset
        ) {
          continue; // One client gave up while queued; keep listening.
        }
        // Anything else (e.g. out of file descriptors) ends the server.
        this.#result.reject(error);
        void this.close();
        return;
      }
      const task = this.#authenticate(conn);
      this.#tasks.add(task);
      task.then(() => this.#tasks.delete(task));
    }
  }

  /** Reads and checks the hello of one connection. Never rejects. */
  async #authenticate(conn: Deno.TcpConn): Promise<void> {
    const from = `${conn.remoteAddr.hostname}:${conn.remoteAddr.port}`;
    const pending: Unauthenticated = {
      conn,
      dropReason: undefined,
      closed: false,
    };
    this.#unauthenticated.add(pending);
    const timer = setTimeout(() => {
      this.#drop(pending, `no valid hello within ${this.#helloTimeoutMs} ms`);
    }, this.#helloTimeoutMs);
    const reader = new LineReader(conn, this.#peerOptions.maxLineBytes);
    if (this.#closing) {
      // Accepted just before close(): the read below fails at once.
      this.#drop(pending, "the control server was closed");
    }
    let hello: HelloMessage;
    try {
      const line = await reader.readLine();
      if (pending.dropReason !== undefined) {
        throw new ControlError("closed", pending.dropReason);
      }
      if (line === null) {
        throw new ControlError("eof", "closed before sending a hello");
      }
      const message = parseControlMessage(line);
      if (message.type !== "hello") {
        throw new ControlError("protocol", "the first message is not a hello");
      }
      if (!this.#tokenMatches(message.token)) {
        throw new ControlError("protocol", "wrong token");
      }
      if (this.#peer !== undefined || this.#closing) {
        throw new ControlError("protocol", "the token was already used");
      }
      hello = message;
    } catch (error) {
      clearTimeout(timer);
      this.#unauthenticated.delete(pending);
      this.#closeConn(pending);
      const reason = pending.dropReason ?? describeError(error);
      this.#report(`${reason} (from ${from})`);
      return;
    }
    clearTimeout(timer);
    this.#unauthenticated.delete(pending);
    // Small request/response messages: do not let Nagle hold them back.
    conn.setNoDelay(true);
    const peer = new OldSidePeer(conn, reader, hello.pid, this.#peerOptions);
    this.#peer = peer;
    // One hello only: stop listening, turn away whoever else is connected.
    this.#closeListener();
    for (const other of this.#unauthenticated) {
      this.#drop(other, "the handshake is already done");
    }
    this.#result.resolve(peer);
  }

  /** Compares in constant time (no early exit; the loop runs over the secret's length). */
  #tokenMatches(candidate: string): boolean {
    return constantTimeEqual(candidate, this.#token);
  }

  #drop(pending: Unauthenticated, reason: string): void {
    if (pending.dropReason === undefined) pending.dropReason = reason;
    this.#closeConn(pending);
  }

  #closeConn(pending: Unauthenticated): void {
    if (pending.closed) return;
    pending.closed = true;
    closeQuietly(pending.conn);
  }

  #closeListener(): void {
    if (this.#listenerClosed) return;
    this.#listenerClosed = true;
    closeQuietly(this.#listener);
  }

  #report(reason: string): void {
    if (this.#onReject === undefined) return;
    try {
      this.#onReject(reason);
    } catch {
      // A report must not affect the server or the handshake.
    }
  }
}

/**
 * Whether `candidate` equals `secret`, in time that depends only on the
 * secret's length (which is public: always 64 hex digits). Plain JS, so that
 * the new generation does not pay for loading node:crypto at start-up.
 */
function constantTimeEqual(candidate: string, secret: string): boolean {
  let diff = candidate.length ^ secret.length;
  for (let i = 0; i < secret.length; i++) {
    const c = i < candidate.length ? candidate.charCodeAt(i) : 0;
    diff |= c ^ secret.charCodeAt(i);
  }
  return diff === 0;
}

function describeError(error: unknown): string {
  if (error instanceof ControlError) return error.message;
  if (error instanceof Error) return `read failed: ${error.name}`;
  return `read failed: ${String(error)}`;
}

/**
 * Opens the old process's control listener on 127.0.0.1 (a random port) with
 * a fresh one-time secret (32 random bytes, hex). Pass `env()` to the new
 * process, then `accept()` it.
 *
 * The listening socket is close-on-exec: the new process only gets the
 * address and secret, through the environment.
 *
 * @param options Timeouts, the line limit, and the rejection report.
 * @returns The listening server.
 * @throws {RangeError} When an option is out of range.
 *
 * @example The old process's side of the handshake
 * ```ts ignore
 * import { openControlServer } from "./control.ts";
 *
 * const server = await openControlServer({ onReject: console.warn });
 * const command = new Deno.Command(Deno.execPath(), {
 *   args: ["run", "-A", "main.ts"],
 *   env: server.env(),
 * });
 * const process = command.spawn();
 * const child = await server.accept(AbortSignal.timeout(10_000));
 * await child.send({ type: "state", state: { generation: 2 } });
 * const ready = await child.receive(60_000);
 * if (ready.type === "ready") {
 *   await child.send({ type: "draining" });
 *   // …drain…
 *   await child.send({ type: "done" });
 * }
 * await child.close();
 * await server.close();
 * await process.status;
 * ```
 */
export function openControlServer(
  options: ControlServerOptions = {},
): Promise<ControlServer> {
  try {
    const helloTimeoutMs = checkHelloTimeout(options.helloTimeoutMs);
    const maxLineBytes = checkLineLimit(options.maxLineBytes);
    const receiveTimeoutMs = checkReceiveTimeout(options.receiveTimeoutMs);
    const secret = crypto.getRandomValues(new Uint8Array(TOKEN_BYTES));
    const token = Array.from(
      secret,
      (byte) => byte.toString(16).padStart(2, "0"),
    ).join("");
    const listener = Deno.listen({
      hostname: LOOPBACK,
      port: 0,
      transport: "tcp",
    });
    const server = new Server(listener, token, helloTimeoutMs, {
      maxLineBytes,
      receiveTimeoutMs,
      receives: NEW_TO_OLD_TYPES,
      sends: OLD_TO_NEW_TYPES,
    }, options.onReject);
    return Promise.resolve(server);
  } catch (error) {
    return Promise.reject(error);
  }
}

// ---------------------------------------------------------------------------
// The new process: connecting
// ---------------------------------------------------------------------------

/**
 * The environment {@linkcode connectControl} reads; `Deno.env` satisfies it.
 * When it can `delete`, the two control variables are removed from it.
 *
 * @example A plain map as the environment
 * ```ts
 * import type { ControlEnv } from "./control.ts";
 *
 * const env: ControlEnv = new Map<string, string>();
 * ```
 */
export interface ControlEnv {
  /** Returns the value of `key`, or undefined when it is not set. */
  get(key: string): string | undefined;
  /** Removes `key`. */
  delete?(key: string): unknown;
}

/**
 * Options of {@linkcode connectControl}.
 *
 * @example
 * ```ts
 * import type { ConnectControlOptions } from "./control.ts";
 *
 * const options: ConnectControlOptions = { receiveTimeoutMs: 60_000 };
 * ```
 */
export interface ConnectControlOptions {
  /**
   * The longest line (bytes, without `\n`) this side sends or receives.
   * Default: {@linkcode MAX_LINE_BYTES}.
   */
  maxLineBytes?: number;
  /**
   * The default `receive()` timeout (ms). Default:
   * {@linkcode DEFAULT_RECEIVE_TIMEOUT_MS}.
   */
  receiveTimeoutMs?: number;
}

/**
 * The new process's side: when the old generation started this process (both
 * {@linkcode CONTROL_ADDR_ENV} and {@linkcode CONTROL_TOKEN_ENV} are set),
 * connects to it and sends the hello (the secret and `Deno.pid`).
 *
 * The two variables are removed from `env` first (always, also when this
 * throws), so that the application's own child processes do not inherit
 * them. With the default `env`, that is `Deno.env`.
 *
 * @param env Where to read the variables. Default: `Deno.env`.
 * @param options The line limit and the default receive timeout.
 * @returns The connection to the old process once the hello is written, or
 * undefined when neither variable is set.
 * @throws {ControlError} `"env"` when only one variable is set or either is
 * malformed (the address must be `127.0.0.1:PORT`).
 * @throws {Deno.errors.ConnectionRefused} When nothing listens there any more.
 *
 * @example
 * ```ts
 * import { connectControl } from "./control.ts";
 *
 * const old = await connectControl();
 * if (old === undefined) {
 *   console.log("a first start: no old generation to take over from");
 * } else {
 *   const message = await old.receive();
 *   console.log(message.type);
 *   await old.close();
 * }
 * ```
 */
export async function connectControl(
  env: ControlEnv = Deno.env,
  options: ConnectControlOptions = {},
): Promise<ControlPeer<NewToOldMessage, OldToNewMessage> | undefined> {
  let addr: string | undefined;
  let token: string | undefined;
  try {
    addr = env.get(CONTROL_ADDR_ENV);
    token = env.get(CONTROL_TOKEN_ENV);
  } finally {
    env.delete?.(CONTROL_ADDR_ENV);
    env.delete?.(CONTROL_TOKEN_ENV);
  }
  if (addr === undefined && token === undefined) return undefined;
  if (addr === undefined || token === undefined) {
    const missing = addr === undefined ? CONTROL_ADDR_ENV : CONTROL_TOKEN_ENV;
    throw new ControlError("env", `${missing} is not set`);
  }
  const port = parseControlPort(addr);
  if (!/^[0-9a-f]{64}$/.test(token)) {
    throw new ControlError(
      "env",
      `${CONTROL_TOKEN_ENV} must be 64 lowercase hex digits`,
    );
  }
  const maxLineBytes = checkLineLimit(options.maxLineBytes);
  const receiveTimeoutMs = checkReceiveTimeout(options.receiveTimeoutMs);
  const hello = encodeMessage(
    { type: "hello", token, pid: Deno.pid },
    maxLineBytes,
  );
  const conn = await Deno.connect({
    hostname: LOOPBACK,
    port,
    transport: "tcp",
  });
  try {
    conn.setNoDelay(true);
    await writeAll(conn, hello);
  } catch (error) {
    closeQuietly(conn);
    throw error;
  }
  return new Peer<NewToOldMessage, OldToNewMessage>(
    conn,
    new LineReader(conn, maxLineBytes),
    {
      maxLineBytes,
      receiveTimeoutMs,
      receives: OLD_TO_NEW_TYPES,
      sends: NEW_TO_OLD_TYPES,
    },
  );
}

/** The port of a `127.0.0.1:PORT` control address. */
function parseControlPort(addr: string): number {
  const match = /^127\.0\.0\.1:([0-9]{1,5})$/.exec(addr);
  const port = match === null ? NaN : Number(match[1]);
  if (!(port >= 1 && port <= 65535)) {
    throw new ControlError(
      "env",
      `${CONTROL_ADDR_ENV} must be 127.0.0.1:PORT, got ${
        JSON.stringify(addr.slice(0, 64))
      }`,
    );
  }
  return port;
}
