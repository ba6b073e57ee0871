import { assertEquals } from "../../tests/assert.ts";
import { type LuaTimeline, parseTimeline } from "../lib/timeline.ts";
import { analyzeTimeline } from "./timeline.ts";

const WIDTH = 10;
const START_KEY = 170_000_000_000;

/** 6 s at 100 responses per 10 ms, with a dip after a signal at 3 s. */
function syntheticTimeline(): LuaTimeline {
  const sent: [number, number][] = [];
  const received: [number, number][] = [];
  for (let i = 0; i < 600; i++) {
    const key = START_KEY + i;
    const atMs = i * WIDTH;
    // 3000–3500 ms: half rate; 3200–3250 ms: nothing at all.
    let count = 100;
    if (atMs >= 3000 && atMs < 3500) count = 50;
    if (atMs >= 3200 && atMs < 3250) count = 0;
    received.push([key, count]);
    // One request lost at 3100 ms: written, never answered.
    sent.push([key, count + (atMs === 3100 ? 1 : 0)]);
  }
  // Start: 50 requests written before any response; one extra request()
  // call, as wrk 4.1 makes.
  sent[0][1] += 51;
  return {
    bucketMs: WIDTH,
    startedMs: START_KEY * WIDTH,
    endedMs: (START_KEY + 600) * WIDTH,
    sent,
    received,
    non2xx: [[START_KEY + 310, 2]],
    statuses: [[503, 2]],
    summary: {
      requests: 0,
      durationUs: 6_000_000,
      errors: { connect: 0, read: 0, write: 0, status: 2, timeout: 0 },
    },
  };
}

Deno.test("analyzeTimeline: steady state, window, stall, loss and non-2xx", () => {
  const timeline = parseTimeline(JSON.stringify(syntheticTimeline()));
  const analysis = analyzeTimeline(timeline, {
    triggersMs: [START_KEY * WIDTH + 3000],
    windowMs: 1000,
    rampMs: 1000,
    maxOutstanding: 51,
  });
  assertEquals(analysis.steadyRequestsPerSecond, 10_000);
  // 1 s after the signal: 450 ms at half rate, 50 ms at zero, 500 ms full.
  assertEquals(analysis.windows[0].responses, 45 * 50 + 50 * 100);
  assertEquals(analysis.windowRatio, 0.725);
  assertEquals(analysis.windows[0].longestStallMs, 50);
  assertEquals(analysis.longestStall.ms, 50);
  assertEquals(analysis.longestStall.sinceSignalMs, 200);
  assertEquals(analysis.worst100msRatio, 0.25);
  assertEquals(analysis.non2xx, [{
    atMs: 3100,
    sinceSignalMs: 100,
    signalIndex: 0,
    count: 2,
  }]);
  assertEquals(analysis.unanswered.excessEvents, [{
    atMs: 3100,
    sinceSignalMs: 100,
    signalIndex: 0,
    count: 1,
  }]);
  assertEquals(analysis.statuses, { "503": 2 });
});
