import { deepStrictEqual as assertEquals } from "node:assert/strict";
import { writeFileAtomically } from "./atomic_write.ts";

Deno.test("writeFileAtomically creates the directory and leaves no temp file", async () => {
  const dir = await Deno.makeTempDir();
  try {
    const path = `${dir}/sub/out.json`;
    await writeFileAtomically(path, "1\n");
    await writeFileAtomically(path, "2\n");
    assertEquals(await Deno.readTextFile(path), "2\n");
    assertEquals([...Deno.readDirSync(`${dir}/sub`)].map((e) => e.name), [
      "out.json",
    ]);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});
