/**
 * A server's drain: every binding finishes its requests and closes its idle
 * connections, up to a timeout after which the connections left are cut.
 *
 * @module
 */

import type { EngineBinding } from "../listen/types.ts";
import { logger } from "../util/log.ts";

const log = logger("server");

/** Options of {@linkcode drainBindings}. */
export interface DrainOptions {
  /** The longest the drain may take before connections are cut (ms). */
  drainTimeout: number;
  /** How long idle keep-alive connections may stay (ms). */
  idleGrace: number;
}

/** Drains `bindings` (which stopped accepting) within `drainTimeout`. */
export async function drainBindings(
  bindings: readonly EngineBinding[],
  options: DrainOptions,
): Promise<void> {
  const { drainTimeout, idleGrace } = options;
  log.info("draining {connections} connections ({inFlight} requests)", {
    connections: sum(bindings, (b) => b.connections),
    inFlight: sum(bindings, (b) => b.inFlight),
  });
  const drained = Promise.all(bindings.map((b) => b.drain(idleGrace)));
  let timer: ReturnType<typeof setTimeout> | undefined;
  const timedOut = new Promise<boolean>((resolve) => {
    timer = setTimeout(() => resolve(true), drainTimeout);
  });
  const expired = await Promise.race([drained.then(() => false), timedOut]);
  clearTimeout(timer);
  if (expired) {
    log.warn("drain timeout ({ms} ms): closing {connections} connections", {
      ms: drainTimeout,
      connections: sum(bindings, (b) => b.connections),
    });
    for (const binding of bindings) binding.abort();
  }
}

function sum(
  bindings: readonly EngineBinding[],
  count: (binding: EngineBinding) => number,
): number {
  return bindings.reduce((n, b) => n + count(b), 0);
}
