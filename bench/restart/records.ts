/**
 * The shape of `bench/results/restart.json` and `restart-acceptance.json`.
 *
 * @module
 */

import type { RequestFailures } from "../lib/failures.ts";
import type { WrkResult } from "../lib/wrk.ts";
import type { HandoverRecord } from "./handover.ts";
import type { MachineInfo } from "../lib/machine.ts";
import type { ProcessDiagnosis } from "./procs.ts";
import type { TimelineAnalysis } from "./timeline.ts";

/** keep-alive, or a new connection per request. */
export type ModeName = "keep-alive" | "close";

/** p50 / p95 / min / max of some milliseconds. */
export interface Spread {
  n: number;
  p50: number;
  p95: number;
  min: number;
  max: number;
}

/** The cold start of one engine: spawn → first 200 on GET /. */
export interface ColdStartRecord {
  engine: string;
  command: string;
  samplesMs: number[];
  medianMs: number;
  /** Spawn → the "listening on" log line (its timestamp has ms resolution). */
  listeningMs: Spread;
}

/** When new generations logged their milestones, in ms after the signal. */
export interface PhaseSpreads {
  joined: Spread;
  listening: Spread;
  ready: Spread;
}

/** Restarts with no load, for reference. */
export interface IdleHandoverRecord {
  engine: string;
  handovers: HandoverRecord[];
  /** Set when a handover did not complete; no further restart was sent. */
  stuck: StuckRestart | null;
  latencyMs: Spread;
  phasesMs: PhaseSpreads;
}

/** Failed requests, by kind. */
export interface Failures extends RequestFailures {
  /** Failed GET /pid probes of the bench itself (separate connections). */
  probes: number;
  /** Everything above. */
  total: number;
}

/** A restart whose handover did not complete: what the bench saw. */
export interface StuckRestart {
  /** 1-based. */
  restart: number;
  reason: string;
  /** Every generation still running when the bench gave up waiting. */
  processes: ProcessDiagnosis[];
  /** The last lines the server printed. */
  serverTail: string[];
}

/** An attempt at a scenario that was not kept (too much interference). */
export interface AttemptSummary {
  foreignCpuPercent: number;
  restartsCompleted: number;
  failures: Failures;
  processesLeft: number;
  stuck: StuckRestart | null;
  steadyRequestsPerSecond: number;
  windowRatio: number;
  latencyMs: Spread;
  wrkOutput: string;
  /** Every restart of the attempt, with its failed probes. */
  handovers: HandoverRecord[];
  /** When the attempt's non-2xx answers and unanswered requests happened. */
  non2xx: TimelineAnalysis["non2xx"];
  unanswered: TimelineAnalysis["unanswered"];
}

/** One engine × connection mode under load with restarts. */
export interface ScenarioRecord {
  engine: string;
  mode: ModeName;
  signal: Deno.Signal;
  restarts: number;
  intervalMs: number;
  serverCommand: string;
  wrkCommand: string;
  wrkOutput: string;
  wrk: WrkResult;
  failures: Failures;
  timeline: TimelineAnalysis;
  handovers: HandoverRecord[];
  /** Set when a handover did not complete; no further restart was sent. */
  stuck: StuckRestart | null;
  latencyMs: Spread;
  phasesMs: PhaseSpreads;
  serverReadyMs: Spread;
  oldExitMs: Spread;
  /** Generations still running once the last old one had time to drain. */
  processesLeft: number;
  /** The server's warnings and errors, and any line that is not a log line. */
  notableLines: string[];
  /** Whether other processes used under 5% of a core just before the run. */
  quietBefore: boolean;
  /** CPU % of one core used by other processes on the machine during the run. */
  foreignCpuPercent: number;
  /**
   * Earlier attempts at this scenario, dropped because other processes used
   * more CPU during them than during this one. Their failures still count.
   */
  discardedAttempts: AttemptSummary[];
  /** Whether the final SIGTERM stopped every generation in time. */
  stoppedGracefully: boolean;
}

/** One target, evaluated. */
export interface TargetResult {
  /** Which run: "native keep-alive", "acceptance close", … */
  scope: string;
  name: string;
  /** The measured value, as shown. */
  value: string;
  /** The target, as shown. */
  target: string;
  pass: boolean;
}

/** The whole report. */
export interface RestartReport {
  benchmark: "restart";
  kind: "full" | "acceptance";
  quick: boolean;
  machine: MachineInfo;
  config: {
    serverCpu: number;
    clientCpu: number;
    threads: number;
    connections: number;
    restarts: number;
    intervalMs: number;
    leadMs: number;
    tailMs: number;
    windowMs: number;
    bucketMs: number;
    pollMs: number;
    coldSamples: number;
    idleRestarts: number;
    /** The longest wait for a quiet machine before each phase (ms). */
    quietWaitMs: number;
  };
  /** The exact commands to reproduce it. */
  reproduce: string[];
  coldStarts: ColdStartRecord[];
  idleHandovers: IdleHandoverRecord[];
  scenarios: ScenarioRecord[];
  targets: TargetResult[];
  /** Processes carrying a bench marker after the bench ended (must be 0). */
  leftoverProcesses: number;
  notes: string[];
}
