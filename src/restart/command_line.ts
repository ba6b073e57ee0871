/**
 * The command line of the next generation: the one that started this
 * process (read from /proc/self/cmdline), with another entry or executable,
 * and without the admin token.
 *
 * @module
 */

import { commandLineWithoutProc, isLinuxMode } from "../os/platform.ts";
import { findMainModuleIndex } from "./deno_args.ts";
import { errorMessage } from "../util/error_message.ts";

/** What Linux appends to the /proc/self/exe link of a replaced executable. */
const DELETED_SUFFIX = " (deleted)";

/**
 * The command line that started this process.
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
 */
export interface Command {
  /** The executable. */
  execPath: string;
  /** Its arguments, without argv[0]. */
  args: string[];
}

/**
 * What {@linkcode buildCommand} changes in the current command line.
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

/** Whether `path` is a file (following symlinks). */
function isFile(path: string): boolean {
  try {
    return Deno.statSync(path).isFile;
  } catch {
    return false;
  }
}
