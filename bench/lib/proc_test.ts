import { deepStrictEqual as assertEquals } from "node:assert/strict";
import {
  foreignTicks,
  listeningInodes,
  socketInode,
  statFields,
} from "./proc.ts";

Deno.test("statFields counts from the last parenthesis", () => {
  const stat = "4242 (a (b) c) S 1 4242 4242 0 -1 4194560 1 0 0 0 " +
    "17 5 3 2 20 0 1 0 100 0 0";
  const fields = statFields(stat);
  assertEquals(fields[0], "S");
  assertEquals(fields[4 - 3], "1");
  assertEquals(fields[14 - 3], "17");
  assertEquals(fields[17 - 3], "2");
});

Deno.test("listeningInodes finds 127.0.0.1:port in LISTEN state only", () => {
  const table =
    "  sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode\n" +
    "   0: 0100007F:1F90 00000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 1111 1 0 100 0 0 10 0\n" +
    "   1: 0100007F:1F90 0100007F:C350 01 00000000:00000000 00:00000000 00000000     0        0 2222 1 0 20 4 30 10 -1\n" +
    "   2: 00000000:1F90 00000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 3333 1 0 100 0 0 10 0\n" +
    "   3: 0100007F:0050 00000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 4444 1 0 100 0 0 10 0\n";
  assertEquals(listeningInodes(table, 8080), new Set(["1111"]));
  assertEquals(listeningInodes(table, 80), new Set(["4444"]));
  assertEquals(listeningInodes(table, 9), new Set());
});

Deno.test("socketInode reads socket links only", () => {
  assertEquals(socketInode("socket:[12345]"), "12345");
  assertEquals(socketInode("pipe:[12345]"), undefined);
  assertEquals(socketInode("/dev/null"), undefined);
});

Deno.test("foreignTicks counts everyone but the excluded, new pids in full", () => {
  const before = new Map([[1, 100], [2, 50], [3, 10]]);
  const after = new Map([[1, 104], [2, 70], [3, 5], [4, 8]]);
  assertEquals(foreignTicks(before, after, new Set([2])), 4 + 0 + 8);
});
