/**
 * The admin API's own listener, for the admin without a token (and for one
 * with a token and `admin.listen`): never the app's listeners, which a
 * reverse proxy on the same host would make reachable from anywhere (a
 * default nginx `proxy_pass` adds no `X-Forwarded-For` and sends
 * `Host: 127.0.0.1`, so the loopback rule alone cannot tell).
 *
 * - By default a unix socket, mode 0600, in a directory only this user may
 *   enter: `$XDG_RUNTIME_DIR/serve-graceful/` (or under systemd's
 *   `$RUNTIME_DIRECTORY`), else `/tmp/serve-graceful-UID/`
 *   (made 0700, and refused unless it is a real directory of this user's that
 *   nobody else may enter), named `admin-PID.sock` after the first
 *   generation's pid. Reach it with
 *   `curl --unix-socket PATH http://localhost/debug/admin/status`, or from a
 *   browser through `ssh -L 8080:PATH host`.
 * - `admin.listen` names another: `unix:PATH` (its directory must not be
 *   writable by others unless sticky), or, without a token, a loopback
 *   `127.0.0.1:PORT` / `[::1]:PORT`.
 *
 * The listener is a server of its own in the process (named
 * {@linkcode ADMIN_SERVER_NAME}): like every listener it is passed to the
 * next generation, so it answers across restarts without a gap. A unix socket
 * is bound under a temp name beside its path, made 0600, then renamed into
 * place: Deno removes a unix socket's bound name when its listener closes,
 * and the old generation's listener closes at every handover; under the temp
 * name, that removes nothing. The last generation removes the path when it
 * shuts down (not when it hands over). Under a supervisor, the first worker
 * opens it (named after the supervisor's pid), every worker shares it, and
 * only the supervisor removes the path, when it stops.
 *
 * @module
 */

import {
  formatAddr,
  isLoopbackIp,
  parseListenAddress,
} from "../listen/address.ts";
import type { AdminOptions } from "./admin.ts";
import { inheritedFds } from "../listen/registry.ts";
import { checkFileDir } from "../restart/pidfile.ts";
import { randomHex } from "../util/random.ts";
import { isWorker } from "../workers/worker.ts";

import { ADMIN_SERVER_NAME } from "../listen/types.ts";
import { errorMessage } from "../util/error_message.ts";

export { ADMIN_SERVER_NAME };

/** Where the admin listens, and what to do around it. */
export interface AdminListenPlan {
  /** The address the admin server opens (or finds inherited). */
  listen: string;
  /** The address to tell users: `unix:PATH` or `HOST:PORT`. */
  address: string;
  /** Once listening: moves a unix socket into place (0600). */
  placed(): void;
  /** On a shutdown that is no handover: removes a unix socket's path. */
  removed(): void;
}

/**
 * Whether the admin API gets a listener of its own: without a token always,
 * with one when `listen` is given.
 */
export function ownAdminListener(options: AdminOptions): boolean {
  return options.listen !== undefined || options.token === undefined;
}

let planned = false;

const TEMP_SUFFIX = /\.[0-9a-f]{16}\.bind$/;

/**
 * Plans the admin listener: the inherited one in a later generation, else
 * `options.listen` or the default socket. Throws a one-line error naming the
 * address or directory at fault.
 */
export function planAdminListener(options: AdminOptions): AdminListenPlan {
  if (planned) {
    throw new TypeError(
      "admin: only one server of a process can have the admin API on a " +
        "listener of its own (the API is the whole process's)",
    );
  }
  planned = true;
  const inherited = inheritedFds().find((f) => f.name === ADMIN_SERVER_NAME);
  if (inherited) {
    const bound = formatAddr(inherited.addr);
    const path = "path" in inherited.addr ? inherited.addr.path : undefined;
    const finalPath = path?.replace(TEMP_SUFFIX, "");
    return {
      listen: bound,
      address: finalPath === undefined ? bound : `unix:${finalPath}`,
      placed() {},
      removed: () => finalPath !== undefined && removeSocket(finalPath),
    };
  }
  const address = options.listen ?? `unix:${defaultSocketPath()}`;
  const spec = parseListenAddress(address);
  if (spec.transport !== "unix") {
    if (options.token === undefined && !isLoopback(spec.hostname)) {
      throw new TypeError(
        `admin listen address ${address}: without a token the admin API ` +
          `listens only on a unix socket or a loopback address`,
      );
    }
    const formatted = formatAddr(spec);
    return { listen: formatted, address: formatted, placed() {}, removed() {} };
  }
  const finalPath = spec.path;
  if (options.listen !== undefined) {
    checkFileDir(finalPath, "admin socket", "replace the socket");
  }
  const temp = `${finalPath}.${randomHex(8)}.bind`;
  return {
    listen: `unix:${temp}`,
    address: `unix:${finalPath}`,
    placed() {
      Deno.chmodSync(temp, 0o600);
      Deno.renameSync(temp, finalPath);
    },
    removed: () => removeSocket(finalPath),
  };
}

function isLoopback(hostname: string): boolean {
  return hostname === "localhost" || isLoopbackIp(hostname);
}

/** The default socket: in a directory only this user may enter. */
function defaultSocketPath(): string {
  const uid = Deno.uid() ?? 0;
  // systemd's RuntimeDirectory= sets RUNTIME_DIRECTORY (a list).
  const runtime = Deno.env.get("XDG_RUNTIME_DIR") ||
    Deno.env.get("RUNTIME_DIRECTORY")?.split(":")[0];
  const dir = runtime
    ? `${runtime}/serve-graceful`
    : `/tmp/serve-graceful-${uid}`;
  try {
    Deno.mkdirSync(dir, { mode: 0o700 });
  } catch (error) {
    if (!(error instanceof Deno.errors.AlreadyExists)) {
      throw new Error(
        `admin socket directory ${dir}: cannot create it (${
          errorMessage(error)
        })`,
      );
    }
  }
  const info = Deno.lstatSync(dir);
  if (!info.isDirectory || info.uid !== uid || (info.mode! & 0o077) !== 0) {
    throw new Error(
      `admin socket directory ${dir} is not a directory of uid ${uid} that ` +
        `only it may enter (mode 0700): remove it, or set admin.listen ` +
        `(--admin-listen)`,
    );
  }
  return `${dir}/admin-${isWorker() ? Deno.ppid : Deno.pid}.sock`;
}

/**
 * Removes the admin socket at `path` when it is one; not in a worker (the
 * supervisor removes it when it stops).
 */
export function removeSocket(path: string): void {
  if (isWorker()) return; // the supervisor's to remove
  try {
    if (Deno.lstatSync(path).isSocket) Deno.removeSync(path);
  } catch {
    // already gone
  }
}
