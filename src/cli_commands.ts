/**
 * The CLI's operator commands: `reload`, `stop` and `status`.
 *
 * How they reach the server: a signal, then polling the pidfile and the
 * status file beside it (`<pidfile>.json`). No extra socket is opened in the
 * server, so there is nothing more to secure; only a user allowed to signal
 * the server's process can reload or stop it. `reload` knows a restart
 * succeeded when the pidfile names a new, live pid (a new generation writes
 * it once ready), and that it failed when the status file records a failed
 * restart that started after the signal.
 *
 * @module
 */

import { parseArgs } from "./args.ts";
import type { WorkerStatus } from "./workers/pool.ts";
import { isAlive, readPid, readStatus, type StatusFile } from "./pidfile.ts";

const COMMON = {
  pidfile: { type: "string" },
  pid: { type: "string" },
  timeout: { type: "string" },
  json: { type: "boolean" },
  signal: { type: "string" },
  help: { type: "boolean", short: "h" },
} as const;

/** The operator commands' names. */
export const COMMANDS = ["reload", "stop", "status"] as const;

const HELP =
  `Operator commands (find the server through --pidfile F or --pid N):

  deno run -A mod.ts reload --pidfile F [--signal SIGUSR1] [--timeout MS]
      restart with zero downtime; returns once the new generation serves;
      exits 1 with the reason when the restart failed (the old one still serves)
  deno run -A mod.ts stop (--pidfile F | --pid N) [--timeout MS]
      graceful stop (SIGTERM); returns once the process is gone
  deno run -A mod.ts status (--pidfile F | --pid N) [--json]
      exits 1 when nothing is running (no pidfile, a stale one, or a dead pid)

--signal must match the server's --restart-signal (default SIGUSR1).
--timeout defaults to 120000 ms.`;

/**
 * Runs `reload`, `stop` or `status`; resolves to the exit status.
 *
 * @example
 * ```ts ignore
 * Deno.exit(await runCommand("status", ["--pidfile", "/run/app.pid"]));
 * ```
 */
export async function runCommand(
  command: typeof COMMANDS[number],
  args: string[],
): Promise<number> {
  const { values } = parseArgs(args, COMMON);
  if (values.help) {
    console.log(HELP);
    return 0;
  }
  const pidfile = values.pidfile as string | undefined;
  const timeoutMs = values.timeout === undefined
    ? 120_000
    : positiveInt("--timeout", values.timeout as string);
  const explicitPid = values.pid === undefined
    ? undefined
    : positiveInt("--pid", values.pid as string);
  if (pidfile === undefined && explicitPid === undefined) {
    throw new TypeError(`${command} needs --pidfile F or --pid N`);
  }
  if (command === "reload") {
    if (pidfile === undefined) {
      throw new TypeError(
        "reload needs --pidfile F: a new generation is found through it",
      );
    }
    return await reload(pidfile, signalOf(values.signal), timeoutMs);
  }
  if (command === "stop") {
    return await stop(findPid(pidfile, explicitPid), timeoutMs);
  }
  return status(pidfile, explicitPid, values.json === true);
}

function positiveInt(flag: string, raw: string): number {
  if (!/^\d+$/.test(raw) || Number(raw) <= 0) {
    throw new TypeError(`${flag} "${raw}" is not a positive number`);
  }
  return Number(raw);
}

function signalOf(raw: unknown): Deno.Signal {
  if (raw === undefined) return "SIGUSR1";
  const name = String(raw).toUpperCase();
  const signal = name.startsWith("SIG") ? name : `SIG${name}`;
  if (!["SIGUSR1", "SIGUSR2", "SIGHUP"].includes(signal)) {
    throw new TypeError(`--signal "${raw}" must be SIGUSR1, SIGUSR2 or SIGHUP`);
  }
  return signal as Deno.Signal;
}

/** The live pid named by the pidfile or --pid; throws why there is none. */
function findPid(pidfile: string | undefined, pid: number | undefined): number {
  if (pid !== undefined) {
    if (!isAlive(pid)) throw new Error(`pid ${pid} is not running`);
    return pid;
  }
  const found = readPid(pidfile!);
  if (found === undefined) {
    throw new Error(`no pidfile ${pidfile}: is the server running?`);
  }
  if (!isAlive(found)) {
    throw new Error(`stale pidfile ${pidfile}: pid ${found} is not running`);
  }
  return found;
}

function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

async function reload(
  pidfile: string,
  signal: Deno.Signal,
  timeoutMs: number,
): Promise<number> {
  const pid = findPid(pidfile, undefined);
  // A supervisor keeps its pid: its roll counter says when a roll is done.
  const rollsBefore = readStatus(pidfile)?.restarts;
  const sent = Date.now();
  Deno.kill(pid, signal);
  const deadline = sent + timeoutMs;
  while (Date.now() < deadline) {
    await sleep(25);
    const now = readPid(pidfile);
    if (now !== undefined && now !== pid && isAlive(now)) {
      const st = readStatus(pidfile);
      console.log(
        `reloaded: generation ${st?.generation ?? "?"} (pid ${now}) serves; ` +
          `pid ${pid} drains and exits`,
      );
      return 0;
    }
    const st = readStatus(pidfile);
    const last = st?.pid === pid ? st.lastRestart : undefined;
    if (
      "workers" in (st ?? {}) && last?.ok && rollsBefore !== undefined &&
      st!.restarts > rollsBefore
    ) {
      console.log(
        `reloaded: every worker rolled to generation ${st!.generation} ` +
          `(supervisor pid ${pid})`,
      );
      return 0;
    }
    if (last && !last.ok && last.at >= sent - 1000) {
      console.error(
        `reload failed, pid ${pid} keeps serving: ${last.reason ?? "unknown"}`,
      );
      return 1;
    }
    if (!isAlive(pid) && (now === pid || now === undefined)) {
      console.error(
        `reload failed: pid ${pid} exited and no new generation serves`,
      );
      return 1;
    }
  }
  console.error(`reload: no outcome within ${timeoutMs} ms`);
  return 1;
}

async function stop(pid: number, timeoutMs: number): Promise<number> {
  Deno.kill(pid, "SIGTERM");
  const deadline = Date.now() + timeoutMs;
  while (isAlive(pid)) {
    if (Date.now() > deadline) {
      console.error(`stop: pid ${pid} still running after ${timeoutMs} ms`);
      return 1;
    }
    await sleep(25);
  }
  console.log(`stopped: pid ${pid} drained and exited`);
  return 0;
}

function status(
  pidfile: string | undefined,
  explicitPid: number | undefined,
  json: boolean,
): number {
  let pid = explicitPid;
  let st: StatusFile | undefined;
  let problem: string | undefined;
  if (pidfile !== undefined) {
    pid ??= readPid(pidfile);
    st = readStatus(pidfile);
    if (pid === undefined) problem = `no pidfile ${pidfile}`;
  }
  const running = pid !== undefined && isAlive(pid);
  if (pid !== undefined && !running) {
    problem = pidfile
      ? `stale pidfile ${pidfile}: pid ${pid} is not running`
      : `pid ${pid} is not running`;
  }
  if (st && st.pid !== pid) st = undefined;
  if (json) {
    console.log(JSON.stringify({ running, pid, problem, ...st }, null, 2));
  } else if (!running) {
    console.log(`not running: ${problem}`);
  } else {
    console.log(`running: pid ${pid}`);
    if (st) {
      const up = Math.round((Date.now() - st.startedAt) / 1000);
      console.log(
        `  generation ${st.generation}, up ${up} s, ${st.restarts} restart(s) since ${
          new Date(st.firstStartedAt).toISOString()
        }`,
      );
      console.log(`  listening on ${st.listeners.join(", ")}`);
      for (const w of workersOf(st)) {
        console.log(
          `  worker ${w.slot}: pid ${w.pid}, generation ${w.generation}, ` +
            `${w.phase} since ${new Date(w.startedAt).toISOString()}, ` +
            `${w.inFlight} in flight, ${w.served} served`,
        );
      }
      if (st.lastRestart) {
        const r = st.lastRestart;
        console.log(
          `  last restart: ${r.ok ? "ok" : `FAILED (${r.reason})`} at ${
            new Date(r.at).toISOString()
          }`,
        );
      }
    }
  }
  return running ? 0 : 1;
}

/** A supervisor's workers, from its status file. */
function workersOf(status: StatusFile): WorkerStatus[] {
  const workers = (status as { workers?: WorkerStatus[] }).workers;
  return Array.isArray(workers) ? workers : [];
}
