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
 */
export interface StateMessage {
  /** The message type. */
  type: "state";
  /** Any JSON value. */
  state: unknown;
}

/**
 * new → old: the new process is serving.
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
 */
export interface SaveMessage {
  /** The message type. */
  type: "save";
}

/**
 * supervisor → worker: the supervisor's status (its pid, generation, rolls,
 * workers...), for the admin API of whichever worker is asked.
 */
export interface ViewMessage {
  /** The message type. */
  type: "view";
  /** A JSON object. */
  status: Record<string, unknown>;
}

/**
 * worker → supervisor: its request counts, for the status.
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
 */
export interface SavedMessage {
  /** The message type. */
  type: "saved";
  /** The app state by server name. */
  app: Record<string, unknown>;
}

/**
 * old → new: the old process has stopped accepting and is draining.
 */
export interface DrainingMessage {
  /** The message type. */
  type: "draining";
}

/**
 * old → new: the old process has finished; the handover is complete.
 */
export interface DoneMessage {
  /** The message type. */
  type: "done";
}

/**
 * Either direction: abort the handover, saying why.
 */
export interface FailMessage {
  /** The message type. */
  type: "fail";
  /** A human-readable reason. */
  reason: string;
}

/**
 * What the old process sends (and the new one receives).
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
 */
export type NewToOldMessage =
  | ReadyMessage
  | FailMessage
  | SavedMessage
  | RollMessage
  | StatsMessage;

/**
 * Every message of the protocol.
 */
export type ControlMessage = HelloMessage | OldToNewMessage | NewToOldMessage;
