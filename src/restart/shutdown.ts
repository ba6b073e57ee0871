/**
 * Ending the process level: a graceful shutdown of every server (systemd
 * hears STOPPING=1 with time enough for the longest drain), and the drain at
 * once after a handover or a failed start.
 *
 * @module
 */

import { processState, releaseProcess, servers } from "./process_state.ts";
import { sdNotify } from "../systemd/notify.ts";
import { logger } from "../util/log.ts";

const log = logger("supervisor");

/**
 * Drains every server of this process, cancelling a restart in progress first.
 */
export async function shutdownAll(why: string): Promise<void> {
  processState.stopping = true;
  const drainMs = Math.max(0, ...[...servers].map((s) => s.drainTimeout));
  sdNotify(
    `STOPPING=1\nEXTEND_TIMEOUT_USEC=${(drainMs + 5000) * 1000}\n` +
      `STATUS=draining (shutting down ${why})`,
  );
  await processState.restarter?.cancel(`cancelled: shutting down ${why}`);
  await Promise.allSettled([...servers].map((server) => server.shutdown()));
}

/**
 * Drains every server, releases the pidfile and exits 0: a stop that was not
 * asked for by a signal (the admin API).
 */
export function stopProcess(why: string): void {
  if (processState.stopping) return;
  log.info("shutting down {count} server(s) gracefully ({why})", {
    count: servers.size,
    why,
  });
  shutdownAll(why).then(() => {
    releaseProcess();
    Deno.exit(0);
  });
}

/**
 * Every server stops accepting and drains at once (no shutdown delay): after
 * a handover, or a failed start.
 */
export async function drainAllNow(): Promise<void> {
  await Promise.allSettled(
    [...servers].map((server) => server.drainForHandover()),
  );
}
