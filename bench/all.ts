/**
 * Runs every benchmark, one after the other (never two at once: they pin the
 * same CPUs): the serving cost, then restarts under load against the peers.
 *
 *   deno task bench                     # full
 *   deno task bench:quick --out DIR     # < 5 minutes
 *
 * `--quick` and `--out DIR` are passed on to each benchmark; each regenerates
 * its own section of BENCHMARKS.md.
 *
 * @module
 */

const BENCHES = ["serve_bench.ts", "restart_bench.ts"];

async function main(args: string[]): Promise<number> {
  for (const bench of BENCHES) {
    const url = new URL(bench, import.meta.url);
    console.log(`\n=== ${bench} ${args.join(" ")}`);
    const status = await new Deno.Command(Deno.execPath(), {
      args: ["run", "-A", url.pathname, ...args],
      stdin: "null",
    }).spawn().status;
    if (!status.success) {
      console.error(`${bench} failed (exit ${status.code})`);
      return status.code || 1;
    }
  }
  return 0;
}

Deno.exit(await main(Deno.args));
