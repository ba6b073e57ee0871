/**
 * Where the CLI's admin token comes from, and how it reaches later
 * generations.
 *
 * - `--admin-token T` works, but draws a warning: a command line is readable
 *   by every local user (`ps`, /proc/PID/cmdline).
 * - `GRACEFUL_ADMIN_TOKEN` (environment: readable by the same uid and root
 *   only) is read, then removed from the environment, so that neither the
 *   app's child processes nor later generations inherit it.
 * - `--admin-token-file F` is read by every generation when it starts, so a
 *   reload picks up a new token (as `--cert` and `--key`); a file that others
 *   can read draws a warning.
 *
 * A token from the command line or the environment goes to the next
 * generation over the control channel (in the handover state, after the
 * kernel has confirmed who holds the connection), and `--admin-token` is
 * stripped from its command line (src/restart/command_line.ts).
 *
 * @module
 */

import { adminTokenProblem } from "./admin_auth.ts";
import { carryAdminToken } from "../restart/generation.ts";
import { joinGeneration } from "../restart/join.ts";
import { errorMessage } from "../util/error_message.ts";

/** The variable that may hold the admin token. */
export const ADMIN_TOKEN_VARIABLE = "GRACEFUL_ADMIN_TOKEN";

/** Where the admin token may come from. */
export interface AdminTokenSources {
  /** The token given as `--admin-token` or in GRACEFUL_ADMIN_TOKEN. */
  token?: string;
  /** Whether it was given on the command line (then there is a warning). */
  onCommandLine: boolean;
  /** `--admin-token-file`. */
  file?: string;
  /** Says a one-line warning. */
  warn(message: string): void;
}

/**
 * The admin token for this generation (undefined: none), which is also
 * carried to the next one. Throws a one-line error naming the option or the
 * file at fault.
 */
export async function resolveAdminToken(
  sources: AdminTokenSources,
): Promise<string | undefined> {
  Deno.env.delete(ADMIN_TOKEN_VARIABLE);
  const { file, warn } = sources;
  let token = sources.token;
  if (token !== undefined && file !== undefined) {
    throw new TypeError(
      "--admin-token and --admin-token-file both given: use one",
    );
  }
  if (sources.onCommandLine) {
    warn(
      "--admin-token on the command line is readable by every local user " +
        "(ps, /proc/PID/cmdline) while this process runs: prefer " +
        "--admin-token-file F (later generations get the token over the " +
        "control channel, not in their command line)",
    );
  }
  let where = "--admin-token";
  if (file !== undefined) {
    token = readTokenFile(file, warn);
    where = `--admin-token-file ${file}`;
  } else if (token === undefined) {
    // A later generation: the previous one hands its token over.
    token = (await joinGeneration().catch(() => undefined))?.adminToken;
    where = "the admin token from the previous generation";
  }
  if (token !== undefined) {
    const problem = adminTokenProblem(token);
    if (problem) throw new TypeError(`${where}: ${problem}`);
  }
  carryAdminToken(token);
  return token;
}

function readTokenFile(file: string, warn: (message: string) => void): string {
  let text: string;
  let mode: number | null;
  try {
    text = Deno.readTextFileSync(file);
    mode = Deno.statSync(file).mode;
  } catch (error) {
    const message = errorMessage(error);
    throw new Error(`--admin-token-file ${file}: cannot read it (${message})`);
  }
  const token = text.replace(/\r?\n$/, "");
  if (token.trim() === "") {
    throw new TypeError(`--admin-token-file ${file} is empty`);
  }
  if (mode !== null && (mode & 0o044) !== 0) {
    warn(
      `--admin-token-file ${file} is readable by group or others (mode ` +
        `${(mode & 0o777).toString(8).padStart(4, "0")}): chmod 600 it`,
    );
  }
  return token;
}
