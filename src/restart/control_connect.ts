/**
 * The new process's side of the control channel: the environment that says
 * where the old generation listens, and the connection with its hello.
 *
 * @module
 */

import { closeQuietly, LineReader, writeAll } from "./control_lines.ts";
import type { NewToOldMessage, OldToNewMessage } from "./control_messages.ts";
import {
  checkLineLimit,
  checkReceiveTimeout,
  type ControlPeer,
  Peer,
} from "./control_peer.ts";
import {
  CONTROL_ADDR_ENV,
  CONTROL_TOKEN_ENV,
  ControlError,
  encodeMessage,
  LOOPBACK,
  NEW_TO_OLD_TYPES,
  OLD_TO_NEW_TYPES,
} from "./control_protocol.ts";

/**
 * The environment {@linkcode connectControl} reads; `Deno.env` satisfies it.
 * When it can `delete`, the two control variables are removed from it.
 */
export interface ControlEnv {
  /** Returns the value of `key`, or undefined when it is not set. */
  get(key: string): string | undefined;
  /** Removes `key`. */
  delete?(key: string): unknown;
}

/**
 * Options of {@linkcode connectControl}.
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
