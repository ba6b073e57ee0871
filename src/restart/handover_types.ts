/**
 * The handover's vocabulary, shared by the state machine (handover.ts), the
 * process level and the admin API: the state given to the next generation,
 * a restart's options, outcome and error, and the seam through which the
 * machine reaches the OS.
 *
 * @module
 */

import type { ControlMessage } from "./control_messages.ts";

/** The state given to the next generation. */
export interface HandoverState {
  /** The new process's generation number (the first process is 1). */
  generation: number;
  /** When generation 1 started (ms since the epoch). */
  firstStartedAt: number;
  /** Restarts so far, this one included. */
  restarts: number;
  /** The fds passed, in order (fd 3 first), with their names and addresses. */
  listeners: { fd: number; name: string; addr: string }[];
  /** Application state from the `handover.save()` hooks, by server name. */
  app: Record<string, unknown>;
  /** The restart that made this generation. */
  restart: { trigger: RestartTrigger; at: number };
  /**
   * The admin token, when the process carries one: the CLI hands it on here
   * rather than in the next generation's arguments, which every local user
   * can read.
   */
  adminToken?: string;
}

/** What triggered a restart, for logs and status. */
export type RestartTrigger = "signal" | "api" | "admin" | "cli" | "watch";

/** Options of one restart. */
export interface RestartOptions {
  /** What asked for it (default "api"). */
  trigger?: RestartTrigger;
  /** Another main module for the new generation. */
  entry?: string;
  /** Another executable for the new generation. */
  execPath?: string;
}

/** A successful restart. */
export interface RestartResult {
  /** The new generation's pid. */
  pid: number;
  /** The new generation's number. */
  generation: number;
}

/** The authenticated channel to the child. */
export interface SeamPeer {
  /** The child's pid, as it said in hello. */
  readonly pid: number;
  /**
   * Whether the kernel says process `pid` really holds this connection (a
   * pid in a hello is only a claim). Optional: scripted peers have none.
   */
  heldBy?(pid: number): boolean;
  /** Sends one message. */
  send(message: ControlMessage): Promise<void>;
  /** The next message; rejects on timeout, EOF or garbage. */
  receive(timeoutMs?: number): Promise<ControlMessage>;
  /** Closes the channel. */
  close(): void;
}

/** The control listener. */
export interface SeamControl {
  /** Env vars that tell the child where and how to connect. */
  env(): Record<string, string>;
  /** The first authenticated peer. */
  accept(signal?: AbortSignal): Promise<SeamPeer>;
  /** Stops listening. */
  close(): void;
}

/** A spawned child. */
export interface SeamChild {
  /** Its pid. */
  readonly pid: number;
  /** Resolves when it exits (it is reaped). */
  readonly exited: Promise<{ code: number | null; signal: string | null }>;
  /** Kills its whole process group. */
  killGroup(signal?: Deno.Signal): void;
  /** Lets this process exit while the child runs. */
  unref(): void;
}

/** Everything the state machine needs from the outside world. */
export interface HandoverSeam {
  /** Opens the control listener. */
  openControl(): Promise<SeamControl>;
  /** The listening fds to pass on, in order. */
  listeners(): { fd: number; name: string; addr: string }[];
  /** Spawns the next generation with those fds and the extra env. */
  spawn(
    fds: { fd: number; name: string }[],
    env: Record<string, string>,
    options: RestartOptions,
  ): SeamChild;
  /** Collects application state (the `handover.save()` hooks). */
  saveAppState(): Promise<Record<string, unknown>>;
  /** The admin token to hand to the next generation, if any. */
  adminToken?(): string | undefined;
  /** Called once the child is ready, before draining (systemd: MAINPID=). */
  committed(child: { pid: number; generation: number }): Promise<void>;
  /** Stop accepting and drain every server in this process. */
  drain(): Promise<void>;
  /**
   * A complete restart (the windows mode: no fds to pass): stop accepting
   * and drain before the next generation starts, which opens the addresses
   * itself. Absent: the fds are passed, and this keeps serving meanwhile.
   */
  vacate?(): Promise<void>;
  /** After a failed complete restart: listen on the addresses again. */
  reoccupy?(): Promise<void>;
  /** Leaves: the handover is complete. */
  exit(code: number): void;
  /** Reports progress lines. */
  log(level: "info" | "warn" | "error", message: string): void;
}

/** Where the machine is. */
export type HandoverPhase =
  | "serving"
  | "spawning"
  | "handshaking"
  | "handing-over"
  | "exited";

/** The outcome of the last restart, for status pages. */
export interface LastRestart {
  /** Whether the new generation took over. */
  ok: boolean;
  /** What asked for the restart. */
  trigger: RestartTrigger;
  /** When it started (ms since the epoch). */
  at: number;
  /** How long it took until ready, or until it failed. */
  durationMs: number;
  /** The new generation's pid, when it took over. */
  pid?: number;
  /** Why it failed. */
  reason?: string;
}

/** Generation facts of this process. */
export interface GenerationInfo {
  /** This process's generation number (the first process is 1). */
  generation: number;
  /** When generation 1 started (ms since the epoch). */
  firstStartedAt: number;
  /** When this process started (ms since the epoch). */
  startedAt: number;
  /** Restarts before this generation. */
  restarts: number;
}

/** Timeouts of the handover. */
export interface HandoverTimeouts {
  /** How long the child may take to say hello and then ready (ms). Default 30000. */
  startTimeout?: number;
}

/** A restart failure: the old generation keeps serving. */
export class RestartError extends Error {
  /** A restart failure with its reason. */
  constructor(message: string, options?: ErrorOptions) {
    super(message, options);
    this.name = "RestartError";
  }
}
