import { assertEquals } from "../../tests/assert.ts";
import { errorMessage } from "./error_message.ts";

Deno.test("errorMessage: an Error's message, anything else as a string", () => {
  assertEquals(errorMessage(new TypeError("bad fd")), "bad fd");
  assertEquals(errorMessage("thrown string"), "thrown string");
  assertEquals(errorMessage(42), "42");
  assertEquals(errorMessage(undefined), "undefined");
});
