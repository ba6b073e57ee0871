/**
 * What the restart bench needs on the machine, got from the registries reachable
 * here: Debian packages (Go, the two Go libraries, nginx) through apt-get, and
 * pm2 from npm into a temporary directory. The Go hello servers (our own code,
 * in bench/restart/apps/) are built against the Debian libraries in GOPATH mode.
 *
 * @module
 */

import { runTool } from "./spawn.ts";

/** Debian packages the bench installs when they are missing. */
export const DEBIAN_PACKAGES = [
  "golang-go",
  "golang-github-cloudflare-tableflip-dev",
  "golang-github-facebookgo-grace-dev",
  "nginx",
];

/** The pm2 release the bench installs (npm). */
export const PM2_VERSION = "7.0.4";

/** Where the Debian Go libraries live (GOPATH). */
export const DEBIAN_GOPATH = "/usr/share/gocode";

/** The tools, once installed and built. */
export interface Toolchain {
  /** Built Go binaries. */
  tableflipBinary: string;
  graceBinary: string;
  /** `nginx` (Debian). */
  nginx: string;
  /** `node` and pm2's entry point. */
  node: string;
  pm2Script: string;
  /** Versions, for the report. */
  versions: Record<string, string>;
  /** Debian packages that had to be installed by this run. */
  installed: string[];
}

/** What the systems of a run need besides Deno and wrk. */
export interface ToolNeeds {
  /** Go and the two libraries (tableflip, grace). */
  go: boolean;
  nginx: boolean;
  pm2: boolean;
}

/** What the systems with these ids need. */
export function toolNeeds(systems: string[]): ToolNeeds {
  return {
    go: systems.includes("tableflip") || systems.includes("grace"),
    nginx: systems.includes("nginx"),
    pm2: systems.includes("pm2"),
  };
}

/** The Debian packages behind `needs`. */
function debianPackages(needs: ToolNeeds): string[] {
  return DEBIAN_PACKAGES.filter((name) =>
    name === "nginx" ? needs.nginx : needs.go
  );
}

/** Which of `packages` are not installed (dpkg-query). */
export async function missingPackages(packages: string[]): Promise<string[]> {
  const missing: string[] = [];
  for (const name of packages) {
    const output = await new Deno.Command("dpkg-query", {
      args: ["-W", "-f=${Status}", name],
      stdout: "piped",
      stderr: "null",
    }).output();
    const status = new TextDecoder().decode(output.stdout);
    if (!output.success || !status.includes("install ok installed")) {
      missing.push(name);
    }
  }
  return missing;
}

/** Installs the missing Debian packages (apt-get update, then install). */
export async function ensureDebianPackages(
  log: (line: string) => void,
  packages: string[] = DEBIAN_PACKAGES,
): Promise<string[]> {
  const missing = await missingPackages(packages);
  if (missing.length === 0) return [];
  log(`installing Debian packages: ${missing.join(" ")}`);
  const env = { DEBIAN_FRONTEND: "noninteractive" };
  await runTool(["apt-get", "update", "-q"], { env });
  await runTool(["apt-get", "install", "-y", "-q", ...missing], { env });
  return missing;
}

/** Builds one Go hello server (GOPATH mode, Debian's libraries). */
export async function buildGo(
  source: string,
  output: string,
  gopath: string,
): Promise<void> {
  await runTool(["go", "build", "-o", output, source], {
    env: {
      GO111MODULE: "off",
      GOPATH: `${gopath}:${DEBIAN_GOPATH}`,
      GOFLAGS: "",
    },
  });
}

/** Installs pm2 into `dir` (never globally); returns its CLI script. */
export async function installPm2(dir: string): Promise<string> {
  await runTool([
    "npm",
    "install",
    "--prefix",
    dir,
    "--no-audit",
    "--no-fund",
    "--loglevel=error",
    `pm2@${PM2_VERSION}`,
  ]);
  return `${dir}/node_modules/pm2/bin/pm2`;
}

/**
 * Installs and builds what `needs` asks for (all of it by default; the rest
 * of the {@linkcode Toolchain} is left empty); `appsDir` holds the hello
 * servers.
 */
export async function prepareToolchain(
  appsDir: string,
  workDir: string,
  log: (line: string) => void,
  needs: ToolNeeds = { go: true, nginx: true, pm2: true },
): Promise<Toolchain> {
  const installed = await ensureDebianPackages(log, debianPackages(needs));
  const tableflipBinary = `${workDir}/tableflip-hello`;
  const graceBinary = `${workDir}/grace-hello`;
  const versions: Record<string, string> = {};
  if (needs.go) {
    log("building the Go hello servers (GO111MODULE=off)");
    const gopath = `${workDir}/gopath`;
    await Deno.mkdir(gopath, { recursive: true });
    await buildGo(`${appsDir}/tableflip/main.go`, tableflipBinary, gopath);
    await buildGo(`${appsDir}/grace/main.go`, graceBinary, gopath);
    versions.go = (await runTool(["go", "version"])).trim();
  }
  if (needs.nginx) {
    versions.nginx = (await runTool(["/usr/sbin/nginx", "-v"])).trim();
  }
  let pm2Script = "";
  if (needs.pm2) {
    log(`installing pm2@${PM2_VERSION} from npm into ${workDir}/pm2`);
    pm2Script = await installPm2(`${workDir}/pm2`);
    versions.node = (await runTool(["node", "--version"])).trim();
    versions.pm2 = PM2_VERSION;
  }
  for (const name of debianPackages(needs).filter((n) => n !== "golang-go")) {
    versions[name] = (await runTool([
      "dpkg-query",
      "-W",
      "-f=${Version}",
      name,
    ])).trim();
  }
  return {
    tableflipBinary,
    graceBinary,
    nginx: "/usr/sbin/nginx",
    node: "node",
    pm2Script,
    versions,
    installed,
  };
}
