/**
 * systemd's fd store under `--workers` (src/systemd/fd_store.ts): the supervisor is
 * the process that talks to systemd (a worker gets no $NOTIFY_SOCKET), so it
 * stores the sockets the first worker opened, once it holds its own copies
 * of them, and drops from the store the inherited names no worker claimed.
 *
 * @module
 */

import type { Addr } from "../listen/types.ts";
import { removeUnclaimed, storeListeners } from "./fd_store.ts";
import type { InheritedFd } from "../listen/listen_fds.ts";
import { decodeSockaddr } from "../listen/sockaddr.ts";
import { socketFacts } from "../os/socket.ts";

/** A socket the supervisor holds, as its pool lists it. */
export interface HeldSocket {
  fd: number;
  name: string;
}

/**
 * Stores `opened` (the supervisor's copies of the sockets its first worker
 * opened) in systemd's fd store; nothing when the store is off.
 */
export function storeOpened(opened: readonly HeldSocket[]): void {
  storeListeners(opened.map((s) => ({ ...s, addr: addrOf(s.fd) })));
}

/**
 * Drops from the store the inherited names that the first worker's sockets
 * (`claimed`, by name) do not use; returns them. Nothing when the store is
 * off.
 */
export function removeUnclaimedBy(
  inherited: readonly InheritedFd[],
  claimed: readonly HeldSocket[],
): string[] {
  const names = new Set(claimed.map((s) => s.name));
  const unclaimed = inherited.filter((f) => !names.has(f.name));
  const active = inherited.filter((f) => names.has(f.name)).map((f) => ({
    ...f,
    inherited: true,
  }));
  return removeUnclaimed(unclaimed, active);
}

function addrOf(fd: number): Addr {
  const facts = socketFacts(fd);
  const addr = facts ? decodeSockaddr(facts.address) : undefined;
  if (addr === undefined) {
    throw new Error(`fd ${fd}: not a socket the fd store can take`);
  }
  return addr;
}
