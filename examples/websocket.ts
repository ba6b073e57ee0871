/**
 * WebSockets across restarts. A WebSocket cannot move to another process, so
 * when this generation starts draining (`info.draining` aborts), it tells its
 * clients to reconnect; they reconnect to the new generation, which serves
 * the same socket. Connections still open at `drainTimeout` are cut.
 *
 *   deno run -A examples/websocket.ts
 *   # a client: on {"type":"reconnect"}, open a new WebSocket
 *
 * @module
 */

import { serveGraceful } from "../mod.ts";

serveGraceful({
  port: Number(Deno.env.get("PORT") ?? 8199),
  hostname: Deno.env.get("HOSTNAME") ?? "0.0.0.0",
  drainTimeout: 10_000,
}, (req, info) => {
  if (req.headers.get("upgrade") !== "websocket") {
    return new Response(`${Deno.pid}\n`);
  }
  const { socket, response } = Deno.upgradeWebSocket(req);
  function goodbye() {
    socket.send(JSON.stringify({ type: "reconnect", pid: Deno.pid }));
    // 1012: service restart.
    socket.close(1012, "restarting");
  }
  socket.onopen = () => {
    socket.send(JSON.stringify({ type: "hello", pid: Deno.pid }));
    if (info.draining.aborted) goodbye();
    else info.draining.addEventListener("abort", goodbye, { once: true });
  };
  socket.onmessage = (e) =>
    socket.send(JSON.stringify({ type: "echo", data: e.data, pid: Deno.pid }));
  socket.onclose = () => info.draining.removeEventListener("abort", goodbye);
  return response;
});
