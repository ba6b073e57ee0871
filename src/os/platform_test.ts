import { assert, assertEquals, assertThrows } from "../../tests/assert.ts";
import {
  decidePlatform,
  platformWarning,
  PORTABLE_ENV,
  portableSignals,
} from "./platform.ts";

Deno.test("decidePlatform: Linux without the switch is the linux mode", () => {
  assertEquals(decidePlatform("linux", undefined), {
    os: "linux",
    mode: "linux",
    reasons: [],
    missing: [],
  });
  assertEquals(decidePlatform("linux", "").mode, "linux");
});

Deno.test("decidePlatform: the OS picks posix or windows", () => {
  for (const os of ["darwin", "freebsd", "netbsd", "aix", "solaris"] as const) {
    const decision = decidePlatform(os, undefined);
    assertEquals(decision.mode, "posix", os);
    assertEquals(decision.reasons, [`Deno.build.os is ${os}`]);
  }
  assertEquals(decidePlatform("windows", undefined).mode, "windows");
});

Deno.test("decidePlatform: the switch runs a narrower mode on Linux", () => {
  const posix = decidePlatform("linux", "posix");
  assertEquals(posix.mode, "posix");
  assertEquals(posix.reasons, [`${PORTABLE_ENV}=posix`]);
  assert(posix.missing.some((m) => m.includes("sock_diag")));
  assertEquals(decidePlatform("linux", "windows").mode, "windows");
  assertEquals(decidePlatform("darwin", "windows").mode, "windows");
  // Naming the OS's own mode changes nothing.
  assertEquals(decidePlatform("darwin", "posix").reasons, [
    "Deno.build.os is darwin",
  ]);
});

Deno.test("decidePlatform: a wider mode than the OS has is refused", () => {
  assertEquals(
    assertThrows(() => decidePlatform("darwin", "linux")).message,
    `${PORTABLE_ENV}=linux: not available on darwin (posix mode)`,
  );
  assertEquals(
    assertThrows(() => decidePlatform("windows", "posix")).message,
    `${PORTABLE_ENV}=posix: not available on windows (windows mode)`,
  );
});

Deno.test("decidePlatform: a value that is no mode names the variable", () => {
  assertEquals(
    assertThrows(() => decidePlatform("linux", "macos")).message,
    `${PORTABLE_ENV}=macos: not a mode (use posix or windows)`,
  );
});

Deno.test("platformWarning: one line outside Linux, none on Linux", () => {
  assertEquals(platformWarning(decidePlatform("linux", undefined)), undefined);
  for (const mode of ["posix", "windows"]) {
    const line = platformWarning(decidePlatform("linux", mode))!;
    assert(line.startsWith(`serveGraceful: ${mode} mode`), line);
    assertEquals(line.split("\n").length, 1);
  }
  assert(
    platformWarning(decidePlatform("windows", undefined))!.includes(
      "LISTEN_FDS",
    ),
  );
});

Deno.test("platform: a process reads GRACEFUL_PORTABLE once", async () => {
  const url = new URL("./platform.ts", import.meta.url).href;
  const code = `import { platform } from ${JSON.stringify(url)};
    const first = platform().mode;
    Deno.env.set(${JSON.stringify(PORTABLE_ENV)}, "linux");
    console.log(first, platform().mode);`;
  for (
    const [value, expected] of [["posix", "posix"], ["windows", "windows"]]
  ) {
    const out = await new Deno.Command(Deno.execPath(), {
      args: ["eval", code],
      env: { [PORTABLE_ENV]: value },
      stdout: "piped",
      stderr: "piped",
    }).output();
    assertEquals(
      new TextDecoder().decode(out.stdout).trim(),
      `${expected} ${expected}`,
    );
  }
});

Deno.test("portableSignals: the windows mode has no restart signal and shuts down on what Windows delivers", () => {
  const signals = {
    shutdown: ["SIGTERM", "SIGINT", "SIGQUIT"] as Deno.Signal[],
    restart: ["SIGUSR2", "SIGUSR1", "SIGHUP"] as Deno.Signal[],
  };
  assertEquals(
    portableSignals(signals, decidePlatform("linux", undefined)),
    signals,
  );
  assertEquals(
    portableSignals(signals, decidePlatform("darwin", undefined)),
    signals,
  );
  assertEquals(portableSignals(signals, decidePlatform("windows", undefined)), {
    shutdown: ["SIGINT", "SIGBREAK"],
    restart: [],
  });
  assertEquals(portableSignals(signals, decidePlatform("linux", "windows")), {
    shutdown: ["SIGINT", "SIGTERM"],
    restart: [],
  });
  // No shutdown signal asked for: none.
  assertEquals(
    portableSignals(
      { shutdown: [], restart: [] },
      decidePlatform("windows", undefined),
    ),
    { shutdown: [], restart: [] },
  );
});

/** The lines `deno eval` prints for `body`, after importing `names` of platform.ts. */
async function evalLines(names: string, body: string): Promise<string[]> {
  const url = new URL("./platform.ts", import.meta.url).href;
  const code = `import { ${names} } from ${JSON.stringify(url)};\n${body}`;
  const out = await new Deno.Command(Deno.execPath(), {
    args: ["eval", code],
    env: { GRACEFUL_PORTABLE: "" },
    stdout: "piped",
  }).output();
  return new TextDecoder().decode(out.stdout).trim().split("\n");
}

Deno.test("portableEngine and setPortable: a process in the posix mode", async () => {
  const lines = await evalLines(
    "portableEngine, setPortable",
    `setPortable("posix");
    console.log(portableEngine("auto"), portableEngine("node"));
    try { portableEngine("native"); } catch (e) { console.log(e.message); }
    try { setPortable("bsd"); } catch (e) { console.log(e.message); }
    console.log(Deno.env.get("GRACEFUL_PORTABLE"));`,
  );
  assertEquals(lines, [
    "node node",
    'engine: "native" needs Linux (epoll, /proc); this is the posix mode: use "node" or "auto"',
    "--portable bsd: not a mode (use posix or windows)",
    "posix",
  ]);
});

Deno.test("portableEngine and opensOwnAddresses: a process in the windows mode", async () => {
  const lines = await evalLines(
    "opensOwnAddresses, portableEngine, setPortable",
    `console.log(opensOwnAddresses());
    setPortable("windows");
    console.log(opensOwnAddresses(), portableEngine("auto"), portableEngine("native"));
    try { portableEngine("node"); } catch (e) { console.log(e.message); }`,
  );
  assertEquals(lines, [
    "false",
    "true node node",
    'engine: "node" serves passed fds, which the windows mode has none of (Deno.serve opens the addresses): use "auto"',
  ]);
});
