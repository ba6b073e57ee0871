/**
 * What the restart bench reads from the timeline that `bench/lib/timeline.lua`
 * writes from inside wrk: steady-state throughput, throughput in the second
 * after each restart signal, stalls, non-2xx answers, and requests that were
 * written but never answered.
 *
 * @module
 */

import {
  longestZeroRun,
  overlapsAnyWindow,
  sumRange,
  unansweredRequests,
  windowCounts,
} from "../lib/buckets.ts";
import { mean, median, round } from "../lib/stats.ts";
import {
  denseTimeline,
  type LuaTimeline,
  statusCounts,
  type TimelineAnalysisOptions,
} from "../lib/timeline.ts";

/** One point in time, placed relative to the restart signals. */
export interface TimelineEvent {
  /** Ms since wrk started. */
  atMs: number;
  /** Ms since the latest restart signal before it; null before the first. */
  sinceSignalMs: number | null;
  /** Which signal that was (0-based); null before the first. */
  signalIndex: number | null;
  count: number;
}

/** Throughput in the second after one restart signal. */
export interface WindowStats {
  /** When the signal was sent, in ms since wrk started. */
  signalAtMs: number;
  /** Responses completed in [signal, signal + windowMs). */
  responses: number;
  /** responses / window length, per second. */
  requestsPerSecond: number;
  /** requestsPerSecond ÷ steady-state req/s. */
  ratio: number;
  /** The lowest rate over any 100 ms inside the window (req/s). */
  worst100msRequestsPerSecond: number;
  /** Zero-response time inside the window: the longest run of empty buckets (ms). */
  longestStallMs: number;
}

/** Everything the bench reports from one timeline. */
export interface TimelineAnalysis {
  bucketMs: number;
  /** Length of the restart window after each signal (ms). */
  windowMs: number;
  /** wrk's run, as the Lua clock saw it (ms). */
  runMs: number;
  /** Responses completed (Lua count; equals wrk's total). */
  responses: number;
  /** Requests written. */
  sent: number;
  /** Median of the 100 ms buckets outside every restart window, per second. */
  steadyRequestsPerSecond: number;
  /** How many 100 ms buckets that median is over. */
  steadyBuckets: number;
  windows: WindowStats[];
  /** Mean of the windows' req/s ÷ steady req/s. */
  windowRatio: number;
  /** The lowest window's ratio. */
  worstWindowRatio: number;
  /** The lowest 100 ms rate in any window ÷ steady req/s. */
  worst100msRatio: number;
  /** The longest run of 10 ms buckets without any completed response. */
  longestStall: TimelineEvent & { ms: number };
  /** Non-2xx responses, by bucket, placed relative to the signals. */
  non2xx: TimelineEvent[];
  /** Non-2xx responses by status. */
  statuses: Record<string, number>;
  /**
   * Requests written and never answered, as far as the counts can tell:
   * at any time at most one request per connection is outstanding, so a
   * rise of (`request()` calls − responses) above `maxOutstanding` is a
   * request that was lost. The events are the moments that excess grew.
   * A heuristic that localizes losses in time; wrk's socket error counts
   * are the authority on how many there were.
   */
  unanswered: { atEnd: number; excessEvents: TimelineEvent[] };
  /** Responses per 100 ms, from wrk's start (for plots). */
  series100ms: number[];
}

/** Reads steady state, restart windows, stalls and losses from `timeline`. */
export function analyzeTimeline(
  timeline: LuaTimeline,
  options: TimelineAnalysisOptions,
): TimelineAnalysis {
  const { width, firstKey, length, sent, received, non2xx } = denseTimeline(
    timeline,
  );
  const origin = firstKey * width;
  const signals = options.triggersMs.map((ms) => ms - origin);

  // Steady state: whole 100 ms buckets after the ramp, before the last
  // (partial) fine bucket, and outside every restart window.
  const per100 = 100 / width;
  const steady: number[] = [];
  const series100ms: number[] = [];
  for (let start = 0; start + per100 <= length; start += per100) {
    const count = sumRange(received, start, start + per100);
    series100ms.push(count);
    const fromMs = start * width;
    const toMs = fromMs + 100;
    if (fromMs < options.rampMs) continue;
    if (toMs > (length - 1) * width) continue;
    if (!overlapsAnyWindow(fromMs, toMs, signals, options.windowMs)) {
      steady.push(count * 10);
    }
  }
  const steadyRps = median(steady);

  const windows: WindowStats[] = signals.map((signalAt) => {
    const window = windowCounts(
      received,
      Math.ceil(signalAt / width),
      Math.round(options.windowMs / width),
      width,
    );
    const rps = window.responses /
      ((window.to - window.from) * width / 1000);
    return {
      signalAtMs: round(signalAt),
      responses: window.responses,
      requestsPerSecond: round(rps),
      ratio: round(rps / steadyRps, 3),
      worst100msRequestsPerSecond: window.worst100msPerSecond,
      longestStallMs: window.longestZeroMs,
    };
  });
  const windowMean = mean(windows.map((w) => w.requestsPerSecond));

  // The longest stall, from the first response to the last.
  const firstResponse = received.findIndex((count) => count > 0);
  const stall = longestZeroRun(received, Math.max(0, firstResponse), length);

  const non2xxEvents: TimelineEvent[] = [];
  for (let i = 0; i < length; i++) {
    if (non2xx[i] > 0) {
      non2xxEvents.push(placeEvent(i * width, width, non2xx[i], signals));
    }
  }

  const unanswered = unansweredRequests(sent, received, options.maxOutstanding);
  const excessEvents: TimelineEvent[] = [];
  for (let i = 0; i < length; i++) {
    if (unanswered.perBucket[i] > 0) {
      excessEvents.push(
        placeEvent(i * width, width, unanswered.perBucket[i], signals),
      );
    }
  }

  return {
    bucketMs: width,
    windowMs: options.windowMs,
    runMs: round(timeline.endedMs - timeline.startedMs),
    responses: sumRange(received, 0, length),
    sent: sumRange(sent, 0, length),
    steadyRequestsPerSecond: round(steadyRps),
    steadyBuckets: steady.length,
    windows,
    windowRatio: round(windowMean / steadyRps, 3),
    worstWindowRatio: round(
      Math.min(...windows.map((w) => w.ratio)),
      3,
    ),
    worst100msRatio: round(
      Math.min(...windows.map((w) => w.worst100msRequestsPerSecond)) /
        steadyRps,
      3,
    ),
    longestStall: {
      ...placeEvent(stall.start * width, width, 0, signals),
      ms: stall.buckets * width,
    },
    non2xx: non2xxEvents,
    statuses: statusCounts(timeline),
    unanswered: { atEnd: unanswered.atEnd, excessEvents },
    series100ms,
  };
}

/** Places the bucket that starts at `atMs` after the latest signal in it or before it. */
function placeEvent(
  atMs: number,
  width: number,
  count: number,
  signals: number[],
): TimelineEvent {
  let signalIndex: number | null = null;
  for (let i = 0; i < signals.length; i++) {
    if (signals[i] < atMs + width) signalIndex = i;
  }
  return {
    atMs: round(atMs),
    sinceSignalMs: signalIndex === null
      ? null
      : Math.max(0, round(atMs - signals[signalIndex])),
    signalIndex,
    count,
  };
}
