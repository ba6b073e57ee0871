/**
 * The pidfile, and the status file beside it (`<pidfile>.json`), through which
 * the CLI's `reload`, `stop` and `status` find and follow the server.
 *
 * The serving generation writes both atomically (write a temp file, rename)
 * once it is ready; every new generation rewrites them; a failed restart
 * records its outcome in the status file; a generation that shuts down
 * removes them, but only while they still name it.
 *
 * @module
 */

/** What the status file holds. */
export interface StatusFile {
  pid: number;
  generation: number;
  startedAt: number;
  firstStartedAt: number;
  restarts: number;
  listeners: string[];
  lastRestart?: {
    ok: boolean;
    trigger: string;
    at: number;
    durationMs: number;
    pid?: number;
    reason?: string;
  };
}

/**
 * The status file's path for a pidfile.
 *
 * @example
 * ```ts
 * import { statusPath } from "./pidfile.ts";
 * console.log(statusPath("/run/app.pid")); // "/run/app.pid.json"
 * ```
 */
export function statusPath(pidfile: string): string {
  return `${pidfile}.json`;
}

function writeAtomic(path: string, text: string): void {
  const temp = `${path}.${Deno.pid}.tmp`;
  Deno.writeTextFileSync(temp, text);
  Deno.renameSync(temp, path);
}

/**
 * Writes the pidfile and the status file, atomically.
 *
 * @example
 * ```ts ignore
 * writePidfile("/run/app.pid", status);
 * ```
 */
export function writePidfile(pidfile: string, status: StatusFile): void {
  writeAtomic(statusPath(pidfile), JSON.stringify(status, null, 2) + "\n");
  writeAtomic(pidfile, `${status.pid}\n`);
}

/**
 * Records a failed (or successful) restart in the status file, if the status
 * file still belongs to `pid`.
 *
 * @example
 * ```ts ignore
 * recordRestart("/run/app.pid", Deno.pid, { ok: false, ... });
 * ```
 */
export function recordRestart(
  pidfile: string,
  pid: number,
  lastRestart: NonNullable<StatusFile["lastRestart"]>,
): void {
  const current = readStatus(pidfile);
  if (!current || current.pid !== pid) return;
  writeAtomic(
    statusPath(pidfile),
    JSON.stringify({ ...current, lastRestart }, null, 2) + "\n",
  );
}

/**
 * Removes the pidfile and status file if they still name `pid`.
 *
 * @example
 * ```ts ignore
 * removePidfile("/run/app.pid", Deno.pid);
 * ```
 */
export function removePidfile(pidfile: string, pid: number): void {
  if (readPid(pidfile) !== pid) return;
  for (const path of [pidfile, statusPath(pidfile)]) {
    try {
      Deno.removeSync(path);
    } catch {
      // already gone
    }
  }
}

/**
 * The pid in a pidfile; undefined when missing. Throws when the file holds
 * something other than a pid, naming the file.
 *
 * @example
 * ```ts ignore
 * const pid = readPid("/run/app.pid");
 * ```
 */
export function readPid(pidfile: string): number | undefined {
  let text: string;
  try {
    text = Deno.readTextFileSync(pidfile);
  } catch (error) {
    if (error instanceof Deno.errors.NotFound) return undefined;
    throw error;
  }
  const pid = Number(text.trim());
  if (!/^\d+$/.test(text.trim()) || pid <= 0) {
    throw new Error(`pidfile ${pidfile} does not hold a pid: "${text.trim()}"`);
  }
  return pid;
}

/**
 * The status file beside a pidfile; undefined when missing or unreadable.
 *
 * @example
 * ```ts ignore
 * const status = readStatus("/run/app.pid");
 * ```
 */
export function readStatus(pidfile: string): StatusFile | undefined {
  try {
    return JSON.parse(Deno.readTextFileSync(statusPath(pidfile)));
  } catch {
    return undefined;
  }
}

/**
 * Whether process `pid` is alive (and not a zombie).
 *
 * @example
 * ```ts
 * import { isAlive } from "./pidfile.ts";
 * console.log(isAlive(Deno.pid)); // true
 * ```
 */
export function isAlive(pid: number): boolean {
  try {
    const stat = Deno.readTextFileSync(`/proc/${pid}/stat`);
    const state = stat.slice(stat.lastIndexOf(")") + 2).split(" ")[0];
    return state !== "Z" && state !== "X";
  } catch {
    return false;
  }
}
