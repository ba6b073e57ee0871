/**
 * Workers, in one run: the steady state of `mod.ts --workers 2` next to
 * `deno serve --parallel` with 2 (the same app, both pinned to CPU 1, wrk to
 * CPU 0, rounds interleaved; `--server-cpus 0-1` to spread them), with each worker's share of the requests; and
 * rolling reloads under wrk (keep-alive and `Connection: close`), with their
 * failed requests.
 *
 *   deno run -A bench/workers_bench.ts [--duration S] [--rounds R]
 *     [--reloads N] [--server-cpus 1]
 *
 * @module
 */

import { killAllChildren, track } from "./lib/children.ts";
import { readFlags } from "./lib/flags.ts";
import { clockTicksPerSecond, readProcessCpuTicks } from "./lib/proc.ts";
import { sleep, waitUntil } from "./lib/time.ts";
import { runWrk, type WrkResult } from "./lib/wrk.ts";

const ROOT = new URL("..", import.meta.url).pathname;
const APP = `${ROOT}bench/servers/hello_default.ts`;
/** The CPUs the servers may run on (`--server-cpus`, taskset syntax). */
let serverCpus = "1";
const WRK_CPU = 0;

interface Server {
  child: Deno.ChildProcess;
  port: number;
  pidfile?: string;
}

function freePort(): number {
  const listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const port = (listener.addr as Deno.NetAddr).port;
  listener.close();
  return port;
}

async function start(
  system: "workers" | "deno_serve",
  port = freePort(),
): Promise<Server> {
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
  const up = async () => {
    try {
      const res = await fetch(`http://127.0.0.1:${port}/`);
      await res.body?.cancel();
      return res.ok;
    } catch {
      return false;
    }
  };
  while (!(await up())) await sleep(50);
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

async function stop(server: Server): Promise<void> {
  server.child.kill("SIGTERM");
  await server.child.status;
}

function failed(result: WrkResult): number {
  const e = result.errors;
  return e.connect + e.read + e.write + e.timeout + e.status;
}

async function steady(duration: number, rounds: number) {
  const rows: Record<
    string,
    { rps: number[]; usPerReq: number[]; shares: string[] }
  > = {
    workers: { rps: [], usPerReq: [], shares: [] },
    deno_serve: { rps: [], usPerReq: [], shares: [] },
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
      const before = await treeTicks(server.child.pid);
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
      const ticks = (await treeTicks(server.child.pid)) - before;
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
 * Reloads under wrk: a roll of `--workers 2` by `mod.ts reload`, or
 * `deno serve --parallel` killed (SIGTERM) and started again on its port.
 */
async function rolling(
  system: "workers" | "deno_serve",
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
    failed: failed(result),
    reloads: ok,
    rolls,
  };
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
  console.log(
    `  deno serve --parallel:  ${Math.round(median(d.rps))} req/s, ${
      median(d.usPerReq).toFixed(1)
    } us CPU/request`,
  );
  console.log(
    `  ratio (workers / deno serve): ${
      (median(w.rps) / median(d.rps)).toFixed(3)
    } req/s, ${
      (median(w.usPerReq) / median(d.usPerReq)).toFixed(3)
    } CPU/request`,
  );
}

const median = (values: number[]) =>
  [...values].sort((a, b) => a - b)[Math.floor(values.length / 2)];

if (import.meta.main) {
  let duration = 5;
  let rounds = 3;
  let reloads = 4;
  for (const flag of readFlags(Deno.args)) {
    if (flag.name === "--duration") duration = Number(flag.value());
    else if (flag.name === "--rounds") rounds = Number(flag.value());
    else if (flag.name === "--reloads") reloads = Number(flag.value());
    else if (flag.name === "--server-cpus") serverCpus = flag.value();
    else throw new TypeError(`unknown flag ${flag.arg}`);
  }
  globalThis.addEventListener("unload", killAllChildren);
  try {
    if (rounds > 0) await reportSteady(duration, rounds);
    for (
      const [system, close] of [
        ["workers", false],
        ["deno_serve", false],
        ["workers", true],
        ["deno_serve", true],
      ] as const
    ) {
      const r = await rolling(system, reloads, close);
      console.log(
        system === "workers"
          ? "--workers 2, rolled by `reload`"
          : "deno serve --parallel, killed and started",
      );
      console.log(
        `rolling reloads (${
          close ? "Connection: close" : "keep-alive"
        }): ${r.reloads}/${reloads} reloads ok, ${r.rolls} rolls, ${r.requests} requests (${
          Math.round(r.rps)
        } req/s), ${r.failed} failed`,
      );
    }
  } finally {
    killAllChildren();
  }
}
