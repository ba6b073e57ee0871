import { assert, assertEquals } from "../../tests/assert.ts";
import {
  decodeProcInetAddress,
  parseProcNetInet,
  parseProcNetUnix,
  parseSocketInode,
  processHoldsSocket,
} from "./proc_net.ts";
import {
  PROC_NET_TCP,
  PROC_NET_TCP6,
  PROC_NET_UDP,
  PROC_NET_UNIX,
} from "../../tests/fixtures/proc_net_tables.ts";

function ip(...bytes: number[]): Uint8Array {
  return new Uint8Array(bytes);
}

Deno.test("decodeProcInetAddress decodes IPv4 (little-endian words)", () => {
  assertEquals(decodeProcInetAddress("0100007F:1F40", true), {
    ip: ip(127, 0, 0, 1),
    port: 8000,
  });
  assertEquals(decodeProcInetAddress("00000000:0050", true), {
    ip: ip(0, 0, 0, 0),
    port: 80,
  });
  assertEquals(decodeProcInetAddress("0A00020F:FFFF", true), {
    ip: ip(15, 2, 0, 10),
    port: 65535,
  });
  assertEquals(decodeProcInetAddress("0100007f:b813", true), {
    ip: ip(127, 0, 0, 1),
    port: 47123,
  });
});

Deno.test("decodeProcInetAddress decodes IPv4 on big-endian hosts", () => {
  assertEquals(decodeProcInetAddress("7F000001:0050", false), {
    ip: ip(127, 0, 0, 1),
    port: 80,
  });
});

Deno.test("decodeProcInetAddress decodes IPv6 words in network order", () => {
  const loopback = new Uint8Array(16);
  loopback[15] = 1;
  assertEquals(
    decodeProcInetAddress("00000000000000000000000001000000:01BB", true),
    { ip: loopback, port: 443 },
  );
  const doc = new Uint8Array(16);
  doc.set([0x20, 0x01, 0x0d, 0xb8]);
  doc[15] = 1;
  assertEquals(
    decodeProcInetAddress("20010DB8000000000000000000000001:0050", false),
    { ip: doc, port: 80 },
  );
});

Deno.test("decodeProcInetAddress rejects other text", () => {
  assertEquals(decodeProcInetAddress("local_address"), undefined);
  assertEquals(decodeProcInetAddress("0100007F"), undefined);
  assertEquals(decodeProcInetAddress("0100007:1F40"), undefined);
  assertEquals(decodeProcInetAddress("0100007G:1F40"), undefined);
  assertEquals(decodeProcInetAddress("0100007F:1F4"), undefined);
});

Deno.test("parseProcNetInet reads inode, addresses and state", () => {
  const tcp = parseProcNetInet(PROC_NET_TCP, true);
  assertEquals(tcp.size, 4); // the header and the inode-0 entry are skipped
  assertEquals(tcp.get(6617), {
    inode: 6617,
    local: { ip: ip(127, 0, 0, 1), port: 47123 },
    remote: { ip: ip(0, 0, 0, 0), port: 0 },
    state: 0x0a,
  });
  assertEquals(tcp.get(1593)?.local, { ip: ip(0, 0, 0, 0), port: 2024 });
  assertEquals(tcp.get(4989)?.state, 0x01);
  assertEquals(tcp.get(4989)?.remote, { ip: ip(127, 0, 0, 1), port: 47123 });

  const tcp6 = parseProcNetInet(PROC_NET_TCP6, true);
  assertEquals(tcp6.get(6620)?.local.port, 47124);
  assertEquals(tcp6.get(6620)?.local.ip.length, 16);
  assertEquals(tcp6.get(6620)?.state, 0x0a);

  const udp = parseProcNetInet(PROC_NET_UDP, true);
  assertEquals(udp.get(7100), {
    inode: 7100,
    local: { ip: ip(127, 0, 0, 53), port: 53 },
    remote: { ip: ip(0, 0, 0, 0), port: 0 },
    state: 0x07,
  });
  assertEquals(parseProcNetInet("").size, 0);
});

Deno.test("parseProcNetUnix reads type, flags and path", () => {
  const unix = parseProcNetUnix(PROC_NET_UNIX);
  assertEquals(unix.size, 7);
  assertEquals(unix.get(6621), {
    inode: 6621,
    type: 1,
    flags: 0x10000,
    path: "/run/app.sock",
  });
  assertEquals(unix.get(31337)?.path, "@abstract-name");
  assertEquals(unix.get(1590)?.path, "");
  assertEquals(unix.get(7000)?.type, 2);
  assertEquals(unix.get(7001)?.type, 5);
  assertEquals(unix.get(7002)?.flags, 0);
  assertEquals(unix.get(7003)?.path, "/tmp/my dir/a b.sock");
});

Deno.test("parseSocketInode accepts only socket:[INODE]", () => {
  assertEquals(parseSocketInode("socket:[6617]"), 6617);
  assertEquals(parseSocketInode("/etc/hostname"), undefined);
  assertEquals(parseSocketInode("pipe:[6888]"), undefined);
  assertEquals(parseSocketInode("anon_inode:[eventpoll]"), undefined);
  assertEquals(parseSocketInode("socket:[]"), undefined);
});

Deno.test("processHoldsSocket: this process holds its sockets, a child does not", async () => {
  const listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const child = new Deno.Command("sleep", {
    args: ["30"],
    stdin: "null",
    stdout: "null",
    stderr: "null",
  }).spawn();
  try {
    // The oracle: the socket links of this process's fd table, read here.
    const inodes: number[] = [];
    for (const entry of Deno.readDirSync("/proc/self/fd")) {
      try {
        const target = Deno.readLinkSync(`/proc/self/fd/${entry.name}`);
        const match = /^socket:\[(\d+)\]$/.exec(target);
        if (match) inodes.push(Number(match[1]));
      } catch {
        // closed meanwhile
      }
    }
    assert(inodes.length > 0, "this process holds no socket");
    for (const inode of inodes) {
      assert(processHoldsSocket(Deno.pid, inode));
      assert(!processHoldsSocket(child.pid, inode));
    }
    assert(!processHoldsSocket(Deno.pid, 1));
  } finally {
    child.kill("SIGKILL");
    await child.status;
    listener.close();
  }
});
