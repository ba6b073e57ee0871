/**
 * The control channel's framing: reading `\n`-terminated lines with a
 * bounded buffer, and writing whole lines.
 *
 * @module
 */

import { ControlError } from "./control_protocol.ts";

/** How much one read asks for. */
const READ_CHUNK_BYTES = 64 * 1024;

/** "\n". */
const NEWLINE = 0x0a;

/**
 * What the channel needs of a connection: a Deno.Conn, or a connection this
 * process took over by its fd (../workers/channel.ts).
 */
export type LineConn = Pick<Deno.Conn, "read" | "write" | "close">;

/** Reads `\n`-terminated lines from a connection, never buffering more than one line's limit. */
export class LineReader {
  readonly #conn: LineConn;
  readonly #maxLineBytes: number;
  readonly #decoder = new TextDecoder("utf-8", { fatal: true });
  /** Bytes read; those from `#start` to `#end` are not consumed yet. */
  #buffer: Uint8Array;
  #start = 0;
  #end = 0;
  /** Bytes before this index are known to hold no newline. */
  #scanned = 0;

  constructor(conn: LineConn, maxLineBytes: number) {
    this.#conn = conn;
    this.#maxLineBytes = maxLineBytes;
    this.#buffer = new Uint8Array(
      Math.min(READ_CHUNK_BYTES, maxLineBytes + 1) + READ_CHUNK_BYTES,
    );
  }

  /**
   * The next line, without its `\n`; null at a clean end of stream. Throws a
   * ControlError for an over-long line, invalid UTF-8 or a stream that ends
   * mid-line, and the connection's own error when a read fails.
   */
  async readLine(): Promise<string | null> {
    while (true) {
      const found = this.#buffer.subarray(this.#scanned, this.#end).indexOf(
        NEWLINE,
      );
      if (found >= 0) {
        const newline = this.#scanned + found;
        if (newline - this.#start > this.#maxLineBytes) {
          throw this.#tooLong();
        }
        const bytes = this.#buffer.subarray(this.#start, newline);
        this.#start = newline + 1;
        this.#scanned = this.#start;
        try {
          return this.#decoder.decode(bytes);
        } catch (error) {
          throw new ControlError("protocol", "the line is not valid UTF-8", {
            cause: error,
          });
        }
      }
      this.#scanned = this.#end;
      if (this.#end - this.#start > this.#maxLineBytes) {
        throw this.#tooLong();
      }
      this.#makeRoom();
      const count = await this.#conn.read(
        this.#buffer.subarray(this.#end, this.#end + READ_CHUNK_BYTES),
      );
      if (count === null) {
        if (this.#end > this.#start) {
          throw new ControlError(
            "eof",
            "the connection ended in the middle of a line",
          );
        }
        return null;
      }
      this.#end += count;
    }
  }

  #tooLong(): ControlError {
    return new ControlError(
      "protocol",
      `line longer than ${this.#maxLineBytes} bytes`,
    );
  }

  /** Ensures READ_CHUNK_BYTES free bytes after `#end`. */
  #makeRoom(): void {
    if (this.#buffer.length - this.#end >= READ_CHUNK_BYTES) return;
    const pending = this.#end - this.#start;
    if (pending + READ_CHUNK_BYTES <= this.#buffer.length) {
      // Enough room once the consumed bytes are dropped.
      this.#buffer.copyWithin(0, this.#start, this.#end);
    } else {
      // pending <= maxLineBytes here, so the buffer never exceeds the limit
      // plus one read chunk.
      const grown = new Uint8Array(
        Math.min(
          Math.max(this.#buffer.length * 2, pending + READ_CHUNK_BYTES),
          this.#maxLineBytes + READ_CHUNK_BYTES,
        ),
      );
      grown.set(this.#buffer.subarray(this.#start, this.#end), 0);
      this.#buffer = grown;
    }
    this.#scanned -= this.#start;
    this.#start = 0;
    this.#end = pending;
  }
}

/** Writes every byte (a write may be partial). */
export async function writeAll(
  conn: LineConn,
  bytes: Uint8Array,
): Promise<void> {
  let offset = 0;
  while (offset < bytes.length) {
    offset += await conn.write(bytes.subarray(offset));
  }
}

/** Closes a connection that may already be closed. */
export function closeQuietly(closable: { close(): void }): void {
  try {
    closable.close();
  } catch {
    // Already closed: nothing to do.
  }
}
