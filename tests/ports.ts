/**
 * The tests' and benchmarks' one free-port finder.
 *
 * @module
 */

/**
 * A port that was free a moment ago (bind :0, read it, close). Another
 * process can take it before it is bound again: where that matters, bind at
 * once or retry on EADDRINUSE.
 */
export function freePort(hostname = "127.0.0.1"): number {
  const listener = Deno.listen({ hostname, port: 0 });
  const port = (listener.addr as Deno.NetAddr).port;
  listener.close();
  return port;
}
