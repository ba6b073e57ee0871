/**
 * The admin without a token behind a real nginx `proxy_pass` (run on a free
 * loopback port, as nobody, from a temp config): the proxy adds no
 * X-Forwarded-For and sends `Host: 127.0.0.1`, which the loopback rule could
 * not tell from a local client. The admin API is not on the app's listeners
 * at all, so nothing of it is reachable through the proxy.
 */

import { assert, assertEquals, assertNotEquals } from "./assert.ts";
import { curl, header } from "./curl.ts";
import { ignoreWithout, NGINX, NGINX_PATHS } from "./capabilities.ts";
import { Child, freePort, listeningInodes, TempApp, until } from "./helpers.ts";

const NGINX_BIN = NGINX_PATHS.find((path) => {
  try {
    return Deno.statSync(path).isFile;
  } catch {
    return false;
  }
});

const APP = `export default { fetch: () => new Response("app " + Deno.pid) };`;

/** nginx proxying a free 127.0.0.1 port (retried on EADDRINUSE) to the app on `upstream`. */
async function startNginx(
  upstream: number,
): Promise<{ child: Child; dir: string; port: number }> {
  for (let attempt = 1;; attempt++) {
    const started = await startNginxOn(freePort(), upstream);
    if (started.child !== undefined) {
      return { child: started.child, dir: started.dir, port: started.port };
    }
    // Another process took the port before nginx bound it: another port.
    if (attempt >= 5) throw new Error(`nginx did not start:\n${started.log}`);
  }
}

/** nginx on `port`; no child when it could not bind the port. */
async function startNginxOn(
  port: number,
  upstream: number,
): Promise<{ child?: Child; dir: string; port: number; log: string }> {
  const dir = await Deno.makeTempDir({ prefix: "graceful-nginx-" });
  await Deno.writeTextFile(
    `${dir}/nginx.conf`,
    `daemon off;
master_process off;
pid ${dir}/nginx.pid;
error_log ${dir}/error.log;
events {}
http {
  access_log off;
  client_body_temp_path ${dir}/body;
  proxy_temp_path ${dir}/proxy;
  fastcgi_temp_path ${dir}/fastcgi;
  uwsgi_temp_path ${dir}/uwsgi;
  scgi_temp_path ${dir}/scgi;
  server {
    listen 127.0.0.1:${port};
    location / { proxy_pass http://127.0.0.1:${upstream}; }
  }
}
`,
  );
  // Unprivileged: nobody owns the directory and runs nginx.
  const ids = (name: string, flag: string) =>
    new TextDecoder().decode(
      new Deno.Command("id", { args: [flag, name], stdout: "piped" })
        .outputSync().stdout,
    ).trim();
  const uid = Number(ids("nobody", "-u"));
  const gid = Number(ids("nobody", "-g"));
  await Deno.chown(dir, uid, gid);
  await Deno.chown(`${dir}/nginx.conf`, uid, gid);
  const child = new Child("setpriv", [
    `--reuid=${uid}`,
    `--regid=${gid}`,
    "--clear-groups",
    NGINX_BIN!,
    "-p",
    dir,
    "-c",
    `${dir}/nginx.conf`,
    "-e",
    `${dir}/error.log`,
  ]);
  // Listening is nginx's own socket on the port (/proc), not whatever else
  // may have taken it; an nginx that could not bind exits.
  let exited = false;
  child.exited.then(() => exited = true);
  await until(() =>
    exited || listeningInodes(child.pid).some((l) => l.port === port)
  );
  if (!exited) return { child, dir, port, log: "" };
  const log = await Deno.readTextFile(`${dir}/error.log`).catch(() => "");
  await child.done;
  if (!/Address already in use/.test(log)) {
    throw new Error(`nginx did not start:\n${log}${child.output}`);
  }
  await Deno.remove(dir, { recursive: true }).catch(() => {});
  return { dir, port, log };
}

Deno.test({
  name:
    "admin without a token behind nginx proxy_pass: status, page and actions are not reachable through the proxy",
  ignore: ignoreWithout(NGINX),
  async fn() {
    const t = await TempApp.start(APP, ["--admin"]);
    const nginx = await startNginx(t.port);
    const proxyPort = nginx.port;
    try {
      const through = (path: string, args: string[] = []) =>
        curl([...args, `http://127.0.0.1:${proxyPort}/debug/admin${path}`]);
      // The proxy works: the app answers through it.
      const app = await curl([`http://127.0.0.1:${proxyPort}/`]);
      assertEquals([app.status, app.body], [200, `app ${t.child.pid}`]);
      // Every admin path is the app's through the proxy, not the admin's.
      for (const path of ["", "/status"]) {
        const res = await through(path);
        assertEquals(res.body, `app ${t.child.pid}`, path);
        assertEquals(header(res.headers, "x-admin-csrf"), "");
      }
      for (const action of ["/restart", "/shutdown"]) {
        const res = await through(action, ["-X", "POST"]);
        assertEquals(res.body, `app ${t.child.pid}`, action);
      }
      // Nothing restarted or stopped: the admin socket says generation 1.
      const socket = (await t.child.waitFor(/admin API on unix:(\S+)/))[1];
      const status = await curl([
        "--unix-socket",
        socket,
        "http://localhost/debug/admin/status",
      ]);
      assertEquals(status.status, 200, status.body);
      const parsed = JSON.parse(status.body);
      assertEquals([parsed.pid, parsed.generation], [t.child.pid, 1]);
      assertNotEquals(socket, "");
      assert(
        !(await Deno.readTextFile(`${nginx.dir}/error.log`)).includes("emerg"),
      );
    } finally {
      nginx.child.kill("SIGTERM");
      await nginx.child.done;
      await Deno.remove(nginx.dir, { recursive: true });
      await t.stop();
    }
  },
});
