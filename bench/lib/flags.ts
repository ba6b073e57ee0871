/**
 * Reading a bench's command-line flags one by one: `--name value` and
 * `--name=value` alike.
 *
 * @module
 */

/** One argument, as a flag. */
export interface Flag {
  /** The argument as given. */
  arg: string;
  /** The flag: the argument, or its part before "=" in `--name=value`. */
  name: string;
  /**
   * The flag's value: the part after "=", or else the next argument (which
   * is then not read as a flag). Throws a TypeError when there is none.
   */
  value(): string;
}

/** The arguments of `args` as {@linkcode Flag}s, in order. */
export function* readFlags(args: string[]): Generator<Flag> {
  let next = 0;
  while (next < args.length) {
    const arg = args[next++];
    const eq = arg.indexOf("=");
    const inline = arg.startsWith("--") && eq !== -1;
    const name = inline ? arg.slice(0, eq) : arg;
    yield {
      arg,
      name,
      value(): string {
        if (inline) return arg.slice(eq + 1);
        if (next >= args.length) throw new TypeError(`${name} needs a value`);
        return args[next++];
      },
    };
  }
}
