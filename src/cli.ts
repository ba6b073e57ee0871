/**
 * The command line: `deno run -A mod.ts [APP.ts] [options]`.
 *
 * Without APP.ts it serves the demo app; with it, the module's default export
 * `{ fetch }` (the `deno serve` convention). Under socket activation no flags
 * are needed: the inherited sockets are used.
 *
 * @module
 */

import {
  configure,
  getAnsiColorFormatter,
  getConsoleSink,
  getJsonLinesFormatter,
  getTextFormatter,
  type LogLevel,
  type LogRecord,
} from "@logtape/logtape";
import {
  afterHandover,
  processStatus,
  releaseProcess,
  restartProcess,
  serverCount,
} from "./supervisor.ts";
import type { Watcher } from "./watch.ts";
import { statusPath } from "./pidfile.ts";
import { logger } from "./log.ts";
import { dirname, isAbsolute, resolve } from "node:path";
import { pathToFileURL } from "node:url";
import { parseArgs } from "./args.ts";
import { COMMANDS } from "./cli_commands.ts";
import { inheritedFds } from "./listeners.ts";
import { demoHandler } from "./demo.ts";
import { type EngineName, serveGraceful } from "./server.ts";
import type { GracefulHandler } from "./types.ts";
import { assertDenoVersion } from "./version.ts";
import { trace } from "./trace.ts";
import { DEFAULT_RESTART_SIGNALS } from "./signals.ts";
import { supervisedWorkers } from "./workers/mode.ts";
import { isWorker } from "./workers/worker.ts";
import denoJson from "../deno.json" with { type: "json" };

/** The CLI's default port, when nothing is inherited and none is given. */
export const DEFAULT_PORT = 8199;

const OPTIONS = {
  port: { type: "string", short: "p" },
  hostname: { type: "string" },
  listen: { type: "string", multiple: true },
  engine: { type: "string" },
  name: { type: "string" },
  "drain-timeout": { type: "string" },
  "start-timeout": { type: "string" },
  "restart-signal": { type: "string", multiple: true },
  "log-level": { type: "string" },
  "json-logs": { type: "boolean" },
  pidfile: { type: "string" },
  watch: { type: "boolean" },
  workers: { type: "string" },
  health: { type: "string" },
  "shutdown-delay": { type: "string" },
  admin: { type: "string" },
  "admin-token": { type: "string" },
  cert: { type: "string" },
  key: { type: "string" },
  help: { type: "boolean", short: "h" },
  version: { type: "boolean", short: "V" },
} as const;

const HELP = `serveGraceful ${denoJson.version}: zero-downtime Deno HTTP serving

Usage:
  deno run -A mod.ts [APP.ts] [options]
  deno run -A mod.ts reload|stop|status --pidfile F   (see reload --help)

  Without APP.ts, serves the demo: / says Hello!, /pid is the serving pid,
  /sleep?ms=N sleeps N ms (default 10000) and answers with its pid.
  APP.ts must \`export default { fetch(request, info) { ... } }\`.
  Under systemd socket activation (LISTEN_FDS) no options are needed.

Options:
  -p, --port N            port to open when no socket is inherited (default ${DEFAULT_PORT})
      --hostname H        hostname for --port (default 0.0.0.0)
      --listen ADDR       address to serve; repeatable: 127.0.0.1:8000,
                          [::1]:8001, :8002, unix:/run/app.sock
      --engine E          auto (default), native (Deno's HTTP engine) or node
      --name NAME         server name; claims inherited fds of that
                          LISTEN_FDNAMES name (default http)
      --drain-timeout MS  longest graceful shutdown before cutting (default 30000)
      --start-timeout MS  how long a new generation may take to be ready
                          (default 30000); then it is killed, the old one stays
      --restart-signal S  signal that restarts (repeatable; default SIGUSR1;
                          SIGUSR2 avoids Deno opening the inspector; "none")
      --log-level L       debug, info (default), warning, error
      --json-logs         log JSON lines (with pid and generation) instead of text
      --pidfile F         write F (and F.json, the status) once ready; rewritten
                          by every generation, removed on exit
      --watch             restart gracefully when a source file (.ts, .js,
                          .json, ...) under the app's directory changes
                          (in-flight requests survive; an edit that does not
                          start keeps the old version)
      --workers N|auto    run N worker processes (auto: one per CPU this
                          process may run on) under a supervisor that holds
                          the sockets and restarts them one by one (Linux)
      --health PATH       health check: 200 while serving, 503 once shutting
                          down (not during restarts)
      --shutdown-delay MS on SIGTERM, answer health 503 and keep accepting for
                          MS before draining (default 0)
      --admin[=PATH]      the admin page and API at PATH (default /debug/admin);
                          loopback clients only unless --admin-token is set
      --admin-token T     require "Authorization: Bearer T" for the admin API
      --cert F --key F    serve HTTPS with these PEM files (node engine)

Every option can also come from the environment, for unit files:
GRACEFUL_PORT, GRACEFUL_LISTEN (comma-separated), GRACEFUL_DRAIN_TIMEOUT,
GRACEFUL_ADMIN_TOKEN, ... (GRACEFUL_ + the option in upper case, - as _).
The command line wins.
  -h, --help              this help
  -V, --version           print the version

Signals: SIGTERM, SIGINT and SIGQUIT drain gracefully and exit 0.
SIGUSR1 restarts with zero downtime: the program is executed again with the
same sockets; the old process stops accepting once the new one is ready,
finishes its requests and exits. A new version that fails to start is killed
and the old one keeps serving.

Examples:
  deno run -A mod.ts                                # demo on :${DEFAULT_PORT}
  deno run -A mod.ts --listen 127.0.0.1:8080 --listen unix:/tmp/app.sock
  deno run -A mod.ts examples/app.ts --port 8080
  systemd-socket-activate -l 127.0.0.1:8080 deno run -A mod.ts
`;

/**
 * Runs the CLI; resolves to the exit status.
 *
 * @example
 * ```ts ignore
 * import { main } from "./cli.ts";
 * Deno.exit(await main(Deno.args));
 * ```
 */
export async function main(args: string[]): Promise<number> {
  const command = COMMANDS.find((c) => c === args[0]);
  if (command) {
    try {
      const { runCommand } = await import("./cli_commands.ts");
      return await runCommand(command, args.slice(1));
    } catch (error) {
      return fail(error);
    }
  }
  let parsed;
  try {
    assertDenoVersion();
    parsed = parseArgs(withEnvDefaults(normalizeAdminFlag(args)), OPTIONS);
  } catch (error) {
    return fail(error);
  }
  const values = parsed.values;
  if (values.help) {
    console.log(HELP);
    return 0;
  }
  if (values.version) {
    console.log(
      `serveGraceful ${denoJson.version} (deno ${Deno.version.deno})`,
    );
    return 0;
  }
  try {
    await setupLogging(
      String(values["log-level"] ?? "info"),
      values["json-logs"] === true,
    );
    trace("cli: logging configured");
    const workers = supervisedWorkers(values.workers as string | undefined);
    if (workers !== undefined) {
      // The supervisor loads no app code: the workers run this command line.
      const { runSupervisor } = await import("./workers/supervisor.ts");
      const pidfile = values.pidfile as string | undefined;
      const signals = parseSignals(
        values["restart-signal"] as string[] | undefined,
      );
      return await runSupervisor({
        workers,
        restartSignals: signals === false
          ? []
          : signals ?? DEFAULT_RESTART_SIGNALS,
        startTimeout: optionalMs(values, "start-timeout"),
        drainTimeout: optionalMs(values, "drain-timeout"),
        pidfile,
        onReady: values.watch
          ? (roll) =>
            startWatch(
              parsed.positionals[0],
              pidfile,
              Promise.resolve(),
              () => roll("watch"),
            )
          : undefined,
      });
    }
    const handler = parsed.positionals.length > 0
      ? await loadApp(parsed.positionals[0])
      : demoHandler;
    if (parsed.positionals.length > 1) {
      throw new TypeError(
        `unexpected argument "${parsed.positionals[1]}" (one APP.ts at most)`,
      );
    }
    // A main module that called serveGraceful itself: its servers run the
    // process (and end it).
    if (handler === undefined) return await new Promise<number>(() => {});
    const server = serveGraceful({
      name: values.name as string | undefined,
      port: values.port !== undefined
        ? parsePort(values.port as string)
        : values.listen || inheritedFds().length > 0
        ? undefined
        : DEFAULT_PORT,
      hostname: values.hostname as string | undefined,
      listen: values.listen as string[] | undefined,
      engine: parseEngine(values.engine as string | undefined),
      drainTimeout: values["drain-timeout"] === undefined
        ? undefined
        : parseMs("--drain-timeout", values["drain-timeout"] as string),
      startTimeout: values["start-timeout"] === undefined
        ? undefined
        : parseMs("--start-timeout", values["start-timeout"] as string),
      restartSignals: parseSignals(
        values["restart-signal"] as string[] | undefined,
      ),
      healthPath: values.health as string | undefined,
      shutdownDelay: values["shutdown-delay"] === undefined
        ? undefined
        : parseMs("--shutdown-delay", values["shutdown-delay"] as string),
      admin: values.admin === undefined ? undefined : {
        path: values.admin as string,
        token: values["admin-token"] as string | undefined,
      },
      cert: values.cert === undefined
        ? undefined
        : readPem("--cert", values.cert as string),
      key: values.key === undefined
        ? undefined
        : readPem("--key", values.key as string),
      pidfile: values.pidfile as string | undefined,
    }, handler);
    const watcher = values.watch && !isWorker()
      ? await startWatch(
        parsed.positionals[0],
        values.pidfile as string | undefined,
        server.ready,
        async () => {
          await restartProcess({ trigger: "watch" });
          watcher?.close();
        },
      )
      : undefined;
    await server.finished;
    watcher?.close();
    await afterHandover();
    releaseProcess();
    return 0;
  } catch (error) {
    return fail(error);
  }
}

/** Paths that are not sources or configuration, for --watch. */
const NOT_SOURCE =
  /^(?!.*\.(?:ts|tsx|mts|cts|js|jsx|mjs|cjs|json|jsonc|html|css|wasm|env)$)/;

/**
 * --watch: restart gracefully on changes under the app's directory (the
 * current directory for the demo). Every generation watches; the old one
 * stops when its restart has made a new one.
 */
async function startWatch(
  app: string | undefined,
  pidfile: string | undefined,
  ready: Promise<void>,
  restart: () => Promise<void>,
): Promise<Watcher> {
  await ready;
  const root = app === undefined ? Deno.cwd() : dirname(resolve(app));
  // Only sources and configuration count: a log file or a database written
  // under the app's directory must not restart the server (it would restart
  // on every line it logs).
  const ignore: (string | RegExp)[] = [/\.tmp$/, NOT_SOURCE];
  if (pidfile) ignore.push(resolve(pidfile), resolve(statusPath(pidfile)));
  const watchLog = logger("watch");
  const { watchAndRestart } = await import("./watch.ts");
  const watcher = watchAndRestart(root, {
    ignore,
    log(level, message) {
      // The message is data, not a template: paths may contain braces.
      if (level === "info") watchLog.info("{message}", { message });
      else if (level === "warn") watchLog.warn("{message}", { message });
      else watchLog.error("{message}", { message });
    },
  }, restart);
  return watcher;
}

/** `--admin` alone means the default path (parseArgs has no optional values). */
function normalizeAdminFlag(args: string[]): string[] {
  return args.map((arg) => arg === "--admin" ? "--admin=/debug/admin" : arg);
}

/**
 * Adds options from GRACEFUL_* environment variables that the command line
 * does not give (for unit files): GRACEFUL_DRAIN_TIMEOUT=5000 is
 * --drain-timeout 5000; repeatable options take comma-separated values;
 * flags take 1/true.
 */
function withEnvDefaults(args: string[]): string[] {
  const extra: string[] = [];
  for (const [name, spec] of Object.entries(OPTIONS)) {
    if (name === "help" || name === "version") continue;
    const variable = `GRACEFUL_${name.toUpperCase().replaceAll("-", "_")}`;
    const value = Deno.env.get(variable);
    if (value === undefined || value === "") continue;
    const given = args.some((a) =>
      a === `--${name}` || a.startsWith(`--${name}=`)
    );
    if (given) continue;
    if (spec.type === "boolean") {
      if (/^(1|true|yes)$/i.test(value)) extra.push(`--${name}`);
    } else if ("multiple" in spec && spec.multiple) {
      for (const item of value.split(",")) {
        extra.push(`--${name}=${item.trim()}`);
      }
    } else {
      extra.push(`--${name}=${value}`);
    }
  }
  // Before any positional APP.ts is fine: parseArgs takes options anywhere.
  return [...args, ...extra];
}

function readPem(flag: string, path: string): string {
  try {
    return Deno.readTextFileSync(path);
  } catch (error) {
    throw new Error(`${flag} ${path}: ${(error as Error).message}`);
  }
}

function fail(error: unknown): number {
  const message = error instanceof Error ? error.message : String(error);
  console.error(`error: ${message}`);
  return 1;
}

function parsePort(raw: string): number {
  const port = Number(raw);
  if (!/^\d+$/.test(raw) || port > 65535) {
    throw new TypeError(`--port "${raw}" is not a port number (0-65535)`);
  }
  return port;
}

function optionalMs(
  values: Record<string, unknown>,
  option: string,
): number | undefined {
  const raw = values[option];
  return raw === undefined ? undefined : parseMs(`--${option}`, String(raw));
}

function parseMs(flag: string, raw: string): number {
  const ms = Number(raw);
  if (!/^\d+$/.test(raw)) {
    throw new TypeError(`${flag} "${raw}" is not a number of milliseconds`);
  }
  return ms;
}

const SIGNALS = new Set([
  "SIGUSR1",
  "SIGUSR2",
  "SIGHUP",
  "SIGWINCH",
  "SIGTTIN",
  "SIGTTOU",
]);

function parseSignals(
  raw: string[] | undefined,
): Deno.Signal[] | false | undefined {
  if (raw === undefined) return undefined;
  if (raw.length === 1 && raw[0] === "none") return false;
  return raw.map((name) => {
    const signal = name.toUpperCase().startsWith("SIG")
      ? name.toUpperCase()
      : `SIG${name.toUpperCase()}`;
    if (!SIGNALS.has(signal)) {
      throw new TypeError(
        `--restart-signal "${name}" must be one of ${
          [...SIGNALS].join(", ")
        } or none`,
      );
    }
    return signal as Deno.Signal;
  });
}

function parseEngine(raw: string | undefined): EngineName | undefined {
  if (
    raw === undefined || raw === "auto" || raw === "native" || raw === "node"
  ) {
    return raw;
  }
  throw new TypeError(`--engine "${raw}" must be auto, native or node`);
}

async function loadApp(path: string): Promise<GracefulHandler | undefined> {
  const url = /^[a-z][a-z0-9+.-]*:/i.test(path) && !/^[a-z]:[\\/]/i.test(path)
    ? path
    : pathToFileURL(isAbsolute(path) ? path : resolve(path)).href;
  let mod;
  try {
    mod = await import(url);
  } catch (error) {
    const message = error instanceof Error ? error.message : String(error);
    throw new Error(`cannot load app module ${path}: ${message}`, {
      cause: error,
    });
  }
  const fetch = mod.default?.fetch;
  if (typeof fetch !== "function" && serverCount() > 0) return undefined;
  if (typeof fetch !== "function") {
    throw new TypeError(
      `app module ${path} must \`export default { fetch(request, info) {...} }\``,
    );
  }
  return fetch.bind(mod.default);
}

const LEVELS: Record<string, LogLevel> = {
  debug: "debug",
  info: "info",
  warning: "warning",
  warn: "warning",
  error: "error",
};

async function setupLogging(level: string, json: boolean): Promise<void> {
  const lowestLevel = LEVELS[level];
  if (!lowestLevel) {
    throw new TypeError(
      `--log-level "${level}" must be debug, info, warning or error`,
    );
  }
  const format = (values: {
    timestamp: string | null;
    level: string;
    category: string;
    message: string;
  }) => {
    const { generation } = processStatus();
    return `${values.timestamp} ${values.level} [pid ${Deno.pid} gen ${generation}] ${values.category}: ${values.message}`;
  };
  // Colour only for a person at a terminal, never in the journal or a file.
  const colour = Deno.stderr.isTerminal() && !Deno.env.get("NO_COLOR");
  const formatter = json
    ? jsonWithProcess()
    : colour
    ? getAnsiColorFormatter({ value: "bare", format })
    : getTextFormatter({ value: "bare", format });
  await configure({
    sinks: { console: getConsoleSink({ formatter }) },
    loggers: [
      { category: ["graceful"], lowestLevel, sinks: ["console"] },
      {
        category: ["logtape", "meta"],
        lowestLevel: "warning",
        sinks: ["console"],
      },
    ],
  });
}

/** JSON lines, with the pid and generation added to every record. */
function jsonWithProcess(): (record: LogRecord) => string {
  const json = getJsonLinesFormatter();
  return function format(record: LogRecord): string {
    const { generation } = processStatus();
    return json({
      ...record,
      properties: { pid: Deno.pid, generation, ...record.properties },
    });
  };
}
