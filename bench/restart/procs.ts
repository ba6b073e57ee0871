/**
 * Processes of the restart bench: every process it starts stays below it.
 *
 * The bench makes itself a child subreaper (prctl PR_SET_CHILD_SUBREAPER), so
 * that the generations a restart leaves behind (tableflip's, grace's, ours,
 * pm2's daemon once its CLI has exited) are re-parented to the bench instead
 * of to init. The servers under test are then exactly the bench's
 * descendants, less the tools it runs (wrk, `nginx -s reload`, `pm2 reload`),
 * and "kill everything this bench started" is "kill every descendant": no
 * name patterns, nothing that could reach another user's processes.
 *
 * Orphans re-parented to the bench are reaped here (waitpid on their pid
 * only), since Deno only reaps the children it spawned itself.
 *
 * @module
 */

import { signalPid } from "../lib/pids.ts";
import { statFields } from "../lib/proc.ts";
import { sleepSync } from "../lib/time.ts";

const PR_SET_CHILD_SUBREAPER = 36;
const WNOHANG = 1;

type Libc = Deno.DynamicLibrary<{
  prctl: {
    parameters: ["i32", "u64", "u64", "u64", "u64"];
    result: "i32";
  };
  waitpid: { parameters: ["i32", "buffer", "i32"]; result: "i32" };
}>;

let libc: Libc | null = null;
/** Pids started through Deno.Command (Deno reaps them itself). */
const spawnedPids = new Set<number>();
/** Pids of tools (wrk, trigger commands): not part of any server. */
const toolPids = new Set<number>();
/** Pids seen alive below the bench: the reaper may reap them. */
const seenPids = new Set<number>();
let reaper: ReturnType<typeof setInterval> | undefined;

/** One row of /proc/<pid>/stat. */
export interface ProcRow {
  pid: number;
  ppid: number;
  /** State letter: R, S, D, Z, … */
  state: string;
  comm: string;
  /** utime + stime + cutime + cstime, in clock ticks. */
  ticks: number;
  /** utime + stime only (the process's own CPU), in clock ticks. */
  own: number;
}

/**
 * Makes this process a child subreaper and starts reaping the orphans that
 * come to it. Linux only; throws when prctl fails.
 */
export function becomeSubreaper(): void {
  if (libc !== null) return;
  libc = Deno.dlopen("libc.so.6", {
    prctl: {
      parameters: ["i32", "u64", "u64", "u64", "u64"],
      result: "i32",
    },
    waitpid: { parameters: ["i32", "buffer", "i32"], result: "i32" },
  }) as Libc;
  const result = libc.symbols.prctl(PR_SET_CHILD_SUBREAPER, 1n, 0n, 0n, 0n);
  if (result !== 0) throw new Error("prctl(PR_SET_CHILD_SUBREAPER) failed");
  const timer = setInterval(() => reapOrphans(false), 100);
  Deno.unrefTimer(timer);
  reaper = timer;
}

/** Stops the reaper and reaps every orphan left (all spawned children must be done). */
export function stopReaper(): void {
  if (reaper !== undefined) clearInterval(reaper);
  reaper = undefined;
  reapOrphans(true);
}

/** Registers a pid that Deno.Command started; `tool`: not a server. */
export function registerSpawned(pid: number, tool: boolean): void {
  spawnedPids.add(pid);
  if (tool) toolPids.add(pid);
}

/** Forgets a spawned pid once Deno has reaped it (its pid may be reused). */
export function unregisterSpawned(pid: number): void {
  spawnedPids.delete(pid);
  toolPids.delete(pid);
}

/**
 * Reaps zombie children that Deno did not spawn: with `all`, every such
 * zombie, else only pids seen alive before (so that a short-lived command run
 * by another module is never reaped behind Deno's back).
 */
export function reapOrphans(all: boolean): number {
  if (libc === null) return 0;
  let reaped = 0;
  const status = new Uint8Array(4);
  for (const row of readProcTable().values()) {
    if (row.ppid !== Deno.pid || row.state !== "Z") continue;
    if (spawnedPids.has(row.pid)) continue;
    if (!all && !seenPids.has(row.pid)) continue;
    if (libc.symbols.waitpid(row.pid, status, WNOHANG) === row.pid) reaped++;
  }
  return reaped;
}

/** Reads /proc/<pid>/stat of every process (synchronously). */
export function readProcTable(): Map<number, ProcRow> {
  const table = new Map<number, ProcRow>();
  for (const entry of Deno.readDirSync("/proc")) {
    if (!/^\d+$/.test(entry.name)) continue;
    let stat: string;
    try {
      stat = Deno.readTextFileSync(`/proc/${entry.name}/stat`);
    } catch {
      continue; // gone while we looked
    }
    const fields = statFields(stat);
    // utime, stime (fields 14, 15); cutime, cstime (16, 17).
    const own = Number(fields[14 - 3]) + Number(fields[15 - 3]);
    const ticks = own + Number(fields[16 - 3]) + Number(fields[17 - 3]);
    table.set(Number(entry.name), {
      pid: Number(entry.name),
      ppid: Number(fields[4 - 3]),
      state: fields[0],
      comm: stat.slice(stat.indexOf("(") + 1, stat.lastIndexOf(")")),
      ticks,
      own,
    });
  }
  return table;
}

/**
 * The live processes below this one, excluding tools (and whatever runs
 * below a tool): the servers under test. Marks them as seen for the reaper.
 */
export function serverPids(table = readProcTable()): number[] {
  const found = liveDescendants(table, Deno.pid, toolPids);
  for (const pid of found) seenPids.add(pid);
  return found.sort((a, b) => a - b);
}

/** Every live descendant of this process, tools included. */
export function allDescendants(table = readProcTable()): number[] {
  return liveDescendants(table, Deno.pid, new Set());
}

/**
 * The live (not zombie) descendants of `root` in `table`, depth first; a pid
 * in `skip` is left out with everything below it.
 */
export function liveDescendants(
  table: Map<number, ProcRow>,
  root: number,
  skip: Set<number>,
): number[] {
  const children = new Map<number, number[]>();
  for (const row of table.values()) {
    const list = children.get(row.ppid) ?? [];
    list.push(row.pid);
    children.set(row.ppid, list);
  }
  const found: number[] = [];
  const stack = [...(children.get(root) ?? [])];
  while (stack.length > 0) {
    const pid = stack.pop()!;
    if (skip.has(pid)) continue;
    const row = table.get(pid);
    if (row === undefined) continue;
    if (row.state !== "Z" && row.state !== "X") found.push(pid);
    stack.push(...(children.get(pid) ?? []));
  }
  return found;
}

/**
 * SIGKILLs every descendant of this process, over and over until none is
 * left (a killed parent's children come to the subreaper), synchronously so
 * that it also works in an "unload" handler. Returns how many were killed.
 */
export function killAllDescendants(): number {
  let killed = 0;
  for (let round = 0; round < 50; round++) {
    const pids = allDescendants();
    if (pids.length === 0) break;
    for (const pid of pids) {
      if (signalPid(pid, "SIGKILL")) killed++;
    }
    sleepSync(20);
    reapOrphans(true);
  }
  return killed;
}

/** Marks `pid` as a server process the reaper may reap once it is a zombie. */
export function markSeen(pid: number): void {
  seenPids.add(pid);
}

/**
 * CPU ticks (utime + stime) that the processes that are not this bench's used
 * between two snapshots: processes alive at the end, less this process, its
 * descendants and every pid it started or saw. A lower bound: a process that
 * both started and ended in between is not seen (cutime is left out on
 * purpose: a parent reaping a long-lived child would count its whole life).
 */
export function foreignOwnTicks(
  before: Map<number, ProcRow>,
  after: Map<number, ProcRow>,
): number {
  const mine = new Set([Deno.pid, ...allDescendants(after)]);
  let sum = 0;
  for (const row of after.values()) {
    if (mine.has(row.pid) || spawnedPids.has(row.pid)) continue;
    if (seenPids.has(row.pid) || toolPids.has(row.pid)) continue;
    sum += Math.max(0, row.own - (before.get(row.pid)?.own ?? 0));
  }
  return sum;
}

/** Memory of a set of processes (KiB). */
export interface Memory {
  /** Sum of VmRSS. */
  rssKiB: number;
  /** Sum of Pss (shared pages split between their users). */
  pssKiB: number;
  /** Per process: pid, name, VmRSS. */
  processes: { pid: number; comm: string; rssKiB: number }[];
}

/** Reads VmRSS and Pss of `pids`. */
export function memoryOf(pids: number[]): Memory {
  const memory: Memory = { rssKiB: 0, pssKiB: 0, processes: [] };
  for (const pid of pids) {
    try {
      const status = Deno.readTextFileSync(`/proc/${pid}/status`);
      const rss = Number(/^VmRSS:\s*(\d+)/m.exec(status)?.[1] ?? "0");
      const comm = /^Name:\s*(.*)$/m.exec(status)?.[1] ?? "";
      const rollup = Deno.readTextFileSync(`/proc/${pid}/smaps_rollup`);
      const pss = Number(/^Pss:\s*(\d+)/m.exec(rollup)?.[1] ?? "0");
      memory.rssKiB += rss;
      memory.pssKiB += pss;
      memory.processes.push({ pid, comm, rssKiB: rss });
    } catch {
      // gone while we looked
    }
  }
  return memory;
}

/** Open file descriptors of `pid`, and how many are sockets; null when it is gone. */
export function fdCount(
  pid: number,
): { fds: number; sockets: number } | null {
  try {
    let fds = 0;
    let sockets = 0;
    for (const entry of Deno.readDirSync(`/proc/${pid}/fd`)) {
      fds++;
      try {
        const target = Deno.readLinkSync(`/proc/${pid}/fd/${entry.name}`);
        if (target.startsWith("socket:")) sockets++;
      } catch {
        // closed while we looked
      }
    }
    return { fds, sockets };
  } catch {
    return null;
  }
}

/** VmRSS of `pid` (KiB); null when it is gone. */
export function rssOf(pid: number): number | null {
  try {
    const status = Deno.readTextFileSync(`/proc/${pid}/status`);
    return Number(/^VmRSS:\s*(\d+)/m.exec(status)?.[1] ?? "0");
  } catch {
    return null;
  }
}

/** Pins this process (every thread) to `cpu` with `taskset -a -p`. */
export async function pinSelf(cpu: number): Promise<void> {
  const output = await new Deno.Command("taskset", {
    args: ["-a", "-p", "-c", String(cpu), String(Deno.pid)],
    stdout: "null",
    stderr: "piped",
  }).output();
  if (!output.success) {
    throw new Error(
      `taskset -p ${cpu} ${Deno.pid}: ${
        new TextDecoder().decode(output.stderr)
      }`,
    );
  }
}
