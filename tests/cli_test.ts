/**
 * The CLI end to end: real `deno run -A mod.ts` processes, real sockets and
 * signals, and systemd-socket-activate for socket activation.
 */

import { assert, assertEquals, assertMatch } from "./assert.ts";
import {
  Child,
  get,
  listeningInodes,
  MOD,
  refused,
  ROOT,
  socketActivate,
  startCli,
  until,
} from "./helpers.ts";
import { rawExchange } from "./http_client.ts";

/** /hold?gate=PATH answers once PATH exists (tests/fixtures/hold_app.ts). */
const HOLD_APP = `${ROOT}/tests/fixtures/hold_app.ts`;

for (const engine of ["native", "node"]) {
  Deno.test(`cli (${engine}): demo routes`, async () => {
    const { child, port } = await startCli([
      "--port",
      "0",
      "--hostname",
      "127.0.0.1",
      "--engine",
      engine,
    ]);
    try {
      assertEquals((await get(port, "/")).text, "Hello!\n");
      assertEquals((await get(port, "/pid")).text, `${child.pid}\n`);
      const slept = await get(port, "/sleep?ms=20");
      assertMatch(slept.text, new RegExp(`pid ${child.pid}`));
      assertEquals((await get(port, "/sleep?ms=x")).status, 400);
      assertEquals((await get(port, "/nope")).status, 404);
    } finally {
      await child.cleanup();
    }
  });

  for (const signal of ["SIGTERM", "SIGINT", "SIGQUIT"] as const) {
    Deno.test(`cli (${engine}): ${signal} drains in-flight requests and exits 0`, async () => {
      const dir = await Deno.makeTempDir({ prefix: "graceful-cli-" });
      const { child, port } = await startCli([
        HOLD_APP,
        "--port",
        "0",
        "--hostname",
        "127.0.0.1",
        "--engine",
        engine,
      ]);
      try {
        // An idle keep-alive connection, and a request in flight.
        const idle = await Deno.connect({ hostname: "127.0.0.1", port });
        const first = await rawExchange(
          idle,
          "GET / HTTP/1.1\r\nHost: x\r\n\r\n",
          { count: 1 },
        ).catch(() => []);
        assertEquals(first.length, 1);
        const gate = `${dir}/gate`;
        const held = rawExchange(
          port,
          `GET /hold?gate=${gate} HTTP/1.1\r\nHost: x\r\n\r\n`,
          { count: 1, timeoutMs: 120_000 },
        );
        await child.waitFor(/holding in/);
        child.kill(signal);
        // It drains: it stopped accepting, and the request is still held.
        await child.waitFor(/draining \d+ connections \(1 requests?\)/);
        await until(() => refused(port));
        await Deno.writeTextFile(gate, "");
        const [res] = await held;
        assertEquals(res.status, 200);
        assertEquals(res.body, `held in pid ${child.pid}\n`);
        assertEquals(res.headers.get("connection"), "close");
        const status = await child.done;
        assertEquals(status.code, 0, child.output);
      } finally {
        await child.cleanup();
        await Deno.remove(dir, { recursive: true });
      }
    });
  }

  Deno.test(`cli (${engine}): idle keep-alive connections are closed while draining`, async () => {
    const { child, port } = await startCli([
      "--port",
      "0",
      "--hostname",
      "127.0.0.1",
      "--engine",
      engine,
    ]);
    try {
      const conn = await Deno.connect({ hostname: "127.0.0.1", port });
      await conn.write(
        new TextEncoder().encode("GET / HTTP/1.1\r\nHost: x\r\n\r\n"),
      );
      const buf = new Uint8Array(4096);
      assert((await conn.read(buf)) !== null);
      const order: string[] = [];
      const slow = get(port, "/sleep?ms=3000").then((res) => {
        order.push("slow answered");
        return res;
      });
      await new Promise((r) => setTimeout(r, 200));
      child.kill("SIGTERM");
      // The idle connection is closed by the server (EOF) while the slow
      // request is still being served.
      let n: number | null = 0;
      while (n !== null) {
        n = await conn.read(buf).catch(() => null);
      }
      order.push("idle closed");
      conn.close();
      assertEquals((await slow).status, 200);
      assertEquals(order, ["idle closed", "slow answered"]);
      assertEquals((await child.done).code, 0);
    } finally {
      await child.cleanup();
    }
  });

  Deno.test(`cli (${engine}): --drain-timeout cuts long requests`, async () => {
    const { child, port } = await startCli([
      "--port",
      "0",
      "--hostname",
      "127.0.0.1",
      "--engine",
      engine,
      "--drain-timeout",
      "300",
    ]);
    try {
      const slow = get(port, "/sleep?ms=60000").then(
        () => "answered",
        () => "cut",
      );
      await new Promise((r) => setTimeout(r, 200));
      child.kill("SIGTERM");
      assertEquals((await child.done).code, 0);
      assertEquals(await slow, "cut");
    } finally {
      await child.cleanup();
    }
  });
}

Deno.test("cli: serves an app module's default export { fetch }", async () => {
  const { child, port } = await startCli([
    `${ROOT}/examples/app.ts`,
    "--port",
    "0",
    "--hostname",
    "127.0.0.1",
  ]);
  try {
    const res = await get(port, "/hello");
    assertEquals(res.status, 200);
    assertMatch(res.text, /app says hello/);
  } finally {
    await child.cleanup();
  }
});

Deno.test("cli: several --listen addresses, IPv4, IPv6 and unix", async () => {
  const dir = await Deno.makeTempDir();
  const sock = `${dir}/app.sock`;
  const child = new Child(Deno.execPath(), [
    "run",
    "-A",
    MOD,
    "--listen",
    "127.0.0.1:0",
    "--listen",
    `unix:${sock}`,
    "--listen",
    "[::1]:0",
  ]);
  try {
    await child.waitFor(/Listening on .*app\.sock/);
    await child.waitFor(/Listening on http:\/\/\[::1\]:\d+/);
    const p1 = Number(
      (await child.waitFor(/Listening on http:\/\/127\.0\.0\.1:(\d+)/))[1],
    );
    assertEquals((await get(p1, "/")).text, "Hello!\n");
    const v6 = Number((await child.waitFor(/\[::1\]:(\d+)/))[1]);
    const res6 = await fetch(`http://[::1]:${v6}/pid`);
    assertEquals(await res6.text(), `${child.pid}\n`);
    const client = Deno.createHttpClient({
      proxy: { transport: "unix", path: sock },
    });
    const resUnix = await fetch("http://localhost/pid", { client });
    assertEquals(await resUnix.text(), `${child.pid}\n`);
    client.close();
  } finally {
    await child.cleanup();
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("cli: bad flags and unusable ports fail with one clear line", async () => {
  for (
    const [args, re] of [
      [["--port", "abc"], /--port "abc"/],
      [["--bogus"], /bogus/],
      [["--engine", "fast"], /--engine "fast"/],
      [["--listen", "nope"], /nope/],
      [[`${ROOT}/does/not/exist.ts`], /does\/not\/exist\.ts/],
    ] as const
  ) {
    const child = new Child(Deno.execPath(), ["run", "-A", MOD, ...args]);
    const status = await child.done;
    assertEquals(status.code, 1, child.output);
    assertMatch(child.output, re);
  }
  const busy = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  try {
    const port = (busy.addr as Deno.NetAddr).port;
    const child = new Child(Deno.execPath(), [
      "run",
      "-A",
      MOD,
      "--listen",
      `127.0.0.1:${port}`,
    ]);
    assertEquals((await child.done).code, 1);
    assertMatch(child.output, new RegExp(`127\\.0\\.0\\.1:${port}`));
  } finally {
    busy.close();
  }
});

Deno.test("cli: --help and --version", async () => {
  const help = new Child(Deno.execPath(), ["run", "-A", MOD, "--help"]);
  assertEquals((await help.done).code, 0);
  for (const flag of ["--port", "--listen", "--engine", "--drain-timeout"]) {
    assertMatch(help.output, new RegExp(flag));
  }
  const version = new Child(Deno.execPath(), ["run", "-A", MOD, "--version"]);
  assertEquals((await version.done).code, 0);
  assertMatch(version.output, /serveGraceful \d+\.\d+\.\d+/);
});

Deno.test("socket activation: serves the demo on the inherited fd and binds nothing else", async () => {
  const { child, ports: [port] } = await socketActivate(1, [
    Deno.execPath(),
    "run",
    "-A",
    MOD,
  ]);
  try {
    // The first connection activates the program (exec, same pid).
    const res = await get(port, "/pid");
    assertEquals(res.text, `${child.pid}\n`);
    await child.waitFor(/Listening on http:\/\/127\.0\.0\.1:/);
    const listening = listeningInodes(child.pid);
    assertEquals(listening.map((l) => l.port), [port], child.output);
    child.kill("SIGTERM");
    assertEquals((await child.done).code, 0);
  } finally {
    await child.cleanup();
  }
});

Deno.test("socket activation: two sockets with LISTEN_FDNAMES feed two named servers", async () => {
  const { child, ports } = await socketActivate(4, [
    "--fdname=s1:s1:s2:s2",
    Deno.execPath(),
    "run",
    "-A",
    `${ROOT}/examples/multi.ts`,
  ]);
  try {
    const texts = [];
    for (const port of ports) texts.push((await get(port, "/")).text);
    assertEquals(texts.map((t) => t.split(" ")[0]), ["s1", "s1", "s2", "s2"]);
    await until(() => listeningInodes(child.pid).length === 4);
    assertEquals(
      listeningInodes(child.pid).map((l) => l.port).sort(),
      [...ports].sort(),
    );
  } finally {
    await child.cleanup();
  }
});

Deno.test("socket activation: bad LISTEN_FDS exits non-zero naming the variable", async () => {
  const child = new Child("/bin/sh", [
    "-c",
    `LISTEN_PID=$$ LISTEN_FDS=abc exec "$@"`,
    "sh",
    Deno.execPath(),
    "run",
    "-A",
    MOD,
  ]);
  const status = await child.done;
  assertEquals(status.code, 1);
  assertMatch(child.output, /LISTEN_FDS/);
  const file = new Child("/bin/sh", [
    "-c",
    `LISTEN_PID=$$ LISTEN_FDS=1 exec "$@" 3</etc/hostname`,
    "sh",
    Deno.execPath(),
    "run",
    "-A",
    MOD,
  ]);
  assertEquals((await file.done).code, 1);
  assertMatch(file.output, /fd 3/);
});
