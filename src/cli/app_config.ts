/**
 * Serving an app under its own configuration: `deno run -A mod.ts APP.ts`
 * from an app that has its own deno.json, deno.jsonc or package.json.
 *
 * Deno reads one configuration per process, at start-up, found from the main
 * module's directory (here: this module's, not the app's), and one process
 * has one import map. So when the configuration nearest to APP.ts is not the
 * active one, the CLI re-executes itself once, before it does anything else,
 * with `--config APP_CONFIG` added to Deno's flags (for a package.json app:
 * `--no-config --node-modules-dir=manual`, which resolves its packages from
 * its node_modules, as `deno serve` does).
 *
 * The re-execution is execve(2), in place: the same pid, environment and
 * inherited fds. So LISTEN_PID still names this process (the sockets are
 * taken only after it), systemd's MAINPID and NotifyAccess=main are
 * unchanged, the exit status is the new program's, and the pidfile is
 * written by it, once it serves. Later generations are started from
 * /proc/self/cmdline, which now has the flag: they run under the same
 * configuration and are not re-executed again. The CLI's `--config F`
 * chooses F instead of the nearest; a Deno `--config` or `--no-config` given
 * by the user is their choice and is kept as it is.
 *
 * @module
 */

import { basename, dirname, join, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import { currentCommand } from "../restart/command_line.ts";
import { findMainModuleIndex } from "../restart/deno_args.ts";
import { execInPlace } from "../os/spawn.ts";
import { errorMessage } from "../util/error_message.ts";

/** The configuration files Deno finds, in its order within one directory. */
const CONFIG_NAMES = ["deno.json", "deno.jsonc", "package.json"];

/** The npm package the module itself imports (see log.ts). */
const OWN_NPM_PACKAGE = "@logtape/logtape";

/** What the CLI must do before it serves an app. */
export type AppConfigPlan =
  | { action: "serve" }
  | { action: "reexec"; config: string; args: string[] };

/** The inputs of {@linkcode planAppConfig}, from the process or from a test. */
export interface AppConfigInput {
  /** Deno's arguments (argv without argv[0]), e.g. `["run", "-A", "mod.ts", "app.ts"]`. */
  args: string[];
  /** The APP.ts argument as given. */
  app: string;
  /** The CLI's `--config`, when given: the app's configuration file. */
  config?: string;
  /** The working directory. */
  cwd: string;
  /** `Deno.mainModule`. */
  mainModule: string;
  /** Whether a path is a file or a directory. */
  exists: (path: string) => boolean;
  /** The parsed JSON of a configuration file, or undefined (unreadable, JSONC). */
  readJson?: (path: string) => unknown;
}

/**
 * Decides whether the app needs a re-execution under its configuration, and
 * with which arguments.
 *
 * @throws {Error} For a package.json app whose node_modules are missing (the
 * message names the directory).
 */
export function planAppConfig(input: AppConfigInput): AppConfigPlan {
  const { args, app, config, cwd, exists } = input;
  const main = findMainModuleIndex(args);
  if (main < 0 || configFlags(args.slice(0, main)).given) {
    return { action: "serve" };
  }
  if (config !== undefined && !exists(resolve(cwd, config))) {
    throw new Error(`--config ${config}: no such file`);
  }
  const wanted = config !== undefined
    ? resolve(cwd, config)
    : /^[a-z][a-z0-9+.-]+:/i.test(app)
    ? undefined
    : nearestConfig(dirname(resolve(cwd, app)), exists);
  if (wanted === undefined) return { action: "serve" };
  const active = input.mainModule.startsWith("file:")
    ? nearestConfig(dirname(fileURLToPath(input.mainModule)), exists)
    : undefined;
  if (wanted === active) return { action: "serve" };
  if (active && isMember(dirname(wanted), active, input.readJson)) {
    // A member of the active workspace: its import map already applies.
    return { action: "serve" };
  }
  const insert = basename(wanted) === "package.json"
    ? packageJsonFlags(dirname(wanted), cwd, exists)
    : ["--config", wanted];
  return {
    action: "reexec",
    config: wanted,
    args: [...args.slice(0, main), ...insert, ...args.slice(main)],
  };
}

/**
 * Re-executes this process under `config` (the CLI's `--config`), or else
 * the configuration nearest to `app`, when that is not the active one (see
 * the module's header); returns when there is nothing to do. A compiled
 * binary has its configuration built in.
 *
 * @throws {Error} When the app's node_modules are missing, or execve fails.
 */
export function serveUnderAppConfig(
  app: string | undefined,
  config?: string,
): void {
  if (app === undefined) {
    if (config === undefined) return;
    throw new TypeError(`--config ${config} is for an APP.ts: give one`);
  }
  if (Deno.build.standalone) return;
  const plan = (args: string[]) =>
    planAppConfig({
      args,
      app,
      config,
      cwd: Deno.cwd(),
      mainModule: Deno.mainModule,
      exists,
      readJson,
    });
  // Deno's flags are only in /proc/self/cmdline, which needs -A: first see
  // whether anything is to be done at all.
  const first = plan(["run", Deno.mainModule, app]);
  if (first.action === "serve") return;
  try {
    const { execPath, args } = currentCommand();
    const next = plan(args);
    if (next.action === "serve") return;
    execInPlace(execPath, [execPath, ...next.args], Deno.env.toObject());
  } catch (error) {
    const message = errorMessage(error);
    throw new Error(
      `cannot run again under ${first.config}, the configuration of ${app}: ` +
        `${message} (or pass Deno's --config yourself)`,
      { cause: error },
    );
  }
}

/**
 * The configuration file nearest to `dir`: the first of deno.json,
 * deno.jsonc and package.json in `dir` or the closest directory above it.
 */
export function nearestConfig(
  dir: string,
  exists: (path: string) => boolean,
): string | undefined {
  for (let at = dir;; at = dirname(at)) {
    for (const name of CONFIG_NAMES) {
      const path = join(at, name);
      if (exists(path)) return path;
    }
    if (dirname(at) === at) return undefined;
  }
}

/**
 * Whether Deno's own flags (those before the main module) choose the
 * configuration: `--config F`, `--config=F`, `-c F`, `-cF` or `--no-config`.
 */
function configFlags(flags: string[]): { given: boolean } {
  const given = flags.some((flag) =>
    flag === "--no-config" || flag === "--config" ||
    flag.startsWith("--config=") || /^-c/.test(flag)
  );
  return { given };
}

/**
 * Deno's flags for a package.json app in `dir`: its packages come from its
 * node_modules (Deno's "manual" mode, as with `deno serve`). Deno looks for
 * npm: packages (this module's own one too) in the working directory's
 * node_modules when no configuration file is active, so the app is served
 * from its directory.
 */
function packageJsonFlags(
  dir: string,
  cwd: string,
  exists: (path: string) => boolean,
): string[] {
  const modules = join(dir, "node_modules");
  const app = join(dir, "package.json");
  if (!exists(modules)) {
    throw new Error(
      `${modules} is missing: install the packages of ${app} first ` +
        `(npm install in ${dir}; serveGraceful installs nothing)`,
    );
  }
  if (resolve(cwd) !== dir) {
    throw new Error(
      `serve the package.json app ${app} from its directory (cd ${dir}): ` +
        `Deno finds npm packages in the working directory's node_modules`,
    );
  }
  if (!exists(join(modules, OWN_NPM_PACKAGE))) {
    throw new Error(
      `${modules} has no ${OWN_NPM_PACKAGE}, which serveGraceful imports: ` +
        `add it to ${app} (npm install ${OWN_NPM_PACKAGE} in ${dir})`,
    );
  }
  return ["--no-config", "--node-modules-dir=manual"];
}

/**
 * Whether `dir` is a member of the workspace whose root configuration is
 * `root` (its "workspace" lists the directory, or "parent/*" above it).
 */
function isMember(
  dir: string,
  root: string,
  read: ((path: string) => unknown) | undefined,
): boolean {
  const config = read?.(root) as { workspace?: unknown } | undefined;
  const members = Array.isArray(config?.workspace) ? config.workspace : [];
  const base = dirname(root);
  return members.some((member) =>
    typeof member === "string" &&
    (resolve(base, member) === dir ||
      (member.endsWith("/*") &&
        resolve(base, member.slice(0, -2)) === dirname(dir)))
  );
}

function readJson(path: string): unknown {
  try {
    return JSON.parse(Deno.readTextFileSync(path));
  } catch {
    return undefined;
  }
}

function exists(path: string): boolean {
  try {
    Deno.statSync(path);
    return true;
  } catch {
    return false;
  }
}
