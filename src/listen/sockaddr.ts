/**
 * Socket addresses as the kernel gives them (a sockaddr, or the IP bytes of
 * a /proc/net table), written as Deno writes them, so that an inherited
 * socket's address compares equal to the one Deno.listen reports.
 *
 * @module
 */

import type { Addr } from "./types.ts";
import { formatIpv6 } from "./address.ts";
import { libcConstants } from "../os/constants.ts";
import { sockaddrFamily } from "../os/socket.ts";

/** Socket domains (Linux). */
export const { AF_UNIX, AF_INET, AF_INET6 } = libcConstants;

/** A sockaddr's family is in the host's byte order. */
const HOST_IS_LITTLE_ENDIAN =
  new Uint8Array(new Uint16Array([1]).buffer)[0] === 1;

/**
 * An IP address in network order (4 or 16 bytes) in Deno's notation: dotted
 * IPv4, compressed IPv6.
 */
export function formatIp(ip: Uint8Array): string {
  if (ip.length === 4) return ip.join(".");
  const view = new DataView(ip.buffer, ip.byteOffset, ip.length);
  const groups: number[] = [];
  for (let group = 0; group < 8; group++) {
    groups.push(view.getUint16(group * 2, false));
  }
  return formatIpv6(groups);
}

/**
 * Decodes a sockaddr (sockaddr_in, sockaddr_in6 or sockaddr_un, in the
 * host's byte order for the family) into an address written as the /proc/net
 * tables give it: Deno's IPv6 notation, "@name" for an abstract unix socket
 * (with "@" for every NUL in the name), "" for an unbound one. Returns
 * undefined for another family or a truncated address.
 *
 * @internal Exported for tests.
 */
export function decodeSockaddr(
  bytes: Uint8Array,
  littleEndian: boolean = HOST_IS_LITTLE_ENDIAN,
): Addr | undefined {
  if (bytes.length < 2) return undefined;
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.length);
  const family = sockaddrFamily(bytes, littleEndian);
  if (family === AF_INET && bytes.length >= 8) {
    return {
      transport: "tcp",
      hostname: bytes.subarray(4, 8).join("."),
      port: view.getUint16(2, false),
    };
  }
  if (family === AF_INET6 && bytes.length >= 24) {
    return {
      transport: "tcp",
      hostname: formatIp(bytes.subarray(8, 24)),
      port: view.getUint16(2, false),
    };
  }
  if (family === AF_UNIX) {
    const name = bytes.subarray(2);
    if (name.length === 0) return { transport: "unix", path: "" };
    if (name[0] === 0) {
      // Abstract: the name is every byte after the NUL, NULs included.
      const shown = name.subarray(1).map((byte) => byte === 0 ? 0x40 : byte);
      return { transport: "unix", path: `@${new TextDecoder().decode(shown)}` };
    }
    const end = name.indexOf(0);
    const path = end < 0 ? name : name.subarray(0, end);
    return { transport: "unix", path: new TextDecoder().decode(path) };
  }
  return undefined;
}
