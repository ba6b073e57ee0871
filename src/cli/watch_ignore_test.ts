/** What a watch ignores, path by path. */

import { assertEquals } from "../../tests/assert.ts";
import { isIgnored } from "./watch_ignore.ts";

Deno.test("watch: isIgnored", () => {
  const cases: [string, (string | RegExp)[], boolean][] = [
    ["/app/main.ts", [], false],
    ["/app", [], false],
    ["/app/.git", [], true],
    ["/app/.git/refs/heads/main", [], true],
    ["/app/a/node_modules/x/index.js", [], true],
    ["/app/.cache/x", [], true],
    ["/app/src/.main.ts.swp", [], true],
    ["/app/src/.main.ts.swx", [], true],
    ["/app/main.ts~", [], true],
    ["/app/.#main.ts", [], true],
    ["/app/#main.ts#", [], true],
    ["/app/#", [], false],
    ["/app/4913", [], true],
    ["/app/49130", [], false],
    ["/app/app.pid.123.tmp", [], true],
    ["/app/.DS_Store", [], true],
    ["/app/swap.ts", [], false],
    ["/app/git/x.ts", [], false],
    ["/app/app.pid", ["/app/app.pid"], true],
    ["/app/app.pid.json", ["/app/app.pid"], false],
    ["/app/app.pidx", ["/app/app.pid"], false],
    ["/app/data/x.db", ["/app/data"], true],
    ["/app/data/x.db", ["/app/data/"], true],
    ["/app/database.ts", ["/app/data"], false],
    ["/app/data/x.db", ["data/x.db"], true],
    ["/app/a/dist/b.js", ["dist"], true],
    ["/app/distx/b.js", ["dist"], false],
    ["/app/x.log", [/\.log$/], true],
    ["/app/x.log", [/\.log$/g], true],
    ["/app/x.ts", [/\.log$/], false],
  ];
  for (const [path, ignore, expected] of cases) {
    assertEquals(
      isIgnored("/app", path, ignore),
      expected,
      `${path} ${ignore.map(String)}`,
    );
    // A global RegExp has no memory from one test to the next.
    assertEquals(isIgnored("/app", path, ignore), expected, `${path} again`);
  }
  // Segments are taken below the root: a root inside .cache/ still works.
  assertEquals(
    isIgnored("/home/u/.cache/app", "/home/u/.cache/app/m.ts"),
    false,
  );
  assertEquals(
    isIgnored("/srv/node_modules/app", "/srv/node_modules/app/m.ts"),
    false,
  );
  // Relative paths are taken from the root.
  assertEquals(isIgnored("/app", "main.ts~"), true);
});
