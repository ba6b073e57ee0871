/**
 * Bench app "hello_default": `export default { fetch }`, served by
 * `deno serve --parallel` and by `mod.ts --workers N` alike.
 *
 * @module
 */

export default { fetch: () => new Response("Hello, World!") };
