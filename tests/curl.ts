/**
 * A real curl process, as an operator's script would run it.
 *
 * @module
 */

/** Runs curl with `args`; resolves to the status code, headers and body. */
export async function curl(
  args: string[],
): Promise<{ status: number; body: string; headers: string }> {
  const out = await new Deno.Command("curl", {
    args: [
      "-sS",
      "--max-time",
      "60",
      "-D",
      "-",
      "-w",
      "\n%{http_code}",
      ...args,
    ],
    stdout: "piped",
    stderr: "piped",
  }).output();
  const text = new TextDecoder().decode(out.stdout);
  const cut = text.lastIndexOf("\n");
  const head = text.indexOf("\r\n\r\n");
  return {
    status: Number(text.slice(cut + 1)),
    headers: head < 0 ? "" : text.slice(0, head),
    body: head < 0 ? text.slice(0, cut) : text.slice(head + 4, cut),
  };
}

/** The value of header `name` in curl's `headers`, or "". */
export function header(headers: string, name: string): string {
  const match = headers.match(new RegExp(`^${name}:\\s*(.*?)\\s*$`, "im"));
  return match?.[1] ?? "";
}
