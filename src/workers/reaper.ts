/**
 * The supervisor's one reaper: every child that ends, a worker or an orphan
 * reparented to this process (as PID 1), is reaped here. A worker's process
 * group is signalled only while its pid is not reaped (alive, or a zombie
 * seen through waitid WNOWAIT), so that a reused pid can never be hit.
 *
 * @module
 */

import { endedChild, reapChild } from "../os/spawn.ts";
import { type GenerationExit, signalName } from "../restart/child.ts";

/** How often the reaper looks without a SIGCHLD (a missed signal). */
const SWEEP_MS = 1000;

/** Reaps every child of this process, and reports the watched ones. */
export class Reaper {
  #watched = new Map<number, (exit: GenerationExit) => void>();
  #timer: ReturnType<typeof setInterval> | undefined;
  #onOrphan: (pid: number) => void;

  /** `onOrphan` hears of every reaped child that was not watched. */
  constructor(onOrphan: (pid: number) => void = () => {}) {
    this.#onOrphan = onOrphan;
  }

  /** Starts reaping (on SIGCHLD, and every second). */
  start(): void {
    Deno.addSignalListener("SIGCHLD", this.sweep);
    this.#timer = setInterval(this.sweep, SWEEP_MS);
  }

  /** Stops reaping. */
  stop(): void {
    Deno.removeSignalListener("SIGCHLD", this.sweep);
    clearInterval(this.#timer);
  }

  /** Resolves when child `pid` has ended and been reaped. */
  watch(pid: number): Promise<GenerationExit> {
    const { promise, resolve } = Promise.withResolvers<GenerationExit>();
    this.#watched.set(pid, resolve);
    this.sweep();
    return promise;
  }

  /**
   * Sends `signal` to watched child `pid` (`group`: to its whole process
   * group) if it is not reaped yet. Returns whether it was sent.
   */
  signal(pid: number, signal: Deno.Signal, group = false): boolean {
    if (!this.#watched.has(pid)) return false;
    try {
      Deno.kill(group ? -pid : pid, signal);
      return true;
    } catch {
      return false; // a zombie's group may be empty
    }
  }

  /** Reaps every ended child now. */
  sweep = (): void => {
    while (true) {
      const pid = endedChild();
      if (pid === undefined) return;
      const done = this.#watched.get(pid);
      // Still a zombie: its group id is reserved, so what the worker left
      // running in its group can be killed without hitting anyone else.
      if (done) this.signal(pid, "SIGKILL", true);
      const exit = reapChild(pid);
      this.#watched.delete(pid);
      if (!done) {
        this.#onOrphan(pid);
        continue;
      }
      done({
        code: exit?.code ?? null,
        signal: exit?.signal ? signalName(exit.signal) : null,
      });
    }
  };
}
