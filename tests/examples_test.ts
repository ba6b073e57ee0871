/**
 * Every example runs. (app.ts and multi.ts are run by cli_test.ts.)
 */

import { assertEquals, assertMatch, assertNotEquals } from "./assert.ts";
import {
  alive,
  Child,
  get,
  killAllWith,
  ROOT,
  startCli,
  until,
} from "./helpers.ts";

async function runExample(
  name: string,
  env: Record<string, string> = {},
): Promise<{ child: Child; port: number; marker: string }> {
  // A unique, harmless extra argument marks every generation of this run.
  const marker = `example-${crypto.randomUUID()}`;
  const child = new Child(
    Deno.execPath(),
    ["run", "-A", `${ROOT}/examples/${name}`, marker],
    { PORT: "0", HOSTNAME: "127.0.0.1", ...env },
  );
  const m = await child.waitFor(/Listening on https?:\/\/[^ ]*:(\d+)\//);
  return { child, port: Number(m[1]), marker };
}

async function stop(child: Child, marker: string) {
  killAllWith(marker);
  await child.cleanup();
}

Deno.test("examples/basic.ts: /, /pid and /sleep", async () => {
  const { child, port, marker } = await runExample("basic.ts");
  try {
    assertEquals((await get(port, "/")).text, "Hello!\n");
    assertEquals((await get(port, "/pid")).text, `${child.pid}\n`);
    assertMatch(
      (await get(port, "/sleep?ms=10")).text,
      new RegExp(`${child.pid}`),
    );
  } finally {
    await stop(child, marker);
  }
});

Deno.test("examples/state.ts: the counter survives restarts", async () => {
  const { child, port, marker } = await runExample("state.ts");
  try {
    for (const n of [1, 2, 3]) {
      assertMatch((await get(port, "/")).text, new RegExp(`^${n} `));
    }
    const old = Number((await get(port, "/pid")).text);
    Deno.kill(old, "SIGUSR2");
    await until(async () => Number((await get(port, "/pid")).text) !== old);
    const next = (await get(port, "/")).text;
    assertMatch(next, /^4 /);
    assertNotEquals(next, `4 (pid ${old})\n`);
  } finally {
    await stop(child, marker);
  }
});

Deno.test("examples/websocket.ts: clients are told to reconnect on drain", async () => {
  const { child, port, marker } = await runExample("websocket.ts");
  try {
    const messages: { type: string; pid: number }[] = [];
    const closed = Promise.withResolvers<number>();
    const ws = new WebSocket(`ws://127.0.0.1:${port}/`);
    ws.onmessage = (e) => messages.push(JSON.parse(e.data));
    ws.onclose = (e) => closed.resolve(e.code);
    await until(() => messages.length > 0);
    const old = messages[0].pid;
    assertEquals(old, child.pid);
    Deno.kill(old, "SIGUSR1");
    assertEquals(await closed.promise, 1012);
    assertEquals(messages.at(-1)?.type, "reconnect");
    // The reconnect reaches the new generation on the same port.
    const again = new WebSocket(`ws://127.0.0.1:${port}/`);
    const hello = await new Promise<{ pid: number }>((resolve) => {
      again.onmessage = (e) => resolve(JSON.parse(e.data));
    });
    assertNotEquals(hello.pid, old);
    again.close();
    await until(() => !alive(old));
  } finally {
    await stop(child, marker);
  }
});

Deno.test("examples/https.ts: serves TLS with a self-signed certificate", async () => {
  const dir = await Deno.makeTempDir();
  const out = await new Deno.Command("openssl", {
    args: [
      "req",
      "-x509",
      "-newkey",
      "rsa:2048",
      "-nodes",
      "-subj",
      "/CN=localhost",
      "-addext",
      "subjectAltName=DNS:localhost,IP:127.0.0.1",
      "-addext",
      "basicConstraints=critical,CA:FALSE",
      "-addext",
      "extendedKeyUsage=serverAuth",
      "-days",
      "1",
      "-keyout",
      `${dir}/key.pem`,
      "-out",
      `${dir}/cert.pem`,
    ],
    stdout: "null",
    stderr: "piped",
  }).output();
  assertEquals(out.code, 0, new TextDecoder().decode(out.stderr));
  const { child, port, marker } = await runExample("https.ts", {
    CERT_FILE: `${dir}/cert.pem`,
    KEY_FILE: `${dir}/key.pem`,
  });
  try {
    const client = Deno.createHttpClient({
      caCerts: [Deno.readTextFileSync(`${dir}/cert.pem`)],
    });
    const res = await fetch(`https://localhost:${port}/pid`, { client });
    assertEquals(await res.text(), `${child.pid}\n`);
    client.close();
  } finally {
    await stop(child, marker);
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("examples/hono: the Hono app is served under its deno.json, after a restart too", async () => {
  const marker = `example-${crypto.randomUUID()}`;
  const { child, port } = await startCli([
    `${ROOT}/examples/hono/app.ts`,
    "--port",
    "0",
    "--hostname",
    "127.0.0.1",
    "--restart-signal",
    "SIGUSR2",
    // A unique, harmless option marks every generation of this run.
    "--health",
    `/${marker}`,
  ]);
  try {
    assertEquals(
      (await get(port, "/")).text,
      `Hello from Hono (pid ${child.pid})\n`,
    );
    assertEquals(
      JSON.parse((await get(port, "/hello/deno")).text),
      { hello: "deno" },
    );
    // A member of this repo's workspace: served without a re-execution.
    const args = Deno.readTextFileSync(`/proc/${child.pid}/cmdline`);
    assertEquals(args.split("\0").includes("--config"), false);
    Deno.kill(child.pid, "SIGUSR2");
    await until(async () =>
      !(await get(port, "/")).text.includes(`pid ${child.pid})`)
    );
    assertMatch((await get(port, "/")).text, /^Hello from Hono \(pid \d+\)/);
  } finally {
    await stop(child, marker);
  }
});
