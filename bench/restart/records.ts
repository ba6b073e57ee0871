/**
 * The shape of bench/results/restart.json.
 *
 * @module
 */

import type { RequestFailures } from "../lib/failures.ts";
import type { WrkErrors, WrkResult } from "../lib/wrk.ts";
import type { TimelineAnalysis } from "./analysis.ts";
import type { Memory } from "./procs.ts";
import type { RestartRecord } from "./restart.ts";
import type { Steps } from "./steps.ts";
import type { SystemSpec } from "./specs.ts";

/** keep-alive, or `Connection: close` on every request. */
export type ModeName = "keep-alive" | "close";

/** How a run was configured. */
export interface BenchConfig {
  quick: boolean;
  /** Cold starts per system (the last one is the instance measured). */
  coldStarts: number;
  /** Restarts without load per system. */
  idleRestarts: number;
  /** Plain wrk before the steady run (s). */
  warmupS: number;
  /** The steady run (plain wrk, s). */
  steadyS: number;
  /** Restarts per system and mode, under load. */
  restarts: number;
  /** Least time between two triggers (ms); a trigger also waits for the previous restart to end. */
  intervalMs: number;
  /** Load before the first trigger (ms). */
  leadMs: number;
  /** Load after the last restart window (ms). */
  tailMs: number;
  /** The restart window after each trigger (ms). */
  windowMs: number;
  /** Left out at wrk's start (ms). */
  rampMs: number;
  /** Restarts of the soak. */
  soakRestarts: number;
  soakIntervalMs: number;
  connections: number;
  threads: number;
  serverCpu: number;
  clientCpu: number;
  systems: string[];
  /** Before each measured run, wait up to this long for other processes to use < 10% of a core (s). */
  quietWaitS: number;
}

/** The plain wrk run without restarts. */
export interface SteadyRecord {
  seconds: number;
  requests: number;
  rps: number;
  /** Server tree CPU (utime + stime, children included) over the run, in ticks. */
  cpuTicks: number;
  cpuUsPerRequest: number;
  /** Server CPU ÷ wall time (100 = its core saturated). */
  serverCpuPercent: number;
  /** How busy the client core was. */
  clientCorePercent: number;
  /** CPU of every other process on the machine, % of one core. */
  foreignCpuPercent: number;
  latencyMs: { p50: number; p99: number; max: number };
  errors: WrkErrors;
  /** Memory of the server processes, sampled near the end of the run. */
  memory: Memory;
  /** The wait for a quiet machine before the run (null: none). */
  quiet: QuietWait | null;
}

/** How long a run waited for the other processes to calm down. */
export interface QuietWait {
  waitedS: number;
  /** What they used in the last 0.5 s of the wait, % of one core. */
  foreignPercent: number;
}

/** Failed requests during a restart run. */
export interface Failures extends RequestFailures {
  /** Everything above. */
  total: number;
  /** total ÷ restarts. */
  perRestart: number;
}

/** A spread of ms figures. */
export interface Spread {
  n: number;
  p50: number;
  p95: number;
  max: number;
}

/** The wrk run with restarts. */
export interface RestartRunRecord {
  command: string[];
  restarts: RestartRecord[];
  /** Restarts whose new generation answered. */
  completed: number;
  /** The system's processes once the run's last old generation had exited. */
  processesLeft: number;
  wrk: WrkResult;
  failures: Failures;
  analysis: TimelineAnalysis;
  handover: Spread;
  oldExit: Spread;
  /** CPU of every other process on the machine during the run, % of one core. */
  foreignCpuPercent: number;
  /** The wait for a quiet machine before the run (null: none). */
  quiet: QuietWait | null;
  /** Restarts that went wrong, with the last lines the system printed then. */
  restartErrors: RestartError[];
  /** Why the run stopped early, when it did. */
  error: string | null;
}

/** A restart that went wrong. */
export interface RestartError {
  /** 0-based. */
  index: number;
  error: string;
  /** The last lines the system (every generation) printed at that moment. */
  outputTail: string[];
}

/** One system in one mode. */
export interface ModeRecord {
  mode: ModeName;
  steady: SteadyRecord | null;
  restart: RestartRunRecord | null;
  error: string | null;
}

/** One system. */
export interface SystemRecord {
  spec: SystemSpec;
  command: string[];
  coldStartsMs: number[];
  coldStartMedianMs: number;
  /** Each cold start's steps, ms after the spawn (ours: steps.ts). */
  coldSteps: Steps[];
  idleRestarts: RestartRecord[];
  idleHandover: Spread;
  modes: ModeRecord[];
  /** Pids that did not stop within the grace time and were killed. */
  killedAtStop: number[];
  /** Output lines that are warnings or errors. */
  notable: string[];
  error: string | null;
}

/** One generation of the soak. */
export interface SoakSample {
  generation: number;
  pid: number;
  /** Every open fd (/proc/<pid>/fd), client connections included. */
  fds: number | null;
  /** Of those, the sockets (listeners, client connections, control channel). */
  sockets: number | null;
  rssKiB: number | null;
}

/** The soak: many restarts of ours (native) under keep-alive load. */
export interface SoakRecord {
  restarts: RestartRecord[];
  completed: number;
  samples: SoakSample[];
  wrk: WrkResult;
  failures: Failures;
  analysis: TimelineAnalysis;
  handover: Spread;
  fds: { min: number; max: number; first: number; last: number };
  /** The same over the fds that are not sockets. */
  nonSocketFds: { min: number; max: number; first: number; last: number };
  rssMiB: {
    min: number;
    max: number;
    firstQuarterMedian: number;
    lastQuarterMedian: number;
    /** Least-squares slope, MiB per 100 generations. */
    slopePer100: number;
  };
  /** CPU of every other process on the machine during the soak, % of one core. */
  foreignCpuPercent: number;
  quiet: QuietWait | null;
  /** Restarts that went wrong, with the last lines the server printed then. */
  restartErrors: RestartError[];
  /** Warnings and errors the server printed. */
  notable: string[];
  fdsFlat: boolean;
  rssFlat: boolean;
  error: string | null;
}

/** One target and how the run did against it. */
export interface TargetResult {
  name: string;
  value: string;
  pass: boolean;
  reason: string;
}

/** The whole JSON file. */
export interface RestartReport {
  bench: "restart";
  date: string;
  config: BenchConfig;
  machine: Record<string, unknown>;
  versions: Record<string, string>;
  reproduce: string[];
  systems: SystemRecord[];
  soak: SoakRecord | null;
  targets: TargetResult[];
  /** Run with --systems, --restarts or --soak: not the whole bench. */
  partial: boolean;
  notes: string[];
  durationS: number;
}
