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

import { isAlive, signalPid } from "../lib/pids.ts";
import { statFields } from "../lib/proc.ts";
import { loopbackListeningInodes, socketInode } from "../../tests/proc.ts";

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
    state: statFields(stat)[0],
    mainThreadWchan: readOrEmpty(`/proc/${pid}/wchan`),
    threads: Number(/^Threads:\s*(\d+)/m.exec(status)?.[1] ?? "0"),
    listeningSocket: listeningSocketOf(pid, port),
  };
}

function listeningSocketOf(
  pid: number,
  port: number,
): ProcessDiagnosis["listeningSocket"] {
  let inodes: Set<string>;
  try {
    inodes = loopbackListeningInodes(
      Deno.readTextFileSync("/proc/net/tcp"),
      port,
    );
  } catch {
    return null;
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
    const inode = socketInode(target);
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
