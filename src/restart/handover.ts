/**
 * The handover state machine, old generation side: spawn the next generation,
 * authenticate it on the control channel, give it the state, wait until it is
 * ready, and only then stop accepting, drain and exit. When the new generation
 * fails in any way before it is ready, kill its process group and keep serving.
 *
 * Every OS and process call goes through {@linkcode HandoverSeam}, so that the
 * machine is unit-tested with a scripted child as well as for real.
 *
 *   serving --restart()--> spawning --hello--> handshaking --ready-->
 *   handing-over --drained--> exited
 *        ^                       |                    |
 *        +------- failure: kill the child's group ----+
 *
 * @module
 */

import {
  type GenerationInfo,
  type HandoverPhase,
  type HandoverSeam,
  type HandoverState,
  type HandoverTimeouts,
  type LastRestart,
  RestartError,
  type RestartOptions,
  type RestartResult,
  type SeamChild,
  type SeamControl,
  type SeamPeer,
} from "./handover_types.ts";
import { trace } from "./trace.ts";
import { errorMessage } from "../util/error_message.ts";

/** How long a failed new generation may drain after SIGTERM before SIGKILL. */
export const FAILED_CHILD_GRACE_MS = 3000;

/**
 * Waits until a new generation that said it failed has exited by itself (it
 * drains what it accepted on the shared sockets first), or until `deadline`.
 */
async function exitedOrDeadline(
  child: SeamChild,
  deadline: AbortSignal,
): Promise<void> {
  if (deadline.aborted) return;
  let onAbort: (() => void) | undefined;
  const aborted = new Promise<void>((resolve) => {
    onAbort = () => resolve();
    deadline.addEventListener("abort", onAbort, { once: true });
  });
  await Promise.race([child.exited, aborted]);
  deadline.removeEventListener("abort", onAbort!);
}

/**
 * Stops a new generation that did not take over: SIGTERM first, so that the
 * requests it may already have accepted on the shared sockets finish; its
 * whole process group gets SIGKILL if it is still there after
 * {@linkcode FAILED_CHILD_GRACE_MS}. Resolves once it is reaped.
 */
async function stopChild(child: SeamChild): Promise<void> {
  child.killGroup("SIGTERM");
  let timer: ReturnType<typeof setTimeout> | undefined;
  const graceOver = new Promise<boolean>((resolve) => {
    timer = setTimeout(() => resolve(false), FAILED_CHILD_GRACE_MS);
  });
  const gone = await Promise.race([child.exited.then(() => true), graceOver]);
  clearTimeout(timer);
  if (!gone) child.killGroup("SIGKILL");
  await child.exited;
}

/**
 * The old-generation side of a restart. One restart at a time: calls that
 * arrive during one join it.
 */
export class Restarter {
  #seam: HandoverSeam;
  #info: GenerationInfo;
  #timeouts: Required<HandoverTimeouts>;
  #phase: HandoverPhase = "serving";
  #current: Promise<RestartResult> | undefined;
  #cancel: AbortController | undefined;
  #last: LastRestart | undefined;

  constructor(
    seam: HandoverSeam,
    info: GenerationInfo,
    timeouts: HandoverTimeouts = {},
  ) {
    this.#seam = seam;
    this.#info = info;
    this.#timeouts = { startTimeout: timeouts.startTimeout ?? 30_000 };
  }

  /** Where the machine is now. */
  get phase(): HandoverPhase {
    return this.#phase;
  }

  /** The outcome of the last finished restart. */
  get lastRestart(): LastRestart | undefined {
    return this.#last;
  }

  /** This process's generation facts. */
  get info(): GenerationInfo {
    return this.#info;
  }

  /** Changes the start timeout for the next restarts. */
  setTimeouts(timeouts: HandoverTimeouts): void {
    if (timeouts.startTimeout !== undefined) {
      this.#timeouts.startTimeout = timeouts.startTimeout;
    }
  }

  /**
   * Restarts: resolves when the new generation serves (this process then
   * drains and exits), rejects with a {@linkcode RestartError} when it did
   * not (this process keeps serving). Concurrent calls share one restart.
   */
  restart(options: RestartOptions = {}): Promise<RestartResult> {
    if (this.#phase === "handing-over" || this.#phase === "exited") {
      return Promise.reject(
        new RestartError("this generation is already handing over"),
      );
    }
    this.#current ??= this.#run(options).finally(() => {
      this.#current = undefined;
      this.#cancel = undefined;
    });
    return this.#current;
  }

  /**
   * Cancels a restart in progress (before the child is ready): the child's
   * process group is killed and `restart()` rejects. Resolves when cleaned up.
   * After the child is ready it is the new generation, and nothing is cancelled.
   */
  async cancel(reason = "cancelled"): Promise<void> {
    const current = this.#current;
    if (!current || this.#phase === "handing-over") return;
    this.#cancel?.abort(new RestartError(`restart ${reason}`));
    await current.catch(() => {});
  }

  async #run(options: RestartOptions): Promise<RestartResult> {
    const seam = this.#seam;
    const trigger = options.trigger ?? "api";
    trace("restart: start");
    const started = Date.now();
    const cancel = new AbortController();
    this.#cancel = cancel;
    const generation = this.#info.generation + 1;
    seam.log(
      "info",
      `restarting (by ${trigger}): starting generation ${generation}`,
    );
    this.#phase = "spawning";
    let control: SeamControl | undefined;
    let child: SeamChild | undefined;
    let peer: SeamPeer | undefined;
    let saidFail = false;
    let vacated = false;
    const deadline = cancel.signal;
    const timer = setTimeout(
      () => cancel.abort("timeout"),
      this.#timeouts.startTimeout,
    );
    try {
      control = await seam.openControl();
      const listeners = seam.listeners();
      if (seam.vacate) {
        vacated = true;
        await seam.vacate();
      }
      const spawned = seam.spawn(
        vacated ? [] : listeners.map(({ fd, name }) => ({ fd, name })),
        control.env(),
        options,
      );
      child = spawned;
      const early = spawned.exited.then((status) => {
        throw new RestartError(
          `the new generation (pid ${spawned.pid}) exited with ${
            status.signal ? `signal ${status.signal}` : `code ${status.code}`
          } before it was ready`,
        );
      });
      early.catch(() => {});
      this.#phase = "handshaking";
      peer = await this.#within(
        deadline,
        early,
        control.accept(deadline),
        "connect",
      );
      trace("restart: hello accepted");
      control.close();
      if (peer.pid !== spawned.pid) {
        throw new RestartError(
          `control channel: hello from pid ${peer.pid}, expected ${spawned.pid}`,
        );
      }
      if (peer.heldBy && !peer.heldBy(spawned.pid)) {
        throw new RestartError(
          `control channel: a hello claiming pid ${spawned.pid} came from ` +
            `a socket that process does not hold; refused`,
        );
      }
      trace("restart: ownership checked");
      const state: HandoverState = {
        generation,
        firstStartedAt: this.#info.firstStartedAt,
        restarts: this.#info.restarts + 1,
        listeners,
        app: await seam.saveAppState(),
        restart: { trigger, at: started },
      };
      const adminToken = seam.adminToken?.();
      if (adminToken !== undefined) state.adminToken = adminToken;
      await peer.send({ type: "state", state });
      trace("restart: state sent");
      const received = peer.receive();
      // A generation that says why it failed and exits at once: its exit
      // and the end of the channel can be seen before its message is read,
      // in either order. Its message is the reason; else its exit.
      const exited = early.catch(async (exit) => {
        const last = await received.catch(() => undefined);
        if (last?.type !== "fail") throw exit;
        throw new RestartError(
          `the new generation failed to start: ${last.reason}`,
        );
      });
      exited.catch(() => {});
      const answered = received.catch(async (error) => {
        // The channel ended: the generation exits; say so by its exit.
        if ((error as { code?: unknown })?.code === "eof") await exited;
        throw error;
      });
      const answer = await this.#within(
        deadline,
        exited,
        answered,
        "become ready",
      );
      trace(`restart: ${answer.type} received`);
      if (answer.type === "fail") {
        saidFail = true;
        throw new RestartError(
          `the new generation failed to start: ${answer.reason}`,
        );
      }
      if (answer.type !== "ready") {
        throw new RestartError(
          `control channel: expected ready, got ${answer.type}`,
        );
      }
    } catch (error) {
      const reason = errorMessage(error);
      peer?.close();
      control?.close();
      if (child) {
        // One that said it failed drains, then exits: it gets until the
        // start deadline to do so.
        if (saidFail) await exitedOrDeadline(child, deadline);
        await stopChild(child);
      }
      clearTimeout(timer);
      if (vacated) await this.#reoccupy();
      this.#phase = "serving";
      this.#last = {
        ok: false,
        trigger,
        at: started,
        durationMs: Date.now() - started,
        reason,
      };
      seam.log(
        "error",
        `restart failed, generation ${this.#info.generation} keeps serving: ${reason}`,
      );
      throw error instanceof RestartError
        ? error
        : new RestartError(reason, { cause: error });
    }
    clearTimeout(timer);
    // Committed: the child is the new generation from here on.
    this.#phase = "handing-over";
    child.unref();
    const result = { pid: child.pid, generation };
    this.#last = {
      ok: true,
      trigger,
      at: started,
      durationMs: Date.now() - started,
      pid: child.pid,
    };
    seam.log(
      "info",
      `new generation ${generation} ready (pid ${child.pid}) in ${this.#last.durationMs} ms`,
    );
    this.#handOver(peer, child.pid, generation);
    return result;
  }

  /** Listens again after a failed complete restart; says so if it cannot. */
  async #reoccupy(): Promise<void> {
    try {
      await this.#seam.reoccupy?.();
    } catch (error) {
      this.#seam.log(
        "error",
        `cannot listen again after the failed restart: ${errorMessage(error)}`,
      );
    }
  }

  /** After ready: tell systemd, drain, say done, exit. Runs in the background. */
  async #handOver(
    peer: SeamPeer,
    pid: number,
    generation: number,
  ): Promise<void> {
    const seam = this.#seam;
    try {
      await seam.committed({ pid, generation });
      // Stop accepting at once (before the message is written), so that new
      // connections go to the new generation only.
      const drained = seam.drain();
      await peer.send({ type: "draining" }).catch(() => {});
      await drained;
      trace("handover: drained");
      await peer.send({ type: "done" }).catch(() => {});
    } catch (error) {
      seam.log("error", `handover: ${error}`);
    } finally {
      peer.close();
      this.#phase = "exited";
      seam.exit(0);
    }
  }

  /** Waits for `step`, failing on the deadline or an early exit. */
  async #within<T>(
    deadline: AbortSignal,
    early: Promise<never>,
    step: Promise<T>,
    what: string,
  ): Promise<T> {
    const ms = this.#timeouts.startTimeout;
    function deadlineError(): RestartError {
      const reason = deadline.reason;
      return reason instanceof RestartError ? reason : new RestartError(
        `the new generation did not ${what} within ${ms} ms`,
      );
    }
    let onAbort: (() => void) | undefined;
    const aborted = new Promise<never>((_, reject) => {
      onAbort = () => reject(deadlineError());
      if (deadline.aborted) onAbort();
      else deadline.addEventListener("abort", onAbort, { once: true });
    });
    aborted.catch(() => {});
    // A step that fails because the deadline aborted it reports the deadline.
    const guarded = step.catch((error) => {
      throw deadline.aborted ? deadlineError() : error;
    });
    try {
      return await Promise.race([guarded, early, aborted]);
    } finally {
      deadline.removeEventListener("abort", onAbort!);
    }
  }
}
