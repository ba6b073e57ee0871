/**
 * systemd's file descriptor store: with `FileDescriptorStoreMax=` in the
 * unit, systemd keeps the fds a service hands it (sd_notify "FDSTORE=1" with
 * the fds attached) across `systemctl restart` and crashes (Restart=), and
 * passes them back through LISTEN_FDS on the next start. A service without a
 * socket unit then keeps its ports: clients queue in the backlog while it is
 * down instead of being refused. `systemctl stop` empties the store.
 *
 * Every listening socket this process opens itself is stored once it
 * listens, named (FDNAME=) after its server, so that the next start's
 * servers claim them (by address when a server asks for addresses, else by
 * name; the address is read from the socket). Sockets that come back and
 * that no server claims are dropped from the store (FDSTOREREMOVE=1) once
 * the first generation is ready.
 *
 * On when `$FDSTORE` (the store's size: systemd ≥ 254 sets it; the shipped
 * units set it for 252) and `$NOTIFY_SOCKET` are set.
 *
 * @module
 */

import { ADMIN_SERVER_NAME, type Listener } from "../listen/types.ts";
import type { InheritedFd } from "../listen/listen_fds.ts";
import { formatAddr, type ListenSpec } from "../listen/address.ts";
import { logger } from "../util/log.ts";
import { sdNotify, sdNotifyWithFds } from "./notify.ts";

const log = logger("fd-store");

/** systemd's FDNAME_MAX. */
const FDNAME_MAX = 255;

/** The environment this module reads; `Deno.env` satisfies it. */
export interface FdStoreEnv {
  /** Returns the value of `key`, or undefined when it is not set. */
  get(key: string): string | undefined;
}

/**
 * Whether systemd's fd store is on for this service: `$FDSTORE` is a count
 * above 0 and `$NOTIFY_SOCKET` is set. Throws a one-line error naming
 * `$FDSTORE` when it is not a count.
 */
export function fdStoreEnabled(env: FdStoreEnv = Deno.env): boolean {
  let text: string | undefined;
  try {
    text = env.get("FDSTORE");
  } catch {
    return false; // no --allow-env: nor could sd_notify find its socket
  }
  if (text === undefined || text === "") return false;
  if (!/^\d+$/.test(text)) {
    throw new TypeError(
      `FDSTORE="${text}" is not a count of fds (systemd sets it to FileDescriptorStoreMax=)`,
    );
  }
  return Number(text) > 0 && Boolean(env.get("NOTIFY_SOCKET"));
}

/**
 * Whether `name` can be an FDNAME= (and a LISTEN_FDNAMES entry): printable
 * ASCII without ":", 1 to 255 characters.
 */
export function validFdName(name: string): boolean {
  return name.length > 0 && name.length <= FDNAME_MAX &&
    /^[\x20-\x7e]+$/.test(name) && !name.includes(":");
}

/** What the store needs of a listener (a supervisor's sockets have no server). */
export type StorableListener = Pick<Listener, "fd" | "name" | "addr"> & {
  inherited?: boolean;
};

/** Names this process removed from the store (a later claim stores them again). */
const removed = new Set<string>();

/**
 * Puts the listeners this process opened itself into systemd's fd store,
 * each under its server's name, with FDPOLL=0 (a listening socket never
 * hangs up: systemd need not watch it to drop it from the store).
 * Inherited listeners are already held by systemd (a socket unit, or the
 * store itself), unless this process removed their name: those are stored
 * again. Does nothing when the store is off. Throws a one-line error when a
 * name cannot be an FDNAME=.
 */
export function storeListeners(
  listeners: readonly StorableListener[],
  env: FdStoreEnv = Deno.env,
): void {
  if (!fdStoreEnabled(env)) return;
  // Not the admin socket: its path lives in the runtime directory, which
  // systemd removes on stop and restart, so a stored one would come back
  // with no path to reach it by.
  const toStore = listeners.filter((l) =>
    l.fd >= 0 && l.name !== ADMIN_SERVER_NAME &&
    (!l.inherited || removed.has(l.name))
  );
  for (const listener of toStore) {
    if (!validFdName(listener.name)) {
      throw new TypeError(
        `cannot put the socket on ${
          formatAddr(listener.addr)
        } into systemd's fd store (FDSTORE is set): the server's name "${listener.name}" cannot be an FDNAME= (printable ASCII, no ":", at most ${FDNAME_MAX} characters)`,
      );
    }
  }
  for (const listener of toStore) {
    const state = `FDSTORE=1\nFDNAME=${listener.name}\nFDPOLL=0`;
    if (sdNotifyWithFds(state, [listener.fd], env.get("NOTIFY_SOCKET"))) {
      removed.delete(listener.name);
      log.info("stored fd {fd} ({addr}) in systemd's fd store as {name}", {
        fd: listener.fd,
        addr: formatAddr(listener.addr),
        name: listener.name,
      });
    }
  }
}

/**
 * Whether a server's configured addresses decide which inherited sockets it
 * takes, rather than their names: in a first generation with systemd's fd
 * store on, for a server that asks for addresses. The store keeps sockets
 * from an earlier start, and the configuration may have changed since (an
 * address dropped, or added). Under a socket unit alone, or after a reload,
 * the sockets named for a server are authoritative. A stored socket no
 * server asks for is left unclaimed, and dropped from the store once the
 * process is ready.
 */
export function configDecides(
  request: { restarted?: boolean; specs: readonly ListenSpec[] },
  env: FdStoreEnv = Deno.env,
): boolean {
  if (request.restarted || request.specs.length === 0) return false;
  return fdStoreEnabled(env);
}

/**
 * Drops from systemd's fd store (FDSTOREREMOVE=1) every name under which
 * sockets came back that no server claimed: a server that is gone, or that
 * listens elsewhere now. Removing a name removes every fd under it, so the
 * `active` listeners of that name are stored again. The unclaimed fds stay
 * open here (a server that starts later may still claim them, and is then
 * stored again); the next start no longer gets them. Returns the names
 * removed; none when the store is off.
 */
export function removeUnclaimed(
  unclaimed: readonly InheritedFd[],
  active: readonly StorableListener[],
  env: FdStoreEnv = Deno.env,
): string[] {
  if (unclaimed.length === 0 || !fdStoreEnabled(env)) return [];
  const names = [...new Set(unclaimed.map((f) => f.name))].filter(
    validFdName,
  );
  for (const name of names) {
    if (
      !sdNotify(`FDSTOREREMOVE=1\nFDNAME=${name}`, env.get("NOTIFY_SOCKET"))
    ) {
      continue;
    }
    removed.add(name);
    const addrs = unclaimed.filter((f) => f.name === name)
      .map((f) => formatAddr(f.addr)).join(", ");
    log.warn(
      "no server claimed the stored socket(s) {name} on {addrs}: removed from systemd's fd store",
      { name, addrs },
    );
    storeListeners(active.filter((l) => l.name === name), env);
  }
  return names;
}
