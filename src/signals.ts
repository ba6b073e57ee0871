/**
 * Process signal wiring: which signals shut down, which restart, and the
 * SIGUSR1 inspector guard. What the actions do is the supervisor's business.
 *
 * Deno 2.9.2 and later open the V8 inspector on 127.0.0.1:9229 whenever the
 * process gets SIGUSR1, even when the app handles SIGUSR1 itself: any local
 * user could then run code in the process. Unless the process was started
 * with --inspect, this module closes the inspector as soon as it appears
 * (about 3 ms here) and warns once. SIGUSR2, `systemctl reload` (which uses
 * the CLI) or the admin API avoid the window altogether.
 *
 * @module
 */

import inspector from "node:inspector";
import { logger } from "./log.ts";
import { trace } from "./trace.ts";

const log = logger("signals");

/** The signals that stop servers unless told otherwise. */
export const DEFAULT_SHUTDOWN_SIGNALS: Deno.Signal[] = [
  "SIGTERM",
  "SIGINT",
  "SIGQUIT",
];

/** The signals that restart unless told otherwise. */
export const DEFAULT_RESTART_SIGNALS: Deno.Signal[] = ["SIGUSR1"];

/** What a signal does. */
export interface SignalActions {
  /** A shutdown signal arrived. */
  shutdown(signal: Deno.Signal): void;
  /** A restart signal arrived. */
  restart(signal: Deno.Signal): void;
}

const installed = new Map<Deno.Signal, () => void>();
let warnedInspector = false;

/**
 * Makes exactly `shutdown` and `restart` signals call `actions` (replacing any
 * earlier wiring by this module). Empty lists remove every listener.
 *
 * @example
 * ```ts ignore
 * wireSignals(["SIGTERM"], ["SIGUSR2"], {
 *   shutdown: () => server.shutdown(),
 *   restart: () => restart(),
 * });
 * ```
 */
export function wireSignals(
  shutdown: Deno.Signal[],
  restart: Deno.Signal[],
  actions: SignalActions,
): void {
  for (const [signal, listener] of installed) {
    Deno.removeSignalListener(signal, listener);
  }
  installed.clear();
  for (const signal of new Set([...shutdown, ...restart])) {
    const listener = listenerFor(signal, restart.includes(signal), actions);
    Deno.addSignalListener(signal, listener);
    installed.set(signal, listener);
  }
  // A stray SIGUSR1 when it is not a restart signal: without a listener it
  // would kill the process, and Deno would open the inspector anyway.
  if (
    (shutdown.length > 0 || restart.length > 0) && !installed.has("SIGUSR1")
  ) {
    const listener = guardInspector;
    Deno.addSignalListener("SIGUSR1", listener);
    installed.set("SIGUSR1", listener);
  }
}

function listenerFor(
  signal: Deno.Signal,
  isRestart: boolean,
  actions: SignalActions,
): () => void {
  return function listener() {
    trace(`signal ${signal}`);
    if (signal === "SIGUSR1") guardInspector();
    if (isRestart) actions.restart(signal);
    else actions.shutdown(signal);
  };
}

/** Whether this process was started with an --inspect flag (then it stays). */
export function inspectorWanted(cmdline: string[] = readCmdline()): boolean {
  return cmdline.some((arg) => /^--inspect(-brk|-wait)?(=|$)/.test(arg));
}

function readCmdline(): string[] {
  try {
    return Deno.readTextFileSync("/proc/self/cmdline").split("\0");
  } catch {
    return [];
  }
}

/**
 * Closes the inspector that Deno opens on SIGUSR1 as soon as it is up, unless
 * the process was started with --inspect.
 */
function guardInspector(): void {
  if (inspectorWanted()) return;
  if (!warnedInspector) {
    warnedInspector = true;
    log.warn(
      "SIGUSR1 makes Deno open the V8 inspector on 127.0.0.1:9229; closing it " +
        "at once. Prefer SIGUSR2 (restartSignals), the CLI reload or the admin API.",
    );
  }
  let tries = 0;
  const timer = setInterval(() => {
    tries++;
    if (inspector.url()) {
      inspector.close();
      clearInterval(timer);
    } else if (tries > 1000) {
      clearInterval(timer);
    }
  }, 1);
}
