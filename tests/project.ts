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

/** Whether an executable `name` is on PATH. */
export function onPath(name: string): boolean {
  return (Deno.env.get("PATH") ?? "").split(":").some((dir) => {
    try {
      return Deno.statSync(`${dir}/${name}`).isFile;
    } catch {
      return false;
    }
  });
}

/**
 * Installs the packages of the package.json in `dir` into its node_modules,
 * with npm, or with `deno install` where there is no npm.
 */
export async function installPackages(dir: string): Promise<void> {
  const [cmd, args] = onPath("npm")
    ? ["npm", ["install", "--no-audit", "--no-fund", "--silent"]]
    : [Deno.execPath(), ["install"]];
  const { success } = await new Deno.Command(cmd, {
    args,
    cwd: dir,
    stdout: "inherit",
    stderr: "inherit",
  }).output();
  if (!success) throw new Error(`${cmd} ${args.join(" ")} failed in ${dir}`);
}
