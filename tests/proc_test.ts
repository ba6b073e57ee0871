import { assert, assertEquals } from "./assert.ts";
import {
  heldSocketInodes,
  loopbackListeningInodes,
  readTcpTables,
  socketInode,
  tcpListeners,
} from "./proc.ts";

const TABLE =
  "  sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode\n" +
  "   0: 0100007F:1F90 00000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 1111 1 0 100 0 0 10 0\n" +
  "   1: 0100007F:1F90 0100007F:C350 01 00000000:00000000 00:00000000 00000000     0        0 2222 1 0 20 4 30 10 -1\n" +
  "   2: 00000000:1F90 00000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 3333 1 0 100 0 0 10 0\n" +
  "   3: 0100007F:0050 00000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 4444 1 0 100 0 0 10 0\n";

Deno.test("tcpListeners lists the LISTEN rows only", () => {
  assertEquals(tcpListeners(TABLE), [
    { local: "0100007F:1F90", port: 8080, inode: "1111" },
    { local: "00000000:1F90", port: 8080, inode: "3333" },
    { local: "0100007F:0050", port: 80, inode: "4444" },
  ]);
});

Deno.test("loopbackListeningInodes finds 127.0.0.1:port in LISTEN state only", () => {
  assertEquals(loopbackListeningInodes(TABLE, 8080), new Set(["1111"]));
  assertEquals(loopbackListeningInodes(TABLE, 80), new Set(["4444"]));
  assertEquals(loopbackListeningInodes(TABLE, 9), new Set());
});

Deno.test("socketInode reads socket links only", () => {
  assertEquals(socketInode("socket:[12345]"), "12345");
  assertEquals(socketInode("pipe:[12345]"), undefined);
  assertEquals(socketInode("/dev/null"), undefined);
});

Deno.test("a real listener: this process holds the inode the table lists", () => {
  const listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  try {
    const [table] = readTcpTables();
    const inodes = loopbackListeningInodes(table, listener.addr.port);
    assertEquals(inodes.size, 1);
    const held = heldSocketInodes("self");
    assert([...inodes].every((inode) => held.has(inode)));
  } finally {
    listener.close();
  }
});
