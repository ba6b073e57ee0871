import { assertEquals, assertThrows } from "../../tests/assert.ts";
import { ListenFdsError, parseListenEnv } from "./listen_env.ts";

Deno.test("parseListenEnv: absent or foreign variables give no fds", () => {
  const none = { count: 0, names: undefined };
  assertEquals(parseListenEnv(undefined, undefined, undefined, 42), none);
  assertEquals(parseListenEnv("42", undefined, "web", 42), none);
  assertEquals(parseListenEnv(undefined, "2", "a:b", 42), none);
  assertEquals(parseListenEnv("41", "2", "a:b", 42), none);
  // Meant for another process: not validated further.
  assertEquals(parseListenEnv("41", "abc", "a", 42), none);
  // No fd at all.
  assertEquals(parseListenEnv("42", "0", undefined, 42), none);
  assertEquals(parseListenEnv("42", "0", "", 42), { count: 0, names: [] });
});

Deno.test("parseListenEnv returns the count and one name per fd", () => {
  assertEquals(parseListenEnv("42", "2", "web:admin", 42), {
    count: 2,
    names: ["web", "admin"],
  });
  assertEquals(parseListenEnv("42", "3", undefined, 42), {
    count: 3,
    names: undefined,
  });
  assertEquals(parseListenEnv("42", "1", "http", 42), {
    count: 1,
    names: ["http"],
  });
  assertEquals(parseListenEnv("42", "3", "a::c", 42), {
    count: 3,
    names: ["a", "unknown", "c"],
  });
  // A huge count is only a number here; readListenFds fails at the first fd.
  assertEquals(parseListenEnv("42", "1073741824", undefined, 42), {
    count: 1073741824,
    names: undefined,
  });
});

Deno.test("parseListenEnv rejects malformed LISTEN_PID and LISTEN_FDS", () => {
  for (const value of ["abc", "-1", "0", "", "1.5", " 42"]) {
    assertThrows(
      () => parseListenEnv(value, "1", undefined, 42),
      ListenFdsError,
      new RegExp(`^LISTEN_PID must be .* but it is ${JSON.stringify(value)}`),
    );
  }
  for (
    const value of ["abc", "-1", "", "1.0", "+1", "0x2", "99999999999999999"]
  ) {
    assertThrows(
      () => parseListenEnv("42", value, undefined, 42),
      ListenFdsError,
      new RegExp(
        `^LISTEN_FDS must be a non-negative decimal integer .* but it is ` +
          JSON.stringify(value).replace(/[+.]/g, "\\$&"),
      ),
    );
  }
});

Deno.test("parseListenEnv rejects a LISTEN_FDNAMES count mismatch", () => {
  assertThrows(
    () => parseListenEnv("42", "2", "web", 42),
    ListenFdsError,
    /^LISTEN_FDNAMES has 1 name\(s\) \("web"\) but LISTEN_FDS is 2/,
  );
  assertThrows(
    () => parseListenEnv("42", "1", "a:b:c", 42),
    ListenFdsError,
    /^LISTEN_FDNAMES has 3 name\(s\) \("a:b:c"\) but LISTEN_FDS is 1/,
  );
  assertThrows(
    () => parseListenEnv("42", "1", "", 42),
    ListenFdsError,
    /^LISTEN_FDNAMES has 0 name\(s\) \(""\) but LISTEN_FDS is 1/,
  );
  assertThrows(
    () => parseListenEnv("42", "0", "web", 42),
    ListenFdsError,
    /^LISTEN_FDNAMES has 1 name\(s\) .* LISTEN_FDS is 0/,
  );
});
