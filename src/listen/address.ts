/**
 * Listen addresses: parsing them from configuration strings, printing them,
 * and deciding whether an existing listening socket satisfies one.
 *
 * @module
 */

import type { Addr } from "./types.ts";
import { quoteValue } from "../util/quote.ts";

/**
 * Where to listen: a TCP host and port, or a unix socket path.
 */
export type ListenSpec =
  | { transport: "tcp"; hostname: string; port: number }
  | { transport: "unix"; path: string };

/** What every error message of {@linkcode parseListenAddress} ends with. */
const EXPECTED_FORMS =
  "expected HOST:PORT, [IPV6]:PORT, :PORT, PORT or unix:PATH, " +
  "with PORT a decimal number from 0 to 65535";

/** The hostname used when a listen address gives only a port. */
const ALL_IPV4_INTERFACES = "0.0.0.0";

/** Hostnames (DNS names and IPv4 addresses) accepted without brackets. */
const HOSTNAME_PATTERN = /^[A-Za-z0-9._-]+$/;

/** A 16-bit IPv6 group in hex. */
const IPV6_GROUP_PATTERN = /^[0-9A-Fa-f]{1,4}$/;

/** A dotted-quad IPv4 address. */
const IPV4_PATTERN = /^(\d{1,3})\.(\d{1,3})\.(\d{1,3})\.(\d{1,3})$/;

/**
 * Parses a listen address from configuration (a command line flag, an
 * environment variable, a config file).
 *
 * Accepted forms:
 * - `HOST:PORT`, e.g. `127.0.0.1:8000` or `localhost:80`;
 * - `[IPV6]:PORT`, e.g. `[::1]:8001` (IPv6 addresses need brackets);
 * - `:PORT` or `PORT`, which listen on all IPv4 interfaces (`0.0.0.0`);
 * - `unix:PATH`, e.g. `unix:/run/app.sock` or the relative `unix:app.sock`.
 *
 * PORT is a decimal number from 0 to 65535; 0 asks for any free port.
 *
 * @param spec The address as written by the operator.
 * @returns The parsed address.
 * @throws {TypeError} When `spec` is not one of the accepted forms; the message
 * quotes `spec` and lists the accepted forms.
 */
export function parseListenAddress(spec: string): ListenSpec {
  if (typeof spec !== "string") {
    throw new TypeError(
      `Invalid listen address ${String(spec)}: it is a ${typeof spec}, ` +
        `not a string; ${EXPECTED_FORMS}`,
    );
  }
  if (spec === "") {
    throw invalidAddress(spec, "it is empty");
  }

  if (spec.startsWith("unix:")) {
    const path = spec.slice("unix:".length);
    if (path === "") {
      throw invalidAddress(spec, "the unix socket path is empty");
    }
    if (path.includes("\0")) {
      throw invalidAddress(spec, "the unix socket path contains a NUL byte");
    }
    return { transport: "unix", path };
  }

  // PORT alone. A sign is let through to parsePort, so that "-1" is reported
  // as an invalid port rather than as a missing one.
  if (/^[+-]?\d+$/.test(spec)) {
    return {
      transport: "tcp",
      hostname: ALL_IPV4_INTERFACES,
      port: parsePort(spec, spec),
    };
  }

  if (spec.startsWith("[")) {
    const close = spec.indexOf("]");
    if (close === -1) {
      throw invalidAddress(spec, 'the "[" of the IPv6 address is not closed');
    }
    const hostname = spec.slice(1, close);
    const rest = spec.slice(close + 1);
    if (hostname === "") {
      throw invalidAddress(spec, "the IPv6 address in brackets is empty");
    }
    if (parseIpv6(hostname) === undefined) {
      throw invalidAddress(
        spec,
        `"${hostname}" is not a valid IPv6 address`,
      );
    }
    if (rest === "") {
      throw invalidAddress(spec, "the port is missing");
    }
    if (!rest.startsWith(":")) {
      throw invalidAddress(spec, 'expected ":PORT" after the "]"');
    }
    return { transport: "tcp", hostname, port: parsePort(spec, rest.slice(1)) };
  }

  const colon = spec.lastIndexOf(":");
  if (colon === -1) {
    throw invalidAddress(spec, "the port is missing");
  }
  const hostname = spec.slice(0, colon);
  const portText = spec.slice(colon + 1);
  if (hostname.includes(":") && /^[0-9A-Fa-f:.]+$/.test(hostname)) {
    throw invalidAddress(
      spec,
      'an IPv6 address must be enclosed in brackets, as in "[::1]:8000"',
    );
  }
  if (hostname !== "" && !HOSTNAME_PATTERN.test(hostname)) {
    throw invalidAddress(spec, `"${hostname}" is not a valid hostname`);
  }
  return {
    transport: "tcp",
    hostname: hostname === "" ? ALL_IPV4_INTERFACES : hostname,
    port: parsePort(spec, portText),
  };
}

/**
 * Formats an address for logs and error messages. TCP addresses print as
 * `HOST:PORT` (IPv6 hosts in brackets), unix ones as `unix:PATH`; the result of
 * formatting a {@linkcode ListenSpec} parses back to the same spec.
 *
 * @param addr A socket address as Deno reports it, or a parsed listen address.
 * @returns The printable address.
 */
export function formatAddr(addr: Addr | ListenSpec): string {
  if ("path" in addr) {
    return `unix:${addr.path}`;
  }
  if (addr.hostname.includes(":")) {
    return `[${addr.hostname}]:${addr.port}`;
  }
  return `${addr.hostname}:${addr.port}`;
}

/**
 * Tells whether a listening socket at `addr` satisfies the listen address
 * `spec`, for example to decide whether a socket inherited from systemd can
 * serve a configured address.
 *
 * The transports must be equal (a `tcp` spec matches only `tcp` addresses, a
 * `unix` spec only `unix` ones). For TCP:
 * - the ports must be equal, except that port 0 in `spec` ("any free port")
 *   matches every port;
 * - the hostnames must be equal, ignoring case and IPv6 notation differences
 *   (`0:0::1` equals `::1`), with `localhost` equal to `127.0.0.1`, and the
 *   wildcards `0.0.0.0` and `::` equal to each other.
 *
 * For unix sockets the paths must be equal as strings (relative paths are not
 * resolved).
 *
 * @param spec The wanted address.
 * @param addr The address of an existing listening socket.
 * @returns True when the socket satisfies `spec`.
 */
export function addrMatches(spec: ListenSpec, addr: Addr): boolean {
  if (spec.transport === "unix") {
    return addr.transport === "unix" && addr.path === spec.path;
  }
  if (addr.transport !== "tcp") {
    return false;
  }
  if (spec.port !== 0 && spec.port !== addr.port) {
    return false;
  }
  return canonicalHostname(spec.hostname) === canonicalHostname(addr.hostname);
}

/**
 * Formats eight 16-bit groups as an IPv6 address the way Deno prints addresses
 * (Rust's `Ipv6Addr` display): lowercase hex, the longest run of two or more
 * zero groups (the first one on ties) replaced by `::`, and IPv4-mapped
 * addresses as `::ffff:a.b.c.d`.
 *
 * @internal Shared with `sockaddr.ts`; not part of the public API.
 *
 * @param groups Eight numbers from 0 to 0xffff, most significant first.
 * @returns The address, without brackets.
 */
export function formatIpv6(groups: readonly number[]): string {
  if (groups.length !== 8) {
    throw new RangeError(
      `An IPv6 address has 8 groups, but ${groups.length} were given`,
    );
  }
  const isIpv4Mapped = groups[0] === 0 && groups[1] === 0 &&
    groups[2] === 0 && groups[3] === 0 && groups[4] === 0 &&
    groups[5] === 0xffff;
  if (isIpv4Mapped) {
    const ipv4 = [
      groups[6] >> 8,
      groups[6] & 0xff,
      groups[7] >> 8,
      groups[7] & 0xff,
    ];
    return `::ffff:${ipv4.join(".")}`;
  }

  let longestStart = -1;
  let longestLength = 0;
  let runStart = -1;
  for (let index = 0; index < groups.length; index++) {
    if (groups[index] !== 0) {
      runStart = -1;
      continue;
    }
    if (runStart === -1) {
      runStart = index;
    }
    const runLength = index - runStart + 1;
    if (runLength > longestLength) {
      longestStart = runStart;
      longestLength = runLength;
    }
  }

  const hex = groups.map((group) => group.toString(16));
  if (longestLength < 2) {
    return hex.join(":");
  }
  const head = hex.slice(0, longestStart).join(":");
  const tail = hex.slice(longestStart + longestLength).join(":");
  return `${head}::${tail}`;
}

/**
 * Tells whether an IP address is a loopback address: 127.0.0.0/8, `::1`, or
 * IPv4-mapped 127.0.0.0/8 (`::ffff:127.0.0.1`). IPv6 may come in brackets
 * and with a zone id. Host names, `localhost` among them, are not addresses.
 */
export function isLoopbackIp(text: string): boolean {
  let host = text.toLowerCase();
  if (host.startsWith("[") && host.endsWith("]")) host = host.slice(1, -1);
  const zone = host.indexOf("%");
  if (zone >= 0) host = host.slice(0, zone);
  const ipv4 = IPV4_PATTERN.exec(host);
  if (ipv4 !== null) {
    const bytes = ipv4.slice(1).map(Number);
    return bytes.every((byte) => byte <= 255) && bytes[0] === 127;
  }
  const groups = host.includes(":") ? parseIpv6(host) : undefined;
  if (groups === undefined) return false;
  const zeros = groups.slice(0, 5).every((group) => group === 0);
  return zeros && (
    (groups[5] === 0 && groups[6] === 0 && groups[7] === 1) ||
    (groups[5] === 0xffff && groups[6] >> 8 === 127)
  );
}

/**
 * Parses an IPv6 address (without brackets or zone id) into eight 16-bit
 * groups, or returns undefined when `text` is not one. A trailing dotted IPv4
 * part (`::ffff:127.0.0.1`) is accepted.
 */
function parseIpv6(text: string): number[] | undefined {
  const halves = text.split("::");
  if (halves.length > 2) {
    return undefined;
  }
  const compressed = halves.length === 2;
  const leftText = halves[0];
  const rightText = compressed ? halves[1] : "";

  const left = leftText === ""
    ? []
    : parseIpv6Groups(leftText.split(":"), !compressed);
  const right = rightText === ""
    ? []
    : parseIpv6Groups(rightText.split(":"), true);
  if (left === undefined || right === undefined) {
    return undefined;
  }

  if (!compressed) {
    return left.length === 8 ? left : undefined;
  }
  const missing = 8 - left.length - right.length;
  if (missing < 1) {
    return undefined;
  }
  const zeros: number[] = new Array(missing).fill(0);
  return [...left, ...zeros, ...right];
}

/**
 * Parses colon-separated IPv6 groups. When `mayEndWithIpv4` is true, the last
 * part may be a dotted IPv4 address, which stands for two groups.
 */
function parseIpv6Groups(
  parts: string[],
  mayEndWithIpv4: boolean,
): number[] | undefined {
  const groups: number[] = [];
  for (let index = 0; index < parts.length; index++) {
    const part = parts[index];
    const isLast = index === parts.length - 1;
    if (isLast && mayEndWithIpv4 && part.includes(".")) {
      const match = IPV4_PATTERN.exec(part);
      if (match === null) {
        return undefined;
      }
      const bytes = match.slice(1).map(Number);
      if (bytes.some((byte) => byte > 255)) {
        return undefined;
      }
      groups.push((bytes[0] << 8) | bytes[1], (bytes[2] << 8) | bytes[3]);
      continue;
    }
    if (!IPV6_GROUP_PATTERN.test(part)) {
      return undefined;
    }
    groups.push(parseInt(part, 16));
  }
  return groups;
}

/**
 * Reduces a hostname to a form in which equivalent hostnames compare equal:
 * lowercase, IPv6 addresses in Deno's notation, `localhost` as `127.0.0.1`,
 * and both wildcard addresses as `0.0.0.0`.
 */
function canonicalHostname(hostname: string): string {
  let host = hostname.toLowerCase();
  if (host.startsWith("[") && host.endsWith("]")) {
    host = host.slice(1, -1);
  }
  if (host === "localhost") {
    return "127.0.0.1";
  }
  if (host.includes(":")) {
    const groups = parseIpv6(host);
    if (groups !== undefined) {
      host = formatIpv6(groups);
    }
  }
  if (host === "::") {
    return ALL_IPV4_INTERFACES;
  }
  return host;
}

/** Parses the port of a listen address, or throws the TypeError for `spec`. */
function parsePort(spec: string, portText: string): number {
  if (portText === "") {
    throw invalidAddress(spec, "the port is missing");
  }
  if (!/^\d+$/.test(portText)) {
    throw invalidAddress(spec, `the port "${portText}" is not a number`);
  }
  const port = Number(portText);
  if (port > 65535) {
    throw invalidAddress(
      spec,
      `the port ${portText} is out of range (it must be at most 65535)`,
    );
  }
  return port;
}

/** The error for an invalid listen address: quotes it, says why and what is expected. */
function invalidAddress(spec: string, reason: string): TypeError {
  return new TypeError(
    `Invalid listen address ${quoteValue(spec)}: ${reason}; ${EXPECTED_FORMS}`,
  );
}
