/**
 * The shape of bench/results/serve.json: the systems and modes, every run,
 * and what the report derives from them.
 *
 * @module
 */

import type { MachineInfo } from "../lib/machine.ts";
import type { WrkErrors, WrkResult } from "../lib/wrk.ts";
import type { ColdStartRecord } from "./cold_start.ts";

/** The two load modes. */
export type ModeName = "keep-alive" | "close";

/** One system under test. */
export interface SystemSpec {
  /** The name used by `--only` and in JSON. */
  name: string;
  /** The name shown in tables. */
  label: string;
  /** The server script, relative to bench/. */
  script: string;
  /** Served over TLS or a unix socket instead of plain TCP. */
  transport?: "tls" | "unix";
  /** Only these modes (default: every mode). */
  modes?: ModeName[];
}

/** One load mode. */
export interface ModeSpec {
  name: ModeName;
  /** The name shown in headings. */
  label: string;
  /** Extra wrk headers. */
  headers: string[];
}

/** CPU accounting of one measured run. */
export interface CpuRecord {
  /** Server utime + stime over the run, in clock ticks. */
  ticks: number;
  /** The same in seconds. */
  seconds: number;
  /** Server CPU µs per completed request. */
  usPerRequest: number;
  /** Wall time between the two /proc readings (s). */
  wallSeconds: number;
  /** Server CPU time ÷ wall time, in percent (100 = one core busy). */
  serverPercent: number;
  /** How busy the server's core was (everything on it), in percent. */
  serverCoreBusyPercent: number;
  /** How busy wrk's core was, in percent. */
  clientCoreBusyPercent: number;
  /**
   * CPU used by every other process on the machine (not the server, wrk or
   * the bench), in percent of one core: interference from other work.
   */
  foreignPercent: number;
}

/** One measured attempt of a run. */
export interface AttemptRecord {
  attempt: number;
  /** The wait for a quiet machine before it. */
  quiet: { waitedSeconds: number; foreignPercent: number };
  wrk: WrkResult;
  cpu: CpuRecord;
  /** The server's VmRSS right after the load (MiB). */
  rssMiB: number | null;
}

/** One measured run of one system in one mode. */
export interface RunRecord {
  /** 1-based round. */
  round: number;
  /** 1-based position in the whole bench's sequence of runs. */
  sequence: number;
  mode: ModeName;
  system: string;
  pid: number;
  port: number;
  /** Response headers of the pre-flight GET (without `date`). */
  responseHeaders: Record<string, string>;
  warmup: { requests: number; requestsPerSecond: number; errors: WrkErrors };
  /** The wait for a quiet machine before the kept attempt. */
  quiet: { waitedSeconds: number; foreignPercent: number };
  wrk: WrkResult;
  cpu: CpuRecord;
  /** The server's VmRSS right after the measured load (MiB). */
  rssMiB: number | null;
  /** Attempts not kept because other processes interfered more. */
  discarded: AttemptRecord[];
  /** How the server ended when it was stopped with SIGTERM. */
  stop: { code: number; signal: string | null; killed: boolean };
}

/** Median, minimum and maximum over the rounds. */
export interface Spread {
  median: number;
  min: number;
  max: number;
}

/** One system in one mode, over all rounds. */
export interface Summary {
  system: string;
  mode: ModeName;
  rounds: number;
  requestsPerSecond: Spread;
  cpuUsPerRequest: Spread;
  serverCpuPercent: Spread;
  clientCoreBusyPercent: Spread;
  foreignPercent: Spread;
  /** The server's RSS after the load (MiB). */
  rssMiB: Spread;
  /** Median of the per-run p50 and p99 latencies (ms). */
  latencyMs: { p50: number; p99: number };
  /** Errors summed over all rounds. */
  errors: WrkErrors;
  /** Completed requests summed over all rounds. */
  requests: number;
}

/** A system compared with a baseline, in one mode. */
export interface Ratio {
  system: string;
  baseline: string;
  mode: ModeName;
  /** system req/s ÷ baseline req/s (medians). */
  throughput: number | null;
  /** baseline µs/req ÷ system µs/req (medians); above 1 is cheaper. */
  cpuEfficiency: number | null;
  /** system RSS ÷ baseline RSS after the load (medians); below 1 is smaller. */
  rss: number | null;
}

/** A stated goal, and whether this run met it. */
export interface Target {
  description: string;
  system: string;
  baseline: string;
  /** null: the cold start, measured without load. */
  mode: ModeName | null;
  metric: "throughput" | "cpuEfficiency" | "rss" | "coldStart";
  threshold: number;
  /** The value must be at most the threshold (else at least). */
  atMost?: boolean;
  value: number | null;
  /** null when a system was not measured. */
  pass: boolean | null;
  /** Runs behind this verdict (both systems, this mode). */
  runs: number;
  /**
   * Of those, runs during which other processes used more than
   * `maxForeignPercent` of a core: the verdict is only as good as they are.
   */
  disturbedRuns: number;
}

/** Facts about the machine and the run, for the report. */
export interface Environment extends MachineInfo {
  command: string;
  nproc: number;
  clockTicksPerSecond: number;
  loadAverageAtStart: string;
}

/** The bench's settings. */
export interface BenchConfig {
  durationSeconds: number;
  warmupSeconds: number;
  rounds: number;
  threads: number;
  connections: number;
  serverCpu: number;
  clientCpu: number;
  /** The quiet gate: longest wait (s). */
  quietMaxWaitSeconds: number;
  /** Interference (% of a core) that makes a run be measured again. */
  maxForeignPercent: number;
  maxAttempts: number;
  systems: string[];
  modes: ModeName[];
  /** The RSS phase (serve/rss_phase.ts): rounds, and seconds of load before the reading (absent in older reports). */
  rssRounds?: number;
  rssSeconds?: number;
}

/** Everything written to serve.json. */
export interface BenchReport {
  benchmark: "serve";
  environment: Environment;
  config: BenchConfig;
  summaries: Summary[];
  ratios: Ratio[];
  targets: Target[];
  notes: string[];
  coldStarts: ColdStartRecord[];
  runs: RunRecord[];
  /** The runs of the RSS phase (absent in older reports). */
  rssRuns?: RunRecord[];
}
