/**
 * Reading a child process's output line by line, as it comes.
 *
 * @module
 */

/**
 * Calls `onLine` with every line of `stream` (without its "\n"), and with
 * the last one even when no newline ends it. Resolves when the stream ends;
 * a stream that breaks ends it too (never rejects).
 */
export async function readLines(
  stream: ReadableStream<Uint8Array>,
  onLine: (line: string) => void,
): Promise<void> {
  let pending = "";
  try {
    for await (const chunk of stream.pipeThrough(new TextDecoderStream())) {
      pending += chunk;
      let newline = pending.indexOf("\n");
      while (newline !== -1) {
        onLine(pending.slice(0, newline));
        pending = pending.slice(newline + 1);
        newline = pending.indexOf("\n");
      }
    }
  } catch {
    // the pipe broke: nothing more to read
  }
  if (pending !== "") onLine(pending);
}
