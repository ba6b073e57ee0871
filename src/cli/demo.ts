/**
 * The demo app that `deno run -A mod.ts` serves (GoFrame's example 1):
 * `/` says Hello!, `/pid` is the serving process's pid, and `/sleep?ms=N`
 * (default 10000) sleeps, then answers with a body that contains its pid.
 *
 * @module
 */

import type { GracefulHandler } from "../listen/types.ts";

/**
 * The demo handler.
 */
export const demoHandler: GracefulHandler = function demoHandler(request) {
  const url = new URL(request.url);
  switch (url.pathname) {
    case "/":
      return new Response("Hello!\n");
    case "/pid":
      return new Response(`${Deno.pid}\n`);
    case "/sleep":
      return sleep(url);
    default:
      return new Response("Not Found\n", { status: 404 });
  }
};

async function sleep(url: URL): Promise<Response> {
  const raw = url.searchParams.get("ms") ?? "10000";
  const ms = Number(raw);
  if (!Number.isFinite(ms) || ms < 0 || ms > 3_600_000) {
    return new Response(`bad ms=${raw}: 0..3600000\n`, { status: 400 });
  }
  const started = Deno.pid;
  await new Promise((resolve) => setTimeout(resolve, ms));
  return new Response(`slept ${ms} ms in pid ${started}\n`);
}
