/**
 * Command lines the benches run: anything pinned to one CPU with taskset,
 * and Deno scripts with every permission.
 *
 * @module
 */

/** `command` pinned to `cpu`: `taskset -c <cpu> …` (taskset execs it in place). */
export function pinnedToCpu(cpu: number, command: string[]): string[] {
  return ["taskset", "-c", String(cpu), ...command];
}

/** `deno run -A …` with this Deno's executable. */
export function denoRunCommand(args: string[]): string[] {
  return [Deno.execPath(), "run", "-A", ...args];
}
