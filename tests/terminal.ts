/**
 * Running a command in a real pseudo-terminal, as a user at a terminal does:
 * script(1) makes the pty and its session; what a test writes to script's
 * stdin is typed at that terminal (0x03 is Ctrl-C), and killing script hangs
 * the terminal up.
 *
 * script runs its command through `$SHELL -c`. The command is `exec`ed so
 * that it is the terminal's own process whatever that shell is: bash execs a
 * lone command by itself, dash waits for it, and a dash that was sent the
 * terminal's SIGINT too then exits 130 whatever the command did.
 */

/** `args` quoted for a POSIX shell, each in single quotes. */
export function shellQuote(args: string[]): string {
  return args.map((arg) => `'${arg.replaceAll("'", `'\\''`)}'`).join(" ");
}

/** script(1)'s arguments to run `argv` in a new terminal, exiting with its status. */
export function terminalArgs(argv: string[]): string[] {
  return ["-qfec", `exec ${shellQuote(argv)}`, "/dev/null"];
}
