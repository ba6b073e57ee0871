/**
 * The port a bench server listens on: the first argument, else `PORT`, else 0
 * (any free port). Every server prints the port it serves on, alone on a line,
 * once it is listening.
 *
 * @module
 */

/** Reads the port from `Deno.args[0]` or the `PORT` environment variable. */
export function portFromArgs(): number {
  const raw = Deno.args[0] ?? Deno.env.get("PORT") ?? "0";
  const port = Number(raw);
  if (!Number.isInteger(port) || port < 0 || port > 65535) {
    throw new RangeError(`bad port ${JSON.stringify(raw)}`);
  }
  return port;
}
