/**
 * The systems the restart bench compares: how each is started (pinned to the
 * server CPU), restarted and stopped. Every one serves `GET /` ("Hello!") and
 * `GET /pid` (the pid of the process that answered), so the bench sees a new
 * generation the same way for all of them: another pid answers /pid.
 *
 * @module
 */

import { denoRunCommand, pinnedToCpu } from "../lib/commands.ts";
import { type Endpoint, httpGet } from "../lib/http_get.ts";
import { isAlive, signalPid } from "../lib/pids.ts";
import { sleep, waitUntil } from "../lib/time.ts";
import { serverPids } from "./procs.ts";
import { runTool, type Spawned, spawnProcess } from "./spawn.ts";
import type { Toolchain } from "./setup.ts";
import { SPECS, type SystemId, type SystemSpec } from "./specs.ts";

/** Where things are. */
export interface SystemContext {
  repoDir: string;
  /** A private temporary directory of this run. */
  workDir: string;
  toolchain: Toolchain;
  /** The CPU every server process is pinned to. */
  cpu: number;
  /** Added to the environment of the signalled systems (ours: `GRACEFUL_TRACE`). */
  env?: Record<string, string>;
  /** The certificate ours serves HTTPS with (PEM, and its files). */
  tls: { cert: string; certFile: string; keyFile: string };
}

/** A system on one port. */
export interface SystemInstance {
  spec: SystemSpec;
  port: number;
  /** Where the load and the /pid probes go: the port, over TLS, or a unix socket. */
  endpoint: Endpoint;
  /** The command that starts it, as run (for the reproduction notes). */
  command: string[];
  /** Starts it; resolves with the ms from the spawn to the first 200 on GET /. */
  start(): Promise<number>;
  /** Triggers a restart of the generation whose pid is `pid`; resolves once the trigger itself is done. */
  trigger(pid: number): Promise<void>;
  /** Stops it gracefully (SIGKILL after `graceMs`); resolves with the pids that had to be killed. */
  stop(graceMs: number): Promise<number[]>;
  /** The last lines the system printed. */
  output(): string[];
}

/** Makes an instance of system `id` on `port`. */
export function createSystem(
  id: SystemId,
  port: number,
  context: SystemContext,
): SystemInstance {
  switch (id) {
    case "ours-native":
      return oursSystem(SPECS[id], "native", port, context);
    case "ours-native-tls":
      return oursSystem(SPECS[id], "native", port, context, {}, "tls");
    case "ours-native-unix":
      return oursSystem(SPECS[id], "native", port, context, {}, "unix");
    case "ours-node":
      return oursSystem(SPECS[id], "node", port, context);
    case "ours-posix":
      return oursSystem(SPECS[id], "node", port, context, {
        GRACEFUL_PORTABLE: "posix",
      });
    case "ours-windows":
      return windowsModeSystem(port, context);
    case "deno-kill":
      return denoKillSystem(port, context);
    case "tableflip":
      return goSystem(
        SPECS[id],
        "SIGHUP",
        context.toolchain.tableflipBinary,
        port,
        context,
      );
    case "grace":
      return goSystem(
        SPECS[id],
        "SIGUSR2",
        context.toolchain.graceBinary,
        port,
        context,
      );
    case "nginx":
      return nginxSystem(port, context);
    case "pm2":
      return pm2System(port, context);
  }
}

function pinned(context: SystemContext, command: string[]): string[] {
  return pinnedToCpu(context.cpu, command);
}

/** A system restarted by a signal to the serving pid. */
function signalledSystem(
  spec: SystemSpec,
  signal: Deno.Signal,
  argv: string[],
  port: number,
  context: SystemContext,
  env: Record<string, string> = {},
  endpoint: Endpoint = { port },
): SystemInstance {
  const command = pinned(context, argv);
  let first: Spawned | null = null;
  return {
    spec,
    port,
    endpoint,
    command,
    async start() {
      const started = performance.now();
      first = spawnProcess(command, {
        cwd: context.repoDir,
        env: { ...context.env, ...env },
        tool: false,
        keepLines: 2_000,
      });
      await waitServing(endpoint, () => first!.status === null, first);
      return performance.now() - started;
    },
    trigger(pid) {
      if (!signalPid(pid, signal)) {
        return Promise.reject(new Error(`pid ${pid} is gone`));
      }
      return Promise.resolve();
    },
    stop(graceMs) {
      return stopAll(graceMs, (pids) => {
        for (const pid of pids) signalPid(pid, "SIGTERM");
      });
    },
    output: () => first?.lines ?? [],
  };
}

/** One of the Go hello servers: `<binary> -listen 127.0.0.1:<port>`. */
function goSystem(
  spec: SystemSpec,
  signal: Deno.Signal,
  binary: string,
  port: number,
  context: SystemContext,
): SystemInstance {
  const argv = [binary, "-listen", `127.0.0.1:${port}`];
  return signalledSystem(spec, signal, argv, port, context);
}

function oursCommand(
  engine: string,
  port: number,
  context: SystemContext,
  listen = ["--port", String(port), "--hostname", "127.0.0.1"],
) {
  return denoRunCommand([
    `${context.repoDir}mod.ts`,
    ...listen,
    "--engine",
    engine,
    "--restart-signal",
    "SIGUSR2",
  ]);
}

/** Unix socket paths: one per instance (a stopped server may leave its file). */
let unixSockets = 0;

/**
 * Ours on `port`, or serving HTTPS there (`tls`: the context's certificate),
 * or on a unix socket of its own in the work directory instead (`unix`).
 */
function oursSystem(
  spec: SystemSpec,
  engine: string,
  port: number,
  context: SystemContext,
  env: Record<string, string> = {},
  transport: "tcp" | "tls" | "unix" = "tcp",
): SystemInstance {
  const { cert, certFile, keyFile } = context.tls;
  const unixPath = `${context.workDir}/ours-${port}-${++unixSockets}.sock`;
  const command = transport === "unix"
    ? oursCommand(engine, port, context, ["--listen", `unix:${unixPath}`])
    : transport === "tls"
    ? [
      ...oursCommand(engine, port, context),
      "--cert",
      certFile,
      "--key",
      keyFile,
    ]
    : oursCommand(engine, port, context);
  return signalledSystem(
    spec,
    "SIGUSR2",
    command,
    port,
    context,
    { NO_COLOR: "1", ...env },
    transport === "unix"
      ? { port, unixPath }
      : transport === "tls"
      ? { port, caCert: cert }
      : { port },
  );
}

/** The admin token of the windows-mode system (the bench's own secret). */
const WINDOWS_TOKEN = crypto.randomUUID();

/**
 * Ours in the windows mode: no restart signal there, so the admin API
 * restarts it (it answers 202, then makes a complete restart).
 */
function windowsModeSystem(
  port: number,
  context: SystemContext,
): SystemInstance {
  const base = signalledSystem(
    SPECS["ours-windows"],
    "SIGUSR2",
    [...oursCommand("auto", port, context), "--admin=/ops"],
    port,
    context,
    {
      NO_COLOR: "1",
      GRACEFUL_PORTABLE: "windows",
      GRACEFUL_ADMIN_TOKEN: WINDOWS_TOKEN,
    },
  );
  return {
    ...base,
    async trigger() {
      const res = await fetch(`http://127.0.0.1:${port}/ops/restart`, {
        method: "POST",
        headers: { authorization: `Bearer ${WINDOWS_TOKEN}` },
      });
      await res.body?.cancel();
      if (res.status !== 202) {
        throw new Error(`POST /ops/restart answered ${res.status}`);
      }
    },
  };
}

function denoKillSystem(port: number, context: SystemContext): SystemInstance {
  const command = pinned(
    context,
    denoRunCommand([
      `${context.repoDir}bench/restart/apps/deno_serve.ts`,
      String(port),
    ]),
  );
  let current: Spawned | null = null;
  const lines: string[] = [];
  const spawn = () => {
    current = spawnProcess(command, {
      cwd: context.repoDir,
      tool: false,
      onLine: (line) => {
        lines.push(line);
        if (lines.length > 400) lines.shift();
      },
    });
    return current;
  };
  return {
    spec: SPECS["deno-kill"],
    port,
    endpoint: { port },
    command,
    async start() {
      const started = performance.now();
      const spawned = spawn();
      await waitServing({ port }, () => spawned.status === null, spawned);
      return performance.now() - started;
    },
    async trigger(pid) {
      if (!signalPid(pid, "SIGTERM")) throw new Error(`pid ${pid} is gone`);
      if (!await waitUntil(() => !isAlive(pid), 10_000, 1)) {
        throw new Error(`pid ${pid} still runs 10 s after SIGTERM`);
      }
      spawn();
    },
    stop(graceMs) {
      return stopAll(graceMs, (pids) => {
        for (const pid of pids) signalPid(pid, "SIGTERM");
      });
    },
    output: () => lines,
  };
}

/** The nginx configuration: its own prefix, pid file, logs and port. */
export function nginxConfig(prefix: string, port: number): string {
  return `# Written by bench/restart_bench.ts; nothing here is the system's nginx.
worker_processes 1;
daemon off;
master_process on;
pid ${prefix}/nginx.pid;
error_log ${prefix}/error.log notice;
events {
  worker_connections 4096;
}
http {
  access_log off;
  client_body_temp_path ${prefix}/tmp/body;
  proxy_temp_path ${prefix}/tmp/proxy;
  fastcgi_temp_path ${prefix}/tmp/fastcgi;
  uwsgi_temp_path ${prefix}/tmp/uwsgi;
  scgi_temp_path ${prefix}/tmp/scgi;
  default_type "text/plain;charset=UTF-8";
  server {
    listen 127.0.0.1:${port};
    location = / {
      return 200 "Hello!\\n";
    }
    location = /pid {
      return 200 "$pid\\n";
    }
  }
}
`;
}

function nginxSystem(port: number, context: SystemContext): SystemInstance {
  const prefix = `${context.workDir}/nginx-${port}`;
  const conf = `${prefix}/nginx.conf`;
  const base = [
    context.toolchain.nginx,
    "-c",
    conf,
    "-p",
    `${prefix}/`,
    "-e",
    `${prefix}/error.log`,
  ];
  const command = pinned(context, base);
  let master: Spawned | null = null;
  return {
    spec: SPECS.nginx,
    port,
    endpoint: { port },
    command,
    async start() {
      await Deno.mkdir(`${prefix}/tmp`, { recursive: true });
      await Deno.writeTextFile(conf, nginxConfig(prefix, port));
      const started = performance.now();
      master = spawnProcess(command, { tool: false });
      await waitServing({ port }, () => master!.status === null, master);
      return performance.now() - started;
    },
    async trigger() {
      await runTool(pinned(context, [...base, "-s", "reload"]));
    },
    stop(graceMs) {
      return stopAll(graceMs, () => {
        if (master !== null) signalPid(master.pid, "SIGQUIT");
      });
    },
    output: () => master?.lines ?? [],
  };
}

/** The pm2 ecosystem file: one node:http worker in cluster mode. */
export function pm2Ecosystem(script: string, port: number): string {
  return JSON.stringify(
    {
      apps: [{
        name: "hello",
        script,
        exec_mode: "cluster",
        instances: 1,
        env: { HOST: "127.0.0.1", PORT: String(port) },
      }],
    },
    null,
    2,
  );
}

function pm2System(port: number, context: SystemContext): SystemInstance {
  const home = `${context.workDir}/pm2-home-${port}`;
  const ecosystem = `${context.workDir}/pm2-${port}.config.json`;
  const env = { PM2_HOME: home, NO_COLOR: "1" };
  const pm2 = (...args: string[]) =>
    pinned(context, [
      context.toolchain.node,
      context.toolchain.pm2Script,
      ...args,
    ]);
  const command = pm2("start", ecosystem);
  const lines: string[] = [];
  return {
    spec: SPECS.pm2,
    port,
    endpoint: { port },
    command,
    async start() {
      await Deno.mkdir(home, { recursive: true });
      await Deno.writeTextFile(
        ecosystem,
        pm2Ecosystem(
          `${context.repoDir}bench/restart/apps/pm2_hello.cjs`,
          port,
        ),
      );
      const started = performance.now();
      const cli = spawnProcess(command, { env, tool: true });
      await waitServing({ port }, () => true, cli);
      const elapsed = performance.now() - started;
      const status = await cli.done;
      lines.push(...cli.lines);
      if (!status.success) {
        throw new Error(`pm2 start failed:\n${cli.lines.join("\n")}`);
      }
      return elapsed;
    },
    async trigger() {
      await runTool(pm2("reload", "hello"), { env });
    },
    async stop(graceMs) {
      try {
        await runTool(pm2("kill"), { env });
      } catch (error) {
        lines.push(`pm2 kill: ${error}`);
      }
      return await stopAll(graceMs, (pids) => {
        for (const pid of pids) signalPid(pid, "SIGTERM");
      });
    },
    output: () => lines,
  };
}

/**
 * Polls GET / (new connection each time) until it answers 200 "Hello!";
 * throws when `alive()` turns false or 30 s pass.
 */
async function waitServing(
  endpoint: Endpoint,
  alive: () => boolean,
  spawned: Spawned,
): Promise<void> {
  const deadline = performance.now() + 30_000;
  let last = "";
  while (performance.now() < deadline) {
    try {
      const answer = await httpGet(endpoint, "/", 1_000);
      if (answer.status === 200 && answer.body === "Hello!\n") return;
      last = `answered ${answer.status} ${JSON.stringify(answer.body)}`;
    } catch (error) {
      last = error instanceof Error ? error.message : String(error);
    }
    if (!alive()) break;
    await sleep(2);
  }
  throw new Error(
    `${spawned.command.join(" ")} did not serve GET / (${last})\n` +
      spawned.lines.slice(-20).join("\n"),
  );
}

/**
 * Stops every server process: `ask()` with the live pids, then waits up to
 * `graceMs` for all to exit, then SIGKILLs the rest. Returns the killed pids.
 */
async function stopAll(
  graceMs: number,
  ask: (pids: number[]) => void,
): Promise<number[]> {
  ask(serverPids());
  await waitUntil(() => serverPids().length === 0, graceMs, 20);
  const left = serverPids();
  for (const pid of left) signalPid(pid, "SIGKILL");
  await waitUntil(() => serverPids().length === 0, 5_000, 20);
  return left;
}
