/**
 * Starting the next generation of this program: the command line that started
 * this process, the same command line with another entry or executable, and a
 * child process that inherits listening sockets as fds 3, 4, ... with
 * `LISTEN_PID`, `LISTEN_FDS` and `LISTEN_FDNAMES` (sd_listen_fds(3)).
 *
 * Linux only: it reads `/proc`, and it calls fcntl(2) through FFI
 * (`../os/libc.ts`). Needs `--allow-all` (Deno requires it for `/proc/self`).
 *
 * @module
 */

import { type ChildProcess, spawn } from "node:child_process";
import { closeFd, ensureNonBlocking } from "../os/fd.ts";
import { libc, libcUnavailableReason } from "../os/libc.ts";
import {
  endedChild,
  loadSpawnCalls,
  reapChild,
  spawnInNewSession,
} from "../os/spawn.ts";
import { commandLineWithoutProc, isLinuxMode } from "../os/platform.ts";
import { libcConstants, LISTEN_FDS_START } from "../os/constants.ts";

/** fcntl(2) commands and flags (Linux). */
const { F_GETFD, F_SETFD, FD_CLOEXEC, F_DUPFD_CLOEXEC } = libcConstants;

/**
 * What the child runs: `/bin/sh -c SCRIPT sh EXECPATH ARGS...`. The shell
 * puts its own pid (which `exec` keeps) in LISTEN_PID and replaces itself
 * with the program.
 *
 * It also unsets DENO_EXTRA_STDIO_FDS, which Deno's child_process sets to the
 * extra stdio fds ("3,4"): a Deno child seeing it keeps a hidden dup of each
 * of those fds for its whole life, so that a listening socket would stay
 * open (clients queued, not refused) after the child closes its listener.
 */
const CHILD_SCRIPT = 'unset DENO_EXTRA_STDIO_FDS; LISTEN_PID=$$ exec "$@"';

/**
 * The same, with SIGHUP ignored across the exec (posix_spawn resets every
 * signal), for a process that started with it ignored (nohup).
 */
const CHILD_SCRIPT_NOHUP = `trap '' HUP; ${CHILD_SCRIPT}`;

/** The variable that names the inspector guard's fd in the child. */
const INSPECTOR_GUARD_ENV = "GRACEFUL_INSPECTOR_FD";

/** What Linux appends to the /proc/self/exe link of a replaced executable. */
const DELETED_SUFFIX = " (deleted)";

/**
 * The `deno` subcommands that run a script, whose first positional argument
 * is the main module.
 */
const RUN_SUBCOMMANDS: ReadonlySet<string> = new Set(["run", "watch"]);

/**
 * The other `deno` subcommands (Deno 2.9), with their aliases. Without a
 * subcommand (`deno main.ts`), deno runs the script.
 */
const OTHER_SUBCOMMANDS: ReadonlySet<string> = new Set([
  "add",
  "approve-builds",
  "approve-scripts",
  "audit",
  "bench",
  "bump-version",
  "bundle",
  "cache",
  "check",
  "ci",
  "clean",
  "compile",
  "completions",
  "coverage",
  "create",
  "deploy",
  "desktop",
  "doc",
  "eval",
  "fmt",
  "help",
  "i",
  "info",
  "init",
  "install",
  "json_reference",
  "jupyter",
  "lint",
  "list",
  "lsp",
  "outdated",
  "pack",
  "publish",
  "remove",
  "repl",
  "rm",
  "sandbox",
  "serve",
  "task",
  "test",
  "transpile",
  "types",
  "uninstall",
  "update",
  "upgrade",
  "vendor",
  "why",
  "x",
]);

/**
 * Long flags of `deno run` (and deno's global flags) whose value may be the
 * next argument (`--config deno.json`) as well as attached (`--config=x`).
 * Taken from Deno 2.9's flag definitions and checked against `deno` itself
 * (spawn_test.ts). Every other long flag either takes no value or takes it
 * only with "=" (`--env-file=.env`, `--v8-flags=...`, `--allow-read=/tmp`):
 * `deno run --env-file main.ts` runs main.ts.
 */
const LONG_FLAGS_WITH_VALUE: ReadonlySet<string> = new Set([
  "--cert",
  "--conditions",
  "--config",
  "--cpu-prof-dir",
  "--cpu-prof-interval",
  "--cpu-prof-name",
  "--ext",
  "--import",
  "--import-map",
  "--importmap",
  "--inspect-publish-uid",
  "--linker",
  "--location",
  "--log-level",
  "--min-dep-age",
  "--minimum-dependency-age",
  "--node-modules-linker",
  "--preload",
  "--require",
  "--seed",
]);

/**
 * Long flags whose value is optional and, when not attached with "=", is the
 * next argument unless that starts with "-": `--lock deno.lock main.ts`, but
 * `--lock -A main.ts`.
 */
const LONG_FLAGS_WITH_OPTIONAL_VALUE: ReadonlySet<string> = new Set([
  "--lock",
]);

/**
 * Short flags that take a value: the rest of their cluster (`-cdeno.json`,
 * `-Ac deno.json` takes the next argument) or the next argument (`-c x`).
 * The other short flags take no value, or an optional one after "="
 * (`-R=/tmp`).
 */
const SHORT_FLAGS_WITH_VALUE: ReadonlySet<string> = new Set(["c", "L"]);

/**
 * The command line that started this process.
 *
 * @example
 * ```ts
 * import type { CurrentCommand } from "./spawn.ts";
 *
 * const command: CurrentCommand = {
 *   execPath: "/usr/bin/deno",
 *   args: ["run", "-A", "main.ts"],
 *   compiled: false,
 * };
 * ```
 */
export interface CurrentCommand {
  /** The executable to run: the deno binary, or the compiled program. */
  execPath: string;
  /** Its arguments, without argv[0]. */
  args: string[];
  /** Whether this process is a `deno compile` binary (`Deno.build.standalone`). */
  compiled: boolean;
}

/**
 * A command line to start: an executable and its arguments.
 *
 * @example
 * ```ts
 * import type { Command } from "./spawn.ts";
 *
 * const command: Command = { execPath: "/usr/bin/deno", args: ["run", "-A", "v2.ts"] };
 * ```
 */
export interface Command {
  /** The executable. */
  execPath: string;
  /** Its arguments, without argv[0]. */
  args: string[];
}

/**
 * What {@linkcode buildCommand} changes in the current command line.
 *
 * @example
 * ```ts
 * import type { CommandOverrides } from "./spawn.ts";
 *
 * const overrides: CommandOverrides = { entry: "releases/v2/main.ts" };
 * ```
 */
export interface CommandOverrides {
  /** Another executable (a new deno, or a new compiled binary). */
  execPath?: string;
  /**
   * Another main module for a `deno run` command line, as deno will read it
   * (relative to the child's working directory, or a URL).
   */
  entry?: string;
}

/**
 * A file descriptor to pass to the child, and its LISTEN_FDNAMES name.
 *
 * @example
 * ```ts
 * import type { PassedFd } from "./spawn.ts";
 *
 * const passed: PassedFd = { fd: 12, name: "http" };
 * ```
 */
export interface PassedFd {
  /** The fd in this process. The child gets it as 3, 4, ... in list order. */
  fd: number;
  /** Its name; no ":" (it separates the names in LISTEN_FDNAMES). */
  name: string;
}

/**
 * Options of {@linkcode spawnGeneration}.
 *
 * @example
 * ```ts
 * import type { SpawnGenerationOptions } from "./spawn.ts";
 *
 * const options: SpawnGenerationOptions = {
 *   execPath: Deno.execPath(),
 *   args: ["run", "-A", "main.ts"],
 *   fds: [{ fd: 12, name: "http" }],
 *   env: { GENERATION: "2" },
 * };
 * ```
 */
export interface SpawnGenerationOptions {
  /** The executable: a path, or a name looked up in PATH. */
  execPath: string;
  /** Its arguments, without argv[0]. */
  args: string[];
  /** The fds to pass; the child gets them as 3, 4, ... in this order. */
  fds: PassedFd[];
  /**
   * Variables to set on top of this process's environment. LISTEN_PID,
   * LISTEN_FDS and LISTEN_FDNAMES are always set by spawnGeneration.
   */
  env: Record<string, string>;
  /** The child's working directory. Default: this process's. */
  cwd?: string;
  /** Variables of this process's environment the child does not get. */
  unsetEnv?: string[];
  /**
   * The caller reaps the child (a supervisor that signals a child's group
   * before reaping it, so that a reused pid is never hit): posix_spawn only,
   * and `exited` never resolves.
   */
  callerReaps?: boolean;
  /**
   * The inspector guard's fd: passed just after the LISTEN_FDS range (in no
   * count, so that no server and no other sd_listen_fds(3) program takes
   * it), named by GRACEFUL_INSPECTOR_FD.
   */
  inspectorGuard?: number;
  /** Start the child with SIGHUP ignored (this process started so: nohup). */
  ignoreHangup?: boolean;
}

/**
 * How a generation ended: its exit code, or the signal that killed it.
 *
 * @example
 * ```ts
 * import type { GenerationExit } from "./spawn.ts";
 *
 * const killed: GenerationExit = { code: null, signal: "SIGKILL" };
 * ```
 */
export interface GenerationExit {
  /** The exit status, or null when a signal ended it. */
  code: number | null;
  /** The signal that ended it, or null when it exited. */
  signal: string | null;
}

/**
 * A spawned generation: a child process in its own process group.
 *
 * @example
 * ```ts ignore
 * const generation: Generation = spawnGeneration(options);
 * const { code, signal } = await generation.exited;
 * ```
 */
export interface Generation {
  /** The child's pid, which is also its process group id. */
  pid: number;
  /**
   * Resolves when the child has exited and been reaped; it never rejects.
   * While unref()'d, it resolves only if this process is still running.
   */
  exited: Promise<GenerationExit>;
  /**
   * Sends `signal` (default SIGKILL) to the child's whole process group, so
   * that what it started dies with it. Does nothing once the child is reaped
   * (its pid, and so the group id, may then belong to another process).
   */
  killGroup(signal?: Deno.Signal): void;
  /** Lets this process exit without waiting for the child, which keeps running. */
  unref(): void;
}

/**
 * Returns the command line that started this process, read from
 * /proc/self/cmdline (`process.execArgv` is empty in Deno).
 *
 * For `deno run -A main.ts a b` it is `Deno.execPath()` and
 * `["run", "-A", "main.ts", "a", "b"]`. For a `deno compile` binary it is the
 * binary and its arguments (the ones baked in at compile time are not
 * repeated). A compiled binary is recognized by `Deno.build.standalone`,
 * which the runtime sets for them (Deno ≥ 2.3); neither the executable's name
 * (the deno binary can be renamed, a binary can be called deno) nor
 * `Deno.mainModule` (under `/tmp/deno-compile-NAME/`, but self-extracting
 * binaries use another folder) is reliable.
 *
 * The executable is the one at the same path now, so that a restart after
 * the file was replaced runs the new file: the " (deleted)" Linux shows for a
 * replaced executable is dropped. For a compiled binary started by an
 * absolute path (`/srv/app/current/app`) that path is kept as typed, symlinks
 * unresolved, so that a symlink switched to a new release runs the new
 * release; otherwise it is `Deno.execPath()`.
 *
 * Arguments are decoded as UTF-8.
 *
 * @returns The executable, its arguments and whether it is compiled.
 * @throws {Error} When /proc/self/cmdline cannot be read (not Linux, or no
 * `--allow-all`).
 *
 * @example Restart with the same command line
 * ```ts ignore
 * import { currentCommand } from "./spawn.ts";
 *
 * const { execPath, args, compiled } = currentCommand();
 * console.log(compiled ? "binary" : "deno", execPath, args);
 * ```
 */
export function currentCommand(): CurrentCommand {
  if (!isLinuxMode()) {
    return resolveCommand(
      commandLineWithoutProc(),
      Deno.execPath(),
      Deno.build.standalone,
      isFile,
    );
  }
  let bytes: Uint8Array;
  try {
    bytes = Deno.readFileSync("/proc/self/cmdline");
  } catch (error) {
    const hint = error instanceof Deno.errors.NotCapable
      ? " (Deno requires --allow-all to read /proc/self)"
      : "";
    throw new Error(
      `cannot read this process's command line from /proc/self/cmdline` +
        `${hint}: ${errorMessage(error)}`,
      { cause: error },
    );
  }
  return resolveCommand(
    parseCmdline(bytes),
    Deno.execPath(),
    Deno.build.standalone,
    isFile,
  );
}

/**
 * Splits the contents of /proc/PID/cmdline (each argument ends with a NUL)
 * into arguments, argv[0] first. Empty arguments are kept.
 *
 * @internal Exported for tests.
 *
 * @example
 * ```ts
 * import { parseCmdline } from "./spawn.ts";
 *
 * parseCmdline(new TextEncoder().encode("deno\0run\0\0main.ts\0"));
 * // ["deno", "run", "", "main.ts"]
 * ```
 */
export function parseCmdline(bytes: Uint8Array): string[] {
  const text = new TextDecoder().decode(bytes);
  if (text === "") {
    return [];
  }
  const parts = text.split("\0");
  // The text ends with a NUL, which leaves an empty last part.
  if (parts[parts.length - 1] === "") {
    parts.pop();
  }
  return parts;
}

/**
 * Drops the " (deleted)" that Linux appends to /proc/PID/exe (and so to
 * `Deno.execPath()`) once the executable file was replaced or removed.
 *
 * @internal Exported for tests.
 *
 * @example
 * ```ts
 * import { stripDeletedSuffix } from "./spawn.ts";
 *
 * stripDeletedSuffix("/srv/app (deleted)"); // "/srv/app"
 * ```
 */
export function stripDeletedSuffix(path: string): string {
  return path.endsWith(DELETED_SUFFIX)
    ? path.slice(0, -DELETED_SUFFIX.length)
    : path;
}

/**
 * The logic of {@linkcode currentCommand}, on given inputs: `cmdline` is
 * argv (argv[0] first), `execPath` what `Deno.execPath()` returns, `compiled`
 * whether this is a `deno compile` binary, and `isFileAt` tells whether a
 * path is a file.
 *
 * @internal Exported for tests.
 *
 * @example A compiled binary started by an absolute path
 * ```ts
 * import { resolveCommand } from "./spawn.ts";
 *
 * resolveCommand(
 *   ["/srv/app/current/app", "--port", "80"],
 *   "/srv/app/releases/7/app (deleted)",
 *   true,
 *   () => true,
 * ); // { execPath: "/srv/app/current/app", args: ["--port", "80"], compiled: true }
 * ```
 */
export function resolveCommand(
  cmdline: string[],
  execPath: string,
  compiled: boolean,
  isFileAt: (path: string) => boolean,
): CurrentCommand {
  if (cmdline.length === 0) {
    throw new Error(
      "this process's command line (/proc/self/cmdline) is empty",
    );
  }
  const argv0 = cmdline[0];
  const args = cmdline.slice(1);
  if (compiled && argv0.startsWith("/") && isFileAt(argv0)) {
    return { execPath: argv0, args, compiled };
  }
  return { execPath: stripDeletedSuffix(execPath), args, compiled };
}

/**
 * Returns the command line for the next generation: `current` with
 * `overrides.execPath` as the executable and `overrides.entry` as the main
 * module of a `deno run` command line.
 *
 * The main module is the first positional argument after `run` (or `watch`,
 * or none: `deno main.ts`) and its flags. Flags that take a separate value
 * (`--config x`, `-c x`, `--import-map x`, `--location x`, `--seed x`,
 * `--lock x`, ... see the source) are skipped with their value; `--env-file`,
 * `--v8-flags` and the permission flags take a value only after "=".
 *
 * @param current The current command line, usually {@linkcode currentCommand}.
 * @param overrides What to change; nothing by default.
 * @returns A new command line (`current` is not modified).
 * @throws {Error} When `entry` is given for a compiled binary, or for a
 * command line with no main module (`deno task start`, `deno serve`...).
 *
 * @example Run a new release of the app with the same flags
 * ```ts
 * import { buildCommand } from "./spawn.ts";
 *
 * const next = buildCommand(
 *   {
 *     execPath: "/usr/bin/deno",
 *     args: ["run", "-A", "--config", "deno.json", "v1/main.ts", "--port", "80"],
 *     compiled: false,
 *   },
 *   { entry: "v2/main.ts" },
 * );
 * // next.args: ["run", "-A", "--config", "deno.json", "v2/main.ts", "--port", "80"]
 * ```
 */
export function buildCommand(
  current: CurrentCommand,
  overrides?: CommandOverrides,
): Command {
  const execPath = overrides?.execPath ?? current.execPath;
  const args = [...current.args];
  const entry = overrides?.entry;
  if (entry !== undefined) {
    if (entry === "") {
      throw new Error("the entry (main module) to run must not be empty");
    }
    if (current.compiled) {
      throw new Error(
        `cannot run the entry ${JSON.stringify(entry)} with a compiled ` +
          `binary (${current.execPath}), which has its main module built in; ` +
          `replace the binary (execPath) instead`,
      );
    }
    const index = findMainModuleIndex(args);
    if (index < 0) {
      throw new Error(
        `cannot find the main module in the command line ` +
          `${JSON.stringify(["deno", ...args].join(" "))} to replace it ` +
          `with ${JSON.stringify(entry)}; only "deno run" command lines ` +
          `have one`,
      );
    }
    args[index] = entry;
  }
  if (execPath === "") {
    throw new Error("the executable to run must not be empty");
  }
  return { execPath, args };
}

/**
 * Returns `command` without the program's own `--admin-token T` and
 * `--admin-token=T` arguments (those after the main module; all of them for
 * a compiled binary, which has no deno flags), up to a `--`. The next
 * generation gets the token over the control channel instead: arguments are
 * readable by every local user (`ps`, /proc/PID/cmdline).
 *
 * @internal Exported for tests.
 *
 * @example
 * ```ts
 * import { withoutAdminToken } from "./spawn.ts";
 *
 * withoutAdminToken({
 *   execPath: "/usr/bin/deno",
 *   args: ["run", "-A", "mod.ts", "--admin", "--admin-token", "T", "-p", "80"],
 * }, false).args; // ["run", "-A", "mod.ts", "--admin", "-p", "80"]
 * ```
 */
export function withoutAdminToken(
  command: Command,
  compiled: boolean,
): Command {
  const args = command.args;
  const main = compiled ? -1 : findMainModuleIndex(args);
  const kept = args.slice(0, main + 1);
  for (let index = main + 1; index < args.length; index++) {
    const arg = args[index];
    if (arg === "--") {
      kept.push(...args.slice(index));
      break;
    }
    if (arg === "--admin-token") {
      index++; // and its value
    } else if (!arg.startsWith("--admin-token=")) {
      kept.push(arg);
    }
  }
  return { execPath: command.execPath, args: kept };
}

/**
 * Returns the index in `args` (deno's arguments, without argv[0]) of the
 * main module of a `deno run` command line, or -1 when there is none (another
 * subcommand, or no script).
 *
 * @internal Exported for tests.
 *
 * @example
 * ```ts
 * import { findMainModuleIndex } from "./spawn.ts";
 *
 * findMainModuleIndex(["run", "-A", "--seed", "1", "main.ts", "a"]); // 4
 * findMainModuleIndex(["-A", "main.ts"]); // 1
 * findMainModuleIndex(["task", "start"]); // -1
 * ```
 */
export function findMainModuleIndex(args: readonly string[]): number {
  let seenRun = false;
  let index = 0;
  while (index < args.length) {
    const arg = args[index];
    if (arg === "--") {
      // Everything after "--" is positional.
      return index + 1 < args.length ? index + 1 : -1;
    }
    if (arg.startsWith("--")) {
      index += longFlagLength(args, index);
      continue;
    }
    if (arg.startsWith("-") && arg !== "-") {
      index += shortFlagsLength(args, index);
      continue;
    }
    // A positional argument ("-" is the script read from stdin).
    if (!seenRun && RUN_SUBCOMMANDS.has(arg)) {
      seenRun = true;
      index += 1;
      continue;
    }
    if (!seenRun && OTHER_SUBCOMMANDS.has(arg)) {
      return -1;
    }
    return index;
  }
  return -1;
}

/**
 * How many arguments the long flag at `args[index]` occupies: 2 when its
 * value is the next argument, else 1.
 */
function longFlagLength(args: readonly string[], index: number): number {
  const arg = args[index];
  if (arg.includes("=")) {
    return 1;
  }
  if (LONG_FLAGS_WITH_VALUE.has(arg)) {
    return 2;
  }
  if (LONG_FLAGS_WITH_OPTIONAL_VALUE.has(arg)) {
    const next = args[index + 1];
    return next !== undefined && !next.startsWith("-") ? 2 : 1;
  }
  return 1;
}

/**
 * How many arguments the cluster of short flags at `args[index]` (`-A`,
 * `-Ac`, `-cdeno.json`, `-R=/tmp`) occupies: 2 when its last flag takes a
 * value and the value is the next argument, else 1.
 */
function shortFlagsLength(args: readonly string[], index: number): number {
  const cluster = args[index].slice(1);
  for (let position = 0; position < cluster.length; position++) {
    const flag = cluster[position];
    if (SHORT_FLAGS_WITH_VALUE.has(flag)) {
      // The value is the rest of the cluster, or else the next argument.
      return position + 1 < cluster.length ? 1 : 2;
    }
    if (cluster[position + 1] === "=") {
      // An optional value attached with "=" ends the cluster.
      return 1;
    }
  }
  return 1;
}

/**
 * Spawns the next generation: `execPath` with `args`, through
 * `/bin/sh -c 'LISTEN_PID=$$ exec "$@"'` so that LISTEN_PID is the child's
 * own pid, with the `fds` as its fds 3, 4, ... in order, LISTEN_FDS set to
 * their count and LISTEN_FDNAMES to their names joined by ":". Any
 * LISTEN_PID in this process's environment is not passed on.
 *
 * The child is in its own process group (and session), so that
 * {@linkcode Generation.killGroup} kills it and everything it started. Its
 * stdin, stdout and stderr are this process's. Apart from those and the
 * passed fds, it inherits no fd: fds this process inherited without
 * FD_CLOEXEC are marked close-on-exec for the moment of the spawn (found in
 * /proc/self/fd, which needs `--allow-all`; without it they reach the child).
 *
 * With FFI, the child is started with posix_spawn(3), which does not copy
 * this process: Deno's child_process (the fallback) forks, which copies this
 * process's page tables, a few ms for a small server and more the more memory
 * it has, on the way to every restart. Its exit is then polled with
 * waitpid(2) every {@linkcode EXIT_POLL_MS} ms while it runs.
 *
 * Deno's child_process clears O_NONBLOCK on the passed sockets, which this
 * process shares with the child; without O_NONBLOCK an accept loop here
 * would block the event loop. It is set again right after the spawn.
 *
 * If `execPath` cannot be run, the shell exits with status 127 (not found)
 * or 126, and `exited` says so.
 *
 * Needs `--allow-run` (for the fallback) and, to pass fds, FFI
 * (`--allow-ffi`; `-A` has both).
 *
 * @param options What to run and which fds to pass.
 * @returns The running child.
 * @throws {Error} Before spawning, when an fd is not an open file descriptor
 * or a name contains ":" (the message names the fd), or when fds are to be
 * passed but FFI is not available.
 *
 * @example Pass a listening socket to a new process
 * ```ts ignore
 * import net from "node:net";
 * import { buildCommand, currentCommand, spawnGeneration } from "./spawn.ts";
 *
 * const server = net.createServer().listen(8000);
 * const fd: number = (server as any)._handle.fdForIpc();
 * const { execPath, args } = buildCommand(currentCommand());
 * const generation = spawnGeneration({
 *   execPath,
 *   args,
 *   fds: [{ fd, name: "http" }],
 *   env: {},
 * });
 * console.log("next generation:", generation.pid);
 * generation.unref();
 * ```
 */
export function spawnGeneration(options: SpawnGenerationOptions): Generation {
  const { execPath, args, env, cwd, inspectorGuard } = options;
  checkPassedFds(options.fds);
  const script = options.ignoreHangup ? CHILD_SCRIPT_NOHUP : CHILD_SCRIPT;

  const childEnv: Record<string, string> = {
    ...Deno.env.toObject(),
    ...env,
    LISTEN_FDS: String(options.fds.length),
    LISTEN_FDNAMES: options.fds.map((passed) => passed.name).join(":"),
  };
  delete childEnv.LISTEN_PID;
  delete childEnv.DENO_EXTRA_STDIO_FDS;
  for (const name of options.unsetEnv ?? []) delete childEnv[name];
  delete childEnv[INSPECTOR_GUARD_ENV];
  const fds = [...options.fds];
  if (inspectorGuard !== undefined && fdFlags(inspectorGuard) >= 0) {
    childEnv[INSPECTOR_GUARD_ENV] = String(LISTEN_FDS_START + fds.length);
    fds.push({ fd: inspectorGuard, name: "inspector-guard" });
  }

  // Deno's child_process moves each passed fd to its slot with dup2() and
  // then closes the source, one after the other, so a source fd that is
  // itself in the target range (3 to 3 + n - 1, as when passing on inherited
  // fds in another order) would be overwritten or closed before it is moved.
  // Passing copies made above that range avoids it.
  const copies: number[] = [];
  try {
    for (const passed of fds) {
      copies.push(copyFdAbove(passed.fd, LISTEN_FDS_START + fds.length));
    }
    const marked = markInheritableFdsCloseOnExec();
    let child: ChildProcess;
    try {
      const stdio = inheritedStdio();
      const pid = spawnInNewSession({
        path: "/bin/sh",
        argv: ["sh", "-c", script, "sh", execPath, ...args],
        env: childEnv,
        dups: copies.map((copy, index) => ({
          from: copy,
          to: LISTEN_FDS_START + index,
        })),
        devNull: [0, 1, 2].filter((fd) => stdio[fd] === "ignore"),
        cwd,
      });
      if (pid !== undefined) return watchSpawned(pid, options.callerReaps);
      if (options.callerReaps) {
        throw new Error(
          `cannot start ${execPath} for a supervisor: posix_spawn(3) through ` +
            `FFI is not available here`,
        );
      }
      child = spawn(
        "/bin/sh",
        ["-c", script, "sh", execPath, ...args],
        {
          stdio: [...stdio, ...copies],
          env: childEnv,
          cwd,
          detached: true,
        },
      );
    } finally {
      // Right away, before the event loop runs again.
      for (const passed of fds) {
        ensureNonBlocking(passed.fd);
      }
      unmarkCloseOnExec(marked);
    }
    return watchGeneration(child, execPath);
  } finally {
    for (const copy of copies) {
      closeFd(copy);
    }
  }
}

/** The standard streams, and the terminals they can name in /proc. */
const STDIO = [Deno.stdin, Deno.stdout, Deno.stderr] as const;
const TERMINAL_PATH = /^\/dev\/(?:pts\/\d+|tty\w*|console)(?: \(deleted\))?$/;

/**
 * How the next generation gets stdin, stdout and stderr: this process's own,
 * except a terminal that has hung up (it was closed, e.g. the ssh session
 * ended). Writing to that fails with EIO, so the child's first log line
 * would kill it: it gets /dev/null in its place.
 */
function inheritedStdio(): ("inherit" | "ignore")[] {
  return STDIO.map((stream, fd) =>
    isHungUpTerminal(fd, stream.isTerminal()) ? "ignore" : "inherit"
  );
}

/**
 * Whether fd `fd` is a terminal device that no longer works as one: it
 * names a tty in /proc/self/fd but isatty() fails (EIO after a hangup).
 *
 * @example
 * ```ts
 * import { isHungUpTerminal } from "./spawn.ts";
 * const dead = isHungUpTerminal(1, Deno.stdout.isTerminal());
 * console.log(dead ? "stdout: a closed terminal" : "stdout works");
 * ```
 */
export function isHungUpTerminal(fd: number, isTerminal: boolean): boolean {
  if (isTerminal) return false;
  let target: string;
  try {
    target = Deno.readLinkSync(`/proc/self/fd/${fd}`);
  } catch {
    return false; // closed
  }
  return TERMINAL_PATH.test(target);
}

/**
 * How often (ms) the exit of a child started with posix_spawn is checked
 * (waitpid(2) with WNOHANG), while it runs.
 */
export const EXIT_POLL_MS = 10;

/** Wraps a child started with posix_spawn as a {@linkcode Generation}. */
function watchSpawned(pid: number, callerReaps = false): Generation {
  const { promise: exited, resolve } = Promise.withResolvers<
    GenerationExit
  >();
  // Once reaped, the pid (and so the group id) may be reused: never signal
  // it again. Until then it is reserved, a zombie's too.
  let reaped = false;
  const timer = callerReaps ? undefined : setInterval(() => {
    // Ended but a zombie still: what it left running in its group is killed
    // before the pid (and so the group id) is freed.
    if (endedChild(pid) !== undefined) killProcessGroup(pid, "SIGKILL");
    const exit = reapChild(pid);
    if (exit === undefined) return;
    reaped = true;
    clearInterval(timer);
    resolve({
      code: exit.code,
      signal: exit.signal === null ? null : signalName(exit.signal),
    });
  }, EXIT_POLL_MS);
  return {
    pid,
    exited,
    killGroup(signal: Deno.Signal = "SIGKILL"): void {
      if (!reaped) killProcessGroup(pid, signal);
    },
    unref(): void {
      if (timer !== undefined) Deno.unrefTimer(timer);
    },
  };
}

/** Linux's signal numbers, and their names. */
const SIGNAL_NAMES: readonly string[] = [
  "",
  "SIGHUP",
  "SIGINT",
  "SIGQUIT",
  "SIGILL",
  "SIGTRAP",
  "SIGABRT",
  "SIGBUS",
  "SIGFPE",
  "SIGKILL",
  "SIGUSR1",
  "SIGSEGV",
  "SIGUSR2",
  "SIGPIPE",
  "SIGALRM",
  "SIGTERM",
  "SIGSTKFLT",
  "SIGCHLD",
  "SIGCONT",
  "SIGSTOP",
  "SIGTSTP",
  "SIGTTIN",
  "SIGTTOU",
  "SIGURG",
  "SIGXCPU",
  "SIGXFSZ",
  "SIGVTALRM",
  "SIGPROF",
  "SIGWINCH",
  "SIGIO",
  "SIGPWR",
  "SIGSYS",
];

/**
 * The name of signal `signal` ("SIGKILL"), or "SIG" and its number.
 *
 * @example
 * ```ts
 * import { signalName } from "./spawn.ts";
 * console.log(signalName(9)); // "SIGKILL"
 * ```
 */
export function signalName(signal: number): string {
  return SIGNAL_NAMES[signal] || `SIG${signal}`;
}

/**
 * Loads what {@linkcode spawnGeneration} needs through FFI (libc, and
 * posix_spawn), so that the first spawn does not: a restart calls it once the
 * generation serves.
 *
 * @example
 * ```ts ignore
 * prepareSpawning();
 * ```
 */
export function prepareSpawning(): void {
  libc();
  loadSpawnCalls();
}

/** Wraps a child spawned by Deno's child_process as a {@linkcode Generation}. */
function watchGeneration(
  child: ChildProcess,
  execPath: string,
): Generation {
  const { promise: exited, resolve } = Promise.withResolvers<
    GenerationExit
  >();
  // When the spawn itself fails, pid is undefined and the reason comes later
  // as an "error" event, which would be thrown without a listener.
  child.on("error", () => {});
  // node's "exit" comes after the reap: from then on the pid may be reused.
  let reaped = false;
  child.on("exit", (code, signal) => {
    reaped = true;
    resolve({ code, signal });
  });
  const pid = child.pid;
  if (pid === undefined) {
    throw new Error(
      `cannot start /bin/sh to run ${execPath} (out of processes or memory?)`,
    );
  }
  return {
    pid,
    exited,
    killGroup(signal: Deno.Signal = "SIGKILL"): void {
      if (!reaped) killProcessGroup(pid, signal);
    },
    unref(): void {
      child.unref();
    },
  };
}

/**
 * Sends `signal` to the process group `pgid`; does nothing when no process
 * of that group is left.
 */
function killProcessGroup(pgid: number, signal: Deno.Signal): void {
  try {
    Deno.kill(-pgid, signal);
  } catch (error) {
    if (!(error instanceof Deno.errors.NotFound)) {
      throw error;
    }
  }
}

/**
 * Throws an error naming the fd when a passed fd is not an open file
 * descriptor or its name cannot be put in LISTEN_FDNAMES. Needs FFI when
 * there is any fd.
 */
function checkPassedFds(fds: readonly PassedFd[]): void {
  for (const { fd, name } of fds) {
    if (!Number.isSafeInteger(fd) || fd < 0) {
      throw new Error(
        `cannot pass fd ${fd} (${JSON.stringify(name)}): ` +
          `a file descriptor is a non-negative integer`,
      );
    }
    if (/[:\0]/.test(name)) {
      throw new Error(
        `cannot pass fd ${fd} with the name ${JSON.stringify(name)}: ` +
          `LISTEN_FDNAMES names cannot contain ":" (the separator) or NUL`,
      );
    }
  }
  if (fds.length === 0) {
    return;
  }
  if (libc() === undefined) {
    throw new Error(
      `cannot pass fds to a new process without FFI (--allow-ffi), ` +
        `needed to keep the shared sockets non-blocking: ` +
        libcUnavailableReason(),
    );
  }
  for (const { fd, name } of fds) {
    if (fdFlags(fd) < 0) {
      throw new Error(
        `cannot pass fd ${fd} (${JSON.stringify(name)}): ` +
          `it is not open in this process`,
      );
    }
  }
}

/**
 * fcntl(fd, F_GETFD): the fd's flags (FD_CLOEXEC), or -1 when it is not
 * open. Uses the fcntl that ../os/libc.ts binds.
 */
function fdFlags(fd: number): number {
  const c = libc();
  return c === undefined ? -1 : c.fcntl(fd, F_GETFD, 0);
}

/** fcntl(fd, F_SETFD, flags). Returns false when it failed. */
function setFdFlags(fd: number, flags: number): boolean {
  const c = libc();
  return c !== undefined && c.fcntl(fd, F_SETFD, flags) === 0;
}

/**
 * fcntl(fd, F_DUPFD_CLOEXEC, lowest): a close-on-exec copy of `fd` numbered
 * `lowest` or more. Throws an error naming `fd` when it fails.
 */
function copyFdAbove(fd: number, lowest: number): number {
  const c = libc();
  const copy = c === undefined ? -1 : c.fcntl(fd, F_DUPFD_CLOEXEC, lowest);
  if (copy < 0) {
    throw new Error(
      `cannot pass fd ${fd}: duplicating it failed (too many open files?)`,
    );
  }
  return copy;
}

/**
 * Sets FD_CLOEXEC on every fd from 3 up that lacks it (fds this process
 * inherited from whoever started it; Deno opens its own with it) and returns
 * them. Returns [] when /proc/self/fd cannot be listed.
 */
function markInheritableFdsCloseOnExec(): number[] {
  const fds: number[] = [];
  try {
    for (const entry of Deno.readDirSync("/proc/self/fd")) {
      const fd = Number(entry.name);
      if (Number.isSafeInteger(fd) && fd >= LISTEN_FDS_START) {
        fds.push(fd);
      }
    }
  } catch {
    return [];
  }
  const marked: number[] = [];
  for (const fd of fds) {
    const flags = fdFlags(fd);
    // -1: the fd was closed meanwhile (such as the one listing the folder).
    if (flags >= 0 && (flags & FD_CLOEXEC) === 0) {
      if (setFdFlags(fd, flags | FD_CLOEXEC)) {
        marked.push(fd);
      }
    }
  }
  return marked;
}

/** Clears FD_CLOEXEC again on the fds that were marked for the spawn. */
function unmarkCloseOnExec(fds: readonly number[]): void {
  for (const fd of fds) {
    const flags = fdFlags(fd);
    if (flags >= 0) {
      setFdFlags(fd, flags & ~FD_CLOEXEC);
    }
  }
}

/** Whether `path` is a file (following symlinks). */
function isFile(path: string): boolean {
  try {
    return Deno.statSync(path).isFile;
  } catch {
    return false;
  }
}

/** The message of an unknown thrown value. */
function errorMessage(error: unknown): string {
  return error instanceof Error ? error.message : String(error);
}
