/**
 * sd_notify(3): tells systemd about readiness, reloads, the main pid, status
 * and the watchdog, as datagrams to `$NOTIFY_SOCKET`.
 *
 * Deno has no stable unix-datagram API, so this sends through libc (FFI:
 * socket(2) and sendto(2)), which `-A` permits. Without FFI permission it
 * warns once and carries on; without `$NOTIFY_SOCKET` it does nothing.
 *
 * @module
 */

import { logger } from "./log.ts";

const log = logger("notify");

const AF_UNIX = 1;
const SOCK_DGRAM = 2;
const SOCK_CLOEXEC = 0o2000000;
const SUN_PATH_MAX = 108;
const CLOCK_MONOTONIC = 1;

interface NotifyLibc {
  socket(domain: number, type: number, protocol: number): number;
  sendto(
    fd: number,
    buf: Uint8Array<ArrayBuffer>,
    len: bigint,
    flags: number,
    addr: Uint8Array<ArrayBuffer>,
    addrlen: number,
  ): bigint;
  close(fd: number): number;
  clockGettime(clock: number, timespec: Uint8Array<ArrayBuffer>): number;
}

let lib: NotifyLibc | null | undefined;
let warned = false;

function openLibc(): NotifyLibc | undefined {
  if (lib !== undefined) return lib ?? undefined;
  try {
    const dl = Deno.dlopen("libc.so.6", {
      socket: { parameters: ["i32", "i32", "i32"], result: "i32" },
      sendto: {
        parameters: ["i32", "buffer", "usize", "i32", "buffer", "u32"],
        result: "isize",
      },
      close: { parameters: ["i32"], result: "i32" },
      clock_gettime: { parameters: ["i32", "buffer"], result: "i32" },
    });
    lib = {
      socket: (d, t, p) => dl.symbols.socket(d, t, p),
      sendto: (fd, buf, len, flags, addr, addrlen) =>
        dl.symbols.sendto(fd, buf, len, flags, addr, addrlen) as bigint,
      close: (fd) => dl.symbols.close(fd),
      clockGettime: (clock, timespec) =>
        dl.symbols.clock_gettime(clock, timespec),
    };
  } catch (error) {
    lib = null;
    if (!warned) {
      warned = true;
      const message = error instanceof Error ? error.message : String(error);
      log.warn(
        "cannot tell systemd anything (NOTIFY_SOCKET is set, FFI is not usable: {message}); run with -A or --allow-ffi",
        { message },
      );
      console.warn(
        `serveGraceful: NOTIFY_SOCKET is set but FFI is not usable (${message}); systemd will not hear from this process`,
      );
    }
  }
  return lib ?? undefined;
}

/**
 * Encodes a `$NOTIFY_SOCKET` value as a sockaddr_un: a path, or an abstract
 * name when it starts with "@". Throws a TypeError naming the variable when it
 * cannot be one.
 *
 * @example
 * ```ts
 * import { sockaddrUn } from "./notify.ts";
 * console.log(sockaddrUn("@abstract").length); // 2 + 9
 * ```
 */
export function sockaddrUn(address: string): Uint8Array<ArrayBuffer> {
  if (!address.startsWith("/") && !address.startsWith("@")) {
    throw new TypeError(
      `NOTIFY_SOCKET="${address}" is neither an absolute path nor an abstract name (@...)`,
    );
  }
  const path = new TextEncoder().encode(address);
  if (path.length >= SUN_PATH_MAX) {
    throw new TypeError(`NOTIFY_SOCKET="${address}" is too long`);
  }
  const abstract = address.startsWith("@");
  // family (2 bytes), then the path; a path is NUL-terminated, an abstract
  // name starts with NUL and is exactly as long as given.
  const out = new Uint8Array(2 + path.length + (abstract ? 0 : 1));
  new DataView(out.buffer).setUint16(0, AF_UNIX, true);
  out.set(path, 2);
  if (abstract) out[2] = 0;
  return out;
}

/**
 * Whether there is a service manager to notify (`$NOTIFY_SOCKET` is set):
 * what is computed only for it (a monotonic clock reading through FFI) can
 * then be skipped.
 *
 * @example
 * ```ts
 * import { notifying } from "./notify.ts";
 * console.log(notifying() ? "under systemd" : "standalone");
 * ```
 */
export function notifying(): boolean {
  return Boolean(Deno.env.get("NOTIFY_SOCKET"));
}

/**
 * Sends one notification ("READY=1", "STATUS=…", several joined by "\n").
 * Returns true when it was sent; false when there is no NOTIFY_SOCKET or it
 * could not be sent (which is logged, never thrown).
 *
 * @example
 * ```ts ignore
 * sdNotify("READY=1\nSTATUS=serving on :8000");
 * ```
 */
export function sdNotify(
  state: string,
  socketPath: string | undefined = Deno.env.get("NOTIFY_SOCKET"),
): boolean {
  if (!socketPath) return false;
  let addr: Uint8Array<ArrayBuffer>;
  try {
    addr = sockaddrUn(socketPath);
  } catch (error) {
    log.warn("{message}", { message: (error as Error).message });
    return false;
  }
  const libc = openLibc();
  if (!libc) return false;
  const fd = libc.socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
  if (fd < 0) {
    log.warn("socket(AF_UNIX, SOCK_DGRAM) failed; cannot notify systemd");
    return false;
  }
  try {
    const data = new TextEncoder().encode(state);
    const sent = libc.sendto(
      fd,
      data,
      BigInt(data.length),
      0,
      addr,
      addr.length,
    );
    if (sent < 0n) {
      log.warn("sd_notify to {socket} failed: {state}", {
        socket: socketPath,
        state: state.replaceAll("\n", " "),
      });
      return false;
    }
    log.debug("sd_notify: {state}", { state: state.replaceAll("\n", " ") });
    return true;
  } finally {
    libc.close(fd);
  }
}

/**
 * CLOCK_MONOTONIC in µs, which systemd wants with RELOADING=1
 * (MONOTONIC_USEC=), read with clock_gettime(2). Without FFI it falls back to
 * /proc/uptime (CLOCK_BOOTTIME: equal unless the machine was suspended).
 *
 * @example
 * ```ts ignore
 * sdNotify(`RELOADING=1\nMONOTONIC_USEC=${monotonicUsec()}`);
 * ```
 */
export function monotonicUsec(): bigint {
  const libc = openLibc();
  if (libc) {
    const ts = new BigInt64Array(2);
    if (libc.clockGettime(CLOCK_MONOTONIC, new Uint8Array(ts.buffer)) === 0) {
      return ts[0] * 1_000_000n + ts[1] / 1000n;
    }
  }
  const uptime = Number(Deno.readTextFileSync("/proc/uptime").split(" ")[0]);
  return BigInt(Math.round(uptime * 1_000_000));
}

/**
 * The watchdog interval systemd expects pings at (WATCHDOG_USEC, honoured only
 * when WATCHDOG_PID is unset or ours), in ms; undefined when off.
 *
 * @example
 * ```ts ignore
 * const ms = watchdogIntervalMs();
 * if (ms) setInterval(() => sdNotify("WATCHDOG=1"), ms / 2);
 * ```
 */
export function watchdogIntervalMs(
  env: { get(key: string): string | undefined } = Deno.env,
  pid: number = Deno.pid,
): number | undefined {
  const usec = Number(env.get("WATCHDOG_USEC"));
  if (!Number.isFinite(usec) || usec <= 0) return undefined;
  const wpid = env.get("WATCHDOG_PID");
  if (wpid !== undefined && Number(wpid) !== pid) return undefined;
  return usec / 1000;
}
