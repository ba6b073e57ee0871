/**
 * Replacing a file in one step, so that a reader (or another bench writing
 * the same file) never sees it half written.
 *
 * @module
 */

/**
 * Writes `text` to a temporary file next to `path` (creating the directory
 * when needed), then renames it over `path`. The temporary file is removed
 * when either step fails.
 */
export async function writeFileAtomically(
  path: string,
  text: string,
): Promise<void> {
  const slash = path.lastIndexOf("/");
  if (slash > 0) await Deno.mkdir(path.slice(0, slash), { recursive: true });
  const temp = `${path}.tmp-${Deno.pid}`;
  try {
    await Deno.writeTextFile(temp, text);
    await Deno.rename(temp, path);
  } catch (error) {
    await Deno.remove(temp).catch(() => {});
    throw error;
  }
}
