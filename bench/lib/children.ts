/**
 * Every child process the bench starts is registered here, so that all of them
 * can be killed when the bench ends, fails, or is interrupted.
 *
 * @module
 */

const live = new Set<Deno.ChildProcess>();

/** Registers `child` until it exits. */
export function track(child: Deno.ChildProcess): void {
  live.add(child);
  child.status.finally(() => live.delete(child));
}

/** Sends `signal` to `child`, ignoring a child that has already exited. */
export function signalChild(
  child: Deno.ChildProcess,
  signal: Deno.Signal,
): void {
  try {
    child.kill(signal);
  } catch {
    // already exited
  }
}

/** Kills every live child with SIGKILL, synchronously (safe in "unload"). */
export function killAllChildren(): void {
  for (const child of live) signalChild(child, "SIGKILL");
}

/** Runs `command` (tracked) to its end: its exit code and decoded output. */
export async function runTracked(
  command: string[],
): Promise<{ code: number; stdout: string; stderr: string }> {
  const [program, ...args] = command;
  const child = new Deno.Command(program, {
    args,
    stdin: "null",
    stdout: "piped",
    stderr: "piped",
  }).spawn();
  track(child);
  const { code, stdout, stderr } = await child.output();
  const decoder = new TextDecoder();
  return {
    code,
    stdout: decoder.decode(stdout),
    stderr: decoder.decode(stderr),
  };
}
