/**
 * The complete restart of the windows mode, where no fd can be passed: the
 * old process stops accepting (it "vacates" its addresses; its requests in
 * flight finish there), the next one starts at once and opens the same
 * addresses itself, and when that one fails, the old one listens on them
 * again ("reoccupies") and keeps serving. Each process serves with plain
 * Deno.serve on the addresses it opens itself (engine/own_address.ts). New
 * connections are refused from the vacating until the next one listens;
 * BENCHMARKS.md says for how long.
 *
 * @module
 */

import type { Addr } from "../listen/types.ts";
import { type ListenSpec, parseListenAddress } from "../listen/address.ts";
import type { HandoverState } from "./handover_types.ts";
import { opensOwnAddresses } from "../os/platform.ts";

/**
 * Whether restarts are complete ones here (the windows mode).
 */
export function completeRestarts(): boolean {
  return opensOwnAddresses();
}

/**
 * The addresses the previous generation listened on for server `name`, for
 * this one to open: in the windows mode, after a restart; else undefined.
 */
export function reopenedSpecs(
  name: string,
  state: HandoverState | undefined,
): ListenSpec[] | undefined {
  if (state === undefined || !completeRestarts()) return undefined;
  const mine = state.listeners.filter((l) => l.name === name);
  if (mine.length === 0) return undefined;
  return mine.map((l) => parseListenAddress(l.addr));
}

/**
 * The spec that listens on `addr` again.
 */
export function specOf(addr: Addr): ListenSpec {
  return "path" in addr
    ? { transport: "unix", path: addr.path }
    : { transport: "tcp", hostname: addr.hostname, port: addr.port };
}
