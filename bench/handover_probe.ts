/**
 * Idle handover against cold start, with the timeline of every restart.
 *
 *   deno run -A bench/handover_probe.ts [--dir A[,B...]] [--engine native|node]
 *     [--rounds 5] [--restarts 5] [--colds 2] [--signal SIGUSR2] [--json F]
 *
 * For each checkout in `--dir` (default: this one), in each round (the order
 * alternates, so that A and B share the machine's moods): `--colds` cold
 * starts (spawn of `deno run -A mod.ts` → first 200 on `GET /` on a new
 * connection, polled every 2 ms), then one server restarted `--restarts`
 * times, each once the previous old generation has exited (restart signal →
 * first `GET /pid` on a new connection answered by another pid, polled every
 * 5 ms). Servers run with `GRACEFUL_TRACE=1`; the timeline printed is the
 * median ms after the signal of each step of the old (`old:`) and the new
 * (`new:`) generation. No load: nothing but the probes; no pinning.
 *
 * @module
 */

import { parseArgs } from "node:util";
import { getPid, httpGet } from "./lib/http_get.ts";

interface Restart {
  latencyMs: number;
  oldExitMs: number;
  timeline: Record<string, number>;
}

interface Checkout {
  dir: string;
  colds: number[];
  restarts: Restart[];
}

interface TraceLine {
  pid: number;
  at: number;
  event: string;
}

const REQUEST_TIMEOUT_MS = 2000;

function now(): number {
  return performance.timeOrigin + performance.now();
}

function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

function freePort(): number {
  const listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const port = listener.addr.port;
  listener.close();
  return port;
}

function alive(pid: number): boolean {
  try {
    return !/\) Z /.test(Deno.readTextFileSync(`/proc/${pid}/stat`));
  } catch {
    return false;
  }
}

function percentile(values: number[], p: number): number {
  const sorted = [...values].sort((a, b) => a - b);
  if (sorted.length === 0) return NaN;
  const index = (sorted.length - 1) * p;
  const low = Math.floor(index);
  const high = Math.ceil(index);
  return sorted[low] + (sorted[high] - sorted[low]) * (index - low);
}

/** Starts `deno run -A mod.ts` of `dir`; collects its trace lines. */
function startServer(
  dir: string,
  port: number,
  engine: string,
  signal: string,
) {
  const command = new Deno.Command(Deno.execPath(), {
    args: [
      "run",
      "-A",
      `${dir}/mod.ts`,
      "--port",
      String(port),
      "--hostname",
      "127.0.0.1",
      "--engine",
      engine,
      "--restart-signal",
      signal,
      "--name",
      `handover-probe-${port}`,
    ],
    cwd: dir,
    env: { NO_COLOR: "1", GRACEFUL_TRACE: "1" },
    stdin: "null",
    stdout: "null",
    stderr: "piped",
  });
  const spawnedAt = now();
  const child = command.spawn();
  const traces: TraceLine[] = [];
  const output: string[] = [];
  const reading = (async () => {
    const decoder = new TextDecoder();
    let rest = "";
    for await (const chunk of child.stderr) {
      rest += decoder.decode(chunk, { stream: true });
      let newline;
      while ((newline = rest.indexOf("\n")) >= 0) {
        const line = rest.slice(0, newline);
        rest = rest.slice(newline + 1);
        const match = /^graceful-trace pid=(\d+) t=([\d.]+) (.*)$/.exec(line);
        if (match) {
          traces.push({
            pid: Number(match[1]),
            at: Number(match[2]),
            event: match[3],
          });
        } else {
          output.push(line);
          if (output.length > 50) output.shift();
        }
      }
    }
  })();
  return { child, spawnedAt, traces, output, reading };
}

async function waitServing(port: number): Promise<number> {
  const deadline = now() + 30_000;
  while (now() < deadline) {
    try {
      const answer = await httpGet(port, "/", REQUEST_TIMEOUT_MS);
      if (answer.status === 200) return now();
    } catch {
      // not yet
    }
    await sleep(2);
  }
  throw new Error(`nothing served port ${port} within 30 s`);
}

async function coldStart(dir: string, engine: string): Promise<number> {
  const port = freePort();
  const server = startServer(dir, port, engine, "SIGUSR2");
  try {
    return (await waitServing(port)) - server.spawnedAt;
  } finally {
    server.child.kill("SIGTERM");
    await server.child.status;
    await server.reading;
  }
}

function timelineOf(
  traces: TraceLine[],
  oldPid: number,
  newPid: number,
  signalAt: number,
): Record<string, number> {
  const timeline: Record<string, number> = {};
  for (const line of traces) {
    if (line.pid !== oldPid && line.pid !== newPid) continue;
    if (line.at < signalAt - 1) continue;
    const key = `${line.pid === oldPid ? "old" : "new"}: ${line.event}`;
    timeline[key] ??= line.at - signalAt;
  }
  return timeline;
}

async function restarts(
  dir: string,
  engine: string,
  signal: Deno.Signal,
  count: number,
): Promise<Restart[]> {
  const port = freePort();
  const server = startServer(dir, port, engine, signal);
  const results: Restart[] = [];
  try {
    await waitServing(port);
    await sleep(300);
    for (let i = 0; i < count; i++) {
      const oldPid = await getPid(port, REQUEST_TIMEOUT_MS);
      await sleep(150);
      const signalAt = now();
      Deno.kill(oldPid, signal);
      let newPid = oldPid;
      let answeredAt = 0;
      while (newPid === oldPid && now() < signalAt + 30_000) {
        const polledAt = now();
        try {
          const pid = await getPid(port, REQUEST_TIMEOUT_MS);
          if (pid !== oldPid) {
            newPid = pid;
            answeredAt = now();
            break;
          }
        } catch {
          // a refused or cut probe: poll again
        }
        await sleep(Math.max(0, 5 - (now() - polledAt)));
      }
      if (newPid === oldPid) {
        throw new Error(
          `no handover within 30 s:\n${server.output.join("\n")}`,
        );
      }
      while (alive(oldPid) && now() < signalAt + 60_000) await sleep(2);
      const oldExitMs = now() - signalAt;
      await sleep(150);
      results.push({
        latencyMs: answeredAt - signalAt,
        oldExitMs,
        timeline: timelineOf(server.traces, oldPid, newPid, signalAt),
      });
    }
  } finally {
    const last = await getPid(port, REQUEST_TIMEOUT_MS).catch(() => 0);
    if (last > 0) Deno.kill(last, "SIGTERM");
    const deadline = now() + 10_000;
    while (last > 0 && alive(last) && now() < deadline) await sleep(5);
    if (last > 0 && alive(last)) Deno.kill(last, "SIGKILL");
    await server.reading;
  }
  return results;
}

function report(checkout: Checkout, engine: string, signal: string): string[] {
  const lines: string[] = [];
  const latencies = checkout.restarts.map((r) => r.latencyMs);
  const cold = percentile(checkout.colds, 0.5);
  const handover = percentile(latencies, 0.5);
  lines.push(`== ${checkout.dir} (engine ${engine}, ${signal})`);
  lines.push(
    `cold start  n=${checkout.colds.length}  p50 ${cold.toFixed(1)} ms  ` +
      `p95 ${percentile(checkout.colds, 0.95).toFixed(1)} ms`,
  );
  lines.push(
    `handover    n=${latencies.length}  p50 ${handover.toFixed(1)} ms  ` +
      `p95 ${percentile(latencies, 0.95).toFixed(1)} ms  ` +
      `(p50 ${(handover / cold).toFixed(2)}× the cold start)`,
  );
  const keys = new Set<string>();
  for (const restart of checkout.restarts) {
    for (const key of Object.keys(restart.timeline)) keys.add(key);
  }
  const rows = [...keys].map((key) => {
    const values = checkout.restarts
      .map((r) => r.timeline[key])
      .filter((value) => value !== undefined);
    return { key, p50: percentile(values, 0.5), n: values.length };
  });
  rows.push({
    key: "probe: the new pid answered",
    p50: handover,
    n: latencies.length,
  });
  rows.sort((a, b) => a.p50 - b.p50);
  lines.push("timeline, p50 ms after the signal:");
  for (const row of rows) {
    if (row.p50 > 5 * handover) continue; // the next restart's lines
    lines.push(`  ${row.p50.toFixed(1).padStart(7)}  ${row.key} (n=${row.n})`);
  }
  return lines;
}

async function main(): Promise<void> {
  const { values } = parseArgs({
    args: Deno.args,
    options: {
      dir: { type: "string" },
      engine: { type: "string", default: "native" },
      rounds: { type: "string", default: "5" },
      restarts: { type: "string", default: "5" },
      colds: { type: "string", default: "2" },
      signal: { type: "string", default: "SIGUSR2" },
      json: { type: "string" },
    },
  });
  const here = new URL("..", import.meta.url).pathname.replace(/\/$/, "");
  const dirs = (values.dir ?? here).split(",");
  const engine = values.engine!;
  const signal = values.signal as Deno.Signal;
  const checkouts: Checkout[] = dirs.map((dir) => ({
    dir,
    colds: [],
    restarts: [],
  }));
  for (let round = 0; round < Number(values.rounds); round++) {
    const order = round % 2 === 0 ? checkouts : [...checkouts].reverse();
    for (const checkout of order) {
      for (let i = 0; i < Number(values.colds); i++) {
        checkout.colds.push(await coldStart(checkout.dir, engine));
      }
      const done = await restarts(
        checkout.dir,
        engine,
        signal,
        Number(values.restarts),
      );
      checkout.restarts.push(...done);
      console.error(
        `round ${round} ${checkout.dir}: handovers ` +
          done.map((r) => r.latencyMs.toFixed(0)).join(" ") + " ms",
      );
    }
  }
  for (const checkout of checkouts) {
    console.log(report(checkout, engine, signal).join("\n"));
  }
  if (values.json) {
    Deno.writeTextFileSync(values.json, JSON.stringify(checkouts, null, 1));
  }
}

if (import.meta.main) await main();
