/**
 * sd_notify(3): tells systemd about readiness, reloads, the main pid, status
 * and the watchdog, as datagrams to `$NOTIFY_SOCKET`.
 *
 * Deno has no stable unix-datagram API, so this sends through libc (FFI in
 * os.ts: socket(2) and sendmsg(2), which also passes fds for systemd's fd
 * store), which `-A` permits. Without FFI permission it
 * warns once and carries on; without `$NOTIFY_SOCKET` it does nothing.
 *
 * @module
 */

import { logger } from "../util/log.ts";
import { errorMessage } from "../util/error_message.ts";
import {
  monotonicClockUsec,
  notifyCallsUnavailableReason,
  sendUnixDatagram,
} from "../os/unix_datagram.ts";
import { unixSockaddr } from "../os/socket.ts";
import { LINUX } from "../os/constants.ts";

const log = logger("notify");

const SUN_PATH_BYTES = LINUX.sunPathBytes;

let warned = false;

/** Says once that FFI is not usable, so systemd hears nothing. */
function warnNoFfi(): void {
  if (warned) return;
  warned = true;
  const message = notifyCallsUnavailableReason();
  log.warn(
    "cannot tell systemd anything (NOTIFY_SOCKET is set, FFI is not usable: {message}); run with -A or --allow-ffi",
    { message },
  );
  console.warn(
    `serveGraceful: NOTIFY_SOCKET is set but FFI is not usable (${message}); systemd will not hear from this process`,
  );
}

/**
 * Encodes a `$NOTIFY_SOCKET` value as a sockaddr_un: a path, or an abstract
 * name when it starts with "@". Throws a TypeError naming the variable when it
 * cannot be one.
 */
export function sockaddrUn(address: string): Uint8Array<ArrayBuffer> {
  if (!address.startsWith("/") && !address.startsWith("@")) {
    throw new TypeError(
      `NOTIFY_SOCKET="${address}" is neither an absolute path nor an abstract name (@...)`,
    );
  }
  const encoded = unixSockaddr(address);
  if (encoded.length - 2 > SUN_PATH_BYTES) {
    throw new TypeError(`NOTIFY_SOCKET="${address}" is too long`);
  }
  return encoded;
}

/**
 * Whether there is a service manager to notify (`$NOTIFY_SOCKET` is set):
 * what is computed only for it (a monotonic clock reading through FFI) can
 * then be skipped.
 */
export function notifying(): boolean {
  return Boolean(Deno.env.get("NOTIFY_SOCKET"));
}

/**
 * Sends one notification ("READY=1", "STATUS=…", several joined by "\n").
 * Returns true when it was sent; false when there is no NOTIFY_SOCKET or it
 * could not be sent (which is logged, never thrown).
 */
export function sdNotify(
  state: string,
  socketPath: string | undefined = Deno.env.get("NOTIFY_SOCKET"),
): boolean {
  return sdNotifyWithFds(state, [], socketPath);
}

/**
 * Sends one notification with file descriptors attached (SCM_RIGHTS), as
 * sd_pid_notify_with_fds(3) does: "FDSTORE=1\nFDNAME=web" puts `fds` into
 * systemd's file descriptor store. The fds stay open here. Returns true when
 * it was sent; false when there is no NOTIFY_SOCKET or it could not be sent
 * (which is logged, never thrown).
 */
export function sdNotifyWithFds(
  state: string,
  fds: readonly number[],
  socketPath: string | undefined = Deno.env.get("NOTIFY_SOCKET"),
): boolean {
  if (!socketPath) return false;
  let addr: Uint8Array<ArrayBuffer>;
  try {
    addr = sockaddrUn(socketPath);
  } catch (error) {
    log.warn("{message}", { message: errorMessage(error) });
    return false;
  }
  const oneLine = state.replaceAll("\n", " ");
  const sent = sendUnixDatagram(addr, new TextEncoder().encode(state), fds);
  if (sent === undefined) {
    warnNoFfi();
    return false;
  }
  if (sent < 0) {
    log.warn("sd_notify to {socket} failed: {state}", {
      socket: socketPath,
      state: oneLine,
    });
    return false;
  }
  log.debug("sd_notify: {state}{fds}", {
    state: oneLine,
    fds: fds.length > 0 ? ` (fds ${fds.join(", ")})` : "",
  });
  return true;
}

/**
 * CLOCK_MONOTONIC in µs, which systemd wants with RELOADING=1
 * (MONOTONIC_USEC=), read with clock_gettime(2). Without FFI it falls back to
 * /proc/uptime (CLOCK_BOOTTIME: equal unless the machine was suspended).
 */
export function monotonicUsec(): bigint {
  const usec = monotonicClockUsec();
  if (usec !== undefined) return usec;
  const uptime = Number(Deno.readTextFileSync("/proc/uptime").split(" ")[0]);
  return BigInt(Math.round(uptime * 1_000_000));
}

/**
 * The watchdog interval systemd expects pings at (WATCHDOG_USEC, honoured only
 * when WATCHDOG_PID is unset or ours), in ms; undefined when off.
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
