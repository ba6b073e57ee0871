/**
 * The few assertions the tests need (a stand-in for @std/assert, which lives
 * on JSR), built on node:assert.
 *
 * @module
 */

import nodeAssert from "node:assert/strict";

/** Asserts deep, strict equality. */
export function assertEquals<T>(
  actual: unknown,
  expected: T,
  msg?: string,
): void {
  nodeAssert.deepStrictEqual(actual, expected, msg);
}

/** Asserts strict inequality. */
export function assertNotEquals(
  actual: unknown,
  expected: unknown,
  msg?: string,
): void {
  nodeAssert.notDeepStrictEqual(actual, expected, msg);
}

/** Asserts a truthy value. */
export function assert(value: unknown, msg?: string): asserts value {
  nodeAssert.ok(value, msg);
}

/** Asserts that `text` matches `pattern`. */
export function assertMatch(text: string, pattern: RegExp, msg?: string): void {
  nodeAssert.match(text, pattern, msg);
}

/**
 * Asserts that `fn` throws (an instance of `type`, with a message matching
 * `pattern`, when given); returns the error.
 */
export function assertThrows<E extends Error = Error>(
  fn: () => unknown,
  type?: new (...args: any[]) => E,
  pattern?: RegExp,
): E {
  try {
    fn();
  } catch (error) {
    if (type !== undefined && !(error instanceof type)) {
      throw new Error(`expected a ${type.name}, got ${error}`);
    }
    if (pattern !== undefined) assertMatch((error as Error).message, pattern);
    return error as E;
  }
  throw new Error("expected the function to throw");
}

/** Asserts that `fn` rejects; returns the error. */
export async function assertRejects(
  fn: () => Promise<unknown>,
): Promise<Error> {
  try {
    await fn();
  } catch (error) {
    return error as Error;
  }
  throw new Error("expected the promise to reject");
}
