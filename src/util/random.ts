/**
 * Random hex strings: secrets (the CSRF token) and names nobody can guess
 * (temp files, temp socket names).
 *
 * @module
 */

/**
 * `bytes` random bytes from the system's CSPRNG, as lower-case hex.
 *
 * @example
 * ```ts
 * import { randomHex } from "./random.ts";
 * console.log(randomHex(8)); // e.g. "9f86d081884c7d65"
 * ```
 */
export function randomHex(bytes: number): string {
  const buffer = crypto.getRandomValues(new Uint8Array(bytes));
  return Array.from(buffer, (b) => b.toString(16).padStart(2, "0")).join("");
}
