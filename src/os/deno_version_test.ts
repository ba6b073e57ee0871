import { assertEquals, assertThrows } from "../../tests/assert.ts";
import { assertDenoVersion, compareVersions } from "./deno_version.ts";

Deno.test("compareVersions orders numerically", () => {
  assertEquals(compareVersions("2.10.0", "2.9.6") > 0, true);
  assertEquals(compareVersions("2.8.0", "2.8.0"), 0);
  assertEquals(compareVersions("2.7.14", "2.8.0") < 0, true);
});

Deno.test("assertDenoVersion refuses 2.7 and names both versions", () => {
  const error = assertThrows(() => assertDenoVersion("2.7.3"));
  assertEquals(/2\.7\.3/.test(error.message), true);
  assertEquals(/2\.8\.0/.test(error.message), true);
  assertDenoVersion("2.8.0");
  assertDenoVersion(Deno.version.deno);
});
