/**
 * Every unit file in systemd/ passes `systemd-analyze verify`, with the
 * paths pointed at this machine's deno and this checkout.
 */

import { assertEquals } from "./assert.ts";
import { ROOT } from "./helpers.ts";

Deno.test("systemd units pass systemd-analyze verify", async () => {
  const dir = await Deno.makeTempDir({ prefix: "graceful-units-" });
  try {
    const deno = Deno.realPathSync(Deno.execPath());
    const units: string[] = [];
    const version = await systemdVersion();
    for (const entry of Deno.readDirSync(`${ROOT}/systemd`)) {
      const source = Deno.readTextFileSync(`${ROOT}/systemd/${entry.name}`);
      // A unit for a newer systemd is verified under it, in the systemd
      // suite (tests/systemd/fdstore_test.ts).
      const needs = Number(
        source.match(/^# Needs systemd >= (\d+)/m)?.[1] ?? 0,
      );
      if (needs > version) continue;
      const text = source
        .replaceAll("/usr/local/bin/deno", deno)
        .replaceAll("/opt/myapp", ROOT);
      // A template is verified as an instance.
      const name = entry.name.replace("@.", "@8080.");
      Deno.writeTextFileSync(`${dir}/${name}`, text);
      units.push(`./${name}`);
    }
    assertEquals(units.length >= 4, true, `units: ${units}`);
    const out = await new Deno.Command("systemd-analyze", {
      args: ["verify", "--man=no", ...units.sort()],
      cwd: dir,
      stdout: "piped",
      stderr: "piped",
    }).output();
    const text = new TextDecoder().decode(out.stdout) +
      new TextDecoder().decode(out.stderr);
    assertEquals(out.code, 0, text);
    assertEquals(text.trim(), "", text);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

/** The host's systemd version (systemd-analyze --version). */
async function systemdVersion(): Promise<number> {
  const out = await new Deno.Command("systemd-analyze", {
    args: ["--version"],
    stdout: "piped",
  }).output();
  const text = new TextDecoder().decode(out.stdout);
  return Number(text.match(/^systemd (\d+)/)?.[1] ?? 0);
}
