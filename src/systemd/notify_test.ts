import { assert, assertEquals, assertMatch } from "../../tests/assert.ts";
import {
  monotonicUsec,
  sdNotify,
  sockaddrUn,
  watchdogIntervalMs,
} from "./notify.ts";

/** A real unix datagram socket that prints what it receives (python3). */
function receiver(address: string) {
  const bind = address.startsWith("@") ? "\\0" + address.slice(1) : address;
  const child = new Deno.Command("python3", {
    args: [
      "-c",
      `import socket,sys
s=socket.socket(socket.AF_UNIX,socket.SOCK_DGRAM)
s.bind("${bind}")
print("bound",flush=True)
data=s.recv(4096)
sys.stdout.write(data.decode()+"\\n---\\n");sys.stdout.flush()`,
    ],
    stdout: "piped",
  }).spawn();
  const reader = child.stdout.pipeThrough(new TextDecoderStream()).getReader();
  let text = "";
  async function readUntil(marker: string) {
    while (!text.includes(marker)) {
      const { value, done } = await reader.read();
      if (done) break;
      text += value;
    }
  }
  return {
    async bound() {
      await readUntil("bound\n");
      assertMatch(text, /^bound\n/);
    },
    async message() {
      await readUntil("\n---");
      reader.releaseLock();
      await child.status;
      return text.slice("bound\n".length, text.indexOf("\n---"));
    },
  };
}

Deno.test("sockaddrUn encodes paths and abstract names", () => {
  const path = sockaddrUn("/run/x");
  assertEquals([...path.slice(0, 2)], [1, 0]);
  assertEquals(new TextDecoder().decode(path.slice(2, -1)), "/run/x");
  assertEquals(path[path.length - 1], 0);
  const abstract = sockaddrUn("@name");
  assertEquals(abstract.length, 2 + 5);
  assertEquals(abstract[2], 0);
  assertEquals(new TextDecoder().decode(abstract.slice(3)), "name");
  let error: Error | undefined;
  try {
    sockaddrUn("relative");
  } catch (e) {
    error = e as Error;
  }
  assertMatch(error?.message ?? "", /NOTIFY_SOCKET="relative"/);
});

Deno.test("sdNotify sends to a path socket", async () => {
  const dir = await Deno.makeTempDir();
  const path = `${dir}/notify.sock`;
  const r = receiver(path);
  await r.bound();
  assert(sdNotify("READY=1\nSTATUS=serving", path));
  assertEquals(await r.message(), "READY=1\nSTATUS=serving");
  await Deno.remove(dir, { recursive: true });
});

Deno.test("sdNotify sends to an abstract socket", async () => {
  const name = `@graceful-test-${crypto.randomUUID()}`;
  const r = receiver(name);
  await r.bound();
  assert(sdNotify("MAINPID=42", name));
  assertEquals(await r.message(), "MAINPID=42");
});

Deno.test("sdNotify without NOTIFY_SOCKET does nothing", () => {
  assertEquals(sdNotify("READY=1", undefined), false);
  assertEquals(sdNotify("READY=1", ""), false);
});

Deno.test("sdNotify without FFI permission warns once and carries on", async () => {
  const url = new URL("./notify.ts", import.meta.url).href;
  const dir = await Deno.makeTempDir();
  const script = `${dir}/no_ffi.ts`;
  await Deno.writeTextFile(
    script,
    `import { sdNotify } from "${url}";
console.log(sdNotify("READY=1"), sdNotify("STATUS=x"));`,
  );
  const out = await new Deno.Command(Deno.execPath(), {
    args: [
      "run",
      "--no-prompt",
      "--config",
      new URL("../../deno.json", import.meta.url).pathname,
      "--allow-env",
      "--allow-read",
      script,
    ],
    env: { NOTIFY_SOCKET: "/nonexistent/notify.sock" },
    stdout: "piped",
    stderr: "piped",
  }).output();
  await Deno.remove(dir, { recursive: true });
  const stdout = new TextDecoder().decode(out.stdout);
  const stderr = new TextDecoder().decode(out.stderr);
  assertEquals(out.code, 0, stderr);
  assertEquals(stdout.trim(), "false false");
  assertEquals(stderr.match(/FFI is not usable/g)?.length, 1, stderr);
});

Deno.test("monotonicUsec is CLOCK_MONOTONIC: never ahead of /proc/uptime", () => {
  const a = monotonicUsec();
  const uptime = Number(Deno.readTextFileSync("/proc/uptime").split(" ")[0]);
  const b = monotonicUsec();
  assert(a <= b);
  assert(a <= BigInt(Math.ceil((uptime + 0.01) * 1e6)));
  assert(a > 0n);
});

Deno.test("watchdogIntervalMs honours WATCHDOG_USEC and WATCHDOG_PID", () => {
  const env = (vars: Record<string, string>) => ({
    get: (k: string) => vars[k],
  });
  assertEquals(watchdogIntervalMs(env({}), 7), undefined);
  assertEquals(watchdogIntervalMs(env({ WATCHDOG_USEC: "2000000" }), 7), 2000);
  assertEquals(
    watchdogIntervalMs(env({ WATCHDOG_USEC: "2000000", WATCHDOG_PID: "7" }), 7),
    2000,
  );
  assertEquals(
    watchdogIntervalMs(env({ WATCHDOG_USEC: "2000000", WATCHDOG_PID: "8" }), 7),
    undefined,
  );
});
