import { assert, assertEquals } from "../../tests/assert.ts";
import { socketOwnedBy } from "./socket_owner.ts";
import { loopbackTcpInode } from "../os/sock_diag.ts";
import { procNetTcpInode } from "../os/proc_net.ts";

Deno.test("socketOwnedBy: the kernel says which process holds a loopback connection", async () => {
  const listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const client = await Deno.connect({
    hostname: "127.0.0.1",
    port: listener.addr.port,
  });
  const server = await listener.accept();
  try {
    const clientPort = client.localAddr.port;
    const serverPort = listener.addr.port;
    // sock_diag and /proc/net/tcp name the same socket.
    const inode = loopbackTcpInode(clientPort, serverPort);
    assert(typeof inode === "number" && inode > 0, `inode ${inode}`);
    assertEquals(procNetTcpInode(clientPort, serverPort), inode);
    assertEquals(
      loopbackTcpInode(serverPort, clientPort),
      procNetTcpInode(
        serverPort,
        clientPort,
      ),
    );
    assert(socketOwnedBy(Deno.pid, clientPort, serverPort));
    // Another process does not hold it; a connection that does not exist
    // is held by nobody.
    const other = new Deno.Command("sleep", { args: ["5"] }).spawn();
    try {
      assert(!socketOwnedBy(other.pid, clientPort, serverPort));
    } finally {
      other.kill();
      await other.status;
    }
    assertEquals(loopbackTcpInode(clientPort, clientPort), null);
    assertEquals(procNetTcpInode(clientPort, clientPort), null);
    assert(!socketOwnedBy(Deno.pid, clientPort, clientPort));
  } finally {
    client.close();
    server.close();
    listener.close();
  }
});
