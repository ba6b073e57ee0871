/**
 * Cold start of the serve bench: spawn → first 200 on `GET /` (a new
 * connection, polled every 1 ms), per system, the systems alternating sample
 * by sample so that they share the machine's moods. Each server runs pinned
 * like in the loaded runs and is stopped before the next one starts.
 *
 * @module
 */

import { denoRunCommand, pinnedToCpu } from "../lib/commands.ts";
import { track } from "../lib/children.ts";
import { httpGet } from "../lib/http_get.ts";
import { freePort, stopServerProcess } from "../lib/server_process.ts";
import { median, round } from "../lib/stats.ts";
import { sleep } from "../lib/time.ts";

/** A program measured from its spawn: `deno run -A <args> <port>`. */
export interface ColdStartSpec {
  name: string;
  label: string;
  /** Repository-relative arguments after `deno run -A`; the port comes last. */
  args: string[];
}

/** One system's cold starts. */
export interface ColdStartRecord {
  system: string;
  label: string;
  command: string;
  samplesMs: number[];
  medianMs: number;
}

const POLL_MS = 1;
const TIMEOUT_MS = 30_000;
const STOP_GRACE_MS = 5_000;

/** `samples` cold starts of each of `specs`, alternating. */
export async function measureColdStarts(
  specs: ColdStartSpec[],
  options: { samples: number; cpu: number; repoDir: string },
): Promise<ColdStartRecord[]> {
  const records = specs.map((spec): ColdStartRecord => ({
    system: spec.name,
    label: spec.label,
    command: `taskset -c ${options.cpu} deno run -A ${spec.args.join(" ")} P`,
    samplesMs: [],
    medianMs: NaN,
  }));
  for (let i = 0; i < options.samples; i++) {
    for (let k = 0; k < specs.length; k++) {
      const j = (k + i) % specs.length;
      const ms = await coldStart(specs[j], options);
      records[j].samplesMs.push(round(ms, 1));
      console.log(`  cold start ${specs[j].name}: ${round(ms, 1)} ms`);
    }
  }
  for (const record of records) record.medianMs = median(record.samplesMs);
  return records;
}

async function coldStart(
  spec: ColdStartSpec,
  options: { cpu: number; repoDir: string },
): Promise<number> {
  const port = freePort();
  const [program, ...args] = pinnedToCpu(
    options.cpu,
    denoRunCommand([...spec.args, String(port)]),
  );
  const started = performance.now();
  const child = new Deno.Command(program, {
    args,
    cwd: options.repoDir,
    stdin: "null",
    stdout: "null",
    stderr: "null",
  }).spawn();
  track(child);
  try {
    while (performance.now() - started < TIMEOUT_MS) {
      try {
        const answer = await httpGet(port, "/", 1_000);
        if (answer.status === 200) return performance.now() - started;
      } catch {
        // not listening yet
      }
      await sleep(POLL_MS);
    }
    throw new Error(`${spec.name}: no 200 on GET / within ${TIMEOUT_MS} ms`);
  } finally {
    await stopServerProcess(child, STOP_GRACE_MS);
  }
}
