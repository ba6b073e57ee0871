/**
 * The command line's options: their table and help text, defaults from
 * GRACEFUL_* environment variables, and the checks of their values (each
 * error names the option and quotes the value).
 *
 * @module
 */

import { quoteValue } from "../util/quote.ts";
import type { EngineName } from "../server/options.ts";
import denoJson from "../../deno.json" with { type: "json" };
import { errorMessage } from "../util/error_message.ts";

/** The CLI's default port, when nothing is inherited and none is given. */
export const DEFAULT_PORT = 8199;

/** The options, for parseArgs. */
export const OPTIONS = {
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

/** The text of --help. */
export const HELP =
  `serveGraceful ${denoJson.version}: zero-downtime Deno HTTP serving

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

/** `--admin` alone means the default path (parseArgs has no optional values). */
export function normalizeAdminFlag(args: string[]): string[] {
  return args.map((arg) => arg === "--admin" ? "--admin=/debug/admin" : arg);
}

/**
 * Adds options from GRACEFUL_* environment variables that the command line
 * does not give (for unit files): GRACEFUL_DRAIN_TIMEOUT=5000 is
 * --drain-timeout 5000; repeatable options take comma-separated values;
 * flags take 1/true.
 */
export function withEnvDefaults(args: string[]): string[] {
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

/** The contents of a PEM file named by `flag`. */
export function readPem(flag: string, path: string): string {
  try {
    return Deno.readTextFileSync(path);
  } catch (error) {
    throw new Error(`${flag} ${path}: ${errorMessage(error)}`);
  }
}

/** The value of --port. */
export function parsePort(raw: string): number {
  const port = Number(raw);
  if (!/^\d+$/.test(raw) || port > 65535) {
    throw new TypeError(
      `--port ${quoteValue(raw)} is not a port number (0-65535)`,
    );
  }
  return port;
}

/** The milliseconds of `--option`, when given. */
export function optionalMs(
  values: Record<string, unknown>,
  option: string,
): number | undefined {
  const raw = values[option];
  return raw === undefined ? undefined : parseMs(`--${option}`, String(raw));
}

/** A number of milliseconds given to `flag`. */
export function parseMs(flag: string, raw: string): number {
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

/** The signals of --restart-signal: undefined when not given, false for "none". */
export function parseSignals(
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

/** The value of --engine. */
export function parseEngine(raw: string | undefined): EngineName | undefined {
  if (
    raw === undefined || raw === "auto" || raw === "native" || raw === "node"
  ) {
    return raw;
  }
  throw new TypeError(`--engine "${raw}" must be auto, native or node`);
}
