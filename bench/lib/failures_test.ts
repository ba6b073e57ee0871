import { deepStrictEqual as assertEquals } from "node:assert/strict";
import { failureCount, requestFailures } from "./failures.ts";

Deno.test("requestFailures takes wrk's socket errors and the Lua non-2xx count", () => {
  const failures = requestFailures(
    { connect: 1, read: 2, write: 3, timeout: 4, status: 99 },
    5,
  );
  assertEquals(failures, {
    connect: 1,
    read: 2,
    write: 3,
    timeout: 4,
    non2xx: 5,
  });
  assertEquals(Object.keys(failures), [
    "connect",
    "read",
    "write",
    "timeout",
    "non2xx",
  ]);
  assertEquals(failureCount(failures), 15);
});
