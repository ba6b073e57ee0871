/**
 * Process signals: graceful shutdown of every server in the process on
 * SIGTERM, SIGINT or SIGQUIT, then exit 0. A second signal while draining
 * exits at once with status 1.
 *
 * @module
 */

import { logger } from "./log.ts";

const log = logger("signals");

/** What the signal handler needs of a server. */
export interface Stoppable {
  /** The server's name, for logs. */
  readonly name: string;
  /** Graceful shutdown. */
  shutdown(): Promise<void>;
}

/** The signals that stop servers unless told otherwise. */
export const DEFAULT_SHUTDOWN_SIGNALS: Deno.Signal[] = [
  "SIGTERM",
  "SIGINT",
  "SIGQUIT",
];

const servers = new Map<Stoppable, Deno.Signal[]>();
const installed = new Map<Deno.Signal, () => void>();
let stopping = false;

/**
 * Registers a server for graceful shutdown on `signals` (default
 * {@linkcode DEFAULT_SHUTDOWN_SIGNALS}; `false`: none). Returns the function
 * that unregisters it.
 *
 * @example
 * ```ts ignore
 * const untrack = trackServer(server, undefined);
 * // later
 * untrack();
 * ```
 */
export function trackServer(
  server: Stoppable,
  signals: Deno.Signal[] | false | undefined,
): () => void {
  const list = signals === false ? [] : signals ?? DEFAULT_SHUTDOWN_SIGNALS;
  servers.set(server, list);
  for (const signal of list) install(signal);
  return () => {
    servers.delete(server);
    sync();
  };
}

function install(signal: Deno.Signal): void {
  if (installed.has(signal)) return;
  function listener() {
    onSignal(signal);
  }
  Deno.addSignalListener(signal, listener);
  installed.set(signal, listener);
}

/** Removes listeners of signals that no server wants any more. */
function sync(): void {
  if (stopping) return;
  const wanted = new Set([...servers.values()].flat());
  for (const [signal, listener] of installed) {
    if (!wanted.has(signal)) {
      Deno.removeSignalListener(signal, listener);
      installed.delete(signal);
    }
  }
}

async function onSignal(signal: Deno.Signal): Promise<void> {
  if (stopping) {
    log.warn("{signal} again while draining: exiting now", { signal });
    Deno.exit(1);
  }
  stopping = true;
  const targets = [...servers].filter(([, list]) => list.includes(signal))
    .map(([server]) => server);
  log.info("{signal}: shutting down {count} server(s) gracefully", {
    signal,
    count: targets.length,
  });
  await Promise.allSettled(targets.map((server) => server.shutdown()));
  Deno.exit(0);
}
