/**
 * Readers for Linux /proc: a process's CPU time, per-core busy time, and the
 * facts that show a pid is the server itself (not a wrapper around it).
 *
 * @module
 */

import { heldSocketInodes, loopbackListeningInodes } from "../../tests/proc.ts";

/** CPU time of one process, in clock ticks (see {@linkcode clockTicksPerSecond}). */
export interface ProcessCpuTicks {
  /** utime: ticks spent in user mode. */
  user: number;
  /** stime: ticks spent in kernel mode. */
  system: number;
}

/** Busy and total time of one CPU core, in clock ticks, from /proc/stat. */
export interface CoreTicks {
  /** user + nice + system + irq + softirq + steal. */
  busy: number;
  /** busy + idle + iowait. */
  total: number;
}

/** What /proc says about a process. */
export interface ProcessFacts {
  /** The executable, resolved (`/proc/<pid>/exe`). */
  exe: string;
  /** `Cpus_allowed_list` from `/proc/<pid>/status`, e.g. "0". */
  cpusAllowed: string;
  /** Number of threads. */
  threads: number;
  /** Pids of the process's direct children (from every thread). */
  children: number[];
}

/**
 * The fields of a `/proc/<pid>/stat` line after the process name: index 0
 * is field 3 (the state letter), so field N is at index N - 3. The name
 * (field 2) may contain spaces and parentheses, so the fields are counted
 * from the last ")".
 */
export function statFields(stat: string): string[] {
  return stat.slice(stat.lastIndexOf(")") + 2).trim().split(" ");
}

/** Reads utime and stime of `pid` from `/proc/<pid>/stat` (fields 14 and 15). */
export async function readProcessCpuTicks(
  pid: number,
): Promise<ProcessCpuTicks> {
  const stat = await Deno.readTextFile(`/proc/${pid}/stat`);
  const fields = statFields(stat);
  const user = Number(fields[14 - 3]);
  const system = Number(fields[15 - 3]);
  if (!Number.isFinite(user) || !Number.isFinite(system)) {
    throw new Error(`cannot parse /proc/${pid}/stat: ${stat}`);
  }
  return { user, system };
}

/** Reads the busy and total ticks of every core from /proc/stat. */
export async function readCoreTicks(): Promise<Map<number, CoreTicks>> {
  const text = await Deno.readTextFile("/proc/stat");
  const cores = new Map<number, CoreTicks>();
  for (const line of text.split("\n")) {
    const match = /^cpu(\d+)\s+(.*)$/.exec(line);
    if (match === null) continue;
    const [user, nice, system, idle, iowait, irq, softirq, steal] = match[2]
      .trim().split(/\s+/).map(Number);
    const busy = user + nice + system + irq + softirq + (steal ?? 0);
    cores.set(Number(match[1]), { busy, total: busy + idle + iowait });
  }
  return cores;
}

/** Reads the executable, CPU affinity, thread count and children of `pid`. */
export async function readProcessFacts(pid: number): Promise<ProcessFacts> {
  const exe = await Deno.realPath(`/proc/${pid}/exe`);
  const status = await Deno.readTextFile(`/proc/${pid}/status`);
  const cpusAllowed = /^Cpus_allowed_list:\s*(\S+)/m.exec(status)?.[1] ?? "";
  const threads = Number(/^Threads:\s*(\d+)/m.exec(status)?.[1] ?? "0");
  const children: number[] = [];
  for await (const task of Deno.readDir(`/proc/${pid}/task`)) {
    let text = "";
    try {
      text = await Deno.readTextFile(`/proc/${pid}/task/${task.name}/children`);
    } catch {
      continue; // the thread ended while we looked
    }
    for (const child of text.trim().split(/\s+/)) {
      if (child !== "") children.push(Number(child));
    }
  }
  return { exe, cpusAllowed, threads, children };
}

/** Runs a command and returns its trimmed stdout; throws when it fails. */
export async function commandOutput(
  command: string,
  args: string[],
): Promise<string> {
  const output = await new Deno.Command(command, {
    args,
    stdin: "null",
    stdout: "piped",
    stderr: "piped",
  }).output();
  const stdout = new TextDecoder().decode(output.stdout).trim();
  if (!output.success) {
    const stderr = new TextDecoder().decode(output.stderr).trim();
    throw new Error(`${command} ${args.join(" ")} failed: ${stderr}`);
  }
  return stdout;
}

/** The kernel's clock ticks per second (`getconf CLK_TCK`), usually 100. */
export async function clockTicksPerSecond(): Promise<number> {
  const ticks = Number(await commandOutput("getconf", ["CLK_TCK"]));
  if (!Number.isInteger(ticks) || ticks <= 0) {
    throw new Error(`getconf CLK_TCK returned ${ticks}`);
  }
  return ticks;
}

/**
 * Whether `pid` holds the socket listening on 127.0.0.1:`port`: finds the
 * socket's inode in /proc/net/tcp and looks for it among the process's file
 * descriptors (tests/proc.ts reads both).
 */
export async function holdsListeningSocket(
  pid: number,
  port: number,
): Promise<boolean> {
  const inodes = loopbackListeningInodes(
    await Deno.readTextFile("/proc/net/tcp"),
    port,
  );
  if (inodes.size === 0) return false;
  const held = heldSocketInodes(pid);
  return [...inodes].some((inode) => held.has(inode));
}

/**
 * CPU ticks of every process on the machine, by pid: utime + stime, plus
 * cutime + cstime (the time of children it has reaped, so that short-lived
 * processes, e.g. a test runner's, are not missed).
 */
export async function readAllProcessTicks(): Promise<Map<number, number>> {
  const ticks = new Map<number, number>();
  for await (const entry of Deno.readDir("/proc")) {
    if (!/^\d+$/.test(entry.name)) continue;
    let stat: string;
    try {
      stat = await Deno.readTextFile(`/proc/${entry.name}/stat`);
    } catch {
      continue; // exited while we looked
    }
    const fields = statFields(stat);
    // utime, stime, cutime, cstime are fields 14 to 17.
    const sum = Number(fields[14 - 3]) + Number(fields[15 - 3]) +
      Number(fields[16 - 3]) + Number(fields[17 - 3]);
    if (Number.isFinite(sum)) ticks.set(Number(entry.name), sum);
  }
  return ticks;
}

/**
 * CPU ticks used between two {@linkcode readAllProcessTicks} snapshots by
 * every process except `exclude` (processes that appeared in between count
 * in full). An overestimate when a child that existed before is reaped in
 * between; that errs on the side of flagging interference.
 */
export function foreignTicks(
  before: Map<number, number>,
  after: Map<number, number>,
  exclude: Set<number>,
): number {
  let sum = 0;
  for (const [pid, ticks] of after) {
    if (exclude.has(pid)) continue;
    sum += Math.max(0, ticks - (before.get(pid) ?? 0));
  }
  return sum;
}
