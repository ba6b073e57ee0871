import { analyzeTimeline } from "./analysis.ts";
import type { LuaTimeline } from "../lib/timeline.ts";
import { niceTicks } from "./charts.ts";

function assertEquals(actual: unknown, expected: unknown): void {
  const a = JSON.stringify(actual);
  const e = JSON.stringify(expected);
  if (a !== e) throw new Error(`expected ${e}, got ${a}`);
}

/** A timeline of `seconds` at `perBucket` responses per 10 ms, with holes. */
function timeline(
  startMs: number,
  seconds: number,
  perBucket: number,
  holes: [number, number][] = [],
  lostAt: number[] = [],
): LuaTimeline {
  const first = startMs / 10;
  const written: [number, number][] = [];
  const answered: [number, number][] = [];
  for (let i = 0; i < seconds * 100; i++) {
    const at = i * 10;
    const inHole = holes.some(([from, to]) => at >= from && at < to);
    const n = inHole ? 0 : perBucket;
    const lost = lostAt.filter((ms) => ms >= at && ms < at + 10).length;
    written.push([first + i, n + lost]);
    answered.push([first + i, n]);
  }
  return {
    bucketMs: 10,
    startedMs: startMs,
    endedMs: startMs + seconds * 1000,
    sent: written,
    received: answered,
    non2xx: [],
    statuses: [],
    summary: {
      requests: 0,
      durationUs: seconds * 1e6,
      errors: { connect: 0, read: 0, write: 0, status: 0, timeout: 0 },
    },
  };
}

Deno.test("steady rate, restart windows, gaps and lost requests", () => {
  const start = 1_000_000;
  // 10 responses per 10 ms = 1000 req/s; no response for 200 ms after the
  // trigger at +3 s; 2 requests written and never answered at +3.05 s.
  const data = timeline(start, 6, 10, [[3000, 3200]], [3050, 3050]);
  const analysis = analyzeTimeline(data, {
    triggersMs: [start + 3000],
    windowMs: 1000,
    rampMs: 1000,
    maxOutstanding: 0,
  });
  assertEquals(analysis.steadyRps, 1000);
  assertEquals(analysis.leadRps, 1000);
  assertEquals(analysis.windows[0].rps, 800);
  assertEquals(analysis.windowRatio, 0.8);
  assertEquals(analysis.windows[0].gapMs, 200);
  assertEquals(analysis.worst100msRatio, 0);
  assertEquals(analysis.longestGap, { ms: 200, atMs: 0 });
  assertEquals(analysis.lost.total, 2);
  assertEquals(analysis.lost.events, [{ atMs: 50, count: 2 }]);
  const lostPoint = analysis.series.find((p) => p.lost > 0);
  assertEquals(lostPoint?.atMs, 0);
  // Only whole 100 ms buckets, from -3 s to +3 s.
  assertEquals(analysis.series.length, 60);
  assertEquals(analysis.series[0].atMs, -3000);
});

Deno.test("niceTicks stays inside, or covers with `cover`", () => {
  assertEquals(niceTicks(-1.5, 6, 8), [-1, 0, 1, 2, 3, 4, 5, 6]);
  assertEquals(niceTicks(0, 83_000, 5, true), [
    0,
    20_000,
    40_000,
    60_000,
    80_000,
    100_000,
  ]);
});
