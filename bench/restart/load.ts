/**
 * wrk, pinned to the client CPU: a plain fixed-length run (steady state), and
 * a run with bench/lib/timeline.lua that lasts until the bench stops it with
 * SIGINT (wrk then prints its summary and runs the Lua `done()` as at the end
 * of `-d`). A unix socket, which wrk cannot reach, gets bench/lib/unix_load.ts
 * instead, pinned the same way, which keeps the same timeline.
 *
 * @module
 */

import { denoRunCommand, pinnedToCpu } from "../lib/commands.ts";
import type { Endpoint } from "../lib/http_get.ts";
import {
  type LuaTimeline,
  readTimeline,
  TIMELINE_LUA_PATH,
} from "../lib/timeline.ts";
import {
  parseWrkOutput,
  wrkCommand,
  type WrkOptions,
  type WrkResult,
  type WrkScript,
} from "../lib/wrk.ts";
import { type Spawned, spawnProcess } from "./spawn.ts";

/** What every wrk run shares. */
export interface WrkSetup {
  /** What is loaded: a port on 127.0.0.1 (HTTP or HTTPS) or a unix socket. */
  endpoint: Endpoint;
  threads: number;
  connections: number;
  /** e.g. `["Connection: close"]`. */
  headers: string[];
  cpu: number;
}

/** The wrk options of a run of `seconds` with `setup`. */
function wrkOptions(
  setup: WrkSetup,
  seconds: number,
  script?: WrkScript,
): WrkOptions {
  return {
    url: `${
      setup.endpoint.caCert ? "https" : "http"
    }://127.0.0.1:${setup.endpoint.port}/`,
    duration: seconds,
    threads: setup.threads,
    connections: setup.connections,
    headers: setup.headers,
    cpu: setup.cpu,
    script,
  };
}

/**
 * The load command: wrk, or for a unix socket unix_load.ts (with `script`,
 * the timeline's arguments go to it: OUT and BUCKET_MS).
 */
function loadCommand(
  setup: WrkSetup,
  seconds: number,
  script?: WrkScript,
): string[] {
  const path = setup.endpoint.unixPath;
  if (path === undefined) return wrkCommand(wrkOptions(setup, seconds, script));
  return pinnedToCpu(
    setup.cpu,
    denoRunCommand([
      UNIX_LOAD_PATH,
      path,
      String(setup.connections),
      String(seconds),
      setup.headers.some((h) => /close/i.test(h)) ? "close" : "keep-alive",
      ...script?.args ?? [],
    ]),
  );
}

const UNIX_LOAD_PATH = decodeURIComponent(
  new URL("../lib/unix_load.ts", import.meta.url).pathname,
);

/** Runs wrk for `seconds` without Lua; resolves with its parsed summary. */
export async function runPlainWrk(
  setup: WrkSetup,
  seconds: number,
): Promise<{ result: WrkResult; output: string; pid: number }> {
  const command = loadCommand(setup, seconds);
  const spawned = spawnProcess(command, { tool: true });
  return { ...await wrkFinished(spawned), pid: spawned.pid };
}

/**
 * Waits for a spawned wrk (or unix_load.ts) to end; resolves with its
 * parsed summary.
 */
async function wrkFinished(
  spawned: Spawned,
): Promise<{ result: WrkResult; output: string }> {
  const status = await spawned.done;
  await spawned.drained;
  const output = spawned.lines.join("\n");
  if (!status.success) throw new Error(`wrk failed:\n${output}`);
  const json = spawned.lines.find((line) => line.startsWith("{"));
  return {
    result: json === undefined ? parseWrkOutput(output) : JSON.parse(json),
    output,
  };
}

/** A wrk run with the timeline script, until {@linkcode TimelineRun.stop}. */
export interface TimelineRun {
  command: string[];
  pid: number;
  /** SIGINTs wrk and resolves with its summary and timeline. */
  stop(): Promise<{ result: WrkResult; timeline: LuaTimeline; output: string }>;
}

/**
 * Starts wrk with bench/lib/timeline.lua, writing its timeline (in buckets
 * of `bucketMs`) to `outPath`, for at most `maxSeconds`.
 */
export function startTimelineRun(
  setup: WrkSetup,
  outPath: string,
  bucketMs: number,
  maxSeconds: number,
): TimelineRun {
  const command = loadCommand(setup, maxSeconds, {
    path: TIMELINE_LUA_PATH,
    args: [outPath, String(bucketMs)],
  });
  const spawned: Spawned = spawnProcess(command, { tool: true });
  return {
    command,
    pid: spawned.pid,
    async stop() {
      try {
        spawned.child.kill("SIGINT");
      } catch {
        // it ended by itself (-d reached)
      }
      const { result, output } = await wrkFinished(spawned);
      const timeline = await readTimeline(outPath);
      return { result, timeline, output };
    },
  };
}
