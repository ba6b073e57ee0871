import { deepStrictEqual as assertEquals, throws } from "node:assert/strict";
import {
  parseBytes,
  parseDuration,
  parseWrkOutput,
  wrkArgs,
  wrkCommand,
} from "./wrk.ts";

const KEEP_ALIVE = `Running 3s test @ http://127.0.0.1:37845/
  1 threads and 50 connections
  Thread Stats   Avg      Stdev     Max   +/- Stdev
    Latency     4.19ms    8.12ms  60.57ms   89.45%
    Req/Sec    37.20k    10.90k   56.73k    70.00%
  Latency Distribution
     50%  423.00us
     75%    3.95ms
     90%   13.02ms
     99%   41.25ms
  112783 requests in 3.08s, 13.88MB read
Requests/sec:  36599.12
Transfer/sec:      4.50MB
`;

const WITH_ERRORS = `Running 3s test @ http://127.0.0.1:8000/
  1 threads and 50 connections
  Thread Stats   Avg      Stdev     Max   +/- Stdev
    Latency     1.26ms    0.93ms    1.02s    82.12%
    Req/Sec    17.44k     2.40k   18.72k    86.67%
  Latency Distribution
     50%    1.11ms
     75%    1.64ms
     90%    2.00ms
     99%    5.53ms
  52172 requests in 1.00m, 712.00B read
  Socket errors: connect 3, read 120, write 4, timeout 5
  Non-2xx or 3xx responses: 7
Requests/sec:  17346.43
Transfer/sec:      2.45MB
`;

Deno.test("parseWrkOutput reads a clean keep-alive run", () => {
  const result = parseWrkOutput(KEEP_ALIVE);
  assertEquals(result.requests, 112783);
  assertEquals(result.seconds, 3.08);
  assertEquals(result.requestsPerSecond, 36599.12);
  assertEquals(Math.round(result.bytesRead), Math.round(13.88 * 1024 ** 2));
  assertEquals(result.latencyMs.p50, 0.423);
  assertEquals(result.latencyMs.p99, 41.25);
  assertEquals(result.latencyMs.mean, 4.19);
  assertEquals(result.errors, {
    connect: 0,
    read: 0,
    write: 0,
    timeout: 0,
    status: 0,
  });
});

Deno.test("parseWrkOutput reads socket errors and non-2xx responses", () => {
  const result = parseWrkOutput(WITH_ERRORS);
  assertEquals(result.seconds, 60);
  assertEquals(result.bytesRead, 712);
  assertEquals(result.latencyMs.max, 1020);
  assertEquals(result.errors, {
    connect: 3,
    read: 120,
    write: 4,
    timeout: 5,
    status: 7,
  });
});

Deno.test("parseWrkOutput throws on output it does not know", () => {
  throws(() =>
    parseWrkOutput("unable to connect to 127.0.0.1:1 Connection refused")
  );
});

Deno.test("parseDuration and parseBytes know wrk's units", () => {
  assertEquals(parseDuration("812.00us"), 0.812);
  assertEquals(parseDuration("2.00s"), 2000);
  assertEquals(parseBytes("1.00KB"), 1024);
  assertEquals(parseBytes("2.00GB"), 2 * 1024 ** 3);
});

Deno.test("wrkArgs builds the command line", () => {
  assertEquals(
    wrkArgs({
      url: "http://127.0.0.1:1/",
      duration: 8,
      threads: 1,
      connections: 50,
      headers: ["Connection: close"],
      cpu: 1,
    }),
    [
      "-t1",
      "-c50",
      "-d8s",
      "--latency",
      "-H",
      "Connection: close",
      "http://127.0.0.1:1/",
    ],
  );
});

Deno.test("wrkCommand pins wrk and passes a script its arguments", () => {
  assertEquals(
    wrkCommand({
      url: "http://127.0.0.1:1/",
      duration: 23,
      threads: 1,
      connections: 50,
      headers: [],
      cpu: 1,
      script: { path: "bench/lib/timeline.lua", args: ["out.json", "10"] },
    }),
    [
      "taskset",
      "-c",
      "1",
      "wrk",
      "-t1",
      "-c50",
      "-d23s",
      "--latency",
      "-s",
      "bench/lib/timeline.lua",
      "http://127.0.0.1:1/",
      "--",
      "out.json",
      "10",
    ],
  );
});
