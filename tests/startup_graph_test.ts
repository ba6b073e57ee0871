/**
 * The start-up path's module graph: nothing that mod.ts, or the CLI that it
 * runs as a main module, reaches through static imports loads node:net,
 * node:http, node:https, node:inspector, node:child_process or an npm
 * package. Each is loaded by a dynamic import where it is needed (the node
 * engine, a restart, LogTape, a SIGUSR1 while another process holds the
 * inspector's port); a static import would load it before anything else
 * runs, on every start. Read from `deno info --json`, where an import's
 * `code` half is what runs and `isDynamic` marks `import()`.
 *
 * @module
 */

import { assert, assertEquals } from "./assert.ts";
import { ROOT } from "./helpers.ts";

/** What must not be loaded on the way to serving. */
const LATER = /^(node:(net|http|https|inspector|child_process)|npm:)/;

/** The part of `deno info --json` that the walk reads. */
interface DenoInfo {
  roots: string[];
  modules: {
    specifier: string;
    dependencies?: {
      specifier: string;
      code?: { specifier: string };
      isDynamic?: boolean;
    }[];
  }[];
  redirects?: Record<string, string>;
}

/**
 * Every import chain, from the root to a specifier that {@linkcode LATER}
 * matches, made of static imports that run (`import type` is erased).
 * Each chain is written `found <- importer <- ... <- root`.
 */
function laterChains(info: DenoInfo): string[] {
  const modules = new Map(info.modules.map((m) => [m.specifier, m]));
  const resolve = (s: string) => info.redirects?.[s] ?? s;
  const short = (s: string) => s.replace(`file://${ROOT}/`, "");
  const root = resolve(info.roots[0]);
  const importer = new Map<string, string>();
  const queue = [root];
  const seen = new Set(queue);
  const chains: string[] = [];
  for (let next = queue.shift(); next !== undefined; next = queue.shift()) {
    for (const dependency of modules.get(next)?.dependencies ?? []) {
      if (dependency.code === undefined || dependency.isDynamic) continue;
      const target = resolve(dependency.code.specifier);
      if (LATER.test(dependency.specifier) || LATER.test(target)) {
        const chain = [dependency.specifier];
        for (let at: string | undefined = next; at; at = importer.get(at)) {
          chain.push(short(at));
        }
        chains.push(chain.join(" <- "));
      } else if (!seen.has(target)) {
        seen.add(target);
        importer.set(target, next);
        queue.push(target);
      }
    }
  }
  return chains;
}

function denoInfo(module: string): DenoInfo {
  const output = new Deno.Command(Deno.execPath(), {
    args: ["info", "--json", module],
    cwd: ROOT,
    stdout: "piped",
    stderr: "piped",
  }).outputSync();
  const text = new TextDecoder();
  assert(output.success, text.decode(output.stderr));
  return JSON.parse(text.decode(output.stdout));
}

for (
  const [module, why] of [
    ["mod.ts", "the library"],
    ["src/cli/main.ts", "the CLI, which mod.ts imports as a main module"],
  ]
) {
  Deno.test(`start-up graph: ${module} (${why}) reaches no node:net, node:http, node:https, node:inspector, node:child_process or npm: package through static imports`, () => {
    const info = denoInfo(module);
    assert(info.modules.length > 1, `deno info found no modules`);
    assertEquals(laterChains(info), [], `static import chains`);
  });
}

Deno.test("start-up graph: the walk follows static imports only, and names the chain", () => {
  const file = (name: string) => `file://${ROOT}/${name}`;
  const info: DenoInfo = {
    roots: [file("a.ts")],
    modules: [
      {
        specifier: file("a.ts"),
        dependencies: [
          { specifier: "./b.ts", code: { specifier: file("b.ts") } },
          {
            specifier: "./lazy.ts",
            code: { specifier: file("lazy.ts") },
            isDynamic: true,
          },
        ],
      },
      {
        specifier: file("b.ts"),
        dependencies: [
          { specifier: "node:net", code: { specifier: "node:net" } },
          { specifier: "node:http" }, // import type: erased
          { specifier: "node:path", code: { specifier: "node:path" } },
          {
            specifier: "npm:pkg@^1",
            code: { specifier: "npm:pkg@^1" },
            isDynamic: true,
          },
        ],
      },
      {
        specifier: file("lazy.ts"),
        dependencies: [
          { specifier: "npm:other", code: { specifier: "npm:other" } },
        ],
      },
    ],
  };
  assertEquals(laterChains(info), ["node:net <- b.ts <- a.ts"]);
});
