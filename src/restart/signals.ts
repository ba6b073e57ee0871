/**
 * Process signal wiring: which signals shut down, which restart, and which
 * are ignored. What the actions do is the supervisor's business; the SIGUSR1
 * inspector hole is closed by ../server/inspector_guard.ts.
 *
 * Defaults: SIGTERM, SIGINT and SIGQUIT shut down; SIGUSR1 and SIGUSR2
 * restart. SIGHUP restarts too when the process has no controlling terminal
 * (systemd, containers, a restarted generation in its own session): that is
 * what endless, beego and nginx users send. In a terminal, SIGHUP means the
 * terminal closed: it shuts down. A SIGHUP ignored from the start (nohup)
 * stays ignored, in every generation.
 *
 * SIGHUP, SIGUSR1 and SIGUSR2 that are neither (a narrowed `restartSignals`)
 * are logged and ignored: without a listener, Deno's default action would
 * end the process, and nothing would serve.
 *
 * @module
 */

import { onInspectorSignal } from "../server/inspector_guard.ts";
import { logger } from "../util/log.ts";
import { trace } from "./trace.ts";

const log = logger("signals");

/** The signals that stop servers unless told otherwise (SIGHUP in a terminal too). */
export const DEFAULT_SHUTDOWN_SIGNALS: Deno.Signal[] = [
  "SIGTERM",
  "SIGINT",
  "SIGQUIT",
];

/** The signals that restart unless told otherwise (SIGHUP without a terminal too). */
export const DEFAULT_RESTART_SIGNALS: Deno.Signal[] = ["SIGUSR2", "SIGUSR1"];

/** Signals whose default action ends the process, and that people send to reload. */
const STRAY_SIGNALS: Deno.Signal[] = ["SIGHUP", "SIGUSR1", "SIGUSR2"];

/** What this process started with, as far as signals go. */
export interface SignalFacts {
  /** It has a controlling terminal (tty_nr in /proc/self/stat is not 0). */
  terminal: boolean;
  /** SIGHUP was ignored when it started (SigIgn in /proc/self/status: nohup). */
  hangupIgnored: boolean;
}

/**
 * Read when this module is loaded: Deno replaces an inherited SIG_IGN for
 * SIGHUP with a handler of its own early in the process's life, after which
 * /proc no longer shows it.
 */
const STARTUP_FACTS: SignalFacts = readSignalFacts();

/**
 * Whether this process has a controlling terminal, and whether it started
 * with SIGHUP ignored.
 */
export function signalFacts(): SignalFacts {
  return STARTUP_FACTS;
}

function readSignalFacts(): SignalFacts {
  let terminal = false;
  let hangupIgnored = false;
  try {
    const stat = Deno.readTextFileSync("/proc/self/stat");
    // After "(comm)": state ppid pgrp session tty_nr ...
    const fields = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
    terminal = Number(fields[4]) !== 0;
    const status = Deno.readTextFileSync("/proc/self/status");
    const ignored = status.match(/^SigIgn:\s+([0-9a-f]+)$/m)?.[1];
    // Bit n - 1 is signal n; SIGHUP is 1.
    hangupIgnored = ignored !== undefined &&
      (parseInt(ignored.slice(-1), 16) & 1) === 1;
  } catch {
    // not Linux, or no /proc: no terminal, nothing ignored
  }
  return { terminal, hangupIgnored };
}

/** The signal options of a server (see `ProcessOptions`). */
export interface SignalOptions {
  /** Signals that drain every server and exit 0; `false`: none. */
  shutdownSignals?: Deno.Signal[] | false;
  /** Signals that restart; `false`: none. */
  restartSignals?: Deno.Signal[] | false;
}

/**
 * The shutdown and restart signals that `options` mean in a process with
 * these `facts`: the defaults where a list is not given, SIGHUP on the side
 * the terminal decides (unless the other list names it), and SIGHUP on
 * neither when it was ignored from the start.
 */
export function resolveSignals(
  options: SignalOptions,
  facts: SignalFacts = STARTUP_FACTS,
): { shutdown: Deno.Signal[]; restart: Deno.Signal[] } {
  const given = (list: Deno.Signal[] | false | undefined) =>
    list !== undefined && list !== false && list.includes("SIGHUP");
  let restart = options.restartSignals === false
    ? []
    : options.restartSignals ?? [
      ...DEFAULT_RESTART_SIGNALS,
      ...(facts.terminal || given(options.shutdownSignals) ? [] : ["SIGHUP"]),
    ] as Deno.Signal[];
  let shutdown = options.shutdownSignals === false
    ? []
    : options.shutdownSignals ?? [
      ...DEFAULT_SHUTDOWN_SIGNALS,
      ...(facts.terminal && !given(options.restartSignals) ? ["SIGHUP"] : []),
    ] as Deno.Signal[];
  if (facts.hangupIgnored) {
    restart = restart.filter((s) => s !== "SIGHUP");
    shutdown = shutdown.filter((s) => s !== "SIGHUP");
  }
  return { shutdown: [...new Set(shutdown)], restart: [...new Set(restart)] };
}

/** What a signal does. */
export interface SignalActions {
  /** A shutdown signal arrived. */
  shutdown(signal: Deno.Signal): void;
  /** A restart signal arrived. */
  restart(signal: Deno.Signal): void;
}

const installed = new Map<Deno.Signal, () => void>();

/**
 * Makes exactly `shutdown` and `restart` signals call `actions` (replacing any
 * earlier wiring by this module); SIGHUP, SIGUSR1 and SIGUSR2 in neither list
 * are logged and ignored (a SIGHUP ignored from the start is left alone).
 * Empty lists remove every listener. A signal in both lists restarts.
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
  if (shutdown.length === 0 && restart.length === 0) return;
  const install = (signal: Deno.Signal, listener: () => void) => {
    Deno.addSignalListener(signal, listener);
    installed.set(signal, listener);
  };
  for (const signal of new Set([...shutdown, ...restart])) {
    install(signal, listenerFor(signal, restart.includes(signal), actions));
  }
  // Windows has none of them (listening to one throws there).
  for (const signal of Deno.build.os === "windows" ? [] : STRAY_SIGNALS) {
    if (installed.has(signal)) continue;
    if (signal === "SIGHUP" && STARTUP_FACTS.hangupIgnored) {
      // Deno's own handler (installed early on) would end the process on
      // it: the listener keeps nohup's promise.
      install(signal, () => {
        trace("signal SIGHUP (ignored since start-up)");
        log.info(
          "SIGHUP ignored: it was ignored when this process started (nohup)",
        );
      });
      continue;
    }
    install(signal, () => {
      trace(`signal ${signal} (ignored)`);
      if (signal === "SIGUSR1") onInspectorSignal();
      log.warn(
        "{signal} ignored: it is not a restart signal here (restart " +
          "signals: {restart})",
        { signal, restart: restart.join(", ") || "none" },
      );
    });
  }
}

function listenerFor(
  signal: Deno.Signal,
  isRestart: boolean,
  actions: SignalActions,
): () => void {
  return function listener() {
    trace(`signal ${signal}`);
    if (signal === "SIGUSR1") onInspectorSignal();
    if (isRestart) actions.restart(signal);
    else actions.shutdown(signal);
  };
}
