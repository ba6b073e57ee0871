/**
 * Command-line parsing, behind one small module: node:util parseArgs stands
 * in for @std/cli's, and moving to @std/cli is a change to this file only.
 *
 * @module
 */

import { parseArgs as nodeParseArgs } from "node:util";

/** One option: a string (repeatable or not) or a boolean flag. */
export interface ArgSpec {
  /** "string" takes a value; "boolean" is a flag. */
  type: "string" | "boolean";
  /** A one-letter alias. */
  short?: string;
  /** May be given several times; the value is then an array. */
  multiple?: boolean;
}

/** The result: option values by name, and the positional arguments. */
export interface ParsedArgs {
  /** Option values, by long name. */
  values: Record<string, string | boolean | string[] | boolean[] | undefined>;
  /** Everything that is not an option. */
  positionals: string[];
}

/**
 * Parses `args` strictly: an unknown option or a missing value throws a
 * TypeError that names it.
 */
export function parseArgs(
  args: string[],
  spec: Record<string, ArgSpec>,
): ParsedArgs {
  const { values, positionals } = nodeParseArgs({
    args,
    options: spec,
    allowPositionals: true,
    strict: true,
  });
  return { values: values as ParsedArgs["values"], positionals };
}
