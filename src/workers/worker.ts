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

import type { ControlPeer } from "../control.ts";

/** Set (to the worker's slot, 1..N) in a worker's environment. */
export const WORKER_ENV = "GRACEFUL_WORKER";

let slot: string | undefined | null = null;

/**
 * The worker's slot (1..N), or undefined when this process is no worker.
 * Read once; the variable is then removed from the environment, so that the
 * app's own child processes do not take themselves for workers.
 *
 * @example
 * ```ts
 * import { workerSlot } from "./worker.ts";
 * console.log(workerSlot() ?? "not a worker");
 * ```
 */
export function workerSlot(): string | undefined {
  if (slot === null) {
    slot = Deno.env.get(WORKER_ENV) || undefined;
    if (slot !== undefined) Deno.env.delete(WORKER_ENV);
  }
  return slot;
}

/**
 * Whether this process is a worker of a supervisor.
 *
 * @example
 * ```ts
 * import { isWorker } from "./worker.ts";
 * if (isWorker()) console.log("the supervisor restarts");
 * ```
 */
export function isWorker(): boolean {
  return workerSlot() !== undefined;
}

/** What {@linkcode followSupervisor} asks of the process. */
export interface WorkerHooks {
  /** The app state by server name (the `handover.save()` hooks). */
  saveApp(): Promise<Record<string, unknown>>;
  /** The supervisor is gone: drain and exit. */
  orphaned(): void;
}

/**
 * Serves the supervisor's requests on the control channel until it closes.
 *
 * @example
 * ```ts ignore
 * followSupervisor(peer, { saveApp, orphaned: () => stopProcess("orphaned") });
 * ```
 */
export async function followSupervisor(
  channel: ControlPeer,
  hooks: WorkerHooks,
): Promise<void> {
  try {
    while (true) {
      const message = await channel.receive(Infinity);
      if (message.type === "save") {
        await channel.send({ type: "saved", app: await hooks.saveApp() });
      }
    }
  } catch {
    // the channel ended: the supervisor exited (or was killed)
  }
  channel.close();
  hooks.orphaned();
}

/**
 * A restart asked of a worker goes to its supervisor, as the restart signal
 * the supervisor listens to. Returns the supervisor's pid.
 *
 * @example
 * ```ts ignore
 * askSupervisorToRoll("SIGUSR1");
 * ```
 */
export function askSupervisorToRoll(signal: Deno.Signal): number {
  const supervisor = Deno.ppid;
  Deno.kill(supervisor, signal);
  return supervisor;
}
