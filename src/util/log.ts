/**
 * Logging, behind one small module so that the backend can change in one
 * place. It stands in for @std/log with LogTape, which, like @std/log, emits
 * nothing until the application configures it. Every logger lives under the
 * "graceful" category.
 *
 * @module
 */

// A full specifier, never a bare one: this module's deno.json import map does
// not apply where the module is imported (by path, URL, JSR or vendored).
// deno-lint-ignore no-import-prefix
import type { Logger as LogTapeLogger } from "npm:@logtape/logtape@^2.4.2";
export type { LogLevel, LogRecord } from "npm:@logtape/logtape@^2.4.2";

/** What the module's parts log with: LogTape's methods, buffered until it loads. */
export type Logger = Pick<
  LogTapeLogger,
  "debug" | "info" | "warn" | "error"
>;

type Level = keyof Logger;

/** Records logged before LogTape was loaded, replayed once it is. */
const pending: [string, Level, string, Record<string, unknown>?][] = [];
/** At most this many records wait; older ones are dropped. */
const PENDING_LIMIT = 1000;
let backend: ((part: string) => LogTapeLogger) | undefined;
let loading: Promise<void> | undefined;

/**
 * Loads LogTape (an npm package, resolved on first use: kept off a
 * generation's way to serving) and replays what was logged meanwhile. The
 * server calls it once its listeners serve; a warning or an error loads it
 * at once.
 */
export function loadLogging(): Promise<void> {
  loading ??= logTape().then(({ getLogger }) => {
    backend = (part) => getLogger(["graceful", part]);
    for (const [part, level, message, properties] of pending.splice(0)) {
      backend(part)[level](message, properties);
    }
  });
  return loading;
}

/**
 * LogTape itself, loaded on first use: for the CLI, which configures the
 * sinks, and for {@linkcode loadLogging}.
 */
export function logTape(): Promise<
  typeof import("npm:@logtape/logtape@^2.4.2")
> {
  // deno-lint-ignore no-import-prefix
  return import("npm:@logtape/logtape@^2.4.2");
}

/**
 * Returns the logger for one part of the module, e.g. `logger("server")` is
 * the category `["graceful", "server"]`.
 */
export function logger(part: string): Logger {
  const emit = (level: Level) =>
  (
    message: string,
    properties?: Record<string, unknown>,
  ): void => {
    if (backend !== undefined) {
      backend(part)[level](message, properties);
      return;
    }
    if (pending.length >= PENDING_LIMIT) pending.shift();
    pending.push([part, level, message, properties]);
    if (level === "warn" || level === "error") loadLogging().catch(() => {});
  };
  return {
    debug: emit("debug"),
    info: emit("info"),
    warn: emit("warn"),
    error: emit("error"),
  } as Logger;
}

/**
 * Writes to the console with `write` (`console.log`, `console.error` or
 * `console.warn`), ignoring a failed write: an output that is gone (EIO from
 * a closed terminal, EPIPE) must not fail a server, a request or a start.
 */
export function print(
  write: (...data: unknown[]) => void,
  ...data: unknown[]
): void {
  try {
    write(...data);
  } catch {
    // nowhere to say it
  }
}
