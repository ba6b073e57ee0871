/**
 * What the workers tests share: a small app whose version shows in its
 * answers, a supervisor with N workers started on it, `reload`, and the
 * admin API's restart and status with a token.
 *
 * @module
 */

import {
  MOD,
  readStatus,
  TempApp,
  until,
  type WorkersStatus,
} from "./helpers.ts";

const APP = `
const VERSION = "__VERSION__";
let served = 0;
export default {
  async fetch(req) {
    served++;
    const url = new URL(req.url);
    if (url.pathname === "/pid") return new Response(String(Deno.pid));
    if (url.pathname === "/version") return new Response(VERSION);
    if (url.pathname === "/sleep") {
      await new Promise((r) => setTimeout(r, Number(url.searchParams.get("ms") ?? 1000)));
      return new Response("slept in " + Deno.pid);
    }
    return new Response("hello " + VERSION);
  },
};
`;

/** The app's source: it answers `version` on /version, after `prelude`. */
export function app(version = "v1", prelude = ""): string {
  return prelude + APP.replace("__VERSION__", version);
}

/** Starts the app with a supervisor and N workers; waits until all are ready. */
export async function startWorkers(
  source: string,
  workers: number,
  extra: string[] = [],
): Promise<{ t: TempApp; pidfile: string; status: () => WorkersStatus }> {
  const dir = await Deno.makeTempDir({ prefix: "graceful-workers-" });
  const pidfile = `${dir}/app.pid`;
  const t = await TempApp.start(source, [
    "--workers",
    String(workers),
    "--pidfile",
    pidfile,
    ...extra,
  ]);
  await until(() => readStatus(pidfile)?.workers.length === workers);
  return { t, pidfile, status: () => readStatus(pidfile)! };
}

/** Runs `mod.ts reload --pidfile F` to its end. */
export function reload(pidfile: string): Promise<Deno.CommandOutput> {
  return new Deno.Command(Deno.execPath(), {
    args: ["run", "-A", MOD, "reload", "--pidfile", pidfile],
    stdout: "piped",
    stderr: "piped",
  }).output();
}

export const text = (bytes: Uint8Array): string =>
  new TextDecoder().decode(bytes);

/** The admin token of the tests that start the workers with `--admin-token`. */
export const ADMIN_TOKEN = "workers-admin-token-0123456789abcdef";

/** POSTs the admin API's restart: with a token, the bearer header alone authorises it. */
export async function adminRestart(port: number): Promise<Response> {
  return await fetch(`http://127.0.0.1:${port}/debug/admin/restart`, {
    method: "POST",
    headers: {
      authorization: `Bearer ${ADMIN_TOKEN}`,
      connection: "close",
    },
  });
}

/** The admin API's status, as whichever worker takes the request answers it. */
export async function adminStatus(
  port: number,
): Promise<Record<string, unknown> & WorkersStatus> {
  const res = await fetch(`http://127.0.0.1:${port}/debug/admin/status`, {
    headers: {
      authorization: `Bearer ${ADMIN_TOKEN}`,
      connection: "close",
    },
  });
  return await res.json();
}
