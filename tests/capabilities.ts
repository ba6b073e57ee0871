/**
 * What some tests need from the machine (a tool, root, a network namespace,
 * a browser, IPv6), and the one place that decides what happens without it.
 *
 * By default a test whose capability is missing is skipped, with one line
 * that names the capability and how to get it. In strict mode (`CI=true`, as
 * CI services set it, or `GRACEFUL_STRICT=1`; `.ci/run` sets both) a missing
 * capability is a failing test instead, named `capability: NAME`, so that a
 * green run cannot hide a skip. `GRACEFUL_STRICT=0` turns strict mode off
 * even under CI.
 *
 * ```ts ignore
 * Deno.test({ name: "...", ignore: ignoreWithout(PYTHON), fn() {} });
 * ```
 *
 * The slow suite (`deno task test:slow`) and the systemd suite
 * (`GRACEFUL_SYSTEMD_TESTS`, tests/systemd/harness.ts) have switches of their
 * own; strict mode demands the systemd suite too.
 *
 * @module
 */

/** Whether a missing capability fails the run instead of skipping. */
export const STRICT = strictMode(Deno.env.toObject());

/** Strict mode from an environment (exported for its test). */
export function strictMode(env: Record<string, string | undefined>): boolean {
  const explicit = env.GRACEFUL_STRICT;
  if (explicit === "1") return true;
  if (explicit === "0") return false;
  if (explicit !== undefined && explicit !== "") {
    throw new Error(
      `GRACEFUL_STRICT=${JSON.stringify(explicit)}: expected 1 or 0`,
    );
  }
  return env.CI === "true" || env.CI === "1";
}

/** Something the machine may lack. */
export interface Capability {
  /** What it is, e.g. `python3`. */
  readonly name: string;
  /** How to get it, e.g. `apt-get install -y python3`. */
  readonly hint: string;
  /** Whether this machine has it (probed once, on first use). */
  readonly available: boolean;
}

/** A capability whose `probe` runs once, when first asked. */
export function capability(
  name: string,
  hint: string,
  probe: () => boolean,
): Capability {
  let known: boolean | undefined;
  return {
    name,
    hint,
    get available() {
      if (known === undefined) {
        try {
          known = probe();
        } catch {
          known = false;
        }
      }
      return known;
    },
  };
}

/** Whether `cmd args...` runs and exits 0. */
export function canRun(cmd: string, args: string[] = ["--version"]): boolean {
  try {
    return new Deno.Command(cmd, {
      args,
      stdin: "null",
      stdout: "null",
      stderr: "null",
    }).outputSync().success;
  } catch {
    return false;
  }
}

const reported = new Set<string>();

/**
 * For `Deno.test({ ignore: ignoreWithout(...) })`: false when every
 * capability is there. Otherwise true, and, once per capability and test
 * module, a line saying what is skipped (default) or a failing test named
 * `capability: NAME` (strict mode).
 */
export function ignoreWithout(...capabilities: Capability[]): boolean {
  return !has(...capabilities);
}

/**
 * Whether every capability is there, for a test that does less without one
 * (e.g. no IPv6 cases); reports what is missing as `ignoreWithout` does.
 */
export function has(...capabilities: Capability[]): boolean {
  const missing = capabilities.filter((c) => !c.available);
  for (const c of missing) {
    if (reported.has(c.name)) continue;
    reported.add(c.name);
    const what = `${c.name} is missing (${c.hint})`;
    if (STRICT) {
      Deno.test(`capability: ${c.name}`, () => {
        throw new Error(
          `strict mode (CI=true or GRACEFUL_STRICT=1): ${what}; ` +
            `the tests that need it did not run`,
        );
      });
    } else {
      console.log(
        `skipped: tests that need ${what}; ` +
          `GRACEFUL_STRICT=1 makes this a failure`,
      );
    }
  }
  return missing.length === 0;
}

/** Running as root (uid 0). */
export const ROOT_USER: Capability = capability(
  "root",
  "run the tests as root, as CI does",
  () => Deno.uid() === 0,
);

/** python3, for the fixtures that pass arbitrary fds. */
export const PYTHON: Capability = capability(
  "python3",
  "apt-get install -y python3",
  () => canRun("python3"),
);

/** script(1), for a real terminal that can hang up. */
export const SCRIPT: Capability = capability(
  "script",
  "apt-get install -y bsdutils",
  () => canRun("script"),
);

/** systemd-socket-activate, for LISTEN_FDS from systemd's own tool. */
export const SOCKET_ACTIVATE: Capability = capability(
  "systemd-socket-activate",
  "apt-get install -y systemd",
  () => canRun("systemd-socket-activate"),
);

/** Root with setpriv: a test can act as user nobody. */
export const BE_NOBODY: Capability = capability(
  "root and setpriv (to act as user nobody)",
  "run as root; apt-get install -y util-linux",
  () => Deno.uid() === 0 && canRun("setpriv"),
);

/** Root with unshare and ip: a process can get a network namespace of its own. */
export const NET_NAMESPACE: Capability = capability(
  "root, unshare, nsenter and ip (a network namespace of its own)",
  "run as root; apt-get install -y util-linux iproute2",
  () =>
    Deno.uid() === 0 &&
    canRun("unshare", ["--net", "sh", "-c", "ip link set lo up"]) &&
    canRun("nsenter"),
);

/** setsid(1), for a process without a controlling terminal. */
export const SETSID: Capability = capability(
  "setsid",
  "apt-get install -y util-linux",
  () => canRun("setsid"),
);

/** nohup(1), for a process started with SIGHUP ignored. */
export const NOHUP: Capability = capability(
  "nohup",
  "apt-get install -y coreutils",
  () => canRun("nohup"),
);

/**
 * A directory can be made unreadable to a process: any non-root user, or
 * root in a user namespace (unshare -r) where the owner is unmapped.
 */
export const DENY_READ: Capability = capability(
  "unreadable directories (not root, or root with unshare -r)",
  "apt-get install -y util-linux; allow user namespaces",
  () => Deno.uid() !== 0 || canRun("unshare", ["-r", "true"]),
);

/** IPv6 on the loopback interface. */
export const IPV6: Capability = capability(
  "IPv6 on loopback (::1)",
  "sysctl -w net.ipv6.conf.lo.disable_ipv6=0",
  () => {
    Deno.listen({ hostname: "::1", port: 0 }).close();
    return true;
  },
);

/** Where the tests expect Chromium (Debian's package). */
export const CHROMIUM_PATH = "/usr/bin/chromium";

/** Headless Chromium, for the admin page in a real browser. */
export const CHROMIUM: Capability = capability(
  "chromium",
  "apt-get install -y chromium",
  () => Deno.statSync(CHROMIUM_PATH).isFile,
);

/** Where Debian's nginx packages put it. */
export const NGINX_PATHS: readonly string[] = [
  "/usr/sbin/nginx",
  "/usr/bin/nginx",
];

/** nginx, for the admin behind a real reverse proxy. */
export const NGINX: Capability = capability(
  "nginx",
  "apt-get install -y nginx-light",
  () => NGINX_PATHS.some((path) => canRun(path, ["-v"])),
);
