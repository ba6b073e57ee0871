import { deepStrictEqual as assertEquals } from "node:assert/strict";
import { formatMarkdown, formatWithDeno } from "./deno_fmt.ts";

Deno.test("formatWithDeno formats JSON as deno fmt does", async () => {
  assertEquals(
    await formatWithDeno("json", '{"a":[1,2]}'),
    '{ "a": [1, 2] }\n',
  );
});

Deno.test("formatMarkdown drops the final newline", async () => {
  assertEquals(await formatMarkdown("# A\n* b\n\n\n"), "# A\n\n- b");
});
