/**
 * The control channel's protocol between two generations of a server during
 * a zero-downtime restart: its environment variables and limits, its errors,
 * and the checked parsing and encoding of its lines.
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

import type { ControlMessage } from "./control_messages.ts";
import { errorMessage } from "../util/error_message.ts";

/**
 * The environment variable that carries the control address
 * (`"127.0.0.1:PORT"`) to the new process.
 */
export const CONTROL_ADDR_ENV = "GRACEFUL_CONTROL_ADDR";

/**
 * The environment variable that carries the one-time secret (64 hex digits)
 * to the new process.
 */
export const CONTROL_TOKEN_ENV = "GRACEFUL_CONTROL_TOKEN";

/**
 * The default longest line (in bytes, without the `\n`) either side accepts:
 * 1 MiB. A longer line ends the connection; at most this much (plus one read
 * chunk) is ever buffered for one connection.
 */
export const MAX_LINE_BYTES = 1024 * 1024;

/**
 * The default time (ms) a new connection has to deliver a valid hello before
 * it is closed.
 */
export const DEFAULT_HELLO_TIMEOUT_MS = 5000;

/**
 * The default time (ms) {@linkcode ControlPeer.receive} waits for the next
 * message when no timeout is given.
 */
export const DEFAULT_RECEIVE_TIMEOUT_MS = 30_000;

/** The only address the control channel uses. */
export const LOOPBACK = "127.0.0.1";

/** Message types the new process may receive (the old one sends them). */
export const OLD_TO_NEW_TYPES: ReadonlySet<string> = new Set([
  "state",
  "draining",
  "done",
  "fail",
  "save",
  "rolled",
  "view",
]);

/** Message types the old process may receive after the hello. */
export const NEW_TO_OLD_TYPES: ReadonlySet<string> = new Set([
  "ready",
  "fail",
  "saved",
  "roll",
  "stats",
]);

const encoder = new TextEncoder();

/**
 * Why a control operation failed:
 * - `"timeout"`: no message arrived in time (the connection stays usable);
 * - `"eof"`: the other side closed or reset the connection;
 * - `"protocol"`: the other side sent something invalid (bad JSON, a wrong
 *   field, an over-long line, a message not meant for this side);
 * - `"closed"`: this side closed the connection or server;
 * - `"env"`: the control environment variables are malformed.
 */
export type ControlErrorCode =
  | "timeout"
  | "eof"
  | "protocol"
  | "closed"
  | "env";

/**
 * An error of the control channel; `code` says what kind.
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

/**
 * Parses one line (without its `\n`) into a message, checking every field.
 * Unknown extra fields are dropped.
 *
 * @param line The line's text.
 * @returns The message.
 * @throws {ControlError} With code `"protocol"` when the line is not JSON, not
 * an object, has an unknown type, or lacks a field of its type.
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
export function encodeMessage(
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
    const why = errorMessage(error);
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
