/**
 * A Hono app (https://hono.dev) served by the CLI, with zero-downtime
 * restarts. Its deno.json maps `hono` to npm; the CLI serves it under that
 * configuration, in every generation:
 *
 *   deno run -A mod.ts examples/hono/app.ts --port 8080
 *   cd examples/hono && deno run -A ../../mod.ts app.ts --port 8080
 *   kill -USR2 <pid>    # restart: the new generation serves the same port
 *
 * @module
 */

import { Hono } from "hono";

const app = new Hono();

app.get("/", (c) => c.text(`Hello from Hono (pid ${Deno.pid})\n`));
app.get("/hello/:name", (c) => c.json({ hello: c.req.param("name") }));

export default app;
