/**
 * GoFrame's graceful example 3: two servers in one process, each on two
 * ports. Under socket activation each claims the fds named after it
 * (systemd FileDescriptorName=s1 / s2, or LISTEN_FDNAMES=s1:s1:s2:s2):
 *
 *   deno run -A examples/multi.ts
 *   systemd-socket-activate -l 8100 -l 8101 -l 8200 -l 8201 \
 *     --fdname=s1:s1:s2:s2 deno run -A examples/multi.ts
 *
 * @module
 */

import { serveGraceful } from "../mod.ts";

for (
  const [name, ports] of [["s1", [8100, 8101]], ["s2", [8200, 8201]]] as const
) {
  serveGraceful({
    name,
    listen: ports.map((port) => `127.0.0.1:${port}`),
  }, (req, info) => {
    const local = new URL(req.url).port;
    return new Response(
      `${name} port ${local} pid ${Deno.pid} client ${info.remoteAddr.transport}\n`,
    );
  });
}
