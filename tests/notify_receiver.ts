/**
 * A real unix datagram socket standing in for systemd's notify socket
 * (python3, with SO_PASSCRED so that each datagram says which process sent
 * it, and the fds attached to it): what the supervisor and the servers tell
 * systemd, read as systemd would get it.
 *
 * @module
 */

import { Child } from "./helpers.ts";

/** Prints one JSON line per datagram: its text, sender pid, attached fds. */
const RECEIVER = `import array,json,socket,struct,sys
s=socket.socket(socket.AF_UNIX,socket.SOCK_DGRAM)
s.setsockopt(socket.SOL_SOCKET,socket.SO_PASSCRED,1)
s.bind(sys.argv[1])
print("bound",flush=True)
while True:
  data,anc,_,_=s.recvmsg(4096,socket.CMSG_SPACE(16*4)+socket.CMSG_SPACE(12))
  pid=0
  seen=[]
  for level,kind,payload in anc:
    if level==socket.SOL_SOCKET and kind==socket.SCM_CREDENTIALS:
      pid=struct.unpack("iII",payload[:12])[0]
    if level==socket.SOL_SOCKET and kind==socket.SCM_RIGHTS:
      fds=array.array("i")
      fds.frombytes(payload[:len(payload)-len(payload)%4])
      for fd in fds:
        f=socket.socket(fileno=fd)
        seen.append({"port":f.getsockname()[1],"listening":f.getsockopt(socket.SOL_SOCKET,socket.SO_ACCEPTCONN)})
        f.close()
  print(json.dumps({"text":data.decode(),"pid":pid,"fds":seen}),flush=True)
`;

/** One datagram: its text, the sender's pid, the sockets attached. */
export interface Datagram {
  text: string;
  pid: number;
  fds: { port: number; listening: number }[];
}

/** The datagrams the receiver has printed so far. */
export function datagrams(receiver: Child): Datagram[] {
  return receiver.lines.filter((l) => l.startsWith("{")).map((l) =>
    JSON.parse(l)
  );
}

/**
 * Starts the receiver on a socket at `path`; resolves once it is bound. Kill
 * it with SIGKILL when done.
 */
export async function startNotifyReceiver(path: string): Promise<Child> {
  const receiver = new Child("python3", ["-c", RECEIVER, path]);
  await receiver.waitFor(/^bound$/);
  return receiver;
}
