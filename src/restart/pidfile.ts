/**
 * The pidfile, and the status file beside it (`<pidfile>.json`), through which
 * the CLI's `reload`, `stop` and `status` find and follow the server.
 *
 * The serving generation writes both atomically once it is ready; every new
 * generation rewrites them; a failed restart records its outcome in the
 * status file; a generation that shuts down removes them, but only while
 * they still name it.
 *
 * The files are trusted to name a process that may then be signalled, so:
 *
 * - they are written through a temp file with an unpredictable name, created
 *   with O_CREAT|O_EXCL (which never follows a symlink, nor opens a file
 *   someone else made), made mode 0644 whatever the umask, then renamed over
 *   the final name (rename replaces a symlink there, never follows it);
 * - a directory that group or others may write, and that is not sticky, is
 *   refused ({@linkcode checkPidfileDir}): anyone could replace the files;
 * - the status file records the process's start time (field 22 of
 *   /proc/PID/stat) and a digest of its command line, and
 *   {@linkcode verifyServer} checks both, and the file's owner, before the
 *   CLI signals the pid: a pid reused by another process, or a pidfile
 *   pointed at one, is refused.
 *
 * @module
 */

import { randomHex } from "../util/random.ts";
import { errorMessage } from "../util/error_message.ts";

/** What the status file holds. */
export interface StatusFile {
  pid: number;
  generation: number;
  startedAt: number;
  firstStartedAt: number;
  restarts: number;
  listeners: string[];
  /** Field 22 of /proc/PID/stat (clock ticks after boot): who the pid is. */
  startTime?: number;
  /** The SHA-256 (hex) of /proc/PID/cmdline as the process wrote the file. */
  cmdlineSha256?: string;
  /** The signals that restart the server (none: the list is empty). */
  restartSignals?: string[];
  /** Where the admin API listens when it has a listener of its own. */
  admin?: string;
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
 */
export function statusPath(pidfile: string): string {
  return `${pidfile}.json`;
}

/**
 * Writes `text` to `path` atomically, through a temp file nobody can guess
 * or plant, in mode 0644.
 */
function writeAtomic(path: string, text: string): void {
  let temp = "";
  let file: Deno.FsFile | undefined;
  for (let attempt = 0; file === undefined; attempt++) {
    temp = `${path}.${randomHex(12)}.tmp`;
    try {
      file = Deno.openSync(temp, { write: true, createNew: true, mode: 0o600 });
    } catch (error) {
      if (!(error instanceof Deno.errors.AlreadyExists) || attempt >= 3) {
        throw error;
      }
    }
  }
  try {
    const bytes = new TextEncoder().encode(text);
    for (let done = 0; done < bytes.length;) {
      done += file.writeSync(bytes.subarray(done));
    }
    file.close();
    file = undefined;
    // The umask does not matter: the mode is set after creation, on the
    // file this process created (nobody else can replace it: see
    // checkPidfileDir).
    Deno.chmodSync(temp, 0o644);
    Deno.renameSync(temp, path);
  } catch (error) {
    file?.close();
    try {
      Deno.removeSync(temp);
    } catch {
      // never created, or already renamed
    }
    throw error;
  }
}

/**
 * Throws, naming the directory, when the pidfile's directory may be written
 * by group or others and is not sticky: whoever can write there can replace
 * the pidfile and make the CLI signal another process.
 */
export function checkPidfileDir(pidfile: string): void {
  checkFileDir(pidfile, "pidfile", "redirect the pidfile");
}

/**
 * Throws when the directory of `path` (a `role`: "pidfile", "admin socket")
 * may be written by group or others and is not sticky; `risk` says what
 * such a writer could do.
 */
export function checkFileDir(path: string, role: string, risk: string): void {
  const dir = dirname(path);
  let mode: number | null;
  try {
    mode = Deno.statSync(dir).mode;
  } catch (error) {
    const message = errorMessage(error);
    throw new Error(`${role} directory ${dir}: ${message}`);
  }
  if (mode === null) return;
  if ((mode & 0o022) !== 0 && (mode & 0o1000) === 0) {
    throw new Error(
      `${role} directory ${dir} is writable by ${
        (mode & 0o002) !== 0 ? "others" : "its group"
      } and not sticky (mode ${
        (mode & 0o7777).toString(8).padStart(4, "0")
      }): anyone who can write there could ${risk}; use a directory only ` +
        `the server's user can write (or a sticky one)`,
    );
  }
}

function dirname(path: string): string {
  const cut = path.replace(/\/+$/, "").lastIndexOf("/");
  if (cut < 0) return ".";
  return cut === 0 ? "/" : path.slice(0, cut);
}

/**
 * Writes the status file, then the pidfile, atomically; rejects (naming the
 * directory) when the directory is unsafe.
 */
export async function writePidfile(
  pidfile: string,
  status: StatusFile,
): Promise<void> {
  checkPidfileDir(pidfile);
  const self = await identityOf(status.pid);
  writeAtomic(
    statusPath(pidfile),
    JSON.stringify({ ...self, ...status }, null, 2) + "\n",
  );
  writeAtomic(pidfile, `${status.pid}\n`);
}

/**
 * Records a failed (or successful) restart in the status file, if the status
 * file still belongs to `pid`.
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
 */
export function removePidfile(pidfile: string, pid: number): void {
  if (readPid(pidfile) !== pid) return;
  const paths = readStatus(pidfile)?.pid === pid
    ? [pidfile, statusPath(pidfile)]
    : [pidfile];
  for (const path of paths) {
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
 */
export function readStatus(pidfile: string): StatusFile | undefined {
  try {
    return JSON.parse(Deno.readTextFileSync(statusPath(pidfile)));
  } catch {
    return undefined;
  }
}

/** Who process `pid` is: its start time and a digest of its command line. */
async function identityOf(
  pid: number,
): Promise<{ startTime?: number; cmdlineSha256?: string }> {
  const startTime = startTimeOf(pid);
  const cmdline = cmdlineOf(pid);
  return {
    ...(startTime === undefined ? {} : { startTime }),
    ...(cmdline === undefined
      ? {}
      : { cmdlineSha256: await sha256Hex(cmdline) }),
  };
}

/**
 * Field 22 of /proc/PID/stat: when the process started, in clock ticks after
 * boot; with the pid, it names one process for the machine's uptime.
 * Undefined when there is no such process.
 */
export function startTimeOf(pid: number): number | undefined {
  let stat: string;
  try {
    stat = Deno.readTextFileSync(`/proc/${pid}/stat`);
  } catch {
    return undefined;
  }
  // Fields after the command name, which may hold spaces and ")": field 3 on.
  const fields = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
  const value = Number(fields[22 - 3]);
  return Number.isSafeInteger(value) ? value : undefined;
}

function cmdlineOf(pid: number): Uint8Array<ArrayBuffer> | undefined {
  try {
    return Deno.readFileSync(`/proc/${pid}/cmdline`);
  } catch {
    return undefined;
  }
}

/** /proc/stat's btime has whole seconds: the start time is that coarse. */
const LEGACY_SLACK_MS = 2000;
/** USER_HZ: the unit of /proc/PID/stat's times, 100 on Linux. */
const USER_HZ = 100;

/** When process `pid` started (ms since the epoch, to about a second). */
function startedAtMs(pid: number): number | undefined {
  const ticks = startTimeOf(pid);
  let boot: number | undefined;
  try {
    const match = Deno.readTextFileSync("/proc/stat").match(/^btime (\d+)$/m);
    boot = match ? Number(match[1]) * 1000 : undefined;
  } catch {
    boot = undefined;
  }
  if (ticks === undefined || boot === undefined) return undefined;
  return boot + (ticks / USER_HZ) * 1000;
}

function mtimeMs(path: string): number | undefined {
  try {
    return Deno.statSync(path).mtime?.getTime();
  } catch {
    return undefined;
  }
}

async function sha256Hex(bytes: Uint8Array<ArrayBuffer>): Promise<string> {
  const digest = new Uint8Array(await crypto.subtle.digest("SHA-256", bytes));
  return Array.from(digest, (b) => b.toString(16).padStart(2, "0")).join("");
}

/**
 * Throws a one-line error unless process `pid` is the server that wrote the
 * status file: the status file must name `pid`, record its start time (and
 * command line digest) as /proc says now, and the pidfile and the status
 * file must belong to the process's user (or root).
 */
export async function verifyServer(
  pidfile: string,
  pid: number,
  status: StatusFile | undefined,
): Promise<void> {
  const refuse = (why: string) =>
    new Error(
      `pidfile ${pidfile} names pid ${pid}, but ${why}: refused`,
    );
  if (status === undefined) {
    throw refuse(
      `its status file ${statusPath(pidfile)} is missing or unreadable`,
    );
  }
  if (status.pid !== pid) {
    throw refuse(`its status file names pid ${status.pid}`);
  }
  if (status.startTime === undefined) {
    // From a version before startTime, still serving (as during the upgrade
    // that brings this one): the process must have started before the file
    // was written, so the pid was not reused since.
    const started = startedAtMs(pid);
    const written = mtimeMs(statusPath(pidfile));
    if (
      started === undefined || written === undefined ||
      started > written + LEGACY_SLACK_MS
    ) {
      throw refuse(
        "that process started after its status file was written (the pid " +
          "was reused, or the pidfile points elsewhere)",
      );
    }
  } else if (startTimeOf(pid) !== status.startTime) {
    throw refuse(
      "that process is not the server that wrote it (its start time differs: " +
        "the pid was reused, or the pidfile points elsewhere)",
    );
  }
  const cmdline = cmdlineOf(pid);
  if (
    status.cmdlineSha256 !== undefined &&
    (cmdline === undefined ||
      (await sha256Hex(cmdline)) !== status.cmdlineSha256)
  ) {
    throw refuse("that process's command line is not the server's");
  }
  // Both files: the status file vouches for the pid as much as the pidfile
  // names it, so a forged one of another user's must not pass either.
  let owner: number | null = null;
  try {
    owner = Deno.statSync(`/proc/${pid}`).uid;
  } catch {
    // gone meanwhile: the signal will say so
  }
  if (owner === null) return;
  for (
    const [what, path] of [
      ["the pidfile", pidfile],
      ["its status file", statusPath(pidfile)],
    ]
  ) {
    let fileOwner: number | null = null;
    try {
      fileOwner = Deno.statSync(path).uid;
    } catch {
      // replaced meanwhile: the next read says so
    }
    if (fileOwner !== null && fileOwner !== owner && fileOwner !== 0) {
      throw refuse(
        `${what} belongs to uid ${fileOwner} and the process to uid ${owner}`,
      );
    }
  }
}
