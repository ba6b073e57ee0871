import { deepStrictEqual as assertEquals } from "node:assert/strict";
import {
  longestZeroRun,
  overlapsAnyWindow,
  sumRange,
  unansweredRequests,
  windowCounts,
} from "./buckets.ts";

Deno.test("sumRange clamps to the array", () => {
  assertEquals(sumRange([1, 2, 3, 4], 1, 3), 5);
  assertEquals(sumRange([1, 2, 3, 4], -2, 10), 10);
  assertEquals(sumRange([1, 2, 3, 4], 3, 1), 0);
});

Deno.test("longestZeroRun finds the first longest run", () => {
  assertEquals(longestZeroRun([1, 0, 0, 1, 0, 0, 1], 0, 7), {
    start: 1,
    buckets: 2,
  });
  assertEquals(longestZeroRun([0, 0, 0, 1, 0], 1, 5), { start: 1, buckets: 2 });
  assertEquals(longestZeroRun([1, 1], 0, 2), { start: 0, buckets: 0 });
  assertEquals(longestZeroRun([0, 1], -3, 2), { start: 0, buckets: 1 });
});

Deno.test("overlapsAnyWindow", () => {
  assertEquals(overlapsAnyWindow(0, 100, [100], 1000), false);
  assertEquals(overlapsAnyWindow(50, 150, [100], 1000), true);
  assertEquals(overlapsAnyWindow(1100, 1200, [100], 1000), false);
  assertEquals(overlapsAnyWindow(1000, 1100, [100], 1000), true);
  assertEquals(overlapsAnyWindow(0, 100, [], 1000), false);
});

Deno.test("windowCounts: responses, worst 100 ms and the longest gap", () => {
  // 10 ms buckets: 30 of 5 responses, with 4 empty ones from index 12 on.
  const received = new Array<number>(30).fill(5);
  received.fill(0, 12, 16);
  const window = windowCounts(received, 10, 20, 10);
  assertEquals(window.from, 10);
  assertEquals(window.to, 30);
  assertEquals(window.responses, 16 * 5);
  // The worst 100 ms (10 buckets) holds the 4 empty ones: 6 × 5 in 100 ms.
  assertEquals(window.worst100msPerSecond, 300);
  assertEquals(window.longestZeroMs, 40);
});

Deno.test("windowCounts is cut at the end of the counts", () => {
  const window = windowCounts([1, 1, 1, 1, 1], 2, 100, 10);
  assertEquals(window.to, 5);
  assertEquals(window.responses, 3);
  // Shorter than 100 ms: no 100 ms to rate.
  assertEquals(window.worst100msPerSecond, 0);
});

Deno.test("unansweredRequests places each lost request once", () => {
  // 2 connections: 2 outstanding is normal; 1 lost in bucket 2, 2 in 4.
  const sent = [2, 1, 2, 1, 3, 1];
  const received = [0, 1, 1, 1, 1, 1];
  const unanswered = unansweredRequests(sent, received, 2);
  assertEquals(unanswered.perBucket, [0, 0, 1, 0, 2, 0]);
  assertEquals(unanswered.total, 3);
  assertEquals(unanswered.atEnd, 5);
});
