/**
 * Restarts under load on the native engine over TLS and a unix socket (the
 * TCP cases are in restart_test.ts): real `deno run -A mod.ts versionedAppSource("v1").ts`
 * generations, SIGUSR1, wrk over HTTPS, and bench/lib/unix_load.ts on the
 * unix socket (wrk cannot reach one). No request may fail.
 */

import { assert, assertEquals, assertMatch } from "./assert.ts";
import { alive, get, TempApp, until } from "./helpers.ts";
import { selfSignedCert } from "../bench/lib/tls_cert.ts";
import { unixLoad } from "../bench/lib/unix_load.ts";
import { versionedAppSource } from "./fixtures/versioned_app.ts";

const RESTARTS = 3;

/** SIGUSR1 to the serving pid (asked over plain `port`) until another serves. */
async function restartOnce(pidOf: () => Promise<number>): Promise<void> {
  const old = await pidOf();
  Deno.kill(old, "SIGUSR1");
  await until(async () => (await pidOf()) !== old);
  await until(() => !alive(old));
}

for (const mode of ["keep-alive", "Connection: close"]) {
  Deno.test(`engine restart: ${RESTARTS} restarts under wrk over HTTPS (${mode}) lose no request`, async () => {
    const tls = await selfSignedCert();
    const dir = await Deno.makeTempDir();
    await Deno.writeTextFile(`${dir}/cert.pem`, tls.cert);
    await Deno.writeTextFile(`${dir}/key.pem`, tls.key);
    const t = await TempApp.start(versionedAppSource("v1"), [
      "--cert",
      `${dir}/cert.pem`,
      "--key",
      `${dir}/key.pem`,
    ]);
    const client = Deno.createHttpClient({ caCerts: [tls.cert] });
    const pidOf = async () => {
      const res = await fetch(`https://localhost:${t.port}/pid`, {
        client,
        headers: { connection: "close" },
      });
      return Number(await res.text());
    };
    try {
      await t.child.waitFor(/native engine: Deno\.serve transplanted/);
      const wrk = new Deno.Command("wrk", {
        args: [
          "-t1",
          "-c20",
          "-d5s",
          ...(mode === "keep-alive" ? [] : ["-H", "Connection: close"]),
          `https://127.0.0.1:${t.port}/`,
        ],
        stdout: "piped",
        stderr: "piped",
      }).output();
      await new Promise((r) => setTimeout(r, 500));
      for (let i = 0; i < RESTARTS; i++) await restartOnce(pidOf);
      const out = await wrk;
      const text = new TextDecoder().decode(out.stdout);
      assertEquals(out.code, 0, text);
      assertMatch(text, /requests in/);
      assert(!/Socket errors/.test(text), text);
      assert(!/Non-2xx/.test(text), text);
    } finally {
      client.close();
      await t.stop();
      await Deno.remove(dir, { recursive: true });
    }
  });

  Deno.test(`engine restart: ${RESTARTS} restarts under load on a unix socket (${mode}) lose no request`, async () => {
    const dir = await Deno.makeTempDir();
    const path = `${dir}/app.sock`;
    const t = await TempApp.start(versionedAppSource("v1"), [
      "--listen",
      "127.0.0.1:0",
      "--listen",
      `unix:${path}`,
    ]);
    const pidOf = async () => Number((await get(t.port, "/pid")).text);
    try {
      await t.child.waitFor(
        new RegExp(`${path} \\(fd \\d+, native engine: Deno\\.serve`),
      );
      const load = unixLoad(path, 20, 5, mode !== "keep-alive");
      await new Promise((r) => setTimeout(r, 500));
      for (let i = 0; i < RESTARTS; i++) await restartOnce(pidOf);
      const result = await load;
      assert(result.requests > 0, "no request completed");
      assertEquals(result.errors, {
        connect: 0,
        read: 0,
        write: 0,
        timeout: 0,
        status: 0,
      });
    } finally {
      await t.stop();
      await Deno.remove(dir, { recursive: true });
    }
  });
}
