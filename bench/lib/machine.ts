/**
 * The machine and software a run was measured on.
 *
 * @module
 */

import { commandOutput } from "./proc.ts";

/** What the report says about where it was measured. */
export interface MachineInfo {
  /** ISO date and time the run started. */
  date: string;
  cpuModel: string;
  cpus: number;
  /** Whether /proc/cpuinfo shows the hypervisor flag. */
  virtualized: boolean;
  memoryGiB: number;
  kernel: string;
  deno: string;
  v8: string;
  wrk: string;
  /** `git rev-parse --short HEAD`, plus "+dirty" when the tree has changes. */
  commit: string;
}

/** Reads the machine's facts. */
export async function readMachine(repoDir: string): Promise<MachineInfo> {
  const cpuinfo = await Deno.readTextFile("/proc/cpuinfo");
  const model = /^model name\s*:\s*(.*)$/m.exec(cpuinfo)?.[1] ?? "unknown";
  const cpus = cpuinfo.split("\n").filter((l) => /^processor\s*:/.test(l))
    .length;
  const virtualized = /^flags\s*:.*\bhypervisor\b/m.test(cpuinfo);
  const wrkVersion = await new Deno.Command("wrk", {
    args: ["-v"],
    stdout: "piped",
    stderr: "piped",
  }).output();
  const wrkLine = new TextDecoder().decode(wrkVersion.stdout).split("\n")[0]
    .trim();
  let commit = "unknown";
  try {
    commit = await commandOutput("git", [
      "-C",
      repoDir,
      "rev-parse",
      "--short",
      "HEAD",
    ]);
    const status = await commandOutput("git", [
      "-C",
      repoDir,
      "status",
      "--porcelain",
    ]);
    if (status !== "") commit += "+dirty";
  } catch {
    // not a git checkout
  }
  return {
    date: new Date().toISOString(),
    cpuModel: model,
    cpus,
    virtualized,
    memoryGiB: Math.round(Deno.systemMemoryInfo().total / 1024 ** 3 * 10) / 10,
    kernel: Deno.osRelease(),
    deno: Deno.version.deno,
    v8: Deno.version.v8,
    wrk: wrkLine.replace(/ Copyright.*$/, ""),
    commit,
  };
}
