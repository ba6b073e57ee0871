/**
 * The old process's side of the control channel: a one-time listener on
 * 127.0.0.1 that accepts exactly one connection with the right secret, and
 * turns every other away without disturbing the handshake.
 *
 * @module
 */

import { closeQuietly, LineReader } from "./control_lines.ts";
import type { HelloMessage } from "./control_messages.ts";
import {
  type AcceptedPeer,
  checkHelloTimeout,
  checkLineLimit,
  checkReceiveTimeout,
  OldSidePeer,
  type PeerOptions,
} from "./control_peer.ts";
import {
  CONTROL_ADDR_ENV,
  CONTROL_TOKEN_ENV,
  ControlError,
  LOOPBACK,
  NEW_TO_OLD_TYPES,
  OLD_TO_NEW_TYPES,
  parseControlMessage,
} from "./control_protocol.ts";

/** The size of the secret, in random bytes (it travels as twice as many hex digits). */
const TOKEN_BYTES = 32;

/**
 * Options of {@linkcode openControlServer}.
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
      const reason = pending.dropReason ?? rejectionReason(error);
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

/**
 * Why a connection was turned away, for `onReject`: a ControlError's own
 * words, but only the name of any other (read) error.
 */
function rejectionReason(error: unknown): string {
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
