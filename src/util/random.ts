/**
 * Random hex strings: secrets (the CSRF token) and names nobody can guess
 * (temp files, temp socket names).
 *
 * @module
 */

/**
 * `bytes` random bytes from the system's CSPRNG, as lower-case hex.
 */
export function randomHex(bytes: number): string {
  const buffer = crypto.getRandomValues(new Uint8Array(bytes));
  return Array.from(buffer, (b) => b.toString(16).padStart(2, "0")).join("");
}
