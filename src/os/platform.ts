/**
 * The one owner of the platform decision: which of the module's three modes
 * this process runs in.
 *
 * - `linux`: everything (/proc, sock_diag(7), the native engine's epoll
 *   transplant, libc through FFI).
 * - `posix` (macOS, the BSDs): zero-downtime restarts with what POSIX has
 *   (fds passed at spawn, the control channel, the node engine); no /proc,
 *   no sock_diag ownership check, no native engine.
 * - `windows`: no fd passing and no HUP/USR1/USR2 (`Deno.kill` terminates):
 *   plain Deno.serve on the addresses the process opens itself (no FFI), and
 *   every restart is a complete one (stop accepting, drain, start the next
 *   process on the same addresses; the old one listens again if it fails).
 *
 * `GRACEFUL_PORTABLE=posix|windows` (the CLI's `--portable`) runs a mode on
 * Linux, so that CI proves both other paths.
 *
 * @module
 */

import { print } from "../util/log.ts";
import { errorMessage } from "../util/error_message.ts";

/** The variable that forces a mode (the CLI's `--portable` sets it). */
export const PORTABLE_ENV = "GRACEFUL_PORTABLE";

/** The module's modes: what the process can use. */
export type PlatformMode = "linux" | "posix" | "windows";

/** What {@linkcode platform} decided, and why. */
export interface Platform {
  /** `Deno.build.os`. */
  os: typeof Deno.build.os;
  /** The mode this process runs in. */
  mode: PlatformMode;
  /** Why the mode is not `linux` (empty on Linux). */
  reasons: string[];
  /** What this mode leaves out, in a few words each (empty on Linux). */
  missing: string[];
}

/** What the POSIX mode leaves out. */
const POSIX_MISSING = [
  "the native engine (epoll transplant; the node engine serves)",
  "the sock_diag ownership check of the control channel's hello " +
  "(the secret and the spawned pid remain)",
  "/proc checks of LISTEN_FDS (getsockopt checks them)",
];

/** What the Windows mode leaves out. */
const WINDOWS_MISSING = [
  "zero-downtime restarts (a restart is a complete one: new connections " +
  "are refused until the next process listens)",
  "LISTEN_FDS (socket activation)",
  "restart signals (HUP, USR1, USR2)",
  "the epoll transplant and the node engine (Deno.serve opens its " +
  "addresses itself)",
];

/**
 * Decides the mode for an OS and a `GRACEFUL_PORTABLE` value; throws a
 * one-line error naming the variable when the value is not a mode, or asks
 * for more than the OS has.
 */
export function decidePlatform(
  os: typeof Deno.build.os,
  portable: string | undefined,
): Platform {
  const wanted = portable === undefined || portable === ""
    ? undefined
    : portable;
  if (
    wanted !== undefined && wanted !== "posix" && wanted !== "windows" &&
    wanted !== "linux"
  ) {
    throw new Error(
      `${PORTABLE_ENV}=${wanted}: not a mode (use posix or windows)`,
    );
  }
  const native: PlatformMode = os === "linux"
    ? "linux"
    : os === "windows"
    ? "windows"
    : "posix";
  const rank = { linux: 0, posix: 1, windows: 2 };
  if (wanted !== undefined && rank[wanted] < rank[native]) {
    throw new Error(
      `${PORTABLE_ENV}=${wanted}: not available on ${os} (${native} mode)`,
    );
  }
  const mode = wanted ?? native;
  const reasons: string[] = [];
  if (mode !== "linux") {
    reasons.push(
      wanted !== undefined && mode !== native
        ? `${PORTABLE_ENV}=${wanted}`
        : `Deno.build.os is ${os}`,
    );
  }
  const missing = mode === "posix"
    ? [...POSIX_MISSING]
    : mode === "windows"
    ? [...WINDOWS_MISSING]
    : [];
  return { os, mode, reasons, missing };
}

let decided: Platform | undefined;

/**
 * This process's platform: `Deno.build.os` and `GRACEFUL_PORTABLE`, decided
 * once. Without `--allow-env`, the variable counts as unset.
 */
export function platform(): Platform {
  if (decided) return decided;
  let portable: string | undefined;
  try {
    portable = Deno.env.get(PORTABLE_ENV);
  } catch {
    portable = undefined;
  }
  decided = decidePlatform(Deno.build.os, portable);
  return decided;
}

/**
 * The one line that says what this mode leaves out, or undefined on Linux.
 */
export function platformWarning(decision: Platform): string | undefined {
  if (decision.mode === "linux") return undefined;
  return `serveGraceful: ${decision.mode} mode (${
    decision.reasons.join(", ")
  }): without ${decision.missing.join("; ")}`;
}

let warned = false;

/**
 * Whether a previous generation started this process, read as the module
 * loads: the handshake removes the variable before a server may start.
 */
const RESTARTED = (() => {
  try {
    return Deno.env.get("GRACEFUL_CONTROL_ADDR") !== undefined;
  } catch {
    return false; // without --allow-env: warn
  }
})();

/**
 * Prints {@linkcode platformWarning} once (to stderr): in the first
 * generation only, since a restarted one has the same mode (its previous
 * generation set `GRACEFUL_CONTROL_ADDR`).
 */
export function warnPlatformOnce(): void {
  if (warned) return;
  warned = true;
  if (RESTARTED) return;
  const line = platformWarning(platform());
  if (line !== undefined) print(console.warn, line);
}

/**
 * Whether this process may use Linux-only facilities (/proc, sock_diag,
 * epoll).
 */
export function isLinuxMode(): boolean {
  return platform().mode === "linux";
}

/**
 * Whether servers open their addresses themselves, with Deno.serve (the
 * windows mode): the registry then only reserves an address, and no fd
 * exists to pass on.
 */
export function opensOwnAddresses(): boolean {
  return platform().mode === "windows";
}

/**
 * The engine to use for the one asked for: outside Linux never the epoll
 * transplant. In the posix mode "auto" is the node engine and "native" is
 * refused with one line. In the windows mode Deno.serve serves every
 * listener ({@linkcode opensOwnAddresses}) whether "auto" or "native" was
 * asked for (this returns "node": no transplant to try), and "node" (which
 * serves fds) is refused with one line.
 */
export function portableEngine<E extends "auto" | "native" | "node">(
  wanted: E,
): E | "node" {
  const { mode } = platform();
  if (mode === "linux") return wanted;
  if (mode === "windows" && wanted === "node") {
    throw new Error(
      `engine: "node" serves passed fds, which the windows mode has none ` +
        `of (Deno.serve opens the addresses): use "auto"`,
    );
  }
  if (mode === "posix" && wanted === "native") {
    throw new Error(
      `engine: "native" needs Linux (epoll, /proc); this is the ${mode} ` +
        `mode: use "node" or "auto"`,
    );
  }
  return "node";
}

/**
 * This process's command line (argv[0] first) without /proc: what Deno says
 * of it. Deno's own flags are not in `Deno.args`, so a `deno run` is
 * rebuilt as `deno run -A MAIN ARGS` (the module needs -A anyway); flags such
 * as `--config` are lost, which the README says.
 */
export function commandLineWithoutProc(): string[] {
  if (Deno.build.standalone) return [Deno.execPath(), ...Deno.args];
  return [Deno.execPath(), "run", "-A", Deno.mainModule, ...Deno.args];
}

/**
 * The signals a mode can listen to: the windows mode has no restart signal
 * (Windows has no HUP, USR1 or USR2), and shuts down on what Windows can
 * deliver (SIGINT, SIGBREAK; on Linux, where it is simulated, SIGINT and
 * SIGTERM).
 */
export function portableSignals(
  signals: { shutdown: Deno.Signal[]; restart: Deno.Signal[] },
  decision: Platform = platform(),
): { shutdown: Deno.Signal[]; restart: Deno.Signal[] } {
  if (decision.mode !== "windows") return signals;
  const deliverable: Deno.Signal[] = decision.os === "windows"
    ? ["SIGINT", "SIGBREAK"]
    : ["SIGINT", "SIGTERM"];
  const shutdown = signals.shutdown.length === 0 ? [] : deliverable;
  return { shutdown, restart: [] };
}

/**
 * Throws the one line that refuses an operator command made of signals
 * (`reload`, `stop`) in the windows mode, where `Deno.kill` terminates.
 */
export function refuseSignalCommand(command: string): void {
  if (command === "status" || platform().mode !== "windows") return;
  throw new Error(
    `${command}: the windows mode has no signals to ${command} with ` +
      `(Deno.kill terminates); use the admin API (--admin)`,
  );
}

/**
 * The CLI's `--portable MODE`: checks it as `GRACEFUL_PORTABLE` would be
 * checked (the error names the flag) and sets the variable, for this process
 * (before anything asks {@linkcode platform}) and every later generation.
 */
export function setPortable(mode: string): void {
  try {
    decidePlatform(Deno.build.os, mode);
  } catch (error) {
    throw new Error(
      errorMessage(error).replace(`${PORTABLE_ENV}=`, "--portable "),
    );
  }
  Deno.env.set(PORTABLE_ENV, mode);
  decided = undefined;
}
