import { assert, assertEquals, assertMatch } from "../../tests/assert.ts";
import {
  configDecides,
  fdStoreEnabled,
  removeUnclaimed,
  storeListeners,
  validFdName,
} from "./fd_store.ts";
import { acquireListeners, releaseListener } from "../listen/registry.ts";
import { ADMIN_SERVER_NAME, type Listener } from "../listen/types.ts";

/**
 * A real unix datagram socket standing in for systemd's notify socket
 * (python3): for each datagram it prints its text and, for each fd attached
 * (SCM_RIGHTS), the port it is bound to and whether it listens.
 */
function receiver(path: string, count: number) {
  const child = new Deno.Command("python3", {
    args: [
      "-c",
      `import json,socket,sys
s=socket.socket(socket.AF_UNIX,socket.SOCK_DGRAM)
s.bind(sys.argv[1])
print("bound",flush=True)
for _ in range(int(sys.argv[2])):
  data,fds,_,_=socket.recv_fds(s,4096,16)
  seen=[]
  for fd in fds:
    f=socket.socket(fileno=fd)
    seen.append({"port":f.getsockname()[1],"listening":f.getsockopt(socket.SOL_SOCKET,socket.SO_ACCEPTCONN)})
    f.close()
  print(json.dumps({"text":data.decode(),"fds":seen}),flush=True)`,
      path,
      String(count),
    ],
    stdout: "piped",
  }).spawn();
  const lines = child.stdout.pipeThrough(new TextDecoderStream());
  return {
    async messages(): Promise<
      { text: string; fds: { port: number; listening: number }[] }[]
    > {
      let text = "";
      for await (const chunk of lines) text += chunk;
      await child.status;
      return text.split("\n").filter((l) => l.startsWith("{")).map((l) =>
        JSON.parse(l)
      );
    },
    async bound(): Promise<void> {
      while (true) {
        try {
          Deno.statSync(path);
          return;
        } catch {
          await new Promise((r) => setTimeout(r, 10));
        }
      }
    },
  };
}

async function listenerNamed(name: string): Promise<Listener> {
  const [listener] = await acquireListeners({
    name,
    specs: [{ transport: "tcp", hostname: "127.0.0.1", port: 0 }],
    fallback: { transport: "tcp", hostname: "127.0.0.1", port: 0 },
  }, () => {});
  return listener;
}

Deno.test("storeListeners puts each self-opened socket into the store, named after its server, but not the admin socket", async () => {
  const dir = await Deno.makeTempDir();
  const path = `${dir}/notify.sock`;
  const web = await listenerNamed("web");
  const api = await listenerNamed("api");
  const admin = await listenerNamed(ADMIN_SERVER_NAME);
  const inherited: Listener = { ...api, name: "unit", inherited: true };
  try {
    const r = receiver(path, 2);
    await r.bound();
    const env = new Map([["FDSTORE", "4"], ["NOTIFY_SOCKET", path]]);
    storeListeners([web, inherited, admin, api], env);
    const messages = await r.messages();
    assertEquals(messages, [
      {
        text: "FDSTORE=1\nFDNAME=web\nFDPOLL=0",
        fds: [{ port: (web.addr as Deno.NetAddr).port, listening: 1 }],
      },
      {
        text: "FDSTORE=1\nFDNAME=api\nFDPOLL=0",
        fds: [{ port: (api.addr as Deno.NetAddr).port, listening: 1 }],
      },
    ]);
  } finally {
    releaseListener(web);
    releaseListener(api);
    releaseListener(admin);
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("removeUnclaimed drops the names no server claimed, and stores again what it still serves under them", async () => {
  const dir = await Deno.makeTempDir();
  const path = `${dir}/notify.sock`;
  const web = await listenerNamed("web");
  try {
    const r = receiver(path, 3);
    await r.bound();
    const env = new Map([["FDSTORE", "4"], ["NOTIFY_SOCKET", path]]);
    const addr = { transport: "tcp" as const, hostname: "127.0.0.1", port: 1 };
    const names = removeUnclaimed(
      [
        { fd: 3, name: "gone", addr },
        { fd: 4, name: "web", addr },
        { fd: 5, name: "gone", addr },
      ],
      [web],
      env,
    );
    assertEquals(names, ["gone", "web"]);
    const messages = await r.messages();
    assertEquals(messages.map((m) => m.text), [
      "FDSTOREREMOVE=1\nFDNAME=gone",
      "FDSTOREREMOVE=1\nFDNAME=web",
      "FDSTORE=1\nFDNAME=web\nFDPOLL=0",
    ]);
    assertEquals(messages[2].fds, [{
      port: (web.addr as Deno.NetAddr).port,
      listening: 1,
    }]);
  } finally {
    releaseListener(web);
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("the store is on with FDSTORE above 0 and NOTIFY_SOCKET; a bad FDSTORE is named", () => {
  const on = new Map([["FDSTORE", "16"], ["NOTIFY_SOCKET", "/run/x"]]);
  assert(fdStoreEnabled(on));
  assert(!fdStoreEnabled(new Map([["FDSTORE", "16"]])));
  assert(!fdStoreEnabled(new Map([["FDSTORE", "0"], ["NOTIFY_SOCKET", "/x"]])));
  assert(!fdStoreEnabled(new Map()));
  let error: Error | undefined;
  try {
    fdStoreEnabled(new Map([["FDSTORE", "lots"]]));
  } catch (e) {
    error = e as Error;
  }
  assertMatch(error?.message ?? "", /^FDSTORE="lots" is not a count of fds/);
  // After a restart from the store, the addresses asked for decide; in a
  // handover, or without addresses, the names do.
  const spec = { transport: "tcp" as const, hostname: "127.0.0.1", port: 80 };
  assert(configDecides({ specs: [spec] }, on));
  assert(!configDecides({ specs: [spec], restarted: true }, on));
  assert(!configDecides({ specs: [] }, on));
  assert(!configDecides({ specs: [spec] }, new Map()));
});

Deno.test("a server name that cannot be an FDNAME fails the store with a one-line error naming it", async () => {
  assert(validFdName("http"));
  assert(!validFdName("a:b"));
  assert(!validFdName(""));
  assert(!validFdName("x".repeat(256)));
  assert(!validFdName("tab\there"));
  const bad = await listenerNamed("a:b");
  try {
    const env = new Map([["FDSTORE", "4"], ["NOTIFY_SOCKET", "/nonexistent"]]);
    let error: Error | undefined;
    try {
      storeListeners([bad], env);
    } catch (e) {
      error = e as Error;
    }
    assertMatch(
      error?.message ?? "",
      /the server's name "a:b" cannot be an FDNAME=/,
    );
    assert(!error?.message.includes("\n"));
  } finally {
    releaseListener(bad);
  }
});
