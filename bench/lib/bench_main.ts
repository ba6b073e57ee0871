/**
 * Running a bench script: its `main`, with every child it started killed
 * when it ends, fails, is interrupted (SIGINT, SIGTERM, SIGHUP) or unloads.
 *
 * @module
 */

/** How a bench ends. */
export interface BenchMainOptions {
  /** The bench's name, as its failure message starts: "serve bench". */
  name: string;
  /** What a signal stops, for the message: "every server and wrk". */
  stopping: string;
  /** Kills what the bench started; synchronous, so that "unload" can run it. */
  cleanUp: () => void;
  /** Print the stack of an error that ends the bench, not only its message. */
  printStack: boolean;
}

const SIGNALS: Deno.Signal[] = ["SIGINT", "SIGTERM", "SIGHUP"];

/**
 * Runs `main(Deno.args)` and exits with its code (1 when it throws, after
 * printing the error; 130 on SIGINT, 143 on SIGTERM or SIGHUP), cleaning up
 * on every path.
 */
export async function runBenchMain(
  main: (args: string[]) => Promise<number>,
  options: BenchMainOptions,
): Promise<never> {
  const handlers = SIGNALS.map((signal) => {
    const handler = () => {
      console.error(`\n${signal}: stopping ${options.stopping}`);
      options.cleanUp();
      Deno.exit(signal === "SIGINT" ? 130 : 143);
    };
    Deno.addSignalListener(signal, handler);
    return { signal, handler };
  });
  globalThis.addEventListener("unload", options.cleanUp);
  let code = 1;
  try {
    code = await main(Deno.args);
  } catch (error) {
    console.error(`${options.name} failed: ${describeError(error, options)}`);
  } finally {
    options.cleanUp();
    for (const { signal, handler } of handlers) {
      Deno.removeSignalListener(signal, handler);
    }
  }
  Deno.exit(code);
}

function describeError(error: unknown, options: BenchMainOptions): string {
  if (!(error instanceof Error)) return String(error);
  return options.printStack ? error.stack ?? error.message : error.message;
}
