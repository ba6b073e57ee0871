/**
 * Arithmetic over per-bucket counts (one number per fixed-width time bucket,
 * as in a dense timeline): sums, runs of empty buckets, the counts inside a
 * window, and requests written but never answered.
 *
 * @module
 */

/** The sum of `values[from]` … `values[to - 1]`, clamped to the array. */
export function sumRange(values: number[], from: number, to: number): number {
  let total = 0;
  for (let i = Math.max(0, from); i < Math.min(values.length, to); i++) {
    total += values[i];
  }
  return total;
}

/** A run of consecutive buckets. */
export interface BucketRun {
  /** The index of its first bucket. */
  start: number;
  /** How many buckets it spans. */
  buckets: number;
}

/**
 * The longest run of zero counts in `values[from]` … `values[to - 1]`
 * (clamped to the array); the first one when several are as long. A run of
 * 0 buckets starting at `from` when there is no zero.
 */
export function longestZeroRun(
  values: number[],
  from: number,
  to: number,
): BucketRun {
  const first = Math.max(0, from);
  let best: BucketRun = { start: first, buckets: 0 };
  let runStart = -1;
  for (let i = first; i < Math.min(values.length, to); i++) {
    if (values[i] === 0) {
      if (runStart === -1) runStart = i;
      if (i - runStart + 1 > best.buckets) {
        best = { start: runStart, buckets: i - runStart + 1 };
      }
    } else {
      runStart = -1;
    }
  }
  return best;
}

/** Whether [fromMs, toMs) overlaps any window [start, start + windowMs). */
export function overlapsAnyWindow(
  fromMs: number,
  toMs: number,
  startsMs: number[],
  windowMs: number,
): boolean {
  return startsMs.some((start) => fromMs < start + windowMs && toMs > start);
}

/** What the responses inside one window of buckets show. */
export interface WindowCounts {
  /** The first bucket of the window. */
  from: number;
  /** The bucket after its last (clamped to the counts). */
  to: number;
  /** Responses in the window. */
  responses: number;
  /** The lowest number of responses in any 100 ms inside it, per second (0 when it is shorter). */
  worst100msPerSecond: number;
  /** The longest run of buckets without a response inside it (ms). */
  longestZeroMs: number;
}

/**
 * Counts the responses in the `buckets` buckets of width `width` ms from
 * index `from` on (cut at the end of `received`).
 */
export function windowCounts(
  received: number[],
  from: number,
  buckets: number,
  width: number,
): WindowCounts {
  const to = Math.min(received.length, from + buckets);
  const per100 = Math.round(100 / width);
  let worst = Infinity;
  for (let at = from; at + per100 <= to; at++) {
    worst = Math.min(worst, sumRange(received, at, at + per100) * 10);
  }
  return {
    from,
    to,
    responses: sumRange(received, from, to),
    worst100msPerSecond: worst === Infinity ? 0 : worst,
    longestZeroMs: longestZeroRun(received, from, to).buckets * width,
  };
}

/** Requests written and never answered, as far as per-bucket counts tell. */
export interface Unanswered {
  /**
   * Per bucket, how many more requests were lost there: by how much the
   * excess of outstanding requests over `maxOutstanding` rose above its
   * highest value so far.
   */
  perBucket: number[];
  /** The highest excess: the requests lost over the whole run. */
  total: number;
  /** Requests written and not answered at the end (in flight, or lost). */
  atEnd: number;
}

/**
 * Finds lost requests in per-bucket counts of requests written (`sent`) and
 * responses (`received`): at any time at most one request per connection is
 * outstanding, so a rise of (written − answered) above `maxOutstanding` is a
 * request that was written and never answered. A heuristic that places
 * losses in time; wrk's socket error counts say how many there were.
 */
export function unansweredRequests(
  sent: number[],
  received: number[],
  maxOutstanding: number,
): Unanswered {
  const perBucket = new Array<number>(sent.length).fill(0);
  let outstanding = 0;
  let worstExcess = 0;
  for (let i = 0; i < sent.length; i++) {
    outstanding += sent[i] - received[i];
    const excess = outstanding - maxOutstanding;
    if (excess > worstExcess) {
      perBucket[i] = excess - worstExcess;
      worstExcess = excess;
    }
  }
  return { perBucket, total: worstExcess, atEnd: outstanding };
}
