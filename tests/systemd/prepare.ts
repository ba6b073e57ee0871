/**
 * Prepares the systemd suite ahead of the tests: installs the host tools and
 * builds (or checks) the cached rootfs of every suite the tests boot
 * (bookworm, and trixie for the notify-reload test: about two minutes, once),
 * then boots one container of each as a check. Exits 1, saying why, when the
 * harness cannot run here.
 *
 * ```sh
 * deno run -A tests/systemd/prepare.ts
 * ```
 *
 * @module
 */

import {
  available,
  bootContainer,
  ensureRootfs,
  type Suite,
} from "./harness.ts";

/** Every suite the systemd tests boot. */
const SUITES: Suite[] = ["bookworm", "trixie"];

if (import.meta.main) {
  const reason = await available();
  if (reason) {
    console.error(`systemd harness unavailable: ${reason}`);
    Deno.exit(1);
  }
  for (const suite of SUITES) {
    const started = Date.now();
    const rootfs = await ensureRootfs(suite);
    console.log(`rootfs: ${rootfs} (${Date.now() - started} ms)`);
    const c = await bootContainer({ suite });
    try {
      const version = await c.exec(["systemctl", "--version"], { check: true });
      console.log(
        `booted ${c.name}: ${c.state}, ${version.stdout.split("\n")[0]}; ` +
          `boot ${c.timings.boot} ms, deno + project ${c.timings.setup} ms`,
      );
    } finally {
      const stopping = Date.now();
      await c.stop();
      console.log(`stopped in ${Date.now() - stopping} ms`);
    }
  }
}
