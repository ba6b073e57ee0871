/**
 * The command line: `deno run -A mod.ts [APP.ts] [options]`.
 *
 * Without APP.ts it serves the demo app; with it, the module's default export
 * `{ fetch }` (the `deno serve` convention). Under socket activation no flags
 * are needed: the inherited sockets are used.
 *
 * @module
 */

import { afterHandover, restartProcess } from "../restart/generation.ts";
import { releaseProcess, serverCount } from "../restart/process_state.ts";
import type { Watcher } from "./watch.ts";
import { checkPidfileDir, statusPath } from "../restart/pidfile.ts";
import { logger } from "../util/log.ts";
import { errorMessage } from "../util/error_message.ts";
import { dirname, isAbsolute, resolve } from "node:path";
import { pathToFileURL } from "node:url";
import { parseArgs } from "./args.ts";
import { COMMANDS } from "./commands.ts";
import { inheritedFds } from "../listen/registry.ts";
import { startInspectorGuard } from "../server/inspector_guard.ts";
import { demoHandler } from "./demo.ts";
import { serveGraceful } from "../server/serve.ts";
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
import {
  DEFAULT_PORT,
  HELP,
  normalizeAdminFlag,
  optionalMs,
  OPTIONS,
  parseEngine,
  parseMs,
  parsePort,
  parseSignals,
  readPem,
  withEnvDefaults,
} from "./options.ts";
import { setupLogging } from "./logging.ts";

/**
 * Runs the CLI; resolves to the exit status.
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

function fail(error: unknown): number {
  const message = errorMessage(error);
  console.error(`error: ${message}`);
  return 1;
}

async function loadApp(path: string): Promise<GracefulHandler | undefined> {
  const url = /^[a-z][a-z0-9+.-]*:/i.test(path) && !/^[a-z]:[\\/]/i.test(path)
    ? path
    : pathToFileURL(isAbsolute(path) ? path : resolve(path)).href;
  let mod;
  try {
    mod = await import(url);
  } catch (error) {
    const message = errorMessage(error);
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
