/**
 * Starting processes for the restart bench: every one is registered with
 * procs.ts (so that the reaper leaves Deno's own children alone and tools are
 * told apart from servers) and its output is drained line by line (a server's
 * later generations inherit the pipes, so nobody blocks on a full pipe).
 *
 * @module
 */

import { readLines } from "../lib/lines.ts";
import { spawnPiped } from "../lib/spawn.ts";
import { registerSpawned, unregisterSpawned } from "./procs.ts";

/** A started process. */
export interface Spawned {
  command: string[];
  child: Deno.ChildProcess;
  pid: number;
  /** The last lines it (and anything that inherited its pipes) printed. */
  lines: string[];
  /** Set once it has exited. */
  status: Deno.CommandStatus | null;
  /** Resolves with its exit status. */
  done: Promise<Deno.CommandStatus>;
  /** Resolves once both pipes are closed (every holder has exited). */
  drained: Promise<void>;
}

/** How to start a process. */
export interface SpawnOptions {
  cwd?: string;
  /** Added to the environment (which loses the LISTEN_* variables). */
  env?: Record<string, string>;
  /** A tool (wrk, a trigger command), not a server under test. */
  tool: boolean;
  /** How many lines of output to keep (default 400). */
  keepLines?: number;
  /** Called for every line printed. */
  onLine?: (line: string) => void;
}

/** Starts `command`; stdin is /dev/null, stdout and stderr are read. */
export function spawnProcess(
  command: string[],
  options: SpawnOptions,
): Spawned {
  const child = spawnPiped(command, { cwd: options.cwd, env: options.env });
  registerSpawned(child.pid, options.tool);
  const keep = options.keepLines ?? 400;
  const spawned: Spawned = {
    command,
    child,
    pid: child.pid,
    lines: [],
    status: null,
    done: child.status,
    drained: Promise.resolve(),
  };
  child.status.then((status) => {
    spawned.status = status;
    unregisterSpawned(child.pid);
  });
  const onLine = (line: string) => {
    spawned.lines.push(line);
    if (spawned.lines.length > keep) spawned.lines.shift();
    options.onLine?.(line);
  };
  spawned.drained = Promise.all([
    readLines(child.stdout, onLine),
    readLines(child.stderr, onLine),
  ]).then(() => {});
  return spawned;
}

/** Runs a tool to its end; throws with its output when it fails. */
export async function runTool(
  command: string[],
  options: Omit<SpawnOptions, "tool"> = {},
): Promise<string> {
  const spawned = spawnProcess(command, { ...options, tool: true });
  const status = await spawned.done;
  await spawned.drained;
  const output = spawned.lines.join("\n");
  if (!status.success) {
    throw new Error(
      `${command.join(" ")} exited with ${status.code}:\n${output}`,
    );
  }
  return output;
}
