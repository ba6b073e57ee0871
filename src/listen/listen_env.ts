/**
 * The socket activation variables (sd_listen_fds(3)): LISTEN_PID,
 * LISTEN_FDS and LISTEN_FDNAMES, read for this process, and the error that
 * names the variable or fd at fault.
 *
 * @module
 */

import { quoteValue } from "../util/quote.ts";

import { LISTEN_FDS_START } from "../os/constants.ts";

/** systemd's name for an fd when the unit gives none. */
export const DEFAULT_FD_NAME = "unknown";

/**
 * The socket activation environment is inconsistent, or a passed fd is not a
 * listening stream socket. The message names the variable or the fd at fault.
 */
export class ListenFdsError extends Error {
  /**
   * Creates the error.
   *
   * @param message What is wrong, naming the variable or fd.
   * @param options The underlying error, if any, as `cause`.
   */
  constructor(message: string, options?: ErrorOptions) {
    super(message, options);
    this.name = "ListenFdsError";
  }
}

/**
 * What the socket activation variables say, for this process.
 *
 * @internal Exported for tests.
 */
export interface ListenEnv {
  /** How many fds were passed (fds 3 to 3 + count - 1); 0 when none. */
  count: number;
  /** One name per fd from LISTEN_FDNAMES, or undefined when it is unset. */
  names: string[] | undefined;
}

/**
 * Interprets LISTEN_PID, LISTEN_FDS and LISTEN_FDNAMES (undefined when unset)
 * for the process `pid`. The count is 0 when the variables are absent or meant
 * for another process. Empty names in LISTEN_FDNAMES become "unknown".
 *
 * @internal Exported for tests.
 */
export function parseListenEnv(
  pidText: string | undefined,
  fdsText: string | undefined,
  namesText: string | undefined,
  pid: number,
): ListenEnv {
  const none: ListenEnv = { count: 0, names: undefined };
  if (fdsText === undefined || pidText === undefined) {
    return none;
  }
  if (!/^\d+$/.test(pidText) || Number(pidText) === 0) {
    throw new ListenFdsError(
      `LISTEN_PID must be a process id (a positive decimal integer), ` +
        `but it is ${quoteValue(pidText)}`,
    );
  }
  if (Number(pidText) !== pid) {
    return none;
  }
  if (!/^\d+$/.test(fdsText) || !Number.isSafeInteger(Number(fdsText))) {
    throw new ListenFdsError(
      `LISTEN_FDS must be a non-negative decimal integer (the number of ` +
        `sockets passed from fd ${LISTEN_FDS_START} on), but it is ` +
        quoteValue(fdsText),
    );
  }
  const count = Number(fdsText);
  if (namesText === undefined) {
    return { count, names: undefined };
  }
  const names = namesText === "" ? [] : namesText.split(":");
  if (names.length !== count) {
    throw new ListenFdsError(
      `LISTEN_FDNAMES has ${names.length} name(s) ` +
        `(${quoteValue(namesText)}) but LISTEN_FDS is ${count}; ` +
        `systemd sends exactly one name per fd`,
    );
  }
  return {
    count,
    names: names.map((name) => name === "" ? DEFAULT_FD_NAME : name),
  };
}
