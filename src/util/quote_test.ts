import { assertEquals } from "../../tests/assert.ts";
import { QUOTE_MAX_CHARS, quoteValue } from "./quote.ts";

Deno.test("quoteValue: short values JSON-quoted, long ones cut with their length", () => {
  assertEquals(quoteValue('a"b\n'), '"a\\"b\\n"');
  const long = "x".repeat(100_000);
  assertEquals(
    quoteValue(long),
    `"${"x".repeat(QUOTE_MAX_CHARS)}"… (100000 characters)`,
  );
});
