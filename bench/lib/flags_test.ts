import {
  deepStrictEqual as assertEquals,
  throws as assertThrows,
} from "node:assert/strict";
import { readFlags } from "./flags.ts";

function read(args: string[], withValue: string[]): [string, string][] {
  const seen: [string, string][] = [];
  for (const flag of readFlags(args)) {
    seen.push([flag.name, withValue.includes(flag.name) ? flag.value() : ""]);
  }
  return seen;
}

Deno.test("readFlags reads --name value and --name=value", () => {
  assertEquals(
    read(["--out", "dir", "--quick", "--rounds=3", "-h"], [
      "--out",
      "--rounds",
    ]),
    [["--out", "dir"], ["--quick", ""], ["--rounds", "3"], ["-h", ""]],
  );
});

Deno.test("readFlags keeps '=' in a value and in a non-flag", () => {
  assertEquals(read(["--note=a=b", "x=y"], ["--note"]), [
    ["--note", "a=b"],
    ["x=y", ""],
  ]);
});

Deno.test("readFlags throws when a value is missing", () => {
  assertThrows(() => read(["--out"], ["--out"]), TypeError);
});
