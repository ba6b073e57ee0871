/**
 * Starts one bench server pinned to a CPU, waits for it to print its port,
 * checks that the pid is the server itself, and stops it.
 *
 * @module
 */

import { signalChild, track } from "./children.ts";
import { denoRunCommand, pinnedToCpu } from "./commands.ts";
import { readLines } from "./lines.ts";
import {
  holdsListeningSocket,
  type ProcessFacts,
  readProcessFacts,
} from "./proc.ts";
import { spawnPiped } from "./spawn.ts";

/** A bench server process that is up and answering. */
export interface RunningServer {
  /** The pid of the server process (taskset has exec'd Deno under it). */
  pid: number;
  /** The port it listens on, on 127.0.0.1. */
  port: number;
  /** What /proc said about it once it was listening. */
  facts: ProcessFacts;
  /** The child process handle. */
  child: Deno.ChildProcess;
  /** Everything it has written so far (bounded), for error messages. */
  output(): string;
  /** Whether the process has exited. */
  exited(): boolean;
}

/** How to start a server. */
export interface StartOptions {
  /** The server script, absolute. */
  script: string;
  /** The working directory (the repository root, for deno.json). */
  cwd: string;
  /** The CPU to pin the server to. */
  cpu: number;
  /** How long the server may take to print its port (ms). */
  timeoutMs: number;
  /** Arguments after the port. */
  args?: string[];
}

const OUTPUT_LIMIT = 16_384;

import { freePort } from "../../tests/ports.ts";
export { freePort };

/**
 * Starts `deno run -A <script> <port>` under `taskset -c <cpu>`, and resolves
 * once it has printed its port and /proc confirms that the pid runs Deno,
 * pinned to `cpu`, with no child processes, and holds the listening socket. Throws (after killing it) when
 * any of that fails or takes longer than `timeoutMs`.
 */
export async function startServer(
  options: StartOptions,
): Promise<RunningServer> {
  const port = freePort();
  const child = spawnPiped(
    pinnedToCpu(
      options.cpu,
      denoRunCommand([
        options.script,
        String(port),
        ...options.args ?? [],
      ]),
    ),
    { cwd: options.cwd },
  );
  track(child);
  let exited = false;
  child.status.then(() => {
    exited = true;
  });
  let output = "";
  const append = (text: string) => {
    output = (output + text).slice(-OUTPUT_LIMIT);
  };
  const portLine = Promise.withResolvers<number>();
  readLines(child.stdout, (line) => {
    append(line + "\n");
    if (/^\d+$/.test(line.trim())) portLine.resolve(Number(line.trim()));
  });
  readLines(child.stderr, (line) => append(line + "\n"));

  let timer: ReturnType<typeof setTimeout> | undefined;
  const timedOut = new Promise<"timeout">((resolve) => {
    timer = setTimeout(() => resolve("timeout"), options.timeoutMs);
  });
  const outcome = await Promise.race([
    portLine.promise,
    child.status.then((status) => status),
    timedOut,
  ]);
  clearTimeout(timer);
  const fail = async (message: string): Promise<never> => {
    await stopServerProcess(child, 2_000);
    throw new Error(
      `${options.script}: ${message}\n--- server output ---\n${output}`,
    );
  };
  if (outcome === "timeout") {
    return await fail(`printed no port within ${options.timeoutMs} ms`);
  }
  if (typeof outcome !== "number") {
    return await fail(`exited with code ${outcome.code} before listening`);
  }
  if (outcome !== port) {
    return await fail(`asked to listen on ${port}, printed ${outcome}`);
  }
  const facts = await readProcessFacts(child.pid);
  const deno = await Deno.realPath(Deno.execPath());
  if (facts.exe !== deno) {
    return await fail(`pid ${child.pid} runs ${facts.exe}, not ${deno}`);
  }
  if (facts.cpusAllowed !== String(options.cpu)) {
    return await fail(
      `pid ${child.pid} may run on CPUs ${facts.cpusAllowed}, not ${options.cpu}`,
    );
  }
  if (facts.children.length > 0) {
    return await fail(
      `pid ${child.pid} has child processes ${facts.children.join(", ")}`,
    );
  }
  if (!await holdsListeningSocket(child.pid, port)) {
    return await fail(
      `pid ${child.pid} does not hold the socket listening on port ${port}`,
    );
  }
  return {
    pid: child.pid,
    port,
    facts,
    child,
    output: () => output,
    exited: () => exited,
  };
}

/**
 * Stops a server: SIGTERM, then SIGKILL after `graceMs`. Resolves with its
 * exit status, and whether it had to be killed.
 */
export async function stopServerProcess(
  child: Deno.ChildProcess,
  graceMs: number,
): Promise<{ status: Deno.CommandStatus; killed: boolean }> {
  signalChild(child, "SIGTERM");
  let timer: ReturnType<typeof setTimeout> | undefined;
  const timedOut = new Promise<"timeout">((resolve) => {
    timer = setTimeout(() => resolve("timeout"), graceMs);
  });
  const first = await Promise.race([child.status, timedOut]);
  clearTimeout(timer);
  if (first !== "timeout") return { status: first, killed: false };
  signalChild(child, "SIGKILL");
  return { status: await child.status, killed: true };
}

/**
 * Checks that `GET /` answers 200 "Hello, World!". Returns the response
 * headers, for the record.
 */
export async function checkHelloWorld(
  port: number,
  options: { tlsCert?: string; unixPath?: string } = {},
): Promise<Record<string, string>> {
  const client = Deno.createHttpClient({
    ...(options.tlsCert ? { caCerts: [options.tlsCert] } : {}),
    ...(options.unixPath
      ? { proxy: { transport: "unix" as const, path: options.unixPath } }
      : {}),
  });
  const url = options.tlsCert
    ? `https://localhost:${port}/`
    : `http://127.0.0.1:${port}/`;
  try {
    const response = await fetch(url, {
      client,
      signal: AbortSignal.timeout(5_000),
    });
    const body = await response.text();
    if (response.status !== 200 || body !== "Hello, World!") {
      throw new Error(
        `GET / on port ${port} answered ${response.status} ` +
          `${JSON.stringify(body)}, expected 200 "Hello, World!"`,
      );
    }
    const headers: Record<string, string> = {};
    for (const [name, value] of response.headers) {
      if (name !== "date") headers[name] = value;
    }
    return headers;
  } finally {
    client.close();
  }
}
