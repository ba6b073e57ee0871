/**
 * The systemd suite's smoke test: real systemd 252 in systemd-nspawn (see
 * harness.ts) socket-activates the demo on the first request, and the process
 * that answers is the service's MainPID.
 *
 * @module
 */

import { assert, assertEquals } from "../assert.ts";
import { bootContainer, startOnFreePort, systemdIgnore } from "./harness.ts";

const UNIT = "graceful-smoke";

Deno.test({
  name:
    "systemd suite (nspawn, systemd 252): socket activation starts the service, /pid is its MainPID, stop exits 0",
  ignore: await systemdIgnore(),
  async fn() {
    const c = await bootContainer();
    try {
      await c.writeFile(
        `/etc/systemd/system/${UNIT}.service`,
        `[Unit]
Description=graceful smoke test service
Requires=${UNIT}.socket
After=${UNIT}.socket

[Service]
Type=simple
Environment=DENO_DIR=/var/cache/myapp-deno
Environment=DENO_NO_UPDATE_CHECK=1
Environment=NO_COLOR=1
ExecStart=/usr/local/bin/deno run -A /opt/myapp/mod.ts
`,
      );
      const port = await startOnFreePort(
        c,
        `${UNIT}.socket`,
        (port) =>
          c.writeFile(
            `/etc/systemd/system/${UNIT}.socket`,
            `[Unit]
Description=graceful smoke test socket

[Socket]
ListenStream=127.0.0.1:${port}
FileDescriptorName=web
`,
          ),
      );
      assertEquals(
        await c.show(`${UNIT}.service`, ["ActiveState"]),
        { ActiveState: "inactive" },
        "the service waits for its first connection",
      );

      // From the host: the container shares its network.
      const res = await fetch(`http://127.0.0.1:${port}/pid`, {
        signal: AbortSignal.timeout(30_000),
      });
      const pid = (await res.text()).trim();
      assertEquals(res.status, 200);

      const shown = await c.show(`${UNIT}.service`, [
        "MainPID",
        "ActiveState",
        "SubState",
      ]);
      assertEquals(shown, {
        MainPID: pid,
        ActiveState: "active",
        SubState: "running",
      });
      assert(Number(pid) > 1, `a real pid: ${pid}`);

      await c.systemctl("stop", `${UNIT}.service`, `${UNIT}.socket`);
      assertEquals(
        await c.show(`${UNIT}.service`, [
          "ActiveState",
          "Result",
          "ExecMainStatus",
        ]),
        { ActiveState: "inactive", Result: "success", ExecMainStatus: "0" },
        "SIGTERM drains and exits 0",
      );
    } catch (error) {
      console.error(
        `--- journal of ${UNIT}.service ---\n${await c.journal(
          `${UNIT}.service`,
        ).catch((e) => String(e))}`,
      );
      throw error;
    } finally {
      await c.stop();
    }
  },
});
