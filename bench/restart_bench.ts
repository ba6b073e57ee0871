/**
 * Zero-downtime restarts under load, ours against the peers, side by side in
 * one run: ours (native engine over TCP, HTTPS and a unix socket, node
 * engine), plain Deno.serve killed and
 * started again, cloudflare/tableflip and facebookgo/grace (Go, from
 * Debian), nginx (`nginx -s reload`) and pm2 (cluster mode, `pm2 reload`).
 * For each: cold starts and idle restarts (ours with `GRACEFUL_TRACE=1`:
 * where the time goes), then with keep-alive and with `Connection: close`
 * steady req/s and server CPU per request, and restarts under wrk load
 * (failed requests, throughput in the restart window, handover latency, the
 * processes left). Then a soak of ours (native): many restarts under load,
 * fd count and RSS per generation.
 *
 *   deno run -A bench/restart_bench.ts [--quick] [--out DIR] [--restarts N]
 *     [--soak N] [--systems id,id] [--no-markdown]
 *
 * Servers are pinned to CPU 0, wrk (and this script) to CPU 1. Results:
 * `DIR/restart.json` (default `bench/results/`), and for a full run the
 * restart-bench section of BENCHMARKS.md, docs/peers_timeline.svg and
 * docs/soak.svg. A quick run writes its section and charts into DIR instead.
 *
 * @module
 */

import { parseArgs } from "node:util";
import { runBenchMain } from "./lib/bench_main.ts";
import { writeFileAtomically } from "./lib/atomic_write.ts";
import { formatWithDeno } from "./lib/deno_fmt.ts";
import { writeSection } from "./lib/markdown_section.ts";
import { clockTicksPerSecond } from "./lib/proc.ts";
import { readMachine } from "./lib/machine.ts";
import { round } from "./lib/stats.ts";
import { selfSignedCert } from "./lib/tls_cert.ts";
import { soakSvg, timelineSvg } from "./restart/charts.ts";
import {
  allDescendants,
  becomeSubreaper,
  killAllDescendants,
  pinSelf,
  stopReaper,
} from "./restart/procs.ts";
import type {
  BenchConfig,
  RestartReport,
  SoakRecord,
  SystemRecord,
} from "./restart/records.ts";
import { MARKERS, renderSection } from "./restart/report.ts";
import { benchSystem, log } from "./restart/runs.ts";
import { soakRun } from "./restart/soak.ts";
import { evaluateTargets } from "./restart/targets.ts";
import {
  PM2_VERSION,
  prepareToolchain,
  type Toolchain,
  toolNeeds,
} from "./restart/setup.ts";
import { SPECS, SYSTEM_IDS, type SystemId } from "./restart/specs.ts";
import type { SystemContext } from "./restart/systems.ts";

const BENCH_DIR = decodeURIComponent(new URL(".", import.meta.url).pathname);
const REPO_DIR = decodeURIComponent(new URL("..", import.meta.url).pathname);
const APPS_DIR = `${BENCH_DIR}restart/apps`;
const DEFAULT_OUT = `${BENCH_DIR}results`;
const MARKDOWN_PATH = `${REPO_DIR}BENCHMARKS.md`;
const TIMELINE_SVG = `${REPO_DIR}docs/peers_timeline.svg`;
const SOAK_SVG = `${REPO_DIR}docs/soak.svg`;
const USAGE = `Usage: deno run -A bench/restart_bench.ts [options]

Restarts under load, ours (with the timeline of each handover; the native
engine also over HTTPS and a unix socket) against the peers (Deno.serve kill
+ start, Go tableflip, Go grace, nginx reload, pm2 cluster reload), plus a
soak of ours.
Installs what the chosen systems need (Debian: golang-go, the two Go
libraries, nginx; npm: pm2 into a temporary directory). Linux, root (for
apt-get), 2+ CPUs, wrk, openssl (the HTTPS system's certificate).

  --quick          a short run (about 4 minutes): 1 cold start, 2 restarts
                   per system and mode, 2 s steady runs, a soak of 10
  --out DIR        where restart.json goes (default bench/results); a
                   quick run also writes restart.md and the charts there
  --restarts N     restarts per system and mode (default 20; quick 2)
  --soak N         restarts of the soak (default 200; quick 10; 0: none)
  --systems LIST   comma-separated subset of: ${SYSTEM_IDS.join(", ")}
  --quiet-wait S   before each measured run, wait up to S s for the other
                   processes on the machine to use < 10% of a core (default
                   30; quick 0); the run goes on regardless, and notes it
  --no-markdown    do not touch BENCHMARKS.md and docs/
  --render FILE    measure nothing: render the section and the charts again
                   from a restart.json (BENCHMARKS.md and docs/ for the full
                   run's bench/results/restart.json, else next to FILE)
  --note TEXT      with --render: add a note to the report (kept in its JSON)
  --help           this text
`;

/** `raw` as an integer ≥ `min`, or `fallback` when not given. */
function count(
  raw: string | undefined,
  fallback: number,
  min: number,
  name: string,
): number {
  const n = raw === undefined ? fallback : Number(raw);
  if (!Number.isInteger(n) || n < min) {
    throw new Error(`${name} must be an integer ≥ ${min}, not ${raw}`);
  }
  return n;
}

/** The configuration of a full or a quick run. */
export function benchConfig(quick: boolean): BenchConfig {
  return {
    quick,
    coldStarts: quick ? 1 : 5,
    idleRestarts: quick ? 1 : 3,
    warmupS: 1,
    steadyS: quick ? 2 : 8,
    restarts: quick ? 2 : 20,
    intervalMs: 2_000,
    leadMs: quick ? 2_000 : 5_000,
    tailMs: quick ? 1_000 : 2_000,
    windowMs: 1_000,
    rampMs: 1_000,
    soakRestarts: quick ? 10 : 200,
    soakIntervalMs: 1_200,
    connections: 50,
    threads: 1,
    serverCpu: 0,
    clientCpu: 1,
    systems: [...SYSTEM_IDS],
    quietWaitS: quick ? 0 : 30,
  };
}

let cleanedUp = false;
let workDirToRemove: string | null = null;

/**
 * Kills every process this bench started and removes its temporary
 * directory (synchronous; safe in "unload").
 */
function emergencyCleanup(): void {
  if (cleanedUp) return;
  cleanedUp = true;
  killAllDescendants();
  if (workDirToRemove !== null) {
    try {
      Deno.removeSync(workDirToRemove, { recursive: true });
    } catch {
      // already gone
    }
  }
}

function reproduceLines(config: BenchConfig, toolchain: Toolchain | null) {
  const lines = [
    config.quick
      ? "deno run -A bench/restart_bench.ts --quick --out DIR"
      : "deno run -A bench/restart_bench.ts",
  ];
  if (toolchain !== null) {
    lines.push(
      "# what it does first (Debian packages, only when missing; pm2 in a temp dir):",
      "apt-get update && apt-get install -y golang-go golang-github-cloudflare-tableflip-dev golang-github-facebookgo-grace-dev nginx",
      "GO111MODULE=off GOPATH=$TMP/gopath:/usr/share/gocode go build -o $TMP/tableflip-hello bench/restart/apps/tableflip/main.go",
      "GO111MODULE=off GOPATH=$TMP/gopath:/usr/share/gocode go build -o $TMP/grace-hello bench/restart/apps/grace/main.go",
      `npm install --prefix $TMP/pm2 --no-audit --no-fund pm2@${PM2_VERSION}`,
    );
  }
  return lines;
}

/** Writes the JSON, the charts and the section (BENCHMARKS.md or DIR/restart.md). */
async function publish(
  report: RestartReport,
  outDir: string,
  updateDocs: boolean,
): Promise<void> {
  await writeFileAtomically(
    `${outDir}/restart.json`,
    await formatWithDeno("json", JSON.stringify(report, null, 2)),
  );
  log(`wrote ${outDir}/restart.json`);
  const timelinePath = updateDocs
    ? TIMELINE_SVG
    : `${outDir}/peers_timeline.svg`;
  const soakPath = updateDocs ? SOAK_SVG : `${outDir}/soak.svg`;
  await writeFileAtomically(
    timelinePath,
    await formatWithDeno("svg", timelineSvg(report)),
  );
  if (report.soak !== null) {
    await writeFileAtomically(
      soakPath,
      await formatWithDeno("svg", soakSvg(report)),
    );
  }
  const section = await renderSection(report, {
    jsonPath: updateDocs
      ? "bench/results/restart.json"
      : `${outDir}/restart.json`,
    timelineSvg: updateDocs ? "docs/peers_timeline.svg" : timelinePath,
    soakSvg: updateDocs ? "docs/soak.svg" : soakPath,
  });
  if (updateDocs) {
    await writeSection(MARKDOWN_PATH, section, MARKERS);
    log(`updated ${MARKDOWN_PATH}, ${timelinePath}, ${soakPath}`);
  } else {
    await writeFileAtomically(`${outDir}/restart.md`, `${section}\n`);
    log(`wrote ${outDir}/restart.md, ${timelinePath}`);
  }
  for (const target of report.targets) {
    log(`${target.pass ? "pass" : "MISS"}: ${target.name}: ${target.value}`);
  }
}

async function main(args: string[]): Promise<number> {
  const parsed = parseArgs({
    args,
    options: {
      quick: { type: "boolean", default: false },
      out: { type: "string" },
      render: { type: "string" },
      note: { type: "string", multiple: true },
      restarts: { type: "string" },
      soak: { type: "string" },
      systems: { type: "string" },
      "quiet-wait": { type: "string" },
      "no-markdown": { type: "boolean", default: false },
      help: { type: "boolean", default: false },
    },
    strict: true,
  });
  if (parsed.values.help) {
    console.log(USAGE);
    return 0;
  }
  if (parsed.values.render !== undefined) {
    const report = JSON.parse(
      await Deno.readTextFile(parsed.values.render),
    ) as RestartReport;
    report.notes.push(...(parsed.values.note ?? []));
    report.targets = evaluateTargets(report);
    const slash = parsed.values.render.lastIndexOf("/");
    const outDir = parsed.values.out ??
      (slash === -1 ? "." : parsed.values.render.slice(0, slash));
    const updateDocs = !report.config.quick && !report.partial &&
      !parsed.values["no-markdown"] && parsed.values.out === undefined &&
      (await Deno.realPath(outDir)) ===
        (await Deno.realPath(DEFAULT_OUT).catch(() => ""));
    await publish(report, outDir, updateDocs);
    return 0;
  }
  const config = benchConfig(parsed.values.quick);
  const v = parsed.values;
  config.restarts = count(v.restarts, config.restarts, 1, "--restarts");
  config.soakRestarts = count(v.soak, config.soakRestarts, 0, "--soak");
  if (v["quiet-wait"] !== undefined) {
    config.quietWaitS = Number(v["quiet-wait"]);
    if (!(config.quietWaitS >= 0)) {
      throw new Error("--quiet-wait must be a number of seconds ≥ 0");
    }
  }
  if (v.systems !== undefined) {
    const ids = v.systems.split(",").map((s) => s.trim());
    const unknown = ids.find((id) => !SPECS[id as SystemId]);
    if (unknown !== undefined) {
      throw new Error(
        `unknown system ${unknown}; known: ${SYSTEM_IDS.join(", ")}`,
      );
    }
    config.systems = ids;
  }
  if (navigator.hardwareConcurrency < 2) {
    console.error("needs at least 2 CPUs (servers on CPU 0, wrk on CPU 1)");
    return 1;
  }
  const outDir = parsed.values.out ?? DEFAULT_OUT;
  const partial = parsed.values.systems !== undefined ||
    parsed.values.restarts !== undefined || parsed.values.soak !== undefined;
  const updateDocs = !config.quick && !parsed.values["no-markdown"] &&
    parsed.values.out === undefined && !partial;

  const began = performance.now();
  becomeSubreaper();
  const workDir = await Deno.makeTempDir({ prefix: "restart-bench-" });
  workDirToRemove = workDir;
  const ticksPerS = await clockTicksPerSecond();
  const machine = await readMachine(REPO_DIR);
  log(
    `${
      config.quick ? "quick" : "full"
    } run: ${config.systems.length} systems, ` +
      `${config.restarts} restarts per mode, soak ${config.soakRestarts}; work dir ${workDir}`,
  );
  let toolchain: Toolchain | null = null;
  const systems: SystemRecord[] = [];
  let soak: SoakRecord | null = null;
  const notes: string[] = [];
  try {
    toolchain = await prepareToolchain(
      APPS_DIR,
      workDir,
      log,
      toolNeeds(config.systems),
    );
    if (toolchain.installed.length > 0) {
      notes.push(
        `This run installed Debian packages: ${
          toolchain.installed.join(", ")
        }.`,
      );
    }
    await pinSelf(config.clientCpu);
    const { cert, key } = await selfSignedCert();
    const tls = {
      cert,
      certFile: `${workDir}/cert.pem`,
      keyFile: `${workDir}/key.pem`,
    };
    await Deno.writeTextFile(tls.certFile, cert);
    await Deno.writeTextFile(tls.keyFile, key);
    const context: SystemContext = {
      repoDir: REPO_DIR,
      workDir,
      toolchain,
      cpu: config.serverCpu,
      tls,
    };
    for (const id of config.systems as SystemId[]) {
      log(`${id}: ${SPECS[id].label}`);
      systems.push(await benchSystem(id, context, config, ticksPerS));
    }
    if (config.soakRestarts > 0) {
      log(`soak: ${config.soakRestarts} restarts of ours (native) under load`);
      try {
        soak = await soakRun(context, config, ticksPerS);
        log(
          `soak: ${soak.completed} restarts, failed ${soak.failures.total}, ` +
            `fds ${soak.fds.min}–${soak.fds.max}, RSS ${soak.rssMiB.min}–${soak.rssMiB.max} MiB`,
        );
      } catch (error) {
        log(`soak FAILED: ${error}`);
        notes.push(`The soak failed: ${error}`);
      }
    }
  } finally {
    const left = allDescendants();
    if (left.length > 0) {
      notes.push(
        `${left.length} processes were still running at the end and were killed.`,
      );
    }
    killAllDescendants();
    stopReaper();
    await Deno.remove(workDir, { recursive: true }).catch(() => {});
  }

  const report: RestartReport = {
    bench: "restart",
    date: machine.date,
    config,
    machine: { ...machine },
    versions: toolchain?.versions ?? {},
    reproduce: reproduceLines(config, toolchain),
    systems,
    soak,
    targets: [],
    partial,
    notes,
    durationS: round((performance.now() - began) / 1000),
  };
  report.targets = evaluateTargets(report);
  await publish(report, outDir, updateDocs);
  return 0;
}

if (import.meta.main) {
  await runBenchMain(main, {
    name: "restart bench",
    stopping: "every process this bench started",
    cleanUp: emergencyCleanup,
    printStack: false,
  });
}
