/**
 * The grammar of deno's own command line, as far as a restart needs it:
 * which argument is the main module of a `deno run` command line (Deno
 * 2.9's subcommands and the flags that take a separate value).
 *
 * @module
 */

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
 * Returns the index in `args` (deno's arguments, without argv[0]) of the
 * main module of a `deno run` command line, or -1 when there is none (another
 * subcommand, or no script).
 *
 * @internal Exported for tests.
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
