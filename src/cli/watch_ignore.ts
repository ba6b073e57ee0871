/**
 * What a watch ignores: version control, dependency and cache directories,
 * editor and temp files, and the entries of `WatchOptions.ignore`.
 *
 * @module
 */

import { isAbsolute, relative, resolve, sep } from "node:path";

const IGNORED_SEGMENTS = new Set([".git", "node_modules", ".cache"]);

/**
 * Whether an editor or the OS made `name` as a temporary or backup file: vim
 * (swap files `.swp`, `.swo`…`.swa`, the `.swx` probe, the `4913` write
 * probe, `name~` backups), emacs (`.#name` locks, `#name#` autosaves),
 * `*.tmp` files (also atomic writes, like the pidfile's) and `.DS_Store`.
 */
function isEditorTemp(name: string): boolean {
  return /\.sw[a-px]$/.test(name) ||
    name.endsWith("~") ||
    name.startsWith(".#") ||
    (name.length > 1 && name.startsWith("#") && name.endsWith("#")) ||
    name === "4913" ||
    name.endsWith(".tmp") ||
    name === ".DS_Store";
}

/**
 * Whether a change of `path` is ignored by a watch of `root`. Segments are
 * taken below `root`, so that a root inside, say, `~/.cache/` still works.
 * See `WatchOptions.ignore` (watch.ts) for the meaning of `ignore`'s entries.
 */
export function isIgnored(
  root: string,
  path: string,
  ignore: readonly (string | RegExp)[] = [],
): boolean {
  return matches(root, path, ignore, true);
}

/**
 * Whether a directory is left out of walks (the catch-up scan, per-directory
 * watching): as {@linkcode isIgnored}, but without the RegExps, which are for
 * the paths of changes.
 */
export function isPruned(
  root: string,
  dir: string,
  ignore: readonly (string | RegExp)[],
): boolean {
  return matches(root, dir, ignore, false);
}

/** Whether `path` is ignored; RegExps only count when `regexps` is true. */
function matches(
  root: string,
  path: string,
  ignore: readonly (string | RegExp)[],
  regexps: boolean,
): boolean {
  const base = resolve(root);
  const absolute = resolve(base, path);
  const rel = relative(base, absolute);
  const segments = rel === "" ? [] : rel.split(sep);
  if (segments.some((segment) => IGNORED_SEGMENTS.has(segment))) return true;
  const name = segments.at(-1);
  if (name !== undefined && isEditorTemp(name)) return true;
  for (const entry of ignore) {
    if (entry instanceof RegExp) {
      if (!regexps) continue;
      entry.lastIndex = 0;
      if (entry.test(absolute)) return true;
    } else if (entry.includes("/") || isAbsolute(entry)) {
      const target = resolve(base, entry);
      if (absolute === target || absolute.startsWith(target + sep)) return true;
    } else if (segments.includes(entry)) {
      return true;
    }
  }
  return false;
}
