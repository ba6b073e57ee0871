/**
 * README's layout table lists every module under src/, and nothing that is
 * not there: a module added, moved or removed without the table fails here.
 */

import { assertEquals } from "./assert.ts";
import { ROOT } from "./helpers.ts";

function modules(dir: string): string[] {
  const found: string[] = [];
  for (const entry of Deno.readDirSync(`${ROOT}/${dir}`)) {
    const path = `${dir}/${entry.name}`;
    if (entry.isDirectory) found.push(...modules(path));
    else if (path.endsWith(".ts") && !path.endsWith("_test.ts")) {
      found.push(path);
    }
  }
  return found;
}

Deno.test("README: the layout table lists every module in src/, and only those", () => {
  const readme = Deno.readTextFileSync(`${ROOT}/README.md`);
  const start = readme.indexOf("\n## Layout\n");
  const end = readme.indexOf("\n## ", start + 1);
  const table = readme.slice(start, end < 0 ? undefined : end);
  const listed = [...table.matchAll(/^\| `(src\/[^`]+\.ts)`/gm)].map((m) =>
    m[1]
  );
  assertEquals(listed.toSorted(), modules("src").toSorted());
});
