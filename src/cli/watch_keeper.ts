/**
 * `--watch` in a terminal keeps the command in the foreground: every later
 * generation runs in a session of its own, so once the first one handed
 * over, the shell would take the terminal back and Ctrl-C would reach
 * nobody. The first process stays instead (serving nothing), follows the
 * serving generation through the pidfile every generation rewrites, passes
 * Ctrl-C (and SIGTERM) on to it, and exits once the pidfile is gone.
 *
 * @module
 */

import { readPid } from "../restart/pidfile.ts";
import { isAlive } from "../os/process.ts";
import { isLinuxMode } from "../os/platform.ts";

/** The pidfile that the first process follows, for every generation. */
export const KEEPER_ENV = "GRACEFUL_WATCH_PIDFILE";

/** How often the keeper reads the pidfile (ms). */
const POLL_MS = 200;

let keeper = false;
/** A stop was passed on before the keeper started following. */
let stopPassed = false;
/** The temporary directory of the pidfile, when this process made it. */
let madeDir: string | undefined;

/**
 * The pidfile for the CLI: `given`, or with `--watch` in a terminal one in a
 * private temporary directory, named to later generations by
 * {@linkcode KEEPER_ENV}. Makes this process the keeper when it is the first
 * with `--watch` in a terminal.
 */
export function watchPidfile(
  watch: boolean,
  given: string | undefined,
): string | undefined {
  const inherited = Deno.env.get(KEEPER_ENV);
  if (inherited !== undefined) return given ?? inherited;
  if (!watch || !Deno.stdin.isTerminal()) return given;
  if (given === undefined) {
    madeDir = Deno.makeTempDirSync({ prefix: "graceful-watch-" });
  }
  const path = given ?? `${madeDir}/watch.pid`;
  Deno.env.set(KEEPER_ENV, path);
  keeper = true;
  return path;
}

/**
 * Whether this process keeps the terminal after its handover.
 */
export function keepsForeground(): boolean {
  return keeper;
}

/**
 * Passes a stop (Ctrl-C, SIGTERM) that reaches the keeper while it still
 * drains its own handover on to the generation the pidfile names.
 */
export function passStop(): void {
  stopPassed = true;
  const pid = readPid(Deno.env.get(KEEPER_ENV)!);
  if (pid === undefined || pid === Deno.pid) return;
  try {
    Deno.kill(pid, "SIGTERM");
  } catch {
    // gone already
  }
}

/**
 * Stays in the foreground until the serving generation is gone, passing
 * SIGINT and SIGTERM on to it; then exits 0.
 */
export async function keepForeground(): Promise<never> {
  const pidfile = Deno.env.get(KEEPER_ENV)!;
  let serving: number | undefined;
  const pass = () => {
    if (serving === undefined) return;
    try {
      Deno.kill(serving, "SIGTERM");
    } catch {
      // gone already
    }
  };
  const signals: Deno.Signal[] = Deno.build.os === "windows"
    ? ["SIGINT"]
    : ["SIGINT", "SIGTERM"];
  for (const signal of signals) Deno.addSignalListener(signal, pass);
  while (true) {
    const pid = readPid(pidfile);
    if (pid !== undefined && pid !== Deno.pid) serving = pid;
    const gone = pid === undefined ||
      (isLinuxMode() && !isAlive(pid));
    // After a stop passed on while draining, the serving generation may be
    // gone before this loop ever read its pid.
    if (gone && (serving !== undefined || stopPassed)) break;
    await new Promise((resolve) => setTimeout(resolve, POLL_MS));
  }
  if (madeDir !== undefined) {
    try {
      Deno.removeSync(madeDir, { recursive: true });
    } catch {
      // removed already
    }
  }
  Deno.exit(0);
}
