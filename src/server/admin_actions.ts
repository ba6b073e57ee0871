/**
 * The admin actions: restart (optionally from another entry or executable,
 * inside the allowed directories) and shutdown, each answered before the
 * process acts when the action would end this very response.
 *
 * @module
 */

import type { AdminStatus } from "./admin_status.ts";
import { describeAddr, json } from "./admin_http.ts";
import { logger } from "../util/log.ts";
import { completeRestarts } from "../restart/complete_restart.ts";
import { errorMessage } from "../util/error_message.ts";

const log = logger("admin");

/** What the router asks of the process when restarting. */
export interface AdminRestartRequest {
  /** Another main module (an absolute, resolved path), when allowed. */
  entry?: string;
  /** Another executable (an absolute, resolved path), when allowed. */
  execPath?: string;
  /** Always "admin". */
  trigger: "admin";
}

/** The process the router administers. */
export interface AdminDeps {
  /** The current status. */
  status(): AdminStatus;
  /**
   * Restarts; resolves once the new generation serves, rejects with the
   * reason when it did not (this generation keeps serving).
   */
  restart(
    options: AdminRestartRequest,
  ): Promise<{ pid: number; generation: number }>;
  /** Starts a graceful shutdown of the whole process. */
  shutdown(): void;
}

/** The part of the handler info the router uses. */
export interface AdminRequestInfo {
  /** The client's address. */
  remoteAddr: Deno.Addr;
  /** Resolves (or rejects) when the response has been sent, when known. */
  completed?: Promise<void>;
}

/** What the actions read and change. */
export interface ActionState {
  readonly deps: AdminDeps;
  /** Where an entry or execPath override may lie; undefined: nowhere. */
  readonly dirs: string[] | undefined;
  shuttingDown: boolean;
}

/** `POST {path}/restart` with its body parsed. */
export async function restart(
  state: ActionState,
  body: Record<string, unknown>,
  info: AdminRequestInfo,
): Promise<Response> {
  const unknown = Object.keys(body).filter((k) =>
    k !== "entry" && k !== "execPath"
  );
  if (unknown.length > 0) {
    return json(400, { error: `unknown field(s): ${unknown.join(", ")}` });
  }
  const options: AdminRestartRequest = { trigger: "admin" };
  for (const key of ["entry", "execPath"] as const) {
    const value = body[key];
    if (value === undefined) continue;
    if (typeof value !== "string" || value === "" || value.includes("\0")) {
      return json(400, { error: `${key} must be a non-empty path string` });
    }
    const dirs = state.dirs;
    if (!dirs) {
      return json(403, {
        error: `${key} override is not allowed (allowEntryOverride is off)`,
      });
    }
    const checked = await checkOverride(value, key, dirs);
    if (!checked.ok) return json(403, { error: `${key}: ${checked.error}` });
    options[key] = checked.path;
  }
  const who = describeAddr(info.remoteAddr);
  log.info("admin: restart requested by {client}", { client: who, options });
  if (completeRestarts()) {
    // A complete restart first drains this very request: answer, then go.
    afterResponse(info.completed, () => {
      state.deps.restart(options).catch(() => {}); // logged by the restart
    });
    return json(202, { restarting: true, complete: true });
  }
  try {
    const { pid, generation } = await state.deps.restart(options);
    return json(200, { pid, generation });
  } catch (error) {
    const reason = errorMessage(error);
    log.warn("admin: restart failed, this generation keeps serving: {reason}", {
      reason,
    });
    return json(503, { error: reason });
  }
}

/** `POST {path}/shutdown` with its body parsed. */
export function shutdown(
  state: ActionState,
  body: Record<string, unknown>,
  info: AdminRequestInfo,
): Response {
  if (Object.keys(body).length > 0) {
    return json(400, { error: "shutdown takes no fields" });
  }
  if (!state.shuttingDown) {
    state.shuttingDown = true;
    log.info("admin: shutdown requested by {client}", {
      client: describeAddr(info.remoteAddr),
    });
    afterResponse(info.completed, () => {
      try {
        state.deps.shutdown();
      } catch (error) {
        log.error("admin: shutdown failed: {error}", { error });
      }
    });
  }
  return json(202, { shutting_down: true });
}

/**
 * Runs `fn` once the response has been sent (or failed), on a later macrotask;
 * without `completed`, or if it never settles, after a short delay anyway.
 */
function afterResponse(
  completed: Promise<void> | undefined,
  fn: () => void,
): void {
  let done = false;
  const run = () => {
    if (done) return;
    done = true;
    clearTimeout(fallback);
    setTimeout(fn, 0);
  };
  const fallback = setTimeout(run, completed ? 1000 : 0);
  completed?.then(run, run);
}

async function checkOverride(
  raw: string,
  key: "entry" | "execPath",
  dirs: string[],
): Promise<{ ok: true; path: string } | { ok: false; error: string }> {
  if (!raw.startsWith("/")) {
    return { ok: false, error: "must be an absolute path" };
  }
  if (raw.split("/").some((segment) => segment === "..")) {
    return { ok: false, error: 'must not contain ".." segments' };
  }
  let real: string;
  let info: Deno.FileInfo;
  try {
    real = await Deno.realPath(raw);
    info = await Deno.stat(real);
  } catch {
    return { ok: false, error: "does not exist (or cannot be read)" };
  }
  if (!info.isFile) return { ok: false, error: "is not a regular file" };
  if (key === "execPath" && ((info.mode ?? 0o111) & 0o111) === 0) {
    return { ok: false, error: "is not executable" };
  }
  for (const dir of dirs) {
    let root: string;
    try {
      root = await Deno.realPath(dir);
    } catch {
      continue;
    }
    const prefix = root.endsWith("/") ? root : root + "/";
    if (real.startsWith(prefix)) return { ok: true, path: real };
  }
  return {
    ok: false,
    error: "resolves outside the allowed directories",
  };
}
