/**
 * The tests' and benchmarks' own reading of /proc: which sockets a process
 * holds, and which TCP sockets listen. It is an oracle apart from
 * src/os/proc_net.ts, so that the code under test never checks itself.
 *
 * @module
 */

/** A TCP socket in LISTEN state, as /proc/net/tcp or tcp6 lists it. */
export interface TcpListener {
  /** The local address as the table prints it ("0100007F:1F90"). */
  local: string;
  /** Its port. */
  port: number;
  /** The socket's inode. */
  inode: string;
}

/** The inode of a socket fd's link target ("socket:[123]"); undefined for any other file. */
export function socketInode(linkTarget: string): string | undefined {
  return /^socket:\[(\d+)\]$/.exec(linkTarget)?.[1];
}

/**
 * The inodes of the sockets process `pid` holds. Throws when its fds cannot
 * be listed (it is gone).
 */
export function heldSocketInodes(pid: number | "self"): Set<string> {
  const inodes = new Set<string>();
  for (const entry of Deno.readDirSync(`/proc/${pid}/fd`)) {
    try {
      const inode = socketInode(
        Deno.readLinkSync(`/proc/${pid}/fd/${entry.name}`),
      );
      if (inode !== undefined) inodes.add(inode);
    } catch {
      // closed meanwhile
    }
  }
  return inodes;
}

/** The TCP sockets in LISTEN state (state 0A) of a /proc/net/tcp or tcp6 text. */
export function tcpListeners(table: string): TcpListener[] {
  const listeners: TcpListener[] = [];
  for (const line of table.split("\n").slice(1)) {
    const cols = line.trim().split(/\s+/);
    if (cols.length < 10 || cols[3] !== "0A") continue;
    listeners.push({
      local: cols[1],
      port: parseInt(cols[1].split(":")[1], 16),
      inode: cols[9],
    });
  }
  return listeners;
}

/** The texts of /proc/net/tcp and /proc/net/tcp6 (a missing one is left out). */
export function readTcpTables(): string[] {
  const tables: string[] = [];
  for (const file of ["/proc/net/tcp", "/proc/net/tcp6"]) {
    try {
      tables.push(Deno.readTextFileSync(file));
    } catch {
      // no IPv6
    }
  }
  return tables;
}

/** The inodes of the sockets listening on 127.0.0.1:`port`, from a /proc/net/tcp text. */
export function loopbackListeningInodes(
  table: string,
  port: number,
): Set<string> {
  const local = `0100007F:${port.toString(16).toUpperCase().padStart(4, "0")}`;
  return new Set(
    tcpListeners(table).filter((l) => l.local === local).map((l) => l.inode),
  );
}

/**
 * Whether process `pid` exists and has not ended: its /proc/PID/stat state
 * is neither Z (a zombie nobody reaped: PID 1 here reaps no orphans) nor X.
 */
export function alive(pid: number): boolean {
  let stat: string;
  try {
    stat = Deno.readTextFileSync(`/proc/${pid}/stat`);
  } catch {
    return false;
  }
  const state = stat.slice(stat.lastIndexOf(")") + 2).split(" ")[0];
  return state !== "Z" && state !== "X";
}
