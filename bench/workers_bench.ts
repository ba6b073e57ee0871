/**
 * Workers, in one run: the steady state of `mod.ts --workers 2` next to
 * `deno serve --parallel` with 2 (the same app, both pinned to CPU 1, wrk to
 * CPU 0, rounds interleaved; `--server-cpus 0-1` to spread them), with each worker's share of the requests; and
 * rolling reloads under wrk (keep-alive and `Connection: close`), with their
 * failed requests: `--workers 2` rolled by `reload`, pm2 cluster (2
 * instances of a plain node:http app) by `pm2 reload`, and
 * `deno serve --parallel` killed and started; then SIGKILL of one worker of
 * `--workers 2` under wrk (keep-alive and close), with the connections
 * refused (connect errors) and the other failed requests.
 *
 *   deno run -A bench/workers_bench.ts [--duration S] [--rounds R]
 *     [--reloads N] [--kills N] [--server-cpus 1] [--pm2 PATH]
 *
 * pm2 is found on PATH, or at `--pm2` (`npm i pm2` in a temp dir); without
 * it the pm2 rows are skipped.
 *
 * @module
 */

import { killAllChildren, track } from "./lib/children.ts";
import { readFlags } from "./lib/flags.ts";
import {
  clockTicksPerSecond,
  readProcessCpuTicks,
  readProcessFacts,
} from "./lib/proc.ts";
import { freePort } from "./lib/server_process.ts";
import { sleep, waitUntil } from "./lib/time.ts";
import { runWrk, totalErrors } from "./lib/wrk.ts";

const ROOT = new URL("..", import.meta.url).pathname;
const APP = `${ROOT}bench/servers/hello_default.ts`;
/** The CPUs the servers may run on (`--server-cpus`, taskset syntax). */
let serverCpus = "1";
const WRK_CPU = 0;
/** The pm2 command (`--pm2`). */
let pm2 = "pm2";

type System = "workers" | "deno_serve" | "pm2";

interface Server {
  child?: Deno.ChildProcess;
  port: number;
  pidfile?: string;
  /** pm2's home (its daemon's state) for a pm2 cluster. */
  pm2Home?: string;
}

/** A plain node:http app, what pm2 cluster serves. */
const NODE_APP = `require("node:http").createServer((req, res) => {
  res.end("Hello, World!");
}).listen(Number(process.env.PORT), "127.0.0.1");
`;

/** Runs `pm2 ARGS` with PM2_HOME, pinned like the other servers. */
async function runPm2(home: string, args: string[], env = {}): Promise<void> {
  const out = await new Deno.Command("taskset", {
    args: ["-c", serverCpus, pm2, ...args],
    env: { PM2_HOME: home, ...env },
    stdout: "null",
    stderr: "piped",
  }).output();
  if (!out.success) {
    throw new Error(
      `pm2 ${args[0]}: ${new TextDecoder().decode(out.stderr).trim()}`,
    );
  }
}

async function pm2Available(): Promise<boolean> {
  const home = await Deno.makeTempDir({ prefix: "graceful-pm2-bench-" });
  try {
    // `pm2 --version` starts a daemon: it is killed again.
    await runPm2(home, ["--version"]);
    await runPm2(home, ["kill"]);
    return true;
  } catch {
    return false;
  }
}

/** pm2 cluster with 2 instances; its daemon is pinned to the server CPUs. */
async function startPm2(port: number): Promise<Server> {
  const home = await Deno.makeTempDir({ prefix: "graceful-pm2-bench-" });
  const app = `${home}/app.js`;
  await Deno.writeTextFile(app, NODE_APP);
  await runPm2(home, ["start", app, "-i", "2", "--name", "bench"], {
    PORT: String(port),
  });
  const server = { port, pm2Home: home };
  while (!(await up(port))) await sleep(50);
  return server;
}

async function up(port: number): Promise<boolean> {
  try {
    const res = await fetch(`http://127.0.0.1:${port}/`);
    await res.body?.cancel();
    return res.ok;
  } catch {
    return false;
  }
}

async function start(
  system: System,
  port = freePort(),
): Promise<Server> {
  if (system === "pm2") return await startPm2(port);
  const dir = await Deno.makeTempDir({ prefix: "graceful-workers-bench-" });
  const pidfile = system === "workers" ? `${dir}/app.pid` : undefined;
  const args = system === "workers"
    ? ["run", "-A", `${ROOT}mod.ts`, APP, "--workers", "2", "--port"]
    : ["serve", "--parallel", "-A", "--host", "127.0.0.1", "--port"];
  args.push(String(port));
  if (system === "workers") {
    args.push(
      "--hostname",
      "127.0.0.1",
      "--pidfile",
      pidfile!,
      "--log-level",
      "error",
    );
  } else args.push(APP);
  const [command, ...rest] = [
    "taskset",
    "-c",
    serverCpus,
    Deno.execPath(),
    ...args,
  ];
  const child = new Deno.Command(command, {
    args: rest,
    env: { DENO_JOBS: "2", NO_COLOR: "1" },
    stdout: "null",
    stderr: "null",
  }).spawn();
  track(child);
  while (!(await up(port))) await sleep(50);
  if (pidfile) {
    await waitUntil(
      () => workerPids({ child, port, pidfile }).length === 2,
      30_000,
      50,
    );
  }
  return { child, port, pidfile };
}

function status(
  server: Server,
): { workers: { pid: number; served: number }[]; restarts: number } {
  return JSON.parse(Deno.readTextFileSync(`${server.pidfile}.json`));
}

function workerPids(server: Server): number[] {
  try {
    return status(server).workers.map((w) => w.pid);
  } catch {
    return [];
  }
}

/** utime+stime ticks of a process and its children (one level: workers). */
async function treeTicks(pid: number): Promise<number> {
  let ticks = 0;
  for (const entry of Deno.readDirSync("/proc")) {
    if (!/^\d+$/.test(entry.name)) continue;
    try {
      const stat = Deno.readTextFileSync(`/proc/${entry.name}/stat`);
      const ppid = Number(stat.slice(stat.lastIndexOf(")") + 2).split(" ")[1]);
      if (Number(entry.name) !== pid && ppid !== pid) continue;
      const t = await readProcessCpuTicks(Number(entry.name));
      ticks += t.user + t.system;
    } catch {
      // gone meanwhile
    }
  }
  return ticks;
}

/** Per CPU, [busy, total] jiffies from /proc/stat. */
function cpuJiffies(): number[][] {
  return Deno.readTextFileSync("/proc/stat").split("\n")
    .filter((line) => /^cpu\d+ /.test(line))
    .map((line) => {
      const [user, nice, system, idle, iowait, irq, softirq, steal] = line
        .split(/\s+/).slice(1, 9).map(Number);
      const total = user + nice + system + idle + iowait + irq + softirq +
        steal;
      return [total - idle - iowait, total];
    });
}

/** "cpu0 99% cpu1 73%": how busy each CPU was between two readings. */
function busyText(before: number[][], after: number[][]): string {
  return after.map(([busy, total], i) =>
    `cpu${i} ${
      Math.round(100 * (busy - before[i][0]) / (total - before[i][1]))
    }%`
  ).join(" ");
}

async function stop(server: Server): Promise<void> {
  if (server.pm2Home) return await runPm2(server.pm2Home, ["kill"]);
  server.child!.kill("SIGTERM");
  await server.child!.status;
}

async function steady(duration: number, rounds: number) {
  const rows: Record<
    string,
    { rps: number[]; usPerReq: number[]; shares: string[]; busy: string[] }
  > = {
    workers: { rps: [], usPerReq: [], shares: [], busy: [] },
    deno_serve: { rps: [], usPerReq: [], shares: [], busy: [] },
  };
  const hz = await clockTicksPerSecond();
  for (let round = 0; round < rounds; round++) {
    for (const system of ["workers", "deno_serve"] as const) {
      const server = await start(system);
      await runWrk({
        url: `http://127.0.0.1:${server.port}/`,
        duration: 1,
        threads: 1,
        connections: 50,
        headers: [],
        cpu: WRK_CPU,
      });
      const before = await treeTicks(server.child!.pid);
      const jiffies = cpuJiffies();
      const served = server.pidfile
        ? status(server).workers.map((w) => w.served)
        : [];
      const { result } = await runWrk({
        url: `http://127.0.0.1:${server.port}/`,
        duration,
        threads: 1,
        connections: 50,
        headers: [],
        cpu: WRK_CPU,
      });
      const ticks = (await treeTicks(server.child!.pid)) - before;
      rows[system].busy.push(busyText(jiffies, cpuJiffies()));
      rows[system].rps.push(result.requestsPerSecond);
      rows[system].usPerReq.push((ticks / hz) * 1e6 / result.requests);
      if (server.pidfile) {
        await sleep(1500); // the workers report their counts once a second
        const now = status(server).workers.map((w) => w.served);
        const delta = now.map((n, i) => n - (served[i] ?? 0));
        const total = delta.reduce((a, b) => a + b, 0);
        rows[system].shares.push(
          delta.map((d) => `${Math.round((100 * d) / total)}%`).join("/"),
        );
      }
      await stop(server);
    }
  }
  return rows;
}

/**
 * Reloads under wrk: a roll of `--workers 2` by `mod.ts reload`, pm2
 * cluster's `pm2 reload`, or `deno serve --parallel` killed (SIGTERM) and
 * started again on its port.
 */
async function rolling(
  system: System,
  reloads: number,
  close: boolean,
) {
  let server = await start(system);
  const wrk = runWrk({
    url: `http://127.0.0.1:${server.port}/`,
    duration: reloads * 2 + 2,
    threads: 1,
    connections: 50,
    headers: close ? ["Connection: close"] : [],
    cpu: WRK_CPU,
  });
  await sleep(1000);
  let ok = 0;
  for (let i = 0; i < reloads; i++) {
    if (system === "deno_serve") {
      await stop(server);
      server = await start(system, server.port);
      ok++;
      await sleep(1000);
      continue;
    }
    if (system === "pm2") {
      await runPm2(server.pm2Home!, ["reload", "bench"]).then(() => ok++);
      await sleep(1000);
      continue;
    }
    const out = await new Deno.Command(Deno.execPath(), {
      args: [
        "run",
        "-A",
        `${ROOT}mod.ts`,
        "reload",
        "--pidfile",
        server.pidfile!,
      ],
      stdout: "null",
      stderr: "null",
    }).output();
    if (out.code === 0) ok++;
    await sleep(1000);
  }
  const { result } = await wrk;
  const rolls = server.pidfile ? status(server).restarts : ok;
  await stop(server);
  return {
    requests: result.requests,
    rps: result.requestsPerSecond,
    failed: totalErrors(result.errors),
    reloads: ok,
    rolls,
  };
}

/** Seconds of wrk in a kill run, and when in it the worker is killed. */
const KILL_RUN_S = 6;
const KILL_AT_MS = 2_000;

/**
 * SIGKILL of the busier worker of `--workers 2` under wrk: the supervisor holds the
 * shared socket, so no connection may be refused while the other worker
 * serves and a new one starts; the requests in flight on the killed worker's
 * own connections are lost (a SIGKILL cannot drain).
 */
async function killOneWorker(close: boolean) {
  const server = await start("workers");
  try {
    const wrk = runWrk({
      url: `http://127.0.0.1:${server.port}/`,
      duration: KILL_RUN_S,
      threads: 1,
      connections: 50,
      headers: close ? ["Connection: close"] : [],
      cpu: WRK_CPU,
    });
    await sleep(KILL_AT_MS);
    // The busier worker (the counts are a second old at most): the one
    // holding connections, when one holds them all.
    const victim = status(server).workers.reduce((a, b) =>
      b.served > a.served ? b : a
    ).pid;
    const supervisor = await readProcessFacts(server.child!.pid);
    if (!supervisor.children.includes(victim)) {
      throw new Error(`no worker of pid ${server.child!.pid} to kill`);
    }
    Deno.kill(victim, "SIGKILL");
    const killedAt = performance.now();
    const replaced = await waitUntil(
      () => {
        const pids = workerPids(server);
        return pids.length === 2 && !pids.includes(victim);
      },
      KILL_RUN_S * 1000,
      10,
    );
    const replacedMs = replaced ? performance.now() - killedAt : null;
    const { result } = await wrk;
    return {
      victim,
      replacedMs,
      requests: result.requests,
      rps: result.requestsPerSecond,
      errors: result.errors,
    };
  } finally {
    await stop(server);
  }
}

async function reportKills(kills: number): Promise<void> {
  console.log(
    `SIGKILL of the busier worker of --workers 2 under wrk (-c50, ${KILL_RUN_S} s, ` +
      `the kill ${
        KILL_AT_MS / 1000
      } s in), servers on CPU ${serverCpus}, wrk on CPU ${WRK_CPU}:`,
  );
  console.log(
    "| load | kill | requests (req/s) | refused (connect errors) | other failed (read / write / timeout / non-2xx) | replacement worker up after |",
  );
  console.log("| --- | --: | --: | --: | --: | --: |");
  for (const close of [false, true]) {
    for (let i = 1; i <= kills; i++) {
      const r = await killOneWorker(close);
      const e = r.errors;
      console.log(
        `| ${
          close ? "Connection: close" : "keep-alive"
        } | ${i} | ${r.requests} (${Math.round(r.rps)}) | **${e.connect}** | ${
          e.read + e.write + e.timeout + e.status
        } (${e.read} / ${e.write} / ${e.timeout} / ${e.status}) | ${
          r.replacedMs === null ? "not seen" : `${Math.round(r.replacedMs)} ms`
        } |`,
      );
    }
  }
}

async function reportSteady(duration: number, rounds: number) {
  const rows = await steady(duration, rounds);
  const w = rows.workers;
  const d = rows.deno_serve;
  console.log(
    `steady state, ${rounds} rounds of ${duration} s, keep-alive, 50 connections, servers on CPU ${serverCpus}, wrk on CPU ${WRK_CPU}:`,
  );
  console.log(
    `  --workers 2:            ${Math.round(median(w.rps))} req/s, ${
      median(w.usPerReq).toFixed(1)
    } us CPU/request, shares ${w.shares.join(", ")}`,
  );
  console.log(`    per round: ${roundsText(w)}`);
  console.log(
    `  deno serve --parallel:  ${Math.round(median(d.rps))} req/s, ${
      median(d.usPerReq).toFixed(1)
    } us CPU/request`,
  );
  console.log(`    per round: ${roundsText(d)}`);
  console.log(
    `  ratio (workers / deno serve): ${
      (median(w.rps) / median(d.rps)).toFixed(3)
    } req/s, ${
      (median(w.usPerReq) / median(d.usPerReq)).toFixed(3)
    } CPU/request`,
  );
}

const ROLLED_BY: Record<System, string> = {
  workers: "--workers 2, rolled by `reload`",
  pm2: "pm2 cluster (2 instances, node:http), rolled by `pm2 reload`",
  deno_serve: "deno serve --parallel, killed and started",
};

/** Each round's req/s and how busy each CPU was (is wrk's CPU saturated?). */
function roundsText(
  row: { rps: number[]; usPerReq: number[]; busy: string[] },
): string {
  return row.rps.map((rps, i) =>
    `${Math.round(rps)} req/s ${row.usPerReq[i].toFixed(1)} us (${row.busy[i]})`
  ).join("; ");
}

const median = (values: number[]) =>
  [...values].sort((a, b) => a - b)[Math.floor(values.length / 2)];

if (import.meta.main) {
  let duration = 5;
  let rounds = 3;
  let reloads = 4;
  let kills = 3;
  for (const flag of readFlags(Deno.args)) {
    if (flag.name === "--duration") duration = Number(flag.value());
    else if (flag.name === "--rounds") rounds = Number(flag.value());
    else if (flag.name === "--reloads") reloads = Number(flag.value());
    else if (flag.name === "--kills") kills = Number(flag.value());
    else if (flag.name === "--server-cpus") serverCpus = flag.value();
    else if (flag.name === "--pm2") pm2 = flag.value();
    else throw new TypeError(`unknown flag ${flag.arg}`);
  }
  globalThis.addEventListener("unload", killAllChildren);
  try {
    if (rounds > 0) await reportSteady(duration, rounds);
    const withPm2 = reloads > 0 && await pm2Available();
    if (reloads > 0 && !withPm2) {
      console.log(`pm2 (${pm2}) not found: its rows skipped`);
    }
    const systems: System[] = withPm2
      ? ["workers", "pm2", "deno_serve"]
      : ["workers", "deno_serve"];
    for (const close of reloads > 0 ? [false, true] : []) {
      for (const system of systems) {
        const r = await rolling(system, reloads, close);
        console.log(ROLLED_BY[system]);
        console.log(
          `rolling reloads (${
            close ? "Connection: close" : "keep-alive"
          }): ${r.reloads}/${reloads} reloads ok, ${r.rolls} rolls, ${r.requests} requests (${
            Math.round(r.rps)
          } req/s), ${r.failed} failed`,
        );
      }
    }
    if (kills > 0) await reportKills(kills);
  } finally {
    killAllChildren();
  }
}
