/**
 * The native engine (Deno.serve transplanted onto the listener) on every
 * listener kind, its self-check and fallback, its drain, and what it leaves
 * behind: real sockets, curl for HTTP/2, a child process for the warning.
 */

import { serveGraceful } from "../mod.ts";
import type {
  GracefulServeOptions,
  GracefulServer,
} from "../src/server/options.ts";
import type { GracefulHandler } from "../src/listen/types.ts";
import { assert, assertEquals, assertMatch } from "./assert.ts";
import { MOD } from "./helpers.ts";
import { selfSignedCert } from "../bench/lib/tls_cert.ts";
import { socketFacts } from "../src/os/socket.ts";
import { decodeSockaddr } from "../src/listen/sockaddr.ts";

const quiet = () => {};

/** curl's view of one request: the HTTP version and the body. */
async function curl(
  args: string[],
): Promise<{ version: string; body: string }> {
  const out = await new Deno.Command("curl", {
    args: ["-sS", "--max-time", "30", "-w", "\n%{http_version}", ...args],
    stdout: "piped",
    stderr: "piped",
  }).output();
  const text = new TextDecoder().decode(out.stdout);
  assert(out.success, new TextDecoder().decode(out.stderr));
  const cut = text.lastIndexOf("\n");
  return { body: text.slice(0, cut), version: text.slice(cut + 1) };
}

function start(
  options: GracefulServeOptions,
  handler: GracefulHandler = (_req, info) =>
    new Response(JSON.stringify(info.remoteAddr)),
): GracefulServer {
  return serveGraceful({
    onListen: quiet,
    shutdownSignals: false,
    restartSignals: false,
    idleGrace: 0,
    drainTimeout: 5000,
    ...options,
  }, handler);
}

/** This process's open fds, each as "fd -> target" (socket:[inode], a path). */
function fdTable(): Set<string> {
  const table = new Set<string>();
  for (const entry of Deno.readDirSync("/proc/self/fd")) {
    try {
      table.add(
        `${entry.name} -> ${Deno.readLinkSync(`/proc/self/fd/${entry.name}`)}`,
      );
    } catch {
      // the directory's own fd, gone once listed
    }
  }
  return table;
}

/** The TCP ports this process has listening sockets on (each once). */
function listeningPorts(): number[] {
  const ports: number[] = [];
  for (const entry of Deno.readDirSync("/proc/self/fd")) {
    const facts = socketFacts(Number(entry.name));
    if (!facts?.listening) continue;
    const addr = decodeSockaddr(facts.address);
    if (addr && "port" in addr && !ports.includes(addr.port)) {
      ports.push(addr.port);
    }
  }
  return ports.sort((a, b) => a - b);
}

Deno.test("engine: TLS serves HTTP/2 by ALPN and HTTP/1.1 otherwise, on Deno.serve itself", async () => {
  const { cert, key } = await selfSignedCert();
  const dir = await Deno.makeTempDir();
  await Deno.writeTextFile(`${dir}/cert.pem`, cert);
  await using server = start({ port: 0, hostname: "127.0.0.1", cert, key });
  try {
    await server.ready;
    assertEquals(server.engines, ["native"]);
    const { port } = server.addr as Deno.NetAddr;
    const url = `https://localhost:${port}/`;
    const h2 = await curl(["--cacert", `${dir}/cert.pem`, "--http2", url]);
    assertEquals(h2.version, "2");
    assertEquals(JSON.parse(h2.body).hostname, "127.0.0.1");
    const h1 = await curl(["--cacert", `${dir}/cert.pem`, "--http1.1", url]);
    assertEquals(h1.version, "1.1");
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("engine: plain TCP answers h2c with prior knowledge, IPv4 and IPv6", async () => {
  await using server = start({ listen: ["127.0.0.1:0", "[::1]:0"] });
  await server.ready;
  assertEquals(server.engines, ["native", "native"]);
  const [v4, v6] = server.addrs as Deno.NetAddr[];
  const h2c = await curl([
    "--http2-prior-knowledge",
    `http://127.0.0.1:${v4.port}/`,
  ]);
  assertEquals(h2c.version, "2");
  const six = await curl(["-g", `http://[::1]:${v6.port}/`]);
  assertEquals(JSON.parse(six.body).hostname, "::1");
});

Deno.test("engine: a unix socket is served, and remoteAddr names its path", async () => {
  const dir = await Deno.makeTempDir();
  const path = `${dir}/app.sock`;
  try {
    await using server = start({ listen: [`unix:${path}`] });
    await server.ready;
    assertEquals(server.engines, ["native"]);
    const seen = await curl(["--unix-socket", path, "http://x/"]);
    assertEquals(JSON.parse(seen.body), { transport: "unix", path });
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("engine: an abstract unix socket (unix:@name) is opened, served natively and named", async () => {
  const name = `@graceful-test-${Deno.pid}-${crypto.randomUUID()}`;
  await using server = start({ listen: [`unix:${name}`] });
  await server.ready;
  assertEquals(server.engines, ["native"]);
  assertEquals(server.addrs, [{ transport: "unix", path: name }]);
  const seen = await curl([
    "--abstract-unix-socket",
    name.slice(1),
    "http://x/",
  ]);
  assertEquals(JSON.parse(seen.body).transport, "unix");
});

Deno.test("engine: the placeholder leaves no socket, fd or directory behind", async () => {
  const tmp = Deno.env.get("TMPDIR") ?? "/tmp";
  const placeholders = () =>
    [...Deno.readDirSync(tmp)].filter((e) =>
      e.name.startsWith("graceful-placeholder-")
    ).length;
  const dir = await Deno.makeTempDir();
  const { cert, key } = await selfSignedCert();
  // One round: a TCP and a unix listener, and a TLS one, served and shut.
  // It gives what listened while serving, and the placeholder dirs then.
  const round = async (n: number) => {
    const server = start({ listen: ["127.0.0.1:0", `unix:${dir}/${n}.sock`] });
    const tls = start({ port: 0, hostname: "127.0.0.1", cert, key });
    await Promise.all([server.ready, tls.ready]);
    const serving = {
      ports: [
        (server.addrs[0] as Deno.NetAddr).port,
        (tls.addr as Deno.NetAddr).port,
      ],
      listening: listeningPorts(),
      placeholders: placeholders(),
    };
    await server.shutdown();
    await tls.shutdown();
    assertEquals(server.connections + tls.connections, 0);
    return serving;
  };
  // The first round also opens what the process opens once (FFI bindings,
  // the TLS stack, the inspector guard on 9229, the runtime's threads' fds),
  // so the second round is the one measured against what the first left.
  // Other tests' connections may close meanwhile: a leak is an fd that the
  // second round left open, not a smaller count.
  await round(1);
  const before = fdTable();
  const portsBefore = listeningPorts();
  const dirsBefore = placeholders();
  const serving = await round(2);
  // While serving: the listeners' own sockets and nothing listening but them.
  assertEquals(
    serving.listening,
    [...portsBefore, ...serving.ports].sort((a, b) => a - b),
  );
  assertEquals(serving.placeholders, dirsBefore);
  // The runtime closes an ended server's fds on its own time: a leak is
  // what is still there after 400 looks 10 ms apart.
  let left: string[] = [];
  for (let look = 0; look < 400; look++) {
    left = [...fdTable()].filter((fd) => !before.has(fd));
    if (left.length === 0) break;
    await new Promise((resolve) => setTimeout(resolve, 10));
  }
  assertEquals(left, []);
  assertEquals(listeningPorts(), portsBefore);
  await Deno.remove(dir, { recursive: true });
});

Deno.test("engine: drainTimeout cuts what is left while the process lives on", async () => {
  const cut = Promise.withResolvers<string>();
  const server = start(
    { port: 0, hostname: "127.0.0.1", drainTimeout: 300 },
    () => {
      // A stream that never ends: only the drain timeout ends it.
      const body = new ReadableStream({
        start(controller) {
          controller.enqueue(new TextEncoder().encode("first\n"));
        },
      });
      return new Response(body);
    },
  );
  await server.ready;
  const { port } = server.addr as Deno.NetAddr;
  const res = await fetch(`http://127.0.0.1:${port}/`);
  const reader = res.body!.getReader();
  await reader.read();
  (async () => {
    try {
      while (!(await reader.read()).done) { /* more */ }
      cut.resolve("ended");
    } catch (error) {
      cut.resolve(`cut: ${error}`);
    }
  })();
  assertEquals(server.inFlight, 0); // the handler returned; the body streams
  assertEquals(server.connections, 1);
  await server.shutdown();
  assertMatch(await cut.promise, /^cut|^ended/);
  assertEquals(server.connections, 0);
});

Deno.test("engine: GRACEFUL_ENGINE_CHECK=fail falls back to node:http with one warning", async () => {
  const script = `
    import { serveGraceful } from ${JSON.stringify(MOD)};
    const server = serveGraceful({
      listen: ["127.0.0.1:0", "127.0.0.1:0"],
      onListen() {},
      shutdownSignals: false,
      restartSignals: false,
    }, () => new Response("fallback"));
    await server.ready;
    const { port } = server.addrs[1];
    const text = await (await fetch("http://127.0.0.1:" + port + "/")).text();
    console.log(JSON.stringify({ engines: server.engines, text }));
    await server.shutdown();
  `;
  const out = await new Deno.Command(Deno.execPath(), {
    args: ["eval", "--ext=ts", script],
    env: { GRACEFUL_ENGINE_CHECK: "fail", NO_COLOR: "1" },
    stdout: "piped",
    stderr: "piped",
  }).output();
  const stderr = new TextDecoder().decode(out.stderr);
  assert(out.success, stderr);
  assertEquals(
    JSON.parse(new TextDecoder().decode(out.stdout)),
    { engines: ["node", "node"], text: "fallback" },
  );
  const warnings = stderr.split("\n").filter((l) =>
    l.includes("native engine")
  );
  assertEquals(warnings.length, 1, stderr);
  assertMatch(warnings[0], /GRACEFUL_ENGINE_CHECK=fail is set.*node:http/);
});

Deno.test('engine: engine: "node" still serves with node:http', async () => {
  await using server = start({
    port: 0,
    hostname: "127.0.0.1",
    engine: "node",
  });
  await server.ready;
  assertEquals(server.engines, ["node"]);
  const { port } = server.addr as Deno.NetAddr;
  const res = await fetch(`http://127.0.0.1:${port}/`);
  assertEquals(JSON.parse(await res.text()).hostname, "127.0.0.1");
});

Deno.test("engine: an HTTP/2 connection is served while draining, then the shutdown ends it", async () => {
  const { cert, key } = await selfSignedCert();
  const server = start({
    port: 0,
    hostname: "127.0.0.1",
    cert,
    key,
    idleGrace: 200,
  }, () => new Response("ok"));
  await server.ready;
  const { port } = server.addr as Deno.NetAddr;
  const client = Deno.createHttpClient({
    caCerts: [cert],
    http1: false,
    http2: true,
  });
  try {
    const first = await fetch(`https://localhost:${port}/`, { client });
    assertEquals(await first.text(), "ok");
    const shutdown = server.shutdown();
    // The same HTTP/2 connection, while draining: `Connection: close` is an
    // HTTP/1.1 header; HTTP/2 drops it, and the shutdown's GOAWAY ends it.
    const during = await fetch(`https://localhost:${port}/`, { client });
    assertEquals([during.status, await during.text()], [200, "ok"]);
    await shutdown;
    assertEquals(server.connections, 0);
  } finally {
    client.close();
  }
});
