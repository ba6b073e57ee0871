/**
 * The transport a bench server serves on, from its second argument:
 * nothing (plain TCP), `tls:DIR` (HTTPS with DIR/cert.pem and DIR/key.pem
 * on the port) or `unix:PATH` (HTTP on the unix socket PATH; the port then
 * serves plain TCP too, for the harness's checks).
 *
 * @module
 */

/** What the server listens on besides its port. */
export type BenchTransport =
  | { kind: "tcp" }
  | { kind: "tls"; cert: string; key: string }
  | { kind: "unix"; path: string };

/** Reads the transport from `Deno.args[1]`. */
export function transportFromArgs(): BenchTransport {
  const raw = Deno.args[1] ?? "";
  if (raw === "") return { kind: "tcp" };
  if (raw.startsWith("tls:")) {
    const dir = raw.slice(4);
    return {
      kind: "tls",
      cert: Deno.readTextFileSync(`${dir}/cert.pem`),
      key: Deno.readTextFileSync(`${dir}/key.pem`),
    };
  }
  if (raw.startsWith("unix:")) return { kind: "unix", path: raw.slice(5) };
  throw new TypeError(`bad transport ${JSON.stringify(raw)}`);
}
