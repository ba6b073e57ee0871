/**
 * HTTPS: pass the PEM certificate chain and key. TLS is served by the node
 * engine (node:https); restarts hand the socket over as for plain HTTP.
 *
 *   openssl req -x509 -newkey rsa:2048 -nodes -subj /CN=localhost -days 30 \
 *     -keyout key.pem -out cert.pem
 *   CERT_FILE=cert.pem KEY_FILE=key.pem deno run -A examples/https.ts
 *   curl --cacert cert.pem https://localhost:8443/
 *
 * @module
 */

import { serveGraceful } from "../mod.ts";

const certFile = Deno.env.get("CERT_FILE") ?? "cert.pem";
const keyFile = Deno.env.get("KEY_FILE") ?? "key.pem";

serveGraceful({
  port: Number(Deno.env.get("PORT") ?? 8443),
  hostname: Deno.env.get("HOSTNAME") ?? "0.0.0.0",
  cert: Deno.readTextFileSync(certFile),
  key: Deno.readTextFileSync(keyFile),
}, (req, info) => {
  const path = new URL(req.url).pathname;
  if (path === "/pid") return new Response(`${Deno.pid}\n`);
  return new Response(`hello over TLS, ${info.remoteAddr.transport} client\n`);
});
