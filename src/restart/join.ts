/**
 * A new generation joining the handover: the hello on the control channel,
 * the state the previous generation hands over, and then following the
 * previous generation until it has drained (systemd hears READY=1 once it
 * stopped accepting).
 *
 * @module
 */

import type { HandoverState } from "./handover_types.ts";
import { connectControl } from "./control_connect.ts";
import type { ControlPeer } from "./control_peer.ts";
import { processState, started, statusLine } from "./process_state.ts";
import { sdNotify } from "../systemd/notify.ts";
import { trace } from "./trace.ts";
import { logger } from "../util/log.ts";

const log = logger("supervisor");

/** The join, once started. */
let joined: Promise<HandoverState | undefined> | undefined;
/** Resolves once the hello is written (or connecting failed). */
let helloWritten: Promise<void> | undefined;

/**
 * As a new generation: joins the handover once (hello, then receives the
 * state). Resolves to undefined in a first generation.
 */
export function joinGeneration(): Promise<HandoverState | undefined> {
  if (joined === undefined) {
    trace("join: connecting to the control channel");
    const connecting = connectControl();
    helloWritten = connecting.then(() => {}, () => {});
    joined = join(connecting);
  }
  return joined;
}

/**
 * Starts {@linkcode joinGeneration} if needed, and resolves once the hello is
 * written to the previous generation (at once in a first generation; also
 * when connecting failed, which `joinGeneration()` reports). The previous
 * generation checks the hello and collects the state meanwhile, so a new
 * generation should let the hello out before it blocks its event loop
 * (loading modules, say).
 */
export function helloSent(): Promise<void> {
  joinGeneration().catch(() => {});
  return helloWritten ?? Promise.resolve();
}

async function join(
  connecting: ReturnType<typeof connectControl>,
): Promise<HandoverState | undefined> {
  const channel = await connecting;
  if (!channel) return undefined;
  trace("join: hello sent");
  processState.peer = channel;
  const message = await channel.receive(60_000);
  trace("join: state received");
  if (message.type !== "state") {
    channel.close();
    throw new Error(`control channel: expected state, got ${message.type}`);
  }
  const state = message.state as HandoverState;
  processState.madeBy = {
    ok: true,
    trigger: state.restart?.trigger ?? "api",
    at: state.restart?.at ?? started,
    durationMs: Date.now() - (state.restart?.at ?? started),
    pid: Deno.pid,
  };
  processState.info = {
    generation: state.generation,
    firstStartedAt: state.firstStartedAt,
    startedAt: started,
    restarts: state.restarts,
  };
  log.info("generation {generation} (pid {pid}) joined the handover", {
    generation: processState.info.generation,
    pid: Deno.pid,
  });
  return state;
}

/**
 * Once ready: hears the previous generation stop accepting (then systemd
 * hears READY=1: the previous one has told it MAINPID=<this pid>) and
 * finish, and lets go of the channel.
 */
export async function followOldGeneration(
  channel: ControlPeer,
): Promise<void> {
  try {
    while (true) {
      const message = await channel.receive(24 * 3600_000);
      if (message.type === "draining") {
        trace("the previous generation drains");
        sdNotify(`READY=1\nSTATUS=${statusLine()}`);
        log.info("the previous generation stopped accepting and drains");
      } else if (message.type === "done") {
        log.info("the previous generation has drained");
        break;
      }
    }
  } catch {
    // the old generation is gone: nothing more to learn
  } finally {
    channel.close();
    processState.peer = undefined;
  }
}
