/**
 * One measured run of the serve bench: a fresh server pinned to its CPU, a
 * pre-flight GET, a warm-up, then the measured load (wrk, or
 * bench/lib/unix_load.ts for unix sockets) with the server's CPU ticks, its
 * RSS and the interference of other processes, measured again when they
 * disturbed it.
 *
 * @module
 */

import { runTracked } from "../lib/children.ts";
import { denoRunCommand, pinnedToCpu } from "../lib/commands.ts";
import {
  type CoreTicks,
  foreignTicks,
  readAllProcessTicks,
  readCoreTicks,
  readProcessCpuTicks,
} from "../lib/proc.ts";
import {
  checkHelloWorld,
  type RunningServer,
  startServer,
  stopServerProcess,
} from "../lib/server_process.ts";
import { sleep } from "../lib/time.ts";
import { runWrk, type WrkOptions, type WrkResult } from "../lib/wrk.ts";
import type {
  AttemptRecord,
  CpuRecord,
  ModeSpec,
  RunRecord,
  SystemSpec,
} from "./records.ts";

const BENCH_DIR = decodeURIComponent(new URL("..", import.meta.url).pathname);
const REPO_DIR = decodeURIComponent(new URL("../..", import.meta.url).pathname);

/** What {@linkcode measure} needs of the command line. */
export interface MeasureOptions {
  /** Seconds of measured load. */
  duration: number;
  /** How long to wait for a quiet machine before each run (ms). */
  quietWaitMs: number;
  /** How often a disturbed run is measured at most. */
  attempts: number;
  /** A private directory for the certificate and the unix sockets. */
  workDir: string;
  /** The TLS certificate (PEM) the HTTPS systems serve. */
  cert: string;
}

/** The server's CPU; wrk's is CLIENT_CPU. */
export const SERVER_CPU = 1;
export const CLIENT_CPU = 0;
export const THREADS = 1;
export const CONNECTIONS = 50;
export const WARMUP_SECONDS = 2;
/** Pause after the warm-up (ms). */
const SETTLE_MS = 250;
const STARTUP_TIMEOUT_MS = 30_000;
const STOP_GRACE_MS = 5_000;
/** Before each measured run, wait for other processes to use less than this % of a core… */
const QUIET_PERCENT = 5;
/** …over this window… */
const QUIET_WINDOW_MS = 1_000;
/** …but no longer than this (default; `--quiet-wait`). */
export const QUIET_MAX_WAIT_MS = 60_000;
/** Measure again when other processes used more than this % of a core during the run. */
export const MAX_FOREIGN_PERCENT = 5;
/** Default; `--attempts`. */
export const MAX_ATTEMPTS = 3;

/** One planned run. */
export interface RunPlan {
  round: number;
  sequence: number;
  system: SystemSpec;
  mode: ModeSpec;
}

function coreDeltaPercent(
  before: Map<number, CoreTicks>,
  after: Map<number, CoreTicks>,
  cpu: number,
): number {
  const a = before.get(cpu);
  const b = after.get(cpu);
  if (a === undefined || b === undefined || b.total === a.total) return NaN;
  return (b.busy - a.busy) / (b.total - a.total) * 100;
}

/** Measures one loaded run against a warm server; see {@linkcode measure}. */
async function measureLoad(
  server: RunningServer,
  load: Load,
  clockTicks: number,
): Promise<{ wrk: WrkResult; cpu: CpuRecord; rssMiB: number | null }> {
  const allBefore = await readAllProcessTicks();
  const cpuBefore = await readProcessCpuTicks(server.pid);
  const coresBefore = await readCoreTicks();
  const startedAt = performance.now();
  const result = await runLoad(load);
  // Read right away: wrk has exited, so its connections are closed, and an
  // idle pause here would only dilute the CPU percentages.
  if (server.exited()) throw new Error("the server exited under load");
  const cpuAfter = await readProcessCpuTicks(server.pid);
  const rssMiB = await readRssMiB(server.pid);
  const coresAfter = await readCoreTicks();
  const wallSeconds = (performance.now() - startedAt) / 1000;
  const allAfter = await readAllProcessTicks();
  if (result.requests === 0) throw new Error("wrk completed no requests");
  const ticks = cpuAfter.user + cpuAfter.system -
    (cpuBefore.user + cpuBefore.system);
  const seconds = ticks / clockTicks;
  const foreign = foreignTicks(
    allBefore,
    allAfter,
    new Set([server.pid, Deno.pid]),
  );
  return {
    wrk: result,
    rssMiB,
    cpu: {
      ticks,
      seconds,
      usPerRequest: seconds * 1e6 / result.requests,
      wallSeconds,
      serverPercent: seconds / wallSeconds * 100,
      serverCoreBusyPercent: coreDeltaPercent(
        coresBefore,
        coresAfter,
        SERVER_CPU,
      ),
      clientCoreBusyPercent: coreDeltaPercent(
        coresBefore,
        coresAfter,
        CLIENT_CPU,
      ),
      foreignPercent: foreign / clockTicks / wallSeconds * 100,
    },
  };
}

/** VmRSS of `pid` in MiB (null: gone). */
async function readRssMiB(pid: number): Promise<number | null> {
  const status = await Deno.readTextFile(`/proc/${pid}/status`).catch(() => "");
  const kib = /^VmRSS:\s+(\d+) kB/m.exec(status)?.[1];
  return kib === undefined ? null : Math.round(Number(kib) / 1024 * 10) / 10;
}

/** wrk's options, and the unix socket to load instead of its URL. */
type Load = WrkOptions & { unixPath?: string };

/** wrk, or for a unix socket bench/lib/unix_load.ts, pinned like wrk. */
async function runLoad(load: Load): Promise<WrkResult> {
  if (load.unixPath === undefined) return (await runWrk(load)).result;
  const out = await runTracked(pinnedToCpu(
    load.cpu,
    denoRunCommand([
      `${BENCH_DIR}lib/unix_load.ts`,
      load.unixPath,
      String(load.connections),
      String(load.duration),
      load.headers.some((h) => /close/i.test(h)) ? "close" : "keep-alive",
    ]),
  ));
  if (out.code !== 0) throw new Error(`unix_load.ts failed: ${out.stderr}`);
  return JSON.parse(out.stdout);
}

/**
 * Waits until processes other than the bench and `serverPid` use less than
 * {@linkcode QUIET_PERCENT} of a core over {@linkcode QUIET_WINDOW_MS}, or
 * until {@linkcode QUIET_MAX_WAIT_MS} have passed.
 */
async function waitForQuiet(
  serverPid: number,
  clockTicks: number,
  maxWaitMs: number,
): Promise<{ waitedSeconds: number; foreignPercent: number }> {
  const started = performance.now();
  const exclude = new Set([serverPid, Deno.pid]);
  while (true) {
    const before = await readAllProcessTicks();
    await sleep(QUIET_WINDOW_MS);
    const after = await readAllProcessTicks();
    const foreignPercent = foreignTicks(before, after, exclude) / clockTicks /
      (QUIET_WINDOW_MS / 1000) * 100;
    const waited = performance.now() - started;
    if (foreignPercent < QUIET_PERCENT || waited >= maxWaitMs) {
      return { waitedSeconds: waited / 1000, foreignPercent };
    }
  }
}

/**
 * One (system, mode, round) run: a fresh server, a pre-flight GET, a warm-up,
 * then the measured load, repeated (up to {@linkcode MAX_ATTEMPTS}) when
 * other processes used more than {@linkcode MAX_FOREIGN_PERCENT} of a core
 * meanwhile. The attempt with the least interference is kept.
 */
export async function measure(
  plan: RunPlan,
  flags: MeasureOptions,
  clockTicks: number,
): Promise<RunRecord> {
  const transport = plan.system.transport;
  const unixPath = transport === "unix"
    ? `${flags.workDir}bench-${plan.sequence}.sock`
    : undefined;
  const server: RunningServer = await startServer({
    script: `${BENCH_DIR}${plan.system.script}`,
    cwd: REPO_DIR,
    cpu: SERVER_CPU,
    timeoutMs: STARTUP_TIMEOUT_MS,
    args: transport === "tls"
      ? [`tls:${flags.workDir}`]
      : unixPath
      ? [`unix:${unixPath}`]
      : [],
  });
  let record: Omit<RunRecord, "stop"> | undefined;
  let failure: unknown;
  const check = {
    tlsCert: transport === "tls" ? flags.cert : undefined,
    unixPath,
  };
  try {
    const responseHeaders = await checkHelloWorld(server.port, check);
    const load: Load = {
      unixPath,
      url: `${
        transport === "tls" ? "https" : "http"
      }://127.0.0.1:${server.port}/`,
      duration: WARMUP_SECONDS,
      threads: THREADS,
      connections: CONNECTIONS,
      headers: plan.mode.headers,
      cpu: CLIENT_CPU,
    };
    const warmup = { result: await runLoad(load) };
    await sleep(SETTLE_MS);
    if (server.exited()) throw new Error("the server exited during warm-up");

    const attempts: AttemptRecord[] = [];
    for (let attempt = 1; attempt <= flags.attempts; attempt++) {
      const quiet = await waitForQuiet(
        server.pid,
        clockTicks,
        flags.quietWaitMs,
      );
      const measured = await measureLoad(
        server,
        { ...load, duration: flags.duration },
        clockTicks,
      );
      attempts.push({ attempt, quiet, ...measured });
      if (measured.cpu.foreignPercent <= MAX_FOREIGN_PERCENT) break;
      console.log(
        `    other processes used ${
          measured.cpu.foreignPercent.toFixed(0)
        }% of a core during the run` +
          (attempt < flags.attempts ? "; measuring again" : ""),
      );
    }
    await checkHelloWorld(server.port, check);
    const kept = attempts.reduce((best, a) =>
      a.cpu.foreignPercent < best.cpu.foreignPercent ? a : best
    );
    record = {
      round: plan.round,
      sequence: plan.sequence,
      mode: plan.mode.name,
      system: plan.system.name,
      pid: server.pid,
      port: server.port,
      responseHeaders,
      warmup: {
        requests: warmup.result.requests,
        requestsPerSecond: warmup.result.requestsPerSecond,
        errors: warmup.result.errors,
      },
      quiet: kept.quiet,
      wrk: kept.wrk,
      cpu: kept.cpu,
      rssMiB: kept.rssMiB,
      discarded: attempts.filter((a) => a !== kept),
    };
  } catch (error) {
    failure = error;
  }
  const { status, killed } = await stopServerProcess(
    server.child,
    STOP_GRACE_MS,
  );
  if (unixPath) await Deno.remove(unixPath).catch(() => {});
  if (failure !== undefined || record === undefined) {
    throw new Error(
      `${plan.system.name} (${plan.mode.name}, round ${plan.round}) failed: ${
        failure instanceof Error ? failure.message : String(failure)
      }\n--- server output ---\n${server.output()}`,
    );
  }
  return {
    ...record,
    stop: { code: status.code, signal: status.signal, killed },
  };
}
