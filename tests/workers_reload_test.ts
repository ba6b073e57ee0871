/**
 * Workers across a signal reload (the supervisor's execve, then its roll)
 * and a stop in the middle of a roll, end to end: real `deno run -A mod.ts
 * APP.ts --workers 2` processes, `reload`, signals and the admin API.
 */

import { assertEquals } from "./assert.ts";
import { get, pidsWith, until, type WorkersStatus } from "./helpers.ts";
import {
  ADMIN_TOKEN,
  adminRestart,
  adminStatus,
  app,
  reload,
  startWorkers,
  text,
} from "./workers_harness.ts";

/** Waits until the admin API's status passes `check`; fails with the last one. */
async function untilAdminStatus(
  port: number,
  check: (view: Awaited<ReturnType<typeof adminStatus>>) => boolean,
): Promise<void> {
  let last: WorkersStatus | undefined;
  try {
    await until(async () => check(last = await adminStatus(port)));
  } catch {
    throw new Error(`the admin status stayed ${JSON.stringify(last)}`);
  }
}

Deno.test("workers: after a signal reload whose roll fails, the adopted workers keep their channel: current admin status, and the admin API rolls them (200); after one that succeeds, too", async () => {
  const { t, pidfile, status } = await startWorkers(app(), 2, [
    "--admin",
    "--admin-token",
    ADMIN_TOKEN,
  ]);
  try {
    const before = status().workers.map((w) => w.pid);
    await t.write(app("v2", `throw new Error("v2 is broken");\n`));
    const failed = await reload(pidfile);
    assertEquals(failed.code, 1, text(failed.stderr));
    await t.child.waitFor(
      new RegExp(`supervisor upgraded in place \\(pid ${t.child.pid}\\)`),
    );
    assertEquals(status().workers.map((w) => w.pid), before);
    // The new image's view reaches the workers it adopted, and their
    // request counts reach it.
    for (let i = 0; i < 8; i++) {
      await get(t.port, "/", { headers: { connection: "close" } });
    }
    await untilAdminStatus(
      t.port,
      (view) =>
        view.pid === t.child.pid && view.restarts === 0 &&
        view.lastRestart?.ok === false &&
        view.workers.reduce((n, w) => n + w.served, 0) >= 8,
    );

    await t.write(app("v3"));
    const ok = await adminRestart(t.port);
    const body = await ok.json();
    assertEquals(ok.status, 200, JSON.stringify(body));
    assertEquals(body, { pid: t.child.pid, generation: 2 });
    await untilAdminStatus(
      t.port,
      (view) =>
        view.generation === 2 && view.restarts === 1 &&
        view.lastRestart?.ok === true && view.workers.length === 2 &&
        view.workers.every((w) => !before.includes(w.pid)),
    );
    assertEquals((await get(t.port, "/version")).text, "v3");

    // A signal reload that succeeds: the workers the new image started
    // have their channels too.
    await t.write(app("v4"));
    const reloaded = await reload(pidfile);
    assertEquals(reloaded.code, 0, text(reloaded.stderr));
    // `reload` returns before the last old worker has drained.
    await untilAdminStatus(t.port, (view) =>
      view.workers.length === 2 &&
      view.workers.every((w) => w.generation === 3));
    await t.write(app("v5"));
    const again = await adminRestart(t.port);
    const rolled = await again.json();
    assertEquals(again.status, 200, JSON.stringify(rolled));
    assertEquals(rolled, { pid: t.child.pid, generation: 4 });
    await untilAdminStatus(
      t.port,
      (view) => view.generation === 4 && view.restarts === 3,
    );
    assertEquals((await get(t.port, "/version")).text, "v5");
  } finally {
    await t.stop();
  }
});

/**
 * /hold answers its pid at once, and the rest of its body once the file
 * `release` beside the app exists.
 */
const HOLD_APP = `
import { gate } from ${
  JSON.stringify(new URL("./fixtures/hold_app.ts", import.meta.url).href)
};
const release = new URL("./release", import.meta.url).pathname;
export default {
  fetch(req) {
    if (new URL(req.url).pathname !== "/hold") return new Response("hello");
    const encoder = new TextEncoder();
    let sent = false;
    return new Response(new ReadableStream({
      async pull(controller) {
        if (!sent) {
          sent = true;
          controller.enqueue(encoder.encode(Deno.pid + "\\n"));
          return;
        }
        await gate(release);
        controller.enqueue(encoder.encode("done"));
        controller.close();
      },
    }));
  },
};
`;

Deno.test("workers: a stop during a roll lets the worker being drained finish its requests, and exits 0", async () => {
  const { t } = await startWorkers(HOLD_APP, 2);
  try {
    const res = await fetch(`http://127.0.0.1:${t.port}/hold`, {
      headers: { connection: "close" },
    });
    assertEquals(res.status, 200);
    const reader = res.body!.pipeThrough(new TextDecoderStream()).getReader();
    let body = (await reader.read()).value ?? "";
    const holder = Number(body.trim());
    // The roll reaches the worker holding the request: it drains, and the
    // roll waits for its exit.
    Deno.kill(t.child.pid, "SIGUSR1");
    await t.child.waitFor(
      new RegExp(`\\[pid ${holder} gen \\d+\\] graceful·server: draining`),
    );
    t.child.kill("SIGTERM");
    await t.child.waitFor(/SIGTERM: stopping \d+ worker\(s\) gracefully/);
    // Every other worker got its SIGTERM in the same stroke, and has exited.
    await until(() =>
      pidsWith(t.dir).every((pid) => pid === t.child.pid || pid === holder)
    );
    await Deno.writeTextFile(`${t.dir}/release`, "");
    try {
      for (let r = await reader.read(); !r.done; r = await reader.read()) {
        body += r.value;
      }
    } catch (error) {
      throw new Error(`the request was cut after ${JSON.stringify(body)}`, {
        cause: error,
      });
    }
    assertEquals(body, `${holder}\ndone`);
    assertEquals((await t.child.exited).code, 0, t.child.output);
  } finally {
    await t.stop();
  }
});
