import {
  deepStrictEqual as assertEquals,
  throws as assertThrows,
} from "node:assert/strict";
import { formatMarkdown } from "./deno_fmt.ts";
import {
  sectionMarkers,
  spliceSection,
  writeSection,
} from "./markdown_section.ts";

const MARKERS = sectionMarkers("test-bench");
const START = "<!-- test-bench:start -->";
const END = "<!-- test-bench:end -->";

Deno.test("sectionMarkers names the pair", () => {
  assertEquals(MARKERS, { start: START, end: END });
});

Deno.test("spliceSection creates the file with an intro", () => {
  const text = spliceSection(undefined, "body", MARKERS);
  assertEquals(text.startsWith("# Benchmarks\n"), true);
  assertEquals(text.endsWith(`${START}\n\nbody\n\n${END}\n`), true);
});

Deno.test("spliceSection replaces only between the markers", () => {
  const before = `# B\n\nhand\n\n${START}\nold\n${END}\n\ntail\n`;
  assertEquals(
    spliceSection(before, "new", MARKERS),
    `# B\n\nhand\n\n${START}\n\nnew\n\n${END}\n\ntail\n`,
  );
});

Deno.test("spliceSection appends when the markers are missing", () => {
  assertEquals(
    spliceSection("# B\n", "x", MARKERS),
    `# B\n\n${START}\n\nx\n\n${END}\n`,
  );
  assertEquals(
    spliceSection("# B", "x", MARKERS),
    `# B\n\n${START}\n\nx\n\n${END}\n`,
  );
});

Deno.test("spliceSection leaves other benches' sections alone", () => {
  const other = "<!-- other:start -->\n\nx\n\n<!-- other:end -->";
  const appended = spliceSection(`# B\n\n${other}\n`, "one", MARKERS);
  assertEquals(appended, `# B\n\n${other}\n\n${START}\n\none\n\n${END}\n`);
  const replaced = spliceSection(appended, "two", MARKERS);
  assertEquals(replaced, `# B\n\n${other}\n\n${START}\n\ntwo\n\n${END}\n`);
});

Deno.test("spliceSection puts one blank line around the section", () => {
  assertEquals(
    spliceSection("", "\n## Title\n\ntext\n\n", MARKERS),
    `\n\n${START}\n\n## Title\n\ntext\n\n${END}\n`,
  );
});

Deno.test("spliceSection refuses a broken marker pair", () => {
  assertThrows(() => spliceSection(`${END}\n${START}\n`, "x", MARKERS));
  assertThrows(() => spliceSection(`${START}\n`, "x", MARKERS));
});

Deno.test("a new file with a formatted section is deno-fmt clean", async () => {
  const section = await formatMarkdown(
    "## Title\n\nSome text long enough to need wrapping by the formatter, " +
      "which wraps prose at eighty columns.\n\n| a | b |\n| --- | --: |\n| 1 | 2 |",
  );
  const document = spliceSection(undefined, section, MARKERS);
  assertEquals(await formatMarkdown(document) + "\n", document);
});

Deno.test("writeSection creates the file, then replaces its section", async () => {
  const dir = await Deno.makeTempDir();
  try {
    const path = `${dir}/BENCHMARKS.md`;
    await writeSection(path, "one", MARKERS);
    await writeSection(path, "two", MARKERS);
    const text = await Deno.readTextFile(path);
    assertEquals(text.endsWith(`${START}\n\ntwo\n\n${END}\n`), true);
    assertEquals(text.includes("one"), false);
    assertEquals([...Deno.readDirSync(dir)].map((e) => e.name), [
      "BENCHMARKS.md",
    ]);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});
