import {
  deepStrictEqual as assertEquals,
  throws as assertThrows,
} from "node:assert/strict";
import {
  denseCounts,
  denseTimeline,
  type LuaTimeline,
  parseTimeline,
  statusCounts,
  TIMELINE_LUA_PATH,
} from "./timeline.ts";

/** What timeline.lua writes for a short run (startedMs in bucket 100). */
const WRITTEN = '{"bucketMs":10,"startedMs":1004.500,"endedMs":1042.250,' +
  '"sent":[[100,3],[101,2],[103,1]],"received":[[100,1],[101,2],[102,2]],' +
  '"non2xx":[[102,1]],"statuses":[[503,1]],' +
  '"summary":{"requests":5,"durationUs":37750,"errors":{"connect":0,' +
  '"read":1,"write":0,"status":1,"timeout":0}}}\n';

Deno.test("parseTimeline reads what timeline.lua writes", () => {
  const timeline = parseTimeline(WRITTEN);
  assertEquals(timeline.bucketMs, 10);
  assertEquals(timeline.startedMs, 1004.5);
  assertEquals(timeline.sent, [[100, 3], [101, 2], [103, 1]]);
  assertEquals(timeline.summary.errors.read, 1);
});

Deno.test("parseTimeline refuses a file of another shape", () => {
  assertThrows(() => parseTimeline('{"bucketMs":10,"startedMs":"x"}'));
  assertThrows(() =>
    parseTimeline(
      '{"bucketMs":10,"startedMs":1,"endedMs":2,"sent":{},"received":[],' +
        '"non2xx":[],"statuses":[]}',
    )
  );
});

Deno.test("denseTimeline lays the counts out from wrk's start", () => {
  const dense = denseTimeline(parseTimeline(WRITTEN));
  assertEquals(dense.width, 10);
  assertEquals(dense.firstKey, 100);
  assertEquals(dense.length, 4);
  assertEquals(dense.sent, [3, 2, 0, 1]);
  assertEquals(dense.received, [1, 2, 2, 0]);
  assertEquals(dense.non2xx, [0, 0, 1, 0]);
});

Deno.test("denseTimeline of a run without a request is one bucket", () => {
  const empty: LuaTimeline = {
    ...parseTimeline(WRITTEN),
    sent: [],
    received: [],
    non2xx: [],
  };
  const dense = denseTimeline(empty);
  assertEquals(dense.length, 1);
  assertEquals(dense.received, [0]);
});

Deno.test("denseCounts leaves out keys outside the range", () => {
  assertEquals(denseCounts([[4, 1], [5, 2], [5, 1], [9, 7]], 5, 3), [3, 0, 0]);
});

Deno.test("statusCounts keys the statuses as strings", () => {
  assertEquals(statusCounts(parseTimeline(WRITTEN)), { "503": 1 });
});

Deno.test("TIMELINE_LUA_PATH names the script next to this module", () => {
  assertEquals(TIMELINE_LUA_PATH.endsWith("/bench/lib/timeline.lua"), true);
  assertEquals(Deno.statSync(TIMELINE_LUA_PATH).isFile, true);
});
