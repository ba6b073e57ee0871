/**
 * A user's project for tests: a temporary directory outside this repo, and
 * commands run in it.
 *
 * @module
 */

import { Child } from "./helpers.ts";

/** A command run in `dir` (the helpers' Child runs in this process's cwd). */
export function childIn(
  dir: string,
  command: string[],
  env: Record<string, string> = {},
): Child {
  return new Child("/bin/sh", [
    "-c",
    'cd "$0" && exec "$@"',
    dir,
    ...command,
  ], env);
}

/** Writes `files` (relative path: text) into a new temporary project. */
export async function tempProject(
  files: Record<string, string>,
): Promise<string> {
  const dir = await Deno.realPath(
    await Deno.makeTempDir({ prefix: "graceful-project-" }),
  );
  for (const [path, text] of Object.entries(files)) {
    await Deno.writeTextFile(`${dir}/${path}`, text);
  }
  return dir;
}
