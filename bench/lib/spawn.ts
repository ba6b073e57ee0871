/**
 * Starting a bench child process with its output piped, in an environment
 * that is the bench's own less the systemd socket-activation variables (a
 * child must never take the bench's LISTEN_FDS for its own).
 *
 * @module
 */

/** The variables of systemd socket activation. */
const LISTEN_ENV = ["LISTEN_FDS", "LISTEN_PID", "LISTEN_FDNAMES"];

/** How to start a child. */
export interface PipedOptions {
  /** The working directory (default: the bench's). */
  cwd?: string;
  /** Added to (or replacing in) the environment. */
  env?: Record<string, string>;
}

/** This process's environment without LISTEN_*, plus `extra`. */
export function childEnv(
  extra: Record<string, string> = {},
): Record<string, string> {
  const env = Deno.env.toObject();
  for (const name of LISTEN_ENV) delete env[name];
  return Object.assign(env, extra);
}

/**
 * Spawns `command` (program, then arguments) with stdin from /dev/null and
 * stdout and stderr piped, in {@linkcode childEnv}.
 */
export function spawnPiped(
  command: string[],
  options: PipedOptions = {},
): Deno.ChildProcess {
  const [program, ...args] = command;
  return new Deno.Command(program, {
    args,
    cwd: options.cwd,
    clearEnv: true,
    env: childEnv(options.env),
    stdin: "null",
    stdout: "piped",
    stderr: "piped",
  }).spawn();
}
