/**
 * The admin token as a local attacker and an operator see it: never in a
 * later generation's command line or environment, still valid after
 * restarts, from a file, with warnings; and a real curl with the bearer
 * header alone (no CSRF header) restarts.
 */

import { assert, assertEquals, assertMatch } from "./assert.ts";
import { curl } from "./curl.ts";
import { alive, runCli, TempApp, until } from "./helpers.ts";

const APP = `export default { fetch: () => new Response(String(Deno.pid)) };`;

function bearer(token: string): string[] {
  return ["-H", `Authorization: Bearer ${token}`];
}

/** What every local user can read of process `pid`, and what its uid can. */
async function exposure(pid: number): Promise<{
  cmdline: string;
  ps: string;
  environ: string;
}> {
  const ps = await new Deno.Command("ps", {
    args: ["-ww", "-o", "args=", "-p", String(pid)],
    stdout: "piped",
  }).output();
  return {
    cmdline: Deno.readTextFileSync(`/proc/${pid}/cmdline`),
    ps: new TextDecoder().decode(ps.stdout),
    environ: Deno.readTextFileSync(`/proc/${pid}/environ`),
  };
}

/** POSTs a restart with the bearer header only; returns the new pid. */
async function restartByCurl(port: number, token: string): Promise<number> {
  const res = await curl([
    "-X",
    "POST",
    ...bearer(token),
    `http://127.0.0.1:${port}/debug/admin/restart`,
  ]);
  assertEquals(res.status, 200, res.body);
  return JSON.parse(res.body).pid;
}

function newToken(): string {
  return `t-${crypto.randomUUID()}`;
}

Deno.test("admin token on the command line: a warning; later generations never carry it; it still works after restarts (curl, bearer only)", async () => {
  const token = newToken();
  const t = await TempApp.start(APP, ["--admin", "--admin-token", token]);
  try {
    assertMatch(
      t.child.output,
      /WRN .*--admin-token on the command line is readable by every local user/,
    );
    const gen2 = await restartByCurl(t.port, token);
    await until(() => !alive(t.child.pid));
    const seen = await exposure(gen2);
    assert(seen.cmdline.includes("--admin"), seen.cmdline);
    assert(!seen.cmdline.includes(token), `cmdline: ${seen.cmdline}`);
    assert(!seen.ps.includes(token), `ps: ${seen.ps}`);
    assert(!seen.environ.includes(token), "environ holds the token");
    assert(!seen.cmdline.includes("--admin-token"), seen.cmdline);
    // Generation 2 has the token, and hands it on again.
    const wrong = await curl([
      ...bearer(`${token}x`),
      `http://127.0.0.1:${t.port}/debug/admin/status`,
    ]);
    assertEquals(wrong.status, 401);
    const gen3 = await restartByCurl(t.port, token);
    await until(() => !alive(gen2));
    assert(!(await exposure(gen3)).cmdline.includes(token));
    const status = await curl([
      ...bearer(token),
      `http://127.0.0.1:${t.port}/debug/admin/status`,
    ]);
    assertEquals(status.status, 200, status.body);
    assertEquals(JSON.parse(status.body).generation, 3);
    // One warning: generation 1's, none from the later ones.
    assertEquals(
      t.child.output.match(/--admin-token on the command/g)?.length,
      1,
    );
  } finally {
    await t.stop();
  }
});

Deno.test("admin token from GRACEFUL_ADMIN_TOKEN: no warning, and generation 2's environment does not hold it", async () => {
  const token = newToken();
  const t = await TempApp.start(APP, ["--admin"], {
    GRACEFUL_ADMIN_TOKEN: token,
  });
  try {
    assert(!/--admin-token on the command/.test(t.child.output));
    const gen2 = await restartByCurl(t.port, token);
    const seen = await exposure(gen2);
    assert(!seen.environ.includes(token), "environ holds the token");
    assert(!seen.cmdline.includes(token));
    await until(() => !alive(t.child.pid));
    await restartByCurl(t.port, token);
  } finally {
    await t.stop();
  }
});

Deno.test("admin token file: works across restarts, is re-read by each generation, warns when others can read it", async () => {
  const dir = await Deno.makeTempDir({ prefix: "graceful-token-" });
  const file = `${dir}/admin-token`;
  const token = newToken();
  await Deno.writeTextFile(file, `${token}\n`, { mode: 0o600 });
  await Deno.chmod(file, 0o600);
  const t = await TempApp.start(APP, ["--admin", "--admin-token-file", file]);
  try {
    // No warning about the token. (The inspector guard says so when another
    // test's server holds 127.0.0.1:9229 in this shared namespace.)
    const warnings = t.child.lines.filter((l) =>
      /WRN/.test(l) && !/graceful·inspector/.test(l)
    );
    assertEquals(warnings, [], t.child.output);
    const gen2 = await restartByCurl(t.port, token);
    assert((await exposure(gen2)).cmdline.includes(file));
    // A new token in the file: the next generation serves with it.
    const rotated = newToken();
    await Deno.writeTextFile(file, rotated);
    await Deno.chmod(file, 0o644);
    await until(() => !alive(t.child.pid));
    await restartByCurl(t.port, token);
    await t.child.waitFor(
      new RegExp(
        `WRN .*--admin-token-file ${file} is readable by group or others \\(mode 0644\\): chmod 600 it`,
      ),
    );
    const old = await curl([
      ...bearer(token),
      `http://127.0.0.1:${t.port}/debug/admin/status`,
    ]);
    assertEquals(old.status, 401);
    const now = await curl([
      ...bearer(rotated),
      `http://127.0.0.1:${t.port}/debug/admin/status`,
    ]);
    assertEquals(now.status, 200, now.body);
  } finally {
    await t.stop();
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("admin token file: missing, empty or too short is one line naming the file, exit 1", async () => {
  const dir = await Deno.makeTempDir({ prefix: "graceful-token-" });
  try {
    await Deno.writeTextFile(`${dir}/empty`, "\n", { mode: 0o600 });
    await Deno.writeTextFile(`${dir}/short`, "abc", { mode: 0o600 });
    await Deno.chmod(`${dir}/empty`, 0o600);
    await Deno.chmod(`${dir}/short`, 0o600);
    const cases: [string, RegExp][] = [
      [
        `${dir}/missing`,
        /^error: --admin-token-file \S+\/missing: cannot read it \(.+\)$/,
      ],
      [`${dir}/empty`, /^error: --admin-token-file \S+\/empty is empty$/],
      [
        `${dir}/short`,
        /^error: --admin-token-file \S+\/short: admin token must be at least 16 characters$/,
      ],
    ];
    for (const [file, pattern] of cases) {
      const out = await runCli([
        "--port",
        "0",
        "--admin",
        "--admin-token-file",
        file,
      ]);
      const lines = (out.stdout + out.stderr).split("\n").filter((l) =>
        l.trim() !== ""
      );
      assertEquals(out.code, 1, out.stderr);
      assertEquals(lines.length, 1, out.stderr);
      assertMatch(lines[0], pattern);
    }
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});
