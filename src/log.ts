/**
 * Logging, behind one small module so that the backend can change in one
 * place. It stands in for @std/log (JSR is not reachable from where this was
 * built) with LogTape, which, like @std/log, emits nothing until the
 * application configures it. Every logger lives under the "graceful" category.
 *
 * @module
 */

// A full specifier, never a bare one: this module's deno.json import map does
// not apply where the module is imported (by path, URL, JSR or vendored).
// deno-lint-ignore no-import-prefix
import { getLogger, type Logger } from "npm:@logtape/logtape@^2.4.2";

export type { Logger };
/** The LogTape setup API, for the CLI (which configures the sinks). */
export * as logtape from "npm:@logtape/logtape@^2.4.2";

/**
 * Returns the logger for one part of the module, e.g. `logger("server")` is
 * the category `["graceful", "server"]`.
 *
 * @example
 * ```ts
 * import { logger } from "./log.ts";
 * logger("server").info("listening on {addr}", { addr: "127.0.0.1:8000" });
 * ```
 */
export function logger(part: string): Logger {
  return getLogger(["graceful", part]);
}

/**
 * Writes to the console with `write` (`console.log`, `console.error` or
 * `console.warn`), ignoring a failed write: an output that is gone (EIO from
 * a closed terminal, EPIPE) must not fail a server, a request or a start.
 *
 * @example
 * ```ts
 * import { print } from "./log.ts";
 * print(console.log, "Listening on http://127.0.0.1:8000/");
 * ```
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
