/**
 * Quoting a value from outside (an environment variable, an option, a file)
 * in a one-line error message: JSON-quoted, so that control characters and
 * quotes stay visible, and cut when long, so that a 100 KB variable does not
 * become a 100 KB error line.
 *
 * @module
 */

/** How many characters of a value an error message quotes at most. */
export const QUOTE_MAX_CHARS = 80;

/**
 * `value` JSON-quoted; past `QUOTE_MAX_CHARS` characters cut, with its length.
 */
export function quoteValue(value: string): string {
  if (value.length <= QUOTE_MAX_CHARS) return JSON.stringify(value);
  return `${JSON.stringify(value.slice(0, QUOTE_MAX_CHARS))}… ` +
    `(${value.length} characters)`;
}
