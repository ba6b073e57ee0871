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
  afterHandover,
  processStatus,
  releaseProcess,
  restartProcess,
  serverCount,
} from "../restart/generation.ts";
import type { Watcher } from "./watch.ts";
import { checkPidfileDir, statusPath } from "../restart/pidfile.ts";
import {
  loadLogging,
  logger,
  type LogLevel,
  type LogRecord,
  logTape,
} from "../util/log.ts";
import { dirname, isAbsolute, resolve } from "node:path";
import { pathToFileURL } from "node:url";
import { parseArgs } from "./args.ts";
import { quoteValue } from "../util/quote.ts";
import { COMMANDS } from "./commands.ts";
import { inheritedFds } from "../listen/registry.ts";
import { startInspectorGuard } from "../server/inspector_guard.ts";
import { demoHandler } from "./demo.ts";
import { type EngineName, serveGraceful } from "../server/serve.ts";
import type { GracefulHandler } from "../listen/types.ts";
import { assertDenoVersion } from "../os/deno_version.ts";
import { serveUnderAppConfig } from "./app_config.ts";
import { trace } from "../restart/trace.ts";
import { setPortable } from "../os/platform.ts";
import { watchPidfile } from "./watch_keeper.ts";
import { resolveSignals } from "../restart/signals.ts";
import { supervisedWorkers } from "../workers/mode.ts";
import { isWorker } from "../workers/worker.ts";
import denoJson from "../../deno.json" with { type: "json" };

/** The CLI's default port, when nothing is inherited and none is given. */
export const DEFAULT_PORT = 8199;

const OPTIONS = {
  port: { type: "string", short: "p" },
  hostname: { type: "string" },
  listen: { type: "string", multiple: true },
  engine: { type: "string" },
  portable: { type: "string" },
  name: { type: "string" },
  "drain-timeout": { type: "string" },
  "start-timeout": { type: "string" },
  "restart-signal": { type: "string", multiple: true },
  "no-inspector-guard": { type: "boolean" },
  "log-level": { type: "string" },
  "json-logs": { type: "boolean" },
  pidfile: { type: "string" },
  watch: { type: "boolean" },
  workers: { type: "string" },
  health: { type: "string" },
  "shutdown-delay": { type: "string" },
  admin: { type: "string" },
  "admin-token": { type: "string" },
  "admin-token-file": { type: "string" },
  "admin-listen": { type: "string" },
  config: { type: "string", short: "c" },
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
  APP.ts must \`export default { fetch(request, info) { ... } }\`; it is
  served under its own deno.json or package.json (the nearest one).
  Under systemd socket activation (LISTEN_FDS) no options are needed.

Options:
  -p, --port N            port to open when no socket is inherited (default ${DEFAULT_PORT})
      --hostname H        hostname for --port (default 0.0.0.0)
      --listen ADDR       address to serve; repeatable: 127.0.0.1:8000,
                          [::1]:8001, :8002, unix:/run/app.sock
      --engine E          auto (default), native (Deno's HTTP engine) or node
      --portable MODE     run the posix (macOS) or windows path on Linux
                          (sets GRACEFUL_PORTABLE; see the README's Platforms)
      --name NAME         server name; claims inherited fds of that
                          LISTEN_FDNAMES name (default http)
      --drain-timeout MS  longest graceful shutdown before cutting (default 30000)
      --start-timeout MS  how long a new generation may take to be ready
                          (default 30000); then it is killed, the old one stays
      --restart-signal S  signal that restarts (repeatable; default SIGUSR2,
                          SIGUSR1, and SIGHUP without a terminal; "none");
                          others of these three are logged and ignored
      --no-inspector-guard  do not hold 127.0.0.1:9229 (then a SIGUSR1 opens
                          Deno's V8 inspector there: for debugging only)
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
                          without a token, only on a listener of its own: a
                          unix socket (0600) in $XDG_RUNTIME_DIR/serve-graceful,
                          $RUNTIME_DIRECTORY/serve-graceful (systemd) or
                          /tmp/serve-graceful-UID (see the log, or status)
      --admin-listen ADDR the admin API's own listener: unix:PATH, or without
                          a token 127.0.0.1:PORT; with a token and no
                          --admin-listen, the admin is on the app's listeners
      --admin-token T     require "Authorization: Bearer T" for the admin API
                          (warns: a command line is readable by every user;
                          later generations never get it in theirs)
      --admin-token-file F  the same, the token read from F (chmod 600) by
                          every generation as it starts
      --cert F --key F    serve HTTPS with these PEM files (HTTP/2 by ALPN)
  -c, --config F          serve APP.ts under this deno.json, deno.jsonc or
                          package.json (default: the one nearest to APP.ts)

Every option can also come from the environment, for unit files:
GRACEFUL_PORT, GRACEFUL_LISTEN (comma-separated), GRACEFUL_DRAIN_TIMEOUT,
GRACEFUL_ADMIN_TOKEN, ... (GRACEFUL_ + the option in upper case, - as _).
The command line wins.
  -h, --help              this help
  -V, --version           print the version

Signals: SIGTERM, SIGINT and SIGQUIT drain gracefully and exit 0; so does
SIGHUP in a terminal (it closed). SIGUSR2 (also SIGUSR1, and SIGHUP without a
terminal) restarts with zero downtime: the program is executed again with the
same sockets; the old process stops accepting once the new one is ready,
finishes its requests and exits. A new version that fails to start is killed
and the old one keeps serving. SIGHUP ignored from the start (nohup) stays so.

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
 * import { main } from "./main.ts";
 * Deno.exit(await main(Deno.args));
 * ```
 */
export async function main(args: string[]): Promise<number> {
  const command = COMMANDS.find((c) => c === args[0]);
  if (command) {
    try {
      const { runCommand } = await import("./commands.ts");
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
  try {
    if (values.portable !== undefined) setPortable(values.portable as string);
  } catch (error) {
    return fail(error);
  }
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
    // First of all, before logging or any socket: this may run the process
    // again under the app's own deno.json or package.json (app_config.ts).
    serveUnderAppConfig(
      parsed.positionals[0],
      values.config as string | undefined,
    );
    await setupLogging(
      String(values["log-level"] ?? "info"),
      values["json-logs"] === true,
    );
    trace("cli: logging configured");
    const workers = supervisedWorkers(values.workers as string | undefined);
    // --watch in a terminal without a supervisor (which keeps the terminal
    // itself): a pidfile that the first process follows.
    const pidfile = workers === undefined
      ? watchPidfile(
        values.watch === true,
        values.pidfile as string | undefined,
      )
      : values.pidfile as string | undefined;
    if (pidfile !== undefined) checkPidfileDir(pidfile);
    // Before the app loads, which may take longer than the half second after
    // which Deno opens its inspector on SIGUSR1; after LISTEN_FDS is read, so
    // that the guard's socket cannot take the number of an fd it names.
    inheritedFds();
    startInspectorGuard(values["no-inspector-guard"] !== true);
    if (workers !== undefined) {
      // The supervisor loads no app code: the workers run this command line.
      const { runSupervisor } = await import("../workers/supervisor.ts");
      const signals = parseSignals(
        values["restart-signal"] as string[] | undefined,
      );
      return await runSupervisor({
        workers,
        restartSignals: resolveSignals({ restartSignals: signals }).restart,
        admin: values.admin !== undefined,
        // Read here once, handed to each worker over its control channel.
        adminToken: values.admin === undefined
          ? undefined
          : await adminTokenOf(args, values),
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
    const adminToken = values.admin === undefined
      ? undefined
      : await adminTokenOf(args, values);
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
      inspectorGuard: values["no-inspector-guard"] !== true,
      healthPath: values.health as string | undefined,
      shutdownDelay: values["shutdown-delay"] === undefined
        ? undefined
        : parseMs("--shutdown-delay", values["shutdown-delay"] as string),
      admin: values.admin === undefined ? undefined : {
        path: values.admin as string,
        token: adminToken,
        listen: values["admin-listen"] as string | undefined,
      },
      cert: values.cert === undefined
        ? undefined
        : readPem("--cert", values.cert as string),
      key: values.key === undefined
        ? undefined
        : readPem("--key", values.key as string),
      pidfile,
    }, handler);
    const watcher = values.watch && !isWorker()
      ? await startWatch(
        parsed.positionals[0],
        pidfile,
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

/**
 * The admin token (src/server/admin_token.ts). A later generation may wait here for
 * the previous one's state; the inherited fds are read first, so that the
 * control connection cannot take the number of an fd LISTEN_FDS names.
 */
async function adminTokenOf(
  args: string[],
  values: Record<string, unknown>,
): Promise<string | undefined> {
  inheritedFds();
  const { resolveAdminToken } = await import("../server/admin_token.ts");
  const cliLog = logger("cli");
  return await resolveAdminToken({
    token: values["admin-token"] as string | undefined,
    onCommandLine: args.some((arg) =>
      arg === "--admin-token" || arg.startsWith("--admin-token=")
    ),
    file: values["admin-token-file"] as string | undefined,
    warn: (message) => cliLog.warn("{message}", { message }),
  });
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
    throw new TypeError(
      `--port ${quoteValue(raw)} is not a port number (0-65535)`,
    );
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
    throw new TypeError(
      `${flag} ${quoteValue(raw)} is not a number of milliseconds`,
    );
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
  const logtape = await logTape();
  // Colour only for a person at a terminal, never in the journal or a file.
  const colour = Deno.stderr.isTerminal() && !Deno.env.get("NO_COLOR");
  const formatter = json
    ? jsonWithProcess(logtape.getJsonLinesFormatter())
    : colour
    ? logtape.getAnsiColorFormatter({ value: "bare", format })
    : logtape.getTextFormatter({ value: "bare", format });
  await logtape.configure({
    sinks: { console: logtape.getConsoleSink({ formatter }) },
    loggers: [
      { category: ["graceful"], lowestLevel, sinks: ["console"] },
      {
        category: ["logtape", "meta"],
        lowestLevel: "warning",
        sinks: ["console"],
      },
    ],
  });
  // LogTape is loaded already: records need not wait for a server to serve
  // (the workers' supervisor serves nothing itself).
  await loadLogging();
}

/** JSON lines, with the pid and generation added to every record. */
function jsonWithProcess(
  json: (record: LogRecord) => string,
): (record: LogRecord) => string {
  return function format(record: LogRecord): string {
    const { generation } = processStatus();
    return json({
      ...record,
      properties: { pid: Deno.pid, generation, ...record.properties },
    });
  };
}
