/**
 * The worker side of the supervisor mode: a process started by the
 * supervisor (./supervisor.ts) with {@linkcode WORKER_ENV} set. It serves the
 * shared sockets like any generation, but restarts nothing itself: the
 * supervisor rolls. It keeps the control channel open, answers the
 * supervisor's requests for its app state, and drains and exits when the
 * supervisor is gone.
 *
 * @module
 */

import type { ControlPeer } from "../restart/control_peer.ts";
import type { RolledMessage } from "../restart/control_messages.ts";

/** Set (to the worker's slot, 1..N) in a worker's environment. */
export const WORKER_ENV = "GRACEFUL_WORKER";

/**
 * A secret every worker of one supervisor shares (the admin page's CSRF
 * token), in a worker's environment.
 */
export const WORKER_SECRET_ENV = "GRACEFUL_WORKER_SECRET";

/**
 * Set for a first-generation worker when the supervisor has systemd's fd
 * store on: inherited sockets no server claims are the supervisor's to drop
 * from the store, so the worker does not wait for them.
 */
export const WORKER_STORE_ENV = "GRACEFUL_WORKER_FDSTORE";

/**
 * Whether this worker's supervisor sweeps unclaimed stored sockets (see
 * {@linkcode WORKER_STORE_ENV}).
 */
export function supervisorSweepsStore(): boolean {
  return isWorker() && Deno.env.get(WORKER_STORE_ENV) === "1";
}

let secret: string | undefined | null = null;

/**
 * The secret the workers of this supervisor share, or undefined when this
 * process is no worker. Read once, then removed from the environment.
 */
export function workerSecret(): string | undefined {
  if (secret === null) {
    secret = Deno.env.get(WORKER_SECRET_ENV) || undefined;
    Deno.env.delete(WORKER_SECRET_ENV);
  }
  return secret;
}

let slot: string | undefined | null = null;

/**
 * The worker's slot (1..N), or undefined when this process is no worker.
 * Read once; the variable is then removed from the environment, so that the
 * app's own child processes do not take themselves for workers.
 */
export function workerSlot(): string | undefined {
  if (slot === null) {
    slot = Deno.env.get(WORKER_ENV) || undefined;
    if (slot !== undefined) Deno.env.delete(WORKER_ENV);
    const parent = Deno.env.get(WORKER_SUPERVISOR_ENV);
    Deno.env.delete(WORKER_SUPERVISOR_ENV);
    supervisorPid = /^\d+$/.test(parent ?? "") ? Number(parent) : Deno.ppid;
  }
  return slot;
}

/**
 * The supervisor's pid, in a worker's environment: a worker compares its
 * parent with it (Deno.ppid read later may already be the reaper's, were the
 * supervisor killed meanwhile), and never signals another process.
 */
export const WORKER_SUPERVISOR_ENV = "GRACEFUL_WORKER_SUPERVISOR";

let supervisorPid = 0;

/**
 * Whether this process is a worker of a supervisor.
 */
export function isWorker(): boolean {
  return workerSlot() !== undefined;
}

/** How often a worker sends its request counts, when they changed (ms). */
const STATS_MS = 1000;

let served = 0;

/**
 * In a worker, `handler` counting the requests it is given (for the
 * supervisor's status); elsewhere `handler` itself.
 */
export function countServed<A extends unknown[], R>(
  handler: (...args: A) => R,
): (...args: A) => R {
  if (!isWorker()) return handler;
  const counted = (...args: A): R => {
    served++;
    return handler(...args);
  };
  // The same arity: the native engine gives a handler that takes no
  // arguments Deno.serve's fast path, and no request.
  Object.defineProperty(counted, "length", { value: handler.length });
  return counted;
}

/** What {@linkcode followSupervisor} asks of the process. */
export interface WorkerHooks {
  /** Requests being served now. */
  inFlight(): number;
  /** The app state by server name (the `handover.save()` hooks). */
  saveApp(): Promise<Record<string, unknown>>;
  /** The supervisor is gone: drain and exit. */
  orphaned(): void;
}

/**
 * Serves the supervisor's requests on the control channel until it closes.
 */
export async function followSupervisor(
  channel: ControlPeer,
  hooks: WorkerHooks,
): Promise<void> {
  supervisor = channel;
  workerSlot();
  const parent = supervisorPid;
  let sent = "";
  const stats = setInterval(() => {
    const now = { type: "stats" as const, inFlight: hooks.inFlight(), served };
    const line = `${now.inFlight} ${now.served}`;
    if (line === sent) return;
    sent = line;
    channel.send(now).catch(() => {});
  }, STATS_MS);
  Deno.unrefTimer(stats);
  try {
    while (true) {
      const message = await channel.receive(Infinity);
      if (message.type === "save") {
        await channel.send({ type: "saved", app: await hooks.saveApp() });
      } else if (message.type === "rolled") {
        rollWaiters.shift()?.resolve(message);
      } else if (message.type === "view") {
        view = message.status;
      }
    }
  } catch {
    // the channel ended: the supervisor exited (or was killed)
  }
  clearInterval(stats);
  supervisor = undefined;
  for (const waiter of rollWaiters.splice(0)) {
    waiter.reject(new Error("the supervisor is gone"));
  }
  channel.close();
  // Still its child: the supervisor upgraded itself in place (execve)
  // without keeping this channel, and its new image stops this worker once
  // a replacement serves. Otherwise (this worker was reparented) the
  // supervisor is gone.
  while (Deno.ppid === parent) {
    await new Promise((resolve) => setTimeout(resolve, ORPHAN_POLL_MS));
  }
  hooks.orphaned();
}

/** How often a worker without its channel checks that its parent lives (ms). */
const ORPHAN_POLL_MS = 100;

let supervisor: ControlPeer | undefined;
let view: Record<string, unknown> | undefined;

/**
 * In a worker, the supervisor's status as it last sent it (its pid,
 * generation, rolls, last roll, workers, and request totals); undefined
 * elsewhere.
 */
export function supervisorView(): Record<string, unknown> | undefined {
  return view;
}
const rollWaiters: PromiseWithResolvers<RolledMessage>[] = [];

/**
 * Asks the supervisor to roll every worker; resolves with the outcome (it
 * is sent before this worker, rolled last, is told to drain).
 */
export async function requestRoll(trigger: string): Promise<RolledMessage> {
  if (!supervisor) throw new Error("this worker has no supervisor channel");
  const waiter = Promise.withResolvers<RolledMessage>();
  rollWaiters.push(waiter);
  await supervisor.send({ type: "roll", trigger });
  return await waiter.promise;
}

/**
 * A restart asked of a worker goes to its supervisor, as the restart signal
 * the supervisor listens to. Returns the supervisor's pid.
 */
export function askSupervisorToRoll(signal: Deno.Signal): number {
  workerSlot();
  if (Deno.ppid !== supervisorPid) {
    throw new Error(
      `the supervisor (pid ${supervisorPid}) is gone: no restart to ask for`,
    );
  }
  Deno.kill(supervisorPid, signal);
  return supervisorPid;
}
