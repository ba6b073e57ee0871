/**
 * The Deno version gate. `node:net` `server.listen({ fd })` works from Deno 2.8
 * on; on 2.7 it reports listening but never accepts, and on 2.5 it throws
 * EINVAL. So anything older is refused with a message that says why.
 *
 * @module
 */

/** The oldest Deno this module works on. */
export const MIN_DENO_VERSION = "2.8.0";

/**
 * Compares dotted versions numerically: negative when `a < b`.
 */
export function compareVersions(a: string, b: string): number {
  const pa = a.split(/[.+-]/).slice(0, 3).map(Number);
  const pb = b.split(/[.+-]/).slice(0, 3).map(Number);
  for (let i = 0; i < 3; i++) {
    const d = (pa[i] || 0) - (pb[i] || 0);
    if (d !== 0) return d;
  }
  return 0;
}

/**
 * Throws when `version` (default: this Deno) is older than
 * {@linkcode MIN_DENO_VERSION}; the message names both.
 */
export function assertDenoVersion(version: string = Deno.version.deno): void {
  if (compareVersions(version, MIN_DENO_VERSION) < 0) {
    throw new Error(
      `Deno ${version} is too old: serveGraceful needs Deno >= ${MIN_DENO_VERSION} ` +
        `(node:net listen({ fd }) does not accept connections before 2.8). ` +
        `Upgrade with \`deno upgrade\` or \`npm install -g deno\`.`,
    );
  }
}
