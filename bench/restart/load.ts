/**
 * wrk as the load generator, pinned to a CPU, with timeline.lua recording
 * written requests, completed responses and non-2xx answers per time bucket.
 *
 * @module
 */

import { track } from "../lib/children.ts";
import { parseWrkOutput, type WrkResult } from "../lib/wrk.ts";
import { type LuaTimeline, readTimeline } from "../lib/timeline.ts";

/** How to run wrk. */
export interface LoadOptions {
  port: number;
  /** Seconds. */
  durationS: number;
  threads: number;
  connections: number;
  /** The CPU to pin wrk to. */
  cpu: number;
  /** Extra request headers, e.g. `["Connection: close"]`. */
  headers: string[];
  /** timeline.lua. */
  scriptPath: string;
  /** Where timeline.lua writes its JSON. */
  timelinePath: string;
  /** The timeline's bucket width (ms). */
  bucketMs: number;
}

/** What a wrk run gave. */
export interface LoadResult {
  /** wrk's printed summary, parsed. */
  wrk: WrkResult;
  /** wrk's printed output, verbatim. */
  output: string;
  timeline: LuaTimeline;
}

/** The command line: `taskset -c <cpu> wrk … -s timeline.lua URL -- OUT MS`. */
export function wrkCommand(options: LoadOptions): string[] {
  const args = [
    "taskset",
    "-c",
    String(options.cpu),
    "wrk",
    `-t${options.threads}`,
    `-c${options.connections}`,
    `-d${options.durationS}s`,
    "--latency",
  ];
  for (const header of options.headers) args.push("-H", header);
  args.push(
    "-s",
    options.scriptPath,
    `http://127.0.0.1:${options.port}/`,
    "--",
    options.timelinePath,
    String(options.bucketMs),
  );
  return args;
}

/** Starts wrk; resolves when it has finished and its timeline is read. */
export async function runLoad(options: LoadOptions): Promise<LoadResult> {
  const command = wrkCommand(options);
  const child = new Deno.Command(command[0], {
    args: command.slice(1),
    stdin: "null",
    stdout: "piped",
    stderr: "piped",
  }).spawn();
  track(child);
  const { code, stdout, stderr } = await child.output();
  const output = new TextDecoder().decode(stdout) +
    new TextDecoder().decode(stderr);
  if (code !== 0) throw new Error(`wrk exited with code ${code}:\n${output}`);
  const timeline = await readTimeline(options.timelinePath);
  return { wrk: parseWrkOutput(output), output, timeline };
}
