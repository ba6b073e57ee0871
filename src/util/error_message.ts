/**
 * The message of a caught value, for one-line error messages and logs: what
 * is thrown need not be an Error.
 *
 * @module
 */

/**
 * An Error's message, or any other thrown value as a string.
 */
export function errorMessage(error: unknown): string {
  return error instanceof Error ? error.message : String(error);
}
