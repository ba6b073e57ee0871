/**
 * Processes of the restart bench, found by a marker in their command line.
 *
 * Every server the bench starts gets a unique `--name bench-restart-<hex>`;
 * all its generations are executed again with the same arguments, so the
 * marker finds each of them in /proc, whoever their parent is. The bench
 * registers every marker it uses, and {@linkcode killAllMarked} kills whatever
 * still carries one (on exit, on error and on Ctrl-C).
 *
 * @module
 */

const markers = new Set<string>();

/** A fresh marker, registered for {@linkcode killAllMarked}. */
export function newMarker(): string {
  const bytes = crypto.getRandomValues(new Uint8Array(6));
  const hex = Array.from(bytes, (b) => b.toString(16).padStart(2, "0")).join(
    "",
  );
  const marker = `bench-restart-${hex}`;
  markers.add(marker);
  return marker;
}

/**
 * Pids of the live (not zombie) processes, other than this one, that have
 * `marker` as one of their command-line arguments.
 */
export function pidsWithMarker(marker: string): number[] {
  const pids: number[] = [];
  for (const entry of Deno.readDirSync("/proc")) {
    if (!/^\d+$/.test(entry.name)) continue;
    const pid = Number(entry.name);
    if (pid === Deno.pid) continue;
    let cmdline: string;
    try {
      cmdline = Deno.readTextFileSync(`/proc/${pid}/cmdline`);
    } catch {
      continue; // exited while we looked
    }
    if (!cmdline.split("\0").includes(marker)) continue;
    if (isAlive(pid)) pids.push(pid);
  }
  return pids.sort((a, b) => a - b);
}

/** Whether `pid` exists and is not a zombie. */
export function isAlive(pid: number): boolean {
  let stat: string;
  try {
    stat = Deno.readTextFileSync(`/proc/${pid}/stat`);
  } catch {
    return false;
  }
  const state = stat.slice(
    stat.lastIndexOf(")") + 2,
    stat.lastIndexOf(")") + 3,
  );
  return state !== "Z" && state !== "X";
}

/** Sends `signal` to `pid`, ignoring a process that is already gone. */
export function signalPid(pid: number, signal: Deno.Signal): boolean {
  try {
    Deno.kill(pid, signal);
    return true;
  } catch {
    return false;
  }
}

/** SIGKILLs every process that carries `marker`; returns how many. */
export function killMarked(marker: string): number {
  let killed = 0;
  for (const pid of pidsWithMarker(marker)) {
    if (signalPid(pid, "SIGKILL")) killed++;
  }
  return killed;
}

/** Pids of the live processes that carry any marker this bench made. */
export function markedPids(): number[] {
  return [...markers].flatMap((marker) => pidsWithMarker(marker));
}

/**
 * SIGKILLs every process that carries any marker this bench made.
 * Synchronous, so that it also works in an "unload" handler.
 */
export function killAllMarked(): number {
  let killed = 0;
  for (const marker of markers) killed += killMarked(marker);
  return killed;
}

/** Resolves once `check()` is true (polled every `everyMs`), or false after `timeoutMs`. */
export async function waitUntil(
  check: () => boolean,
  timeoutMs: number,
  everyMs = 10,
): Promise<boolean> {
  const deadline = performance.now() + timeoutMs;
  while (!check()) {
    if (performance.now() >= deadline) return false;
    await sleep(everyMs);
  }
  return true;
}

/** Resolves after `ms` milliseconds. */
export function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, Math.max(0, ms)));
}

/** What /proc says about a stuck process. */
export interface ProcessDiagnosis {
  pid: number;
  /** The process state letter (R, S, D, Z, …). */
  state: string;
  /** The kernel function the main thread sleeps in (`/proc/<pid>/wchan`). */
  mainThreadWchan: string;
  threads: number;
  /**
   * The fd holding the socket that listens on 127.0.0.1:`port`, with the
   * open file description's flags (`/proc/<pid>/fdinfo`), in octal; null
   * when the process does not hold it.
   */
  listeningSocket: { fd: number; flags: string; nonBlocking: boolean } | null;
}

const O_NONBLOCK = 0o4000;

/** Reads state, main-thread wchan and the listening socket's flags of `pid`. */
export function diagnoseProcess(pid: number, port: number): ProcessDiagnosis {
  const stat = readOrEmpty(`/proc/${pid}/stat`);
  const status = readOrEmpty(`/proc/${pid}/status`);
  return {
    pid,
    state: stat.slice(stat.lastIndexOf(")") + 2, stat.lastIndexOf(")") + 3),
    mainThreadWchan: readOrEmpty(`/proc/${pid}/wchan`),
    threads: Number(/^Threads:\s*(\d+)/m.exec(status)?.[1] ?? "0"),
    listeningSocket: listeningSocketOf(pid, port),
  };
}

function listeningSocketOf(
  pid: number,
  port: number,
): ProcessDiagnosis["listeningSocket"] {
  let table = "";
  try {
    table = Deno.readTextFileSync("/proc/net/tcp");
  } catch {
    return null;
  }
  const local = `0100007F:${port.toString(16).toUpperCase().padStart(4, "0")}`;
  const inodes = new Set<string>();
  for (const line of table.split("\n").slice(1)) {
    const fields = line.trim().split(/\s+/);
    if (fields[1] === local && fields[3] === "0A") inodes.add(fields[9]);
  }
  let entries: Deno.DirEntry[] = [];
  try {
    entries = [...Deno.readDirSync(`/proc/${pid}/fd`)];
  } catch {
    return null;
  }
  for (const entry of entries) {
    let target = "";
    try {
      target = Deno.readLinkSync(`/proc/${pid}/fd/${entry.name}`);
    } catch {
      continue;
    }
    const inode = /^socket:\[(\d+)\]$/.exec(target)?.[1];
    if (inode === undefined || !inodes.has(inode)) continue;
    let info = "";
    try {
      info = Deno.readTextFileSync(`/proc/${pid}/fdinfo/${entry.name}`);
    } catch {
      continue;
    }
    const flags = /^flags:\s*([0-7]+)/m.exec(info)?.[1] ?? "";
    return {
      fd: Number(entry.name),
      flags,
      nonBlocking: (parseInt(flags, 8) & O_NONBLOCK) !== 0,
    };
  }
  return null;
}

function readOrEmpty(path: string): string {
  try {
    return Deno.readTextFileSync(path);
  } catch {
    return "";
  }
}
