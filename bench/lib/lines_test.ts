import { deepStrictEqual as assertEquals } from "node:assert/strict";
import { readLines } from "./lines.ts";

function streamOf(chunks: string[]): ReadableStream<Uint8Array> {
  const encoder = new TextEncoder();
  return ReadableStream.from(chunks.map((chunk) => encoder.encode(chunk)));
}

Deno.test("readLines splits across chunks and keeps an unterminated tail", async () => {
  const lines: string[] = [];
  await readLines(
    streamOf(["one\ntw", "o\n\nthr", "ee"]),
    (line) => lines.push(line),
  );
  assertEquals(lines, ["one", "two", "", "three"]);
});

Deno.test("readLines resolves when the stream breaks", async () => {
  const lines: string[] = [];
  let pulls = 0;
  const stream = new ReadableStream<Uint8Array>({
    pull(controller) {
      if (pulls++ === 0) controller.enqueue(new TextEncoder().encode("a\nb"));
      else controller.error(new Error("broken pipe"));
    },
  });
  await readLines(stream, (line) => lines.push(line));
  assertEquals(lines, ["a", "b"]);
});
