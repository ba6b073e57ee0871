/**
 * The health check and shutdownDelay: taken out of rotation before it stops
 * accepting; not flipped by restarts.
 */

import { assertEquals } from "./assert.ts";
import {
  alive,
  get,
  killAllWith,
  refused,
  startCli,
  until,
} from "./helpers.ts";

Deno.test("health: 200 while serving; on SIGTERM 503 while still accepting, then drain", async () => {
  const { child, port } = await startCli([
    "--port",
    "0",
    "--hostname",
    "127.0.0.1",
    "--health",
    "/healthz",
    "--shutdown-delay",
    "1500",
  ]);
  try {
    assertEquals((await get(port, "/healthz")).status, 200);
    child.kill("SIGTERM");
    await until(async () => (await get(port, "/healthz")).status === 503);
    // Still accepting new connections during the delay.
    const res = await get(port, "/", { headers: { connection: "close" } });
    assertEquals(res.text, "Hello!\n");
    await until(() => refused(port));
    assertEquals((await child.exited).code, 0);
  } finally {
    await child.cleanup();
  }
});

Deno.test("health: a restart does not flip it", async () => {
  const marker = `health-${crypto.randomUUID()}`;
  const { child, port } = await startCli([
    "--port",
    "0",
    "--hostname",
    "127.0.0.1",
    "--health",
    "/healthz",
    "--name",
    marker,
  ]);
  try {
    const old = Number((await get(port, "/pid")).text);
    Deno.kill(old, "SIGUSR1");
    const seen = new Set<number>();
    await until(async () => {
      seen.add((await get(port, "/healthz")).status);
      return Number((await get(port, "/pid")).text) !== old;
    });
    await until(() => !alive(old));
    seen.add((await get(port, "/healthz")).status);
    assertEquals([...seen], [200]);
  } finally {
    killAllWith(marker);
    await child.cleanup();
  }
});
