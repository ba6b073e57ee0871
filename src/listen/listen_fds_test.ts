import {
  assert,
  assertEquals,
  assertMatch,
  assertThrows,
} from "../../tests/assert.ts";
import {
  type InheritedFd,
  readListenFds,
  readSocketInode,
} from "./listen_fds.ts";
import { ListenFdsError } from "./listen_env.ts";
import { classifySocket } from "./socket_kind.ts";
import { decodeSockaddr } from "./sockaddr.ts";
import { type ProcNetTables, readProcNetTables } from "../os/proc_net.ts";
import { socketFacts } from "../os/socket.ts";
import {
  has,
  IPV6,
  PYTHON,
  SOCKET_ACTIVATE as SOCKET_ACTIVATE_TOOL,
} from "../../tests/capabilities.ts";

// ---------------------------------------------------------------------------
// readListenFds in this process: environment handling
// ---------------------------------------------------------------------------

/** A map-backed environment holding `vars`. */
function mapEnv(vars: Record<string, string>): Map<string, string> {
  return new Map(Object.entries(vars));
}

const LISTEN_VARS = ["LISTEN_PID", "LISTEN_FDS", "LISTEN_FDNAMES"];

/** Asserts that no LISTEN_* variable is left in `env`. */
function assertCleaned(env: Map<string, string>): void {
  for (const key of LISTEN_VARS) {
    assert(!env.has(key), `${key} was not removed`);
  }
}

Deno.test("readListenFds returns [] and cleans the env when not activated", () => {
  const env = mapEnv({ LISTEN_PID: "42", LISTEN_FDNAMES: "x", OTHER: "1" });
  assertEquals(readListenFds({ env, pid: 42 }), []);
  assertCleaned(env);
  assertEquals(env.get("OTHER"), "1");

  const empty = mapEnv({});
  assertEquals(readListenFds({ env: empty, pid: 42 }), []);
  assertEquals(empty.size, 0);
});

Deno.test("readListenFds ignores variables meant for another process", () => {
  const env = mapEnv({
    LISTEN_PID: "41",
    LISTEN_FDS: "1",
    LISTEN_FDNAMES: "web",
  });
  assertEquals(readListenFds({ env, pid: 42 }), []);
  assertCleaned(env);

  const noPid = mapEnv({ LISTEN_FDS: "1" });
  assertEquals(readListenFds({ env: noPid, pid: 42 }), []);
  assertCleaned(noPid);
});

Deno.test("readListenFds cleans the env when it throws", () => {
  const cases: [Record<string, string>, RegExp][] = [
    [{ LISTEN_PID: "abc", LISTEN_FDS: "1" }, /^LISTEN_PID .*"abc"/],
    [{ LISTEN_PID: "42", LISTEN_FDS: "abc" }, /^LISTEN_FDS .*"abc"/],
    [{ LISTEN_PID: "42", LISTEN_FDS: "-1" }, /^LISTEN_FDS .*"-1"/],
    [
      { LISTEN_PID: "42", LISTEN_FDS: "2", LISTEN_FDNAMES: "web" },
      /^LISTEN_FDNAMES /,
    ],
    // A huge count must fail at the first fd that was not passed rather
    // than allocate: fd 3, or a later one when this test runs with fds
    // inherited (flock(1) passes its lock file as fd 3).
    [
      { LISTEN_PID: "42", LISTEN_FDS: String(2 ** 40) },
      /^LISTEN_FDS is 1099511627776 but (no fd was|only \d+ fd\(s\) were) passed[^:]*: fd \d+ is /,
    ],
  ];
  for (const [vars, pattern] of cases) {
    const env = mapEnv(vars);
    assertThrows(
      () => readListenFds({ env, pid: 42 }),
      ListenFdsError,
      pattern,
    );
    assertCleaned(env);
  }
});

Deno.test("readListenFds defaults to Deno.env and Deno.pid", () => {
  Deno.env.set("LISTEN_PID", String(Deno.pid + 1));
  Deno.env.set("LISTEN_FDS", "1");
  Deno.env.set("LISTEN_FDNAMES", "web");
  try {
    assertEquals(readListenFds(), []);
    for (const key of LISTEN_VARS) {
      assertEquals(Deno.env.get(key), undefined);
    }
  } finally {
    for (const key of LISTEN_VARS) {
      Deno.env.delete(key);
    }
  }
});

// ---------------------------------------------------------------------------
// Inspecting real sockets of this process
// ---------------------------------------------------------------------------

/** The fd of this process whose /proc/self/fd link is `socket:[inode]`. */
function fdOfInode(inode: number): number {
  for (const entry of Deno.readDirSync("/proc/self/fd")) {
    let target: string;
    try {
      target = Deno.readLinkSync(`/proc/self/fd/${entry.name}`);
    } catch {
      continue; // closed meanwhile (the directory's own fd)
    }
    if (target === `socket:[${inode}]`) {
      return Number(entry.name);
    }
  }
  throw new Error(`no fd of this process is socket:[${inode}]`);
}

/** The inode of the TCP socket of this process on `port` in `state`. */
function tcpInode(tables: ProcNetTables, port: number, state: number): number {
  for (const socket of tables.tcp.values()) {
    if (socket.local.port === port && socket.state === state) {
      return socket.inode;
    }
  }
  throw new Error(`no TCP socket on port ${port} in state ${state}`);
}

/** Inspects fd `fd` the way readListenFds does. */
function inspect(fd: number): Deno.NetAddr | Deno.UnixAddr {
  return classifySocket(fd, readSocketInode(fd), readProcNetTables());
}

/** True when this host can listen on ::1. */
/** Whether ::1 can be bound (strict mode: fails without; capabilities.ts). */
function hasIpv6(): boolean {
  return has(IPV6);
}

Deno.test("real listeners: /proc gives the addresses Deno reports", () => {
  const hostnames = ["127.0.0.1", "0.0.0.0"];
  if (hasIpv6()) {
    hostnames.push("::1", "::", "::ffff:127.0.0.1");
  }
  for (const hostname of hostnames) {
    const listener = Deno.listen({ hostname, port: 0 });
    try {
      const inode = tcpInode(readProcNetTables(), listener.addr.port, 0x0a);
      const fd = fdOfInode(inode);
      assertEquals(readSocketInode(fd), inode);
      assertEquals(inspect(fd), { ...listener.addr });
    } finally {
      listener.close();
    }
  }
});

Deno.test("real listeners: unix socket path", () => {
  const dir = Deno.makeTempDirSync();
  const path = `${dir}/listen fds.sock`;
  const listener = Deno.listen({ transport: "unix", path });
  try {
    const tables = readProcNetTables();
    const entry = [...tables.unix.values()].find((s) => s.path === path);
    assert(entry !== undefined, `${path} is not in /proc/net/unix`);
    const fd = fdOfInode(entry.inode);
    assertEquals(inspect(fd), { transport: "unix", path });
  } finally {
    listener.close();
    Deno.removeSync(dir, { recursive: true });
  }
});

function tablesHave(tables: ProcNetTables, inode: number): boolean {
  return tables.tcp.has(inode) || tables.unix.has(inode) ||
    tables.udp.has(inode);
}

Deno.test("real listeners: getsockname and /proc give the same address", () => {
  const dir = Deno.makeTempDirSync();
  const listeners: Deno.Listener[] = [
    Deno.listen({ hostname: "127.0.0.1", port: 0 }),
    Deno.listen({ hostname: "0.0.0.0", port: 0 }),
    Deno.listen({ transport: "unix", path: `${dir}/kernel fds.sock` }),
  ];
  if (hasIpv6()) {
    for (const hostname of ["::1", "::", "::ffff:127.0.0.1"]) {
      listeners.push(Deno.listen({ hostname, port: 0 }));
    }
  }
  try {
    let tables = readProcNetTables();
    let checked = 0;
    for (const entry of Deno.readDirSync("/proc/self/fd")) {
      const fd = Number(entry.name);
      let inode: number;
      try {
        inode = readSocketInode(fd);
      } catch {
        continue; // not a socket, or closed meanwhile
      }
      const facts = socketFacts(fd);
      if (!facts?.listening) continue;
      // /proc/net/tcp is read page by page, not at once: while other
      // processes open and close sockets (a second copy of the suite), a
      // line can be missed. Read the tables again before calling it a
      // mismatch.
      for (let read = 1; read < 5 && !tablesHave(tables, inode); read++) {
        tables = readProcNetTables();
      }
      assertEquals(
        decodeSockaddr(facts.address),
        classifySocket(fd, inode, tables),
      );
      checked++;
    }
    assert(checked >= listeners.length, `only ${checked} listeners checked`);
  } finally {
    for (const listener of listeners) listener.close();
    Deno.removeSync(dir, { recursive: true });
  }
});

Deno.test("real sockets: a connected TCP socket is not listening", async () => {
  const listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const client = await Deno.connect({
    hostname: "127.0.0.1",
    port: listener.addr.port,
  });
  const server = await listener.accept();
  try {
    const tables = readProcNetTables();
    const fd = fdOfInode(tcpInode(tables, client.localAddr.port, 0x01));
    assertThrows(
      () => inspect(fd),
      ListenFdsError,
      new RegExp(
        `^fd ${fd} is a TCP socket that is not listening \\(bound to ` +
          `127\\.0\\.0\\.1:${client.localAddr.port}, TCP state 01 ESTABLISHED`,
      ),
    );
  } finally {
    client.close();
    server.close();
    listener.close();
  }
});

Deno.test("real fds: not open, and not a socket", () => {
  assertThrows(
    () => readSocketInode(1 << 30),
    ListenFdsError,
    new RegExp(`^fd ${1 << 30} \\(from LISTEN_FDS\\) is not open$`),
  );
  const dir = Deno.makeTempDirSync();
  const file = Deno.openSync(`${dir}/file`, { write: true, create: true });
  try {
    let fd = -1;
    for (const entry of Deno.readDirSync("/proc/self/fd")) {
      try {
        if (
          Deno.readLinkSync(`/proc/self/fd/${entry.name}`) === `${dir}/file`
        ) {
          fd = Number(entry.name);
        }
      } catch {
        // closed meanwhile
      }
    }
    assertThrows(
      () => readSocketInode(fd),
      ListenFdsError,
      new RegExp(
        `^fd ${fd} \\(from LISTEN_FDS\\) is not a socket: it is ${dir}/file$`,
      ),
    );
  } finally {
    file.close();
    Deno.removeSync(dir, { recursive: true });
  }
});

// ---------------------------------------------------------------------------
// Real processes: tests/fixtures/print_listen_fds.ts under socket activation
// ---------------------------------------------------------------------------

const FIXTURE =
  new URL("../../tests/fixtures/print_listen_fds.ts", import.meta.url).pathname;
const DENO = Deno.execPath();
const FIXTURE_COMMAND = [DENO, "run", "--no-config", "-A", FIXTURE];
const SOCKET_ACTIVATE = "/usr/bin/systemd-socket-activate";
const NO_LISTEN_VARS = {
  LISTEN_PID: null,
  LISTEN_FDS: null,
  LISTEN_FDNAMES: null,
};

/** What the fixture prints: its pid, the fds (on success) and the LISTEN_* left. */
interface FixtureOutput {
  pid: number;
  fds?: InheritedFd[];
  env: Record<string, string | null>;
}

/** A finished run of the fixture. */
interface FixtureRun {
  code: number;
  stdout: string;
  stderr: string;
  /** The last stdout line, parsed. */
  output: FixtureOutput;
  /** The stdout lines before it. */
  before: string[];
}

/** Whether `command --version` runs and succeeds (so the tool is installed). */
// Each skips its tests without the tool (strict mode: fails; capabilities.ts).
const HAS_SOCKET_ACTIVATE = has(SOCKET_ACTIVATE_TOOL);
const HAS_PYTHON = has(PYTHON);

/** This process's environment without LISTEN_*, plus `extra`. */
function childEnv(extra: Record<string, string> = {}): Record<string, string> {
  const env = Deno.env.toObject();
  for (const key of LISTEN_VARS) {
    delete env[key];
  }
  return { ...env, NO_COLOR: "1", ...extra };
}

/** Parses a finished run of the fixture. */
function parseRun(
  command: string[],
  code: number,
  stdoutBytes: Uint8Array,
  stderrBytes: Uint8Array,
): FixtureRun {
  const stdout = new TextDecoder().decode(stdoutBytes);
  const stderr = new TextDecoder().decode(stderrBytes);
  const lines = stdout.trim().split("\n");
  const last = lines.pop() ?? "";
  let output: FixtureOutput;
  try {
    output = JSON.parse(last);
  } catch {
    throw new Error(
      `${command.join(" ")} printed no JSON (exit ${code}).\n` +
        `stdout: ${stdout}\nstderr: ${stderr}`,
    );
  }
  return { code, stdout, stderr, output, before: lines };
}

/** Runs `command` to completion with a clean environment plus `env`. */
async function run(
  command: string[],
  env: Record<string, string> = {},
): Promise<FixtureRun> {
  const { code, stdout, stderr } = await new Deno.Command(command[0], {
    args: command.slice(1),
    env: childEnv(env),
    clearEnv: true,
    stdin: "null",
    stdout: "piped",
    stderr: "piped",
    signal: AbortSignal.timeout(60_000),
  }).output();
  return parseRun(command, code, stdout, stderr);
}

/** A port that was free a moment ago on `hostname`. */
function freePort(hostname: string): number {
  const listener = Deno.listen({ hostname, port: 0 });
  const port = listener.addr.port;
  listener.close();
  return port;
}

/**
 * Runs the fixture under systemd-socket-activate, which binds `listen(ports)`,
 * waits for a first connection, then execs the fixture with LISTEN_FDS set.
 * The ports are chosen free; when another process takes one first, it retries
 * with new ones.
 */
async function runSocketActivated(
  listen: (v4Port: number, v6Port: number) => string[],
  fdnames: string | undefined,
): Promise<{ run: FixtureRun; v4Port: number; v6Port: number }> {
  for (let attempt = 1;; attempt++) {
    const v4Port = freePort("127.0.0.1");
    const v6Port = hasIpv6() ? freePort("::1") : 0;
    const args = listen(v4Port, v6Port).flatMap((addr) => ["-l", addr]);
    if (fdnames !== undefined) {
      args.push(`--fdname=${fdnames}`);
    }
    const command = [SOCKET_ACTIVATE, ...args, ...FIXTURE_COMMAND];
    const child = new Deno.Command(command[0], {
      args: command.slice(1),
      env: childEnv(),
      clearEnv: true,
      stdin: "null",
      stdout: "piped",
      stderr: "piped",
      signal: AbortSignal.timeout(60_000),
    }).spawn();
    let exited = false;
    const outputPromise = child.output();
    outputPromise.then(() => exited = true, () => exited = true);

    // Trigger the exec with a connection, once the sockets are bound.
    let trigger: Deno.TcpConn | undefined;
    while (!exited && trigger === undefined) {
      try {
        trigger = await Deno.connect({ hostname: "127.0.0.1", port: v4Port });
      } catch {
        await new Promise((resolve) => setTimeout(resolve, 20));
      }
    }
    const { code, stdout, stderr } = await outputPromise;
    trigger?.close();

    const stderrText = new TextDecoder().decode(stderr);
    if (code !== 0 && /Address already in use/.test(stderrText)) {
      if (attempt < 10) {
        continue;
      }
    }
    return {
      run: parseRun(command, code, stdout, stderr),
      v4Port,
      v6Port,
    };
  }
}

Deno.test({
  name: "systemd-socket-activate: TCP, IPv6 and unix sockets with names",
  ignore: !HAS_SOCKET_ACTIVATE,
  async fn() {
    const dir = await Deno.makeTempDir();
    const abstract = `@listen-fds-test-${crypto.randomUUID()}`;
    const ipv6 = hasIpv6();
    try {
      const { run, v4Port, v6Port } = await runSocketActivated(
        (v4, v6) => [
          `127.0.0.1:${v4}`,
          ...(ipv6 ? [`[::1]:${v6}`] : []),
          `${dir}/app.sock`,
          abstract,
        ],
        ipv6 ? "web:admin:local:hidden" : "web:local:hidden",
      );
      assertEquals(run.code, 0, run.stderr);
      const expected: InheritedFd[] = [
        {
          fd: 3,
          name: "web",
          addr: { transport: "tcp", hostname: "127.0.0.1", port: v4Port },
        },
      ];
      if (ipv6) {
        expected.push({
          fd: 4,
          name: "admin",
          addr: { transport: "tcp", hostname: "::1", port: v6Port },
        });
      }
      expected.push(
        {
          fd: expected.length + 3,
          name: "local",
          addr: { transport: "unix", path: `${dir}/app.sock` },
        },
        {
          fd: expected.length + 4,
          name: "hidden",
          addr: { transport: "unix", path: abstract },
        },
      );
      assertEquals(run.output.fds, expected);
      assertEquals(run.output.env, NO_LISTEN_VARS);
    } finally {
      await Deno.remove(dir, { recursive: true });
    }
  },
});

Deno.test({
  name: "systemd-socket-activate: names default to unknown",
  ignore: !HAS_SOCKET_ACTIVATE,
  async fn() {
    const { run, v4Port } = await runSocketActivated(
      (v4) => [`127.0.0.1:${v4}`],
      undefined,
    );
    assertEquals(run.code, 0, run.stderr);
    assertEquals(run.output.fds, [
      {
        fd: 3,
        name: "unknown",
        addr: { transport: "tcp", hostname: "127.0.0.1", port: v4Port },
      },
    ]);
    assertEquals(run.output.env, NO_LISTEN_VARS);
  },
});

Deno.test({
  name: "systemd-socket-activate: a datagram socket is refused",
  ignore: !HAS_SOCKET_ACTIVATE || !HAS_PYTHON,
  async fn() {
    // With -d the tool passes a unix SOCK_DGRAM socket, and execs the
    // program when the first datagram arrives.
    const dir = await Deno.makeTempDir();
    try {
      const path = `${dir}/dgram.sock`;
      const command = [SOCKET_ACTIVATE, "-d", "-l", path, ...FIXTURE_COMMAND];
      const child = new Deno.Command(command[0], {
        args: command.slice(1),
        env: childEnv(),
        clearEnv: true,
        stdin: "null",
        stdout: "piped",
        stderr: "piped",
        signal: AbortSignal.timeout(60_000),
      }).spawn();
      let exited = false;
      const outputPromise = child.output();
      outputPromise.then(() => exited = true, () => exited = true);
      while (!exited) {
        try {
          await sendDatagram(path);
          break;
        } catch {
          await new Promise((resolve) => setTimeout(resolve, 20));
        }
      }
      const { code, stdout, stderr } = await outputPromise;
      const run = parseRun(command, code, stdout, stderr);
      assertEquals(run.code, 1);
      assertMatch(
        run.stderr,
        /ListenFdsError: fd 3 is a datagram \(unix SOCK_DGRAM\) socket \(bound to .*dgram\.sock\); only stream sockets can serve HTTP/,
      );
      assertEquals(run.output.env, NO_LISTEN_VARS);
    } finally {
      await Deno.remove(dir, { recursive: true });
    }
  },
});

/** Sends one datagram to the unix socket at `path`, with python3. */
async function sendDatagram(path: string): Promise<void> {
  const { success } = await new Deno.Command("python3", {
    args: [
      "-c",
      "import socket, sys\n" +
      "s = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)\n" +
      "s.sendto(b'x', sys.argv[1])\n",
      path,
    ],
    stdout: "null",
    stderr: "null",
  }).output();
  if (!success) {
    throw new Error(`could not send a datagram to ${path}`);
  }
}

/**
 * A python3 program that opens the fds described by the JSON in argv[1] as
 * fds 3, 4, ..., prints their addresses as a JSON line, sets the LISTEN_*
 * variables given there ("$PID" becomes its own pid, which the exec'ed
 * program keeps), and execs argv[2:].
 */
const PYTHON_LAUNCHER = `
import fcntl, json, os, socket, sys

config = json.loads(sys.argv[1])
command = sys.argv[2:]
families = {"4": socket.AF_INET, "6": socket.AF_INET6, "unix": socket.AF_UNIX}
types = {
    "stream": socket.SOCK_STREAM,
    "dgram": socket.SOCK_DGRAM,
    "seqpacket": socket.SOCK_SEQPACKET,
}
keep = []
held = []
addrs = []
for spec in config["fds"]:
    if spec["kind"] == "file":
        fd = os.open(spec["path"], os.O_RDONLY)
        addrs.append(None)
    elif spec["kind"] == "pipe":
        fd, write_end = os.pipe()
        keep.append(write_end)
        addrs.append(None)
    else:
        s = socket.socket(families[spec["family"]], types[spec["kind"]])
        keep.append(s)
        if spec["family"] == "unix":
            path = spec["path"]
            s.bind("\\0" + path[1:] if path.startswith("@") else path)
            addrs.append(path)
        else:
            s.bind((spec["host"], 0))
            addrs.append(list(s.getsockname()[:2]))
        if spec.get("listen"):
            s.listen()
        fd = s.fileno()
    held.append(fcntl.fcntl(fd, fcntl.F_DUPFD_CLOEXEC, 100))
for index, fd in enumerate(held):
    os.dup2(fd, 3 + index, inheritable=True)
env = dict(os.environ)
for key, value in config["env"].items():
    env[key] = value.replace("$PID", str(os.getpid()))
print(json.dumps(addrs), flush=True)
os.execvpe(command[0], command, env)
`;

/** What python opens as fd 3, 4, ... */
type PythonFd =
  | {
    kind: "stream" | "dgram" | "seqpacket";
    family: "4" | "6";
    host: string;
    listen?: boolean;
  }
  | {
    kind: "stream" | "dgram" | "seqpacket";
    family: "unix";
    path: string;
    listen?: boolean;
  }
  | { kind: "file"; path: string }
  | { kind: "pipe" };

/**
 * Runs `command` (default: the fixture) with `fds` opened by python as fds
 * 3, 4, ... and `env` set; returns the run and the fds' addresses (for IP
 * sockets [host, port], for unix ones the path).
 */
async function runWithFds(
  fds: PythonFd[],
  env: Record<string, string>,
  command: string[] = FIXTURE_COMMAND,
): Promise<{ run: FixtureRun; addrs: (string | [string, number] | null)[] }> {
  const result = await run([
    "python3",
    "-c",
    PYTHON_LAUNCHER,
    JSON.stringify({ fds, env }),
    ...command,
  ]);
  assertEquals(result.before.length, 1, result.stdout + result.stderr);
  return { run: result, addrs: JSON.parse(result.before[0]) };
}

/** Asserts a failed fixture run whose error matches `pattern`, env cleaned. */
function assertFailed(run: FixtureRun, pattern: RegExp): void {
  assertEquals(run.code, 1, run.stdout + run.stderr);
  assertMatch(run.stderr, pattern);
  assertEquals(run.output.env, NO_LISTEN_VARS);
}

Deno.test({
  name: "python-passed sockets: listening TCP, IPv6 wildcard and unix",
  ignore: !HAS_PYTHON,
  async fn() {
    const dir = await Deno.makeTempDir();
    const abstract = `@listen-fds-test-${crypto.randomUUID()}`;
    const ipv6 = hasIpv6();
    try {
      const fds: PythonFd[] = [
        { kind: "stream", family: "4", host: "127.0.0.1", listen: true },
        { kind: "stream", family: "unix", path: `${dir}/a.sock`, listen: true },
        { kind: "stream", family: "unix", path: abstract, listen: true },
      ];
      if (ipv6) {
        fds.push({ kind: "stream", family: "6", host: "::", listen: true });
      }
      const { run, addrs } = await runWithFds(fds, {
        LISTEN_PID: "$PID",
        LISTEN_FDS: String(fds.length),
      });
      assertEquals(run.code, 0, run.stderr);
      const [v4Host, v4Port] = addrs[0] as [string, number];
      const expected: InheritedFd[] = [
        {
          fd: 3,
          name: "unknown",
          addr: { transport: "tcp", hostname: v4Host, port: v4Port },
        },
        {
          fd: 4,
          name: "unknown",
          addr: { transport: "unix", path: `${dir}/a.sock` },
        },
        { fd: 5, name: "unknown", addr: { transport: "unix", path: abstract } },
      ];
      if (ipv6) {
        const [, v6Port] = addrs[3] as [string, number];
        expected.push({
          fd: 6,
          name: "unknown",
          addr: { transport: "tcp", hostname: "::", port: v6Port },
        });
      }
      assertEquals(run.output.fds, expected);
      assertEquals(run.output.env, NO_LISTEN_VARS);
    } finally {
      await Deno.remove(dir, { recursive: true });
    }
  },
});

Deno.test({
  name: "python-passed sockets: UDP is refused",
  ignore: !HAS_PYTHON,
  async fn() {
    const { run, addrs } = await runWithFds(
      [{ kind: "dgram", family: "4", host: "127.0.0.1" }],
      { LISTEN_PID: "$PID", LISTEN_FDS: "1", LISTEN_FDNAMES: "web" },
    );
    const [, port] = addrs[0] as [string, number];
    assertFailed(
      run,
      new RegExp(
        `ListenFdsError: fd 3 is a datagram \\(UDP\\) socket \\(bound to ` +
          `127\\.0\\.0\\.1:${port}\\); only stream sockets can serve HTTP`,
      ),
    );
  },
});

Deno.test({
  name: "python-passed sockets: UDP over IPv6 is refused",
  ignore: !HAS_PYTHON || !hasIpv6(),
  async fn() {
    const { run } = await runWithFds(
      [{ kind: "dgram", family: "6", host: "::1" }],
      { LISTEN_PID: "$PID", LISTEN_FDS: "1" },
    );
    assertFailed(run, /fd 3 is a datagram \(UDP\) socket \(bound to \[::1\]:/);
  },
});

Deno.test({
  name: "python-passed sockets: a bound TCP socket that is not listening",
  ignore: !HAS_PYTHON,
  async fn() {
    // Linux lists only listening and connected TCP sockets in /proc/net/tcp,
    // so a merely bound one cannot be told from other unlisted kinds.
    const { run } = await runWithFds(
      [
        { kind: "stream", family: "4", host: "127.0.0.1", listen: true },
        { kind: "stream", family: "4", host: "127.0.0.1" },
      ],
      { LISTEN_PID: "$PID", LISTEN_FDS: "2", LISTEN_FDNAMES: "ok:bad" },
    );
    assertFailed(
      run,
      /ListenFdsError: fd 4 is a socket of an unsupported kind \(socket:\[\d+\] is in none of .*; a TCP socket that is bound but not listening looks like this too\)/,
    );
  },
});

Deno.test({
  name: "python-passed sockets: unix datagram, seqpacket and unlistened",
  ignore: !HAS_PYTHON,
  async fn() {
    const dir = await Deno.makeTempDir();
    try {
      const cases: [PythonFd, RegExp][] = [
        [
          { kind: "dgram", family: "unix", path: `${dir}/d.sock` },
          /fd 3 is a datagram \(unix SOCK_DGRAM\) socket \(bound to .*\/d\.sock\); only stream sockets can serve HTTP/,
        ],
        [
          {
            kind: "seqpacket",
            family: "unix",
            path: `${dir}/s.sock`,
            listen: true,
          },
          /fd 3 is a unix SOCK_SEQPACKET socket \(bound to .*\/s\.sock\); only stream sockets can serve HTTP/,
        ],
        [
          { kind: "stream", family: "unix", path: `${dir}/b.sock` },
          /fd 3 is a unix stream socket that is not listening \(bound to .*\/b\.sock\)/,
        ],
      ];
      for (const [fd, pattern] of cases) {
        const { run } = await runWithFds([fd], {
          LISTEN_PID: "$PID",
          LISTEN_FDS: "1",
        });
        assertFailed(run, pattern);
      }
    } finally {
      await Deno.remove(dir, { recursive: true });
    }
  },
});

Deno.test({
  name: "python-passed fds: a pipe is not a socket",
  ignore: !HAS_PYTHON,
  async fn() {
    const { run } = await runWithFds([{ kind: "pipe" }], {
      LISTEN_PID: "$PID",
      LISTEN_FDS: "1",
    });
    assertFailed(
      run,
      /ListenFdsError: fd 3 \(from LISTEN_FDS\) is not a socket: it is pipe:\[\d+\]/,
    );
  },
});

Deno.test({
  name: "python-passed fds: LISTEN_FDS=2 with only one fd passed",
  ignore: !HAS_PYTHON,
  async fn() {
    const { run } = await runWithFds(
      [{ kind: "stream", family: "4", host: "127.0.0.1", listen: true }],
      { LISTEN_PID: "$PID", LISTEN_FDS: "2" },
    );
    // fd 4 is either closed or one of Deno's own (an epoll fd, a cache file):
    // the count is reported first, never fd 4 as if it had been passed.
    assertFailed(
      run,
      /ListenFdsError: LISTEN_FDS is 2 but only 1 fd\(s\) were passed \(fd 3\): fd 4 is (not open|this process's own \(.+\)), not inherited/,
    );
  },
});

Deno.test({
  name: "python-passed fds: malformed variables name the variable",
  ignore: !HAS_PYTHON,
  async fn() {
    const listening: PythonFd[] = [
      { kind: "stream", family: "4", host: "127.0.0.1", listen: true },
    ];
    const cases: [Record<string, string>, RegExp][] = [
      [
        { LISTEN_PID: "$PID", LISTEN_FDS: "abc" },
        /ListenFdsError: LISTEN_FDS must be a non-negative decimal integer .* but it is "abc"/,
      ],
      [
        { LISTEN_PID: "$PID", LISTEN_FDS: "-1" },
        /ListenFdsError: LISTEN_FDS must be a non-negative decimal integer .* but it is "-1"/,
      ],
      [
        { LISTEN_PID: "$PID", LISTEN_FDS: "1", LISTEN_FDNAMES: "a:b" },
        /ListenFdsError: LISTEN_FDNAMES has 2 name\(s\) \("a:b"\) but LISTEN_FDS is 1/,
      ],
      [
        { LISTEN_PID: "x$PID", LISTEN_FDS: "1" },
        /ListenFdsError: LISTEN_PID must be a process id .* but it is "x\d+"/,
      ],
    ];
    for (const [env, pattern] of cases) {
      const { run } = await runWithFds(listening, env);
      assertFailed(run, pattern);
    }
  },
});

Deno.test({
  name: "python-passed fds: LISTEN_PID of another process gives []",
  ignore: !HAS_PYTHON,
  async fn() {
    const { run } = await runWithFds(
      [{ kind: "stream", family: "4", host: "127.0.0.1", listen: true }],
      { LISTEN_PID: String(Deno.pid), LISTEN_FDS: "1", LISTEN_FDNAMES: "web" },
    );
    assertEquals(run.code, 0, run.stderr);
    assertEquals(run.output.fds, []);
    assertEquals(run.output.env, NO_LISTEN_VARS);
  },
});

Deno.test({
  name: "python-passed fds: without --allow-all the error says so",
  ignore: !HAS_PYTHON,
  async fn() {
    const { run } = await runWithFds(
      [{ kind: "stream", family: "4", host: "127.0.0.1", listen: true }],
      { LISTEN_PID: "$PID", LISTEN_FDS: "1" },
      [DENO, "run", "--no-config", "--allow-env", "--allow-read", FIXTURE],
    );
    assertFailed(
      run,
      /ListenFdsError: cannot inspect fd 3 \(from LISTEN_FDS\): reading \/proc\/self\/fd\/3 needs Deno's --allow-all permission/,
    );
  },
});

Deno.test("sh-passed fd: a regular file is not a socket", async () => {
  const dir = await Deno.makeTempDir();
  try {
    const file = `${dir}/regular file`;
    await Deno.writeTextFile(file, "not a socket\n");
    const result = await run([
      "/bin/sh",
      "-c",
      'export LISTEN_PID=$$ LISTEN_FDS=1; exec "$@" 3<"$0"',
      file,
      ...FIXTURE_COMMAND,
    ]);
    assertFailed(
      result,
      new RegExp(
        `ListenFdsError: fd 3 \\(from LISTEN_FDS\\) is not a socket: it is ` +
          `${dir}/regular file`,
      ),
    );
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});
