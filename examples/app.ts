/**
 * An app module for the CLI, with the `deno serve` convention:
 *
 *   deno run -A mod.ts examples/app.ts --port 8080
 *
 * @module
 */

export default {
  fetch(request: Request): Response {
    const url = new URL(request.url);
    return new Response(
      `app says hello from ${url.pathname} (pid ${Deno.pid})\n`,
    );
  },
};
