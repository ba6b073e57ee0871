/**
 * The messages of the control channel (see control_protocol.ts for the
 * wire format): the handshake between two generations, and the requests a
 * supervisor and its workers exchange.
 *
 * @module
 */

/**
 * new → old, first line on the connection: the secret and the new process's
 * pid.
 *
 * @example
 * ```ts
 * import type { HelloMessage } from "./control_messages.ts";
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
 * import type { StateMessage } from "./control_messages.ts";
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
 * import type { ReadyMessage } from "./control_messages.ts";
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
 * import type { SaveMessage } from "./control_messages.ts";
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
 * import type { ViewMessage } from "./control_messages.ts";
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
 * import type { StatsMessage } from "./control_messages.ts";
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
 * import type { RollMessage } from "./control_messages.ts";
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
 * import type { RolledMessage } from "./control_messages.ts";
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
 * import type { SavedMessage } from "./control_messages.ts";
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
 * import type { DrainingMessage } from "./control_messages.ts";
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
 * import type { DoneMessage } from "./control_messages.ts";
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
 * import type { FailMessage } from "./control_messages.ts";
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
 * import type { OldToNewMessage } from "./control_messages.ts";
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
 * import type { NewToOldMessage } from "./control_messages.ts";
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
 * import type { ControlMessage } from "./control_messages.ts";
 *
 * const messages: ControlMessage[] = [{ type: "draining" }, { type: "done" }];
 * ```
 */
export type ControlMessage = HelloMessage | OldToNewMessage | NewToOldMessage;
