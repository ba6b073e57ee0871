/**
 * One `deno run -A mod.ts` server and all its generations: started pinned to
 * a CPU, marked, its output (which every later generation inherits) read line
 * by line, and stopped.
 *
 * @module
 */

import { track } from "../lib/children.ts";
import { denoRunCommand, pinnedToCpu } from "../lib/commands.ts";
import { readLines } from "../lib/lines.ts";
import { spawnPiped } from "../lib/spawn.ts";
import { getPid } from "../lib/http_get.ts";
import { signalPid } from "../lib/pids.ts";
import { sleep, waitUntil } from "../lib/time.ts";
import { killMarked, pidsWithMarker } from "./procs.ts";

/** How to start a server. */
export interface TreeOptions {
  /** The repository root: the working directory, where mod.ts is. */
  repoDir: string;
  /** The CPU to pin it (and so every generation) to. */
  cpu: number;
  port: number;
  /** `--name <marker>`: finds every generation in /proc. */
  marker: string;
  /** `--engine`; undefined: not given (the default, auto). */
  engine?: string;
  /** `--restart-signal`; undefined: not given (the default, SIGUSR1). */
  restartSignal?: Deno.Signal;
}

/** A running server and what it printed. */
export interface ServerTree {
  options: TreeOptions;
  /** The first generation (taskset has exec'd Deno in place). */
  root: Deno.ChildProcess;
  /** `taskset -c …` and the arguments after it, as run. */
  command: string[];
  /** Every line any generation printed (stdout and stderr). */
  lines: string[];
  /** Server-side handover times: new pid → "ready in N ms". */
  readyMs: Map<number, number>;
  /** When the command was spawned (performance.now()). */
  spawnedAt: number;
  /** The same moment as epoch ms (CLOCK_REALTIME, like the log timestamps). */
  spawnedAtEpochMs: number;
  /** Per pid: when it logged its milestones (epoch ms, from the log lines). */
  milestones: Map<number, Milestones>;
}

/** When a generation logged its startup milestones (epoch ms, ms resolution). */
export interface Milestones {
  /** "generation N (pid P) joined the handover" (later generations only). */
  joined?: number;
  /** The first "listening on …". */
  listening?: number;
  /** "generation N (pid P) is ready" (later generations only). */
  ready?: number;
}

const READY = /new generation (\d+) ready \(pid (\d+)\) in (\d+) ms/;
const LOG_LINE =
  /^(\d{4}-\d\d-\d\d) (\d\d:\d\d:\d\d\.\d+) ([+-]\d\d:\d\d) \w+ \[pid (\d+) gen \d+\] \S+: (.*)$/;
const MAX_LINES = 20_000;

/** The command line for `options` (taskset, then deno and its arguments). */
export function treeCommand(options: TreeOptions): string[] {
  const args = ["mod.ts", "--port", String(options.port)];
  args.push("--hostname", "127.0.0.1");
  if (options.engine !== undefined) args.push("--engine", options.engine);
  if (options.restartSignal !== undefined) {
    args.push("--restart-signal", options.restartSignal);
  }
  args.push("--name", options.marker);
  return pinnedToCpu(options.cpu, denoRunCommand(args));
}

/** Spawns the server; does not wait for it to serve. */
export function spawnTree(options: TreeOptions): ServerTree {
  const command = treeCommand(options);
  const spawnedAt = performance.now();
  const spawnedAtEpochMs = performance.timeOrigin + spawnedAt;
  const root = spawnPiped(command, {
    cwd: options.repoDir,
    env: { NO_COLOR: "1" },
  });
  track(root);
  const tree: ServerTree = {
    options,
    root,
    command,
    lines: [],
    readyMs: new Map(),
    spawnedAt,
    spawnedAtEpochMs,
    milestones: new Map(),
  };
  readLines(root.stdout, (line) => addLine(tree, line));
  readLines(root.stderr, (line) => addLine(tree, line));
  return tree;
}

/**
 * Spawns the server and resolves once GET /pid answers; throws (after
 * killing it) when it does not within `timeoutMs`.
 */
export async function startTree(
  options: TreeOptions,
  timeoutMs: number,
): Promise<ServerTree> {
  const tree = spawnTree(options);
  const deadline = performance.now() + timeoutMs;
  let exited = false;
  tree.root.status.then(() => {
    exited = true;
  });
  while (true) {
    try {
      await getPid(options.port, 1_000);
      return tree;
    } catch (error) {
      const gone = exited && pidsWithMarker(options.marker).length === 0;
      if (gone || performance.now() > deadline) {
        killMarked(options.marker);
        throw new Error(
          `server ${
            tree.command.join(" ")
          } did not serve within ${timeoutMs} ms ` +
            `(${error instanceof Error ? error.message : error})\n` +
            tree.lines.slice(-30).join("\n"),
        );
      }
      await sleep(20);
    }
  }
}

/**
 * Stops every generation: SIGTERM to each live one, then SIGKILL after
 * `graceMs`. Resolves with whether they all exited on SIGTERM.
 */
export async function stopTree(
  tree: ServerTree,
  graceMs: number,
): Promise<{ graceful: boolean; ms: number }> {
  const started = performance.now();
  for (const pid of pidsWithMarker(tree.options.marker)) {
    signalPid(pid, "SIGTERM");
  }
  const graceful = await waitUntil(
    () => pidsWithMarker(tree.options.marker).length === 0,
    graceMs,
    10,
  );
  if (!graceful) killMarked(tree.options.marker);
  await waitUntil(
    () => pidsWithMarker(tree.options.marker).length === 0,
    5_000,
    10,
  );
  return { graceful, ms: Math.round(performance.now() - started) };
}

/** Lines of the output that are warnings or errors (or not log lines at all). */
export function notableLines(tree: ServerTree): string[] {
  return tree.lines.filter((line) =>
    / (WRN|ERR|FTL) /.test(line) ||
    (!/ (INF|DBG) /.test(line) && !/^Listening on /.test(line) &&
      line.trim() !== "")
  );
}

function addLine(tree: ServerTree, line: string): void {
  if (tree.lines.length < MAX_LINES) tree.lines.push(line);
  const ready = READY.exec(line);
  if (ready !== null) tree.readyMs.set(Number(ready[2]), Number(ready[3]));
  const log = LOG_LINE.exec(line);
  if (log === null) return;
  const at = Date.parse(`${log[1]}T${log[2]}${log[3]}`);
  const pid = Number(log[4]);
  const message = log[5];
  const milestones = tree.milestones.get(pid) ?? {};
  if (/ joined the handover$/.test(message)) milestones.joined ??= at;
  else if (/^listening on /.test(message)) milestones.listening ??= at;
  else if (/ is ready$/.test(message)) milestones.ready ??= at;
  else return;
  tree.milestones.set(pid, milestones);
}
