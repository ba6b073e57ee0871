/**
 * The slow suite's switch, for the files that hold slow tests.
 *
 * @module
 */

/**
 * Whether the slow suite runs (GRACEFUL_SLOW_TESTS=1). When it does not, one
 * line says so and how to run it, so that its ignored tests are never a
 * silent skip.
 */
export const SLOW: boolean = Deno.env.get("GRACEFUL_SLOW_TESTS") === "1";
if (!SLOW) {
  console.log(
    "slow suite skipped (on purpose): run it on its own with `deno task test:slow`",
  );
}
