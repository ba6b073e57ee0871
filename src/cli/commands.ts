/**
 * The CLI's operator commands: `reload`, `stop` and `status`.
 *
 * How they reach the server: a signal, then polling the pidfile and the
 * status file beside it (`<pidfile>.json`). No extra socket is opened in the
 * server for them; only a user allowed to signal the server's process can
 * reload or stop it. `reload` knows a restart succeeded when the pidfile
 * names a new, live pid (a new generation writes it once ready), and that it
 * failed when the status file records a failed restart that started after
 * the signal.
 *
 * A pidfile is not trusted blindly: before a signal, the pid must be the
 * process that wrote the status file (its start time and command line, see
 * src/restart/pidfile.ts), both files its user's (or root's), in a directory
 * others cannot write. `reload` sends only a
 * signal the status file lists as a restart signal.
 *
 * @module
 */

import { parseArgs } from "./args.ts";
import type { WorkerStatus } from "../workers/pool.ts";
import { quoteValue } from "../util/quote.ts";
import { refuseSignalCommand } from "../os/platform.ts";
import { catchesSignal, isAlive } from "../os/process.ts";
import {
  checkPidfileDir,
  readPid,
  readStatus,
  type StatusFile,
  verifyServer,
} from "../restart/pidfile.ts";
import { errorMessage } from "../util/error_message.ts";

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

  deno run -A mod.ts reload --pidfile F [--signal SIG] [--timeout MS]
      restart with zero downtime; returns once the new generation serves;
      exits 1 with the reason when the restart failed (the old one still serves)
      the signal: one the server lists as a restart signal in F.json
      (SIGUSR2, else SIGHUP, else SIGUSR1); --signal must be one of them;
      an older server whose F.json lists none gets SIGUSR2 only if it
      catches it (else: refused; --signal SIGUSR1 if it restarts on that)
  deno run -A mod.ts stop (--pidfile F | --pid N) [--timeout MS]
      graceful stop (SIGTERM); returns once the process is gone
  deno run -A mod.ts status (--pidfile F | --pid N) [--json]
      exits 1 when nothing is running (no pidfile, a stale one, or a dead pid)

Before signalling, the pid must be the server that wrote F.json (start time
and command line), F and F.json its user's (or root's); a pidfile in a
directory others may write is refused.
--timeout defaults to 120000 ms.`;

/**
 * Runs `reload`, `stop` or `status`; resolves to the exit status.
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
  refuseSignalCommand(command);
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
    const pid = explicitPid !== undefined
      ? findPid(undefined, explicitPid)
      : (await trustedServer(pidfile!)).pid;
    return await stop(pid, timeoutMs);
  }
  return await status(pidfile, explicitPid, values.json === true);
}

function positiveInt(flag: string, raw: string): number {
  if (!/^\d+$/.test(raw) || Number(raw) <= 0) {
    throw new TypeError(`${flag} ${quoteValue(raw)} is not a positive number`);
  }
  return Number(raw);
}

function signalOf(raw: unknown): Deno.Signal | undefined {
  if (raw === undefined) return undefined;
  const name = String(raw).toUpperCase();
  const signal = name.startsWith("SIG") ? name : `SIG${name}`;
  if (!["SIGUSR1", "SIGUSR2", "SIGHUP"].includes(signal)) {
    throw new TypeError(
      `--signal ${quoteValue(String(raw))} must be SIGUSR1, SIGUSR2 or SIGHUP`,
    );
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

/**
 * The pid the pidfile names and its status, once checked to be the server
 * that wrote them; throws a one-line error otherwise. A restart rewrites the
 * status file, then the pidfile: a status naming another pid is read again.
 */
async function trustedServer(
  pidfile: string,
): Promise<{ pid: number; status: StatusFile | undefined }> {
  checkPidfileDir(pidfile);
  for (let attempt = 0;; attempt++) {
    const pid = findPid(pidfile, undefined);
    const status = readStatus(pidfile);
    if (status?.pid !== pid && attempt < 3) {
      await sleep(100);
      continue;
    }
    await verifyServer(pidfile, pid, status);
    return { pid, status };
  }
}

/** Restart signals, the safest first: SIGUSR1 makes Deno open its inspector. */
const RELOAD_PREFERENCE = ["SIGUSR2", "SIGHUP", "SIGUSR1"];

/**
 * The signal `reload` sends: `--signal` if the server restarts on it, else
 * the first of {@linkcode RELOAD_PREFERENCE} it restarts on. When the status
 * file does not list its restart signals (an older version), the process
 * must catch the signal (SigCgt in /proc/PID/status): SIGUSR2 if it does,
 * else a refusal, since an uncaught SIGUSR2 would end it (a 0.1.x server on
 * its default signals restarts on SIGUSR1 only). SIGUSR1 is never picked on
 * a guess: it can open the inspector on old versions; `--signal SIGUSR1`
 * asks for it.
 */
function reloadSignal(
  pid: number,
  explicit: Deno.Signal | undefined,
  status: StatusFile | undefined,
): Deno.Signal {
  const listed = status?.restartSignals;
  if (listed === undefined) {
    const signal = explicit ?? "SIGUSR2";
    const caught = catchesSignal(pid, signal);
    if (caught === true || (caught === undefined && explicit !== undefined)) {
      return signal;
    }
    const why = caught === false
      ? `does not catch ${signal} (it would end it)`
      : `may not catch ${signal} (its caught signals cannot be read)`;
    throw new Error(
      `pid ${pid}'s status file lists no restart signals (an older version) ` +
        `and it ${why}: refused` +
        (signal === "SIGUSR1" ? "" : `; if it restarts on SIGUSR1, run ` +
          `reload again with --signal SIGUSR1`),
    );
  }
  const shown = listed.length > 0 ? listed.join(", ") : "none";
  if (explicit !== undefined) {
    if (listed.includes(explicit)) return explicit;
    throw new Error(
      `--signal ${explicit}: pid ${pid} does not restart on it (its restart ` +
        `signals: ${shown}); it might stop or ignore it instead`,
    );
  }
  const pick = RELOAD_PREFERENCE.find((s) => listed.includes(s)) ?? listed[0];
  if (pick === undefined) {
    throw new Error(
      `pid ${pid} restarts on no signal (--restart-signal none): ` +
        `restart it through the admin API or server.restart()`,
    );
  }
  return pick as Deno.Signal;
}

function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

async function reload(
  pidfile: string,
  explicit: Deno.Signal | undefined,
  timeoutMs: number,
): Promise<number> {
  const { pid, status: before } = await trustedServer(pidfile);
  const signal = reloadSignal(pid, explicit, before);
  // A supervisor keeps its pid: its roll counter says when a roll is done.
  const rollsBefore = before?.restarts;
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

async function status(
  pidfile: string | undefined,
  explicitPid: number | undefined,
  json: boolean,
): Promise<number> {
  let pid = explicitPid;
  let st: StatusFile | undefined;
  let problem: string | undefined;
  if (pidfile !== undefined) {
    pid ??= readPid(pidfile);
    st = readStatus(pidfile);
    if (pid === undefined) problem = `no pidfile ${pidfile}`;
  }
  let running = pid !== undefined && isAlive(pid);
  if (pid !== undefined && !running) {
    problem = pidfile
      ? `stale pidfile ${pidfile}: pid ${pid} is not running`
      : `pid ${pid} is not running`;
  }
  if (running && pidfile !== undefined && explicitPid === undefined) {
    try {
      ({ pid, status: st } = await trustedServer(pidfile));
    } catch (error) {
      running = false;
      problem = errorMessage(error);
    }
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
      if (st.admin) console.log(`  admin API on ${st.admin}`);
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
