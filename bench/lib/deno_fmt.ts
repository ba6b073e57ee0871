/**
 * Formatting generated files the way `deno fmt` does, so that
 * `deno fmt --check` stays clean after a bench has written them.
 *
 * @module
 */

/** The kinds of file the benches generate. */
export type FormatExtension = "md" | "json" | "svg";

/** Pipes `text` through `deno fmt --ext <ext> -` and returns what it prints. */
export async function formatWithDeno(
  ext: FormatExtension,
  text: string,
): Promise<string> {
  const child = new Deno.Command(Deno.execPath(), {
    args: ["fmt", "--ext", ext, "-"],
    stdin: "piped",
    stdout: "piped",
    stderr: "piped",
  }).spawn();
  const writer = child.stdin.getWriter();
  await writer.write(new TextEncoder().encode(text));
  await writer.close();
  const { code, stdout, stderr } = await child.output();
  if (code !== 0) {
    throw new Error(`deno fmt failed: ${new TextDecoder().decode(stderr)}`);
  }
  return new TextDecoder().decode(stdout);
}

/** Formats Markdown as `deno fmt` does, without the final newline. */
export async function formatMarkdown(markdown: string): Promise<string> {
  return (await formatWithDeno("md", markdown)).trimEnd();
}
