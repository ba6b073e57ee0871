/**
 * Runs wrk pinned to a CPU (optionally with a Lua script) and parses what it
 * prints.
 *
 * @module
 */

import { runTracked } from "./children.ts";
import { pinnedToCpu } from "./commands.ts";

/** Errors wrk counted: socket errors, and responses with status ≥ 400. */
export interface WrkErrors {
  connect: number;
  read: number;
  write: number;
  timeout: number;
  /** wrk's "Non-2xx or 3xx responses". */
  status: number;
}

/** The numbers of one wrk run. */
export interface WrkResult {
  /** Completed requests. */
  requests: number;
  /** The run's length as wrk measured it (s). */
  seconds: number;
  /** wrk's "Requests/sec". */
  requestsPerSecond: number;
  /** Bytes read (wrk prints them rounded, in binary units). */
  bytesRead: number;
  /** Latency in ms: mean, stdev, max and the percentiles of `--latency`. */
  latencyMs: {
    mean: number;
    stdev: number;
    max: number;
    p50: number;
    p75: number;
    p90: number;
    p99: number;
  };
  errors: WrkErrors;
}

/** How to run wrk. */
export interface WrkOptions {
  url: string;
  /** Seconds. */
  duration: number;
  threads: number;
  connections: number;
  /** Extra request headers, e.g. `["Connection: close"]`. */
  headers: string[];
  /** The CPU to pin wrk to. */
  cpu: number;
  /** A Lua script (`-s`), and the arguments it gets after `--`. */
  script?: WrkScript;
}

/** A wrk Lua script and its arguments. */
export interface WrkScript {
  /** The script's file. */
  path: string;
  /** What wrk passes to its `init(args)`. */
  args: string[];
}

/** The wrk command line (after `taskset -c <cpu>`) for `options`. */
export function wrkArgs(options: WrkOptions): string[] {
  const args = [
    `-t${options.threads}`,
    `-c${options.connections}`,
    `-d${options.duration}s`,
    "--latency",
  ];
  for (const header of options.headers) args.push("-H", header);
  if (options.script !== undefined) args.push("-s", options.script.path);
  args.push(options.url);
  if (options.script !== undefined) args.push("--", ...options.script.args);
  return args;
}

/** The whole command: `taskset -c <cpu> wrk …`. */
export function wrkCommand(options: WrkOptions): string[] {
  return pinnedToCpu(options.cpu, ["wrk", ...wrkArgs(options)]);
}

/** Runs `taskset -c <cpu> wrk ...` and parses its output; throws on failure. */
export async function runWrk(
  options: WrkOptions,
): Promise<{ result: WrkResult; output: string }> {
  const { code, stdout, stderr } = await runTracked(wrkCommand(options));
  const output = stdout + stderr;
  if (code !== 0) {
    throw new Error(`wrk exited with code ${code}:\n${output}`);
  }
  return { result: parseWrkOutput(output), output };
}

/** Parses wrk 4's report (run with `--latency`). */
export function parseWrkOutput(text: string): WrkResult {
  const totals = /^\s*(\d+) requests in ([\d.]+\w+), ([\d.]+[KMGTP]?B) read/m
    .exec(text);
  const rate = /^Requests\/sec:\s*([\d.]+)/m.exec(text);
  if (totals === null || rate === null) {
    throw new Error(`cannot parse wrk output:\n${text}`);
  }
  const latency = /^\s*Latency\s+(\S+)\s+(\S+)\s+(\S+)/m.exec(text);
  const socket =
    /Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)/
      .exec(text);
  const status = /Non-2xx or 3xx responses: (\d+)/.exec(text);
  return {
    requests: Number(totals[1]),
    seconds: parseDuration(totals[2]) / 1000,
    requestsPerSecond: Number(rate[1]),
    bytesRead: parseBytes(totals[3]),
    latencyMs: {
      mean: latency ? parseDuration(latency[1]) : NaN,
      stdev: latency ? parseDuration(latency[2]) : NaN,
      max: latency ? parseDuration(latency[3]) : NaN,
      p50: percentile(text, 50),
      p75: percentile(text, 75),
      p90: percentile(text, 90),
      p99: percentile(text, 99),
    },
    errors: {
      connect: socket ? Number(socket[1]) : 0,
      read: socket ? Number(socket[2]) : 0,
      write: socket ? Number(socket[3]) : 0,
      timeout: socket ? Number(socket[4]) : 0,
      status: status ? Number(status[1]) : 0,
    },
  };
}

/** The sum of all errors. */
export function totalErrors(errors: WrkErrors): number {
  return errors.connect + errors.read + errors.write + errors.timeout +
    errors.status;
}

function percentile(text: string, p: number): number {
  const match = new RegExp(`^\\s*${p}%\\s+(\\S+)`, "m").exec(text);
  return match ? parseDuration(match[1]) : NaN;
}

const TIME_UNITS_MS: Record<string, number> = {
  us: 0.001,
  ms: 1,
  s: 1000,
  m: 60_000,
  h: 3_600_000,
};

/** Parses wrk's times ("812.00us", "1.23ms", "8.00s", "1.00m") into ms. */
export function parseDuration(text: string): number {
  const match = /^([\d.]+)(us|ms|s|m|h)$/.exec(text);
  if (match === null) throw new Error(`cannot parse wrk time "${text}"`);
  return Number(match[1]) * TIME_UNITS_MS[match[2]];
}

const BYTE_UNITS: Record<string, number> = {
  "": 1,
  K: 1024,
  M: 1024 ** 2,
  G: 1024 ** 3,
  T: 1024 ** 4,
  P: 1024 ** 5,
};

/** Parses wrk's sizes ("712.00B", "13.88MB") into bytes. */
export function parseBytes(text: string): number {
  const match = /^([\d.]+)([KMGTP]?)B$/.exec(text);
  if (match === null) throw new Error(`cannot parse wrk size "${text}"`);
  return Number(match[1]) * BYTE_UNITS[match[2]];
}
