/**
 * Reads a bench/lib/timeline.lua timeline: the steady rate outside the
 * restart windows, the throughput in the window after each restart trigger,
 * the longest time without a response, non-2xx answers, requests written and
 * never answered, and a 100 ms series for the chart.
 *
 * Times in the result are ms relative to `originMs` (the first trigger).
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

/** Throughput after one trigger. */
export interface WindowStat {
  /** The trigger, ms after the origin. */
  atMs: number;
  /** Responses completed in [trigger, trigger + window). */
  responses: number;
  /** Their rate (req/s). */
  rps: number;
  /** rps ÷ steady rps. */
  ratio: number;
  /** The lowest rate over any 100 ms of the window (req/s). */
  worst100msRps: number;
  /** The longest run without any response inside the window (ms). */
  gapMs: number;
}

/** One 100 ms bucket of the series. */
export interface SeriesPoint {
  /** Bucket start, ms after the origin. */
  atMs: number;
  responses: number;
  non2xx: number;
  /** Requests that were written and never answered (see `lost`). */
  lost: number;
}

/** What a timeline says. */
export interface TimelineAnalysis {
  /** The origin of every time below (epoch ms). */
  originMs: number;
  bucketMs: number;
  windowMs: number;
  /** wrk's run, from its first request to done() (ms). */
  runMs: number;
  written: number;
  responses: number;
  /**
   * The steady rate (req/s): the median of the 100 ms buckets after the ramp
   * that lie outside every restart window (robust to short disturbances from
   * other processes on the machine).
   */
  steadyRps: number;
  /** How many 100 ms buckets that median is over. */
  steadyBuckets: number;
  /** The mean rate before the first trigger, after the ramp (req/s). */
  leadRps: number;
  /** How long that lead segment was (ms). */
  leadMs: number;
  windows: WindowStat[];
  /** Mean window rps ÷ steady rps. */
  windowRatio: number;
  worstWindowRatio: number;
  /** The lowest 100 ms rate inside any window ÷ steady rps. */
  worst100msRatio: number;
  /** The longest run without a response after the ramp (ms), and when it began. */
  longestGap: { ms: number; atMs: number };
  non2xx: number;
  statuses: Record<string, number>;
  /**
   * Requests written and never answered: at most one request per connection
   * is outstanding, so (written − answered) rising above the connection count
   * (+ threads: wrk 4.1 calls request() once more per thread at its start)
   * marks a lost request, in the bucket where it shows. wrk's socket-error
   * counts stay the authority on how many failed; this says when.
   */
  lost: {
    total: number;
    atEnd: number;
    events: { atMs: number; count: number }[];
  };
  /** 100 ms buckets from wrk's start. */
  series: SeriesPoint[];
}

/** Analyses `timeline` around the triggers. */
export function analyzeTimeline(
  timeline: LuaTimeline,
  options: TimelineAnalysisOptions,
): TimelineAnalysis {
  const dense = denseTimeline(timeline);
  const { width, firstKey, length, non2xx } = dense;
  const answered = dense.received;
  const written = dense.sent;
  const base = firstKey * width;
  const originMs = options.triggersMs[0] ?? timeline.startedMs;
  /** Index of the first whole bucket at or after epoch ms `at`. */
  const indexAt = (at: number) => Math.ceil((at - base) / width);

  const rampEnd = indexAt(timeline.startedMs + options.rampMs);
  const steadyEnd = options.triggersMs.length > 0
    ? Math.floor((options.triggersMs[0] - base) / width)
    : length - 1;
  const leadBuckets = Math.max(0, steadyEnd - rampEnd);
  const leadRps = leadBuckets > 0
    ? sumRange(answered, rampEnd, steadyEnd) / (leadBuckets * width / 1000)
    : NaN;

  const per100 = Math.round(100 / width);
  const perWindow = Math.round(options.windowMs / width);
  const outside: number[] = [];
  for (let at = rampEnd; at + per100 <= length - 1; at += per100) {
    const from = base + at * width;
    const to = from + 100;
    if (!overlapsAnyWindow(from, to, options.triggersMs, options.windowMs)) {
      outside.push(sumRange(answered, at, at + per100) * 10);
    }
  }
  const steadyRps = median(outside);
  const windows = options.triggersMs.map((trigger) => {
    const window = windowCounts(answered, indexAt(trigger), perWindow, width);
    const seconds = Math.max(1, window.to - window.from) * width / 1000;
    return {
      atMs: round(trigger - originMs),
      responses: window.responses,
      rps: round(window.responses / seconds),
      ratio: round(window.responses / seconds / steadyRps, 3),
      worst100msRps: window.worst100msPerSecond,
      gapMs: window.longestZeroMs,
    };
  });

  const firstAnswer = Math.max(rampEnd, answered.findIndex((n) => n > 0));
  const gap = longestZeroRun(answered, firstAnswer, length - 1);

  const lost = unansweredRequests(written, answered, options.maxOutstanding);
  const events: { atMs: number; count: number }[] = [];
  for (let i = 0; i < length; i++) {
    if (lost.perBucket[i] > 0) {
      events.push({
        atMs: round(base + i * width - originMs),
        count: lost.perBucket[i],
      });
    }
  }

  const series: SeriesPoint[] = [];
  const seriesStart = Math.floor((base - originMs) / 100) * 100;
  for (let i = 0; i < length; i++) {
    // A 10 ms bucket goes to the 100 ms bucket that holds its middle.
    const at = base + i * width + width / 2 - originMs;
    const slot = Math.floor((at - seriesStart) / 100);
    while (series.length <= slot) {
      series.push({
        atMs: seriesStart + series.length * 100,
        responses: 0,
        non2xx: 0,
        lost: 0,
      });
    }
    series[slot].responses += answered[i];
    series[slot].non2xx += non2xx[i];
    series[slot].lost += lost.perBucket[i];
  }

  // Only whole 100 ms buckets inside wrk's run.
  const whole = series.filter((point) =>
    point.atMs >= timeline.startedMs - originMs &&
    point.atMs + 100 <= timeline.endedMs - originMs
  );
  series.length = 0;
  series.push(...whole);

  const ratios = windows.map((w) => w.ratio);
  const meanWindowRps = mean(windows.map((w) => w.rps));
  return {
    originMs,
    bucketMs: width,
    windowMs: options.windowMs,
    runMs: round(timeline.endedMs - timeline.startedMs),
    written: sumRange(written, 0, length),
    responses: sumRange(answered, 0, length),
    steadyRps: round(steadyRps),
    steadyBuckets: outside.length,
    leadRps: round(leadRps),
    leadMs: leadBuckets * width,
    windows,
    windowRatio: round(meanWindowRps / steadyRps, 3),
    worstWindowRatio: ratios.length > 0 ? Math.min(...ratios) : NaN,
    worst100msRatio: windows.length > 0
      ? round(Math.min(...windows.map((w) => w.worst100msRps)) / steadyRps, 3)
      : NaN,
    longestGap: {
      ms: gap.buckets * width,
      atMs: round(base + gap.start * width - originMs),
    },
    non2xx: sumRange(non2xx, 0, length),
    statuses: statusCounts(timeline),
    lost: {
      total: lost.total,
      atEnd: lost.atEnd,
      events,
    },
    series,
  };
}
