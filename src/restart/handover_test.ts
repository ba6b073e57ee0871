/**
 * The handover state machine against a scripted seam: every transition and
 * failure path, without processes. (tests/restart_test.ts does it for real.)
 */

import {
  assert,
  assertEquals,
  assertMatch,
  assertRejects,
} from "../../tests/assert.ts";
import type { ControlMessage } from "./control_messages.ts";
import {
  type HandoverSeam,
  RestartError,
  type SeamChild,
  type SeamControl,
  type SeamPeer,
} from "./handover_types.ts";
import { Restarter } from "./handover.ts";

/** A child whose behaviour the test scripts. */
class ScriptedChild implements SeamChild {
  readonly pid: number;
  readonly exited: Promise<{ code: number | null; signal: string | null }>;
  #exit = Promise.withResolvers<
    { code: number | null; signal: string | null }
  >();
  killedWith: string | undefined;
  unrefed = false;
  constructor(pid: number) {
    this.pid = pid;
    this.exited = this.#exit.promise;
  }
  exit(code: number | null, signal: string | null = null): void {
    this.#exit.resolve({ code, signal });
  }
  killGroup(signal: Deno.Signal = "SIGKILL"): void {
    this.killedWith = signal;
    this.exit(null, signal);
  }
  unref(): void {
    this.unrefed = true;
  }
}

/** What a control connection's receive() rejects with at its end. */
function eof(): Error {
  return Object.assign(new Error("the connection ended"), { code: "eof" });
}

/** One side of an in-memory channel. */
class ScriptedPeer implements SeamPeer {
  readonly pid: number;
  sent: ControlMessage[] = [];
  #inbox: ControlMessage[] = [];
  #waiting: ((m: ControlMessage) => void) | undefined;
  closed = false;
  constructor(pid: number) {
    this.pid = pid;
  }
  /** The child says something. */
  push(message: ControlMessage): void {
    if (this.#waiting) {
      const waiting = this.#waiting;
      this.#waiting = undefined;
      waiting(message);
    } else {
      this.#inbox.push(message);
    }
  }
  send(message: ControlMessage): Promise<void> {
    this.sent.push(message);
    return Promise.resolve();
  }
  receive(): Promise<ControlMessage> {
    const next = this.#inbox.shift();
    if (next) return Promise.resolve(next);
    if (this.#ended) return Promise.reject(eof());
    return new Promise((resolve, reject) => {
      this.#waiting = resolve;
      this.#ending = reject;
    });
  }
  #ended = false;
  #ending: ((error: Error) => void) | undefined;
  /** The child's end closes (it exited): receive() rejects as at EOF. */
  end(): void {
    this.#ended = true;
    this.#ending?.(eof());
  }
  close(): void {
    this.closed = true;
  }
}

interface Script {
  /** What the child does once spawned. */
  child(child: ScriptedChild, connect: (pid: number) => ScriptedPeer): void;
}

function scriptedSeam(script: Script) {
  const calls: string[] = [];
  const children: ScriptedChild[] = [];
  const peers: ScriptedPeer[] = [];
  /** What the child had been sent when drain() was called. */
  const sentAtDrain: string[] = [];
  const exited = Promise.withResolvers<number>();
  let nextPid = 1000;
  const seam: HandoverSeam = {
    openControl(): Promise<SeamControl> {
      calls.push("openControl");
      const accepted = Promise.withResolvers<SeamPeer>();
      return Promise.resolve(
        {
          env: () => ({ GRACEFUL_CONTROL_ADDR: "127.0.0.1:1" }),
          accept(signal?: AbortSignal) {
            signal?.addEventListener(
              "abort",
              () => accepted.reject(signal.reason),
            );
            return accepted.promise;
          },
          close() {
            calls.push("closeControl");
          },
          // The script connects through this.
          connect(pid: number) {
            const peer = new ScriptedPeer(pid);
            peers.push(peer);
            accepted.resolve(peer);
            return peer;
          },
        } as SeamControl & { connect(pid: number): ScriptedPeer },
      );
    },
    listeners: () => [{ fd: 3, name: "http", addr: "127.0.0.1:8000" }],
    spawn(fds, env) {
      calls.push(`spawn ${fds.map((f) => f.fd).join(",")} ${Object.keys(env)}`);
      const child = new ScriptedChild(nextPid++);
      children.push(child);
      return child;
    },
    saveAppState: () => Promise.resolve({ http: { counter: 7 } }),
    committed(child) {
      calls.push(`committed ${child.pid}`);
      return Promise.resolve();
    },
    drain() {
      calls.push("drain");
      sentAtDrain.push(...(peers.at(-1)?.sent.map((m) => m.type) ?? []));
      return Promise.resolve();
    },
    exit(code) {
      calls.push(`exit ${code}`);
      exited.resolve(code);
    },
    log() {},
  };
  // Run the child's script right after spawn.
  const spawn = seam.spawn;
  const openControl = seam.openControl;
  let control:
    | (SeamControl & { connect(pid: number): ScriptedPeer })
    | undefined;
  seam.openControl = async () => {
    control = await openControl() as typeof control;
    return control!;
  };
  seam.spawn = (fds, env, options) => {
    const child = spawn(fds, env, options) as ScriptedChild;
    queueMicrotask(() => script.child(child, (pid) => control!.connect(pid)));
    return child;
  };
  return {
    seam,
    calls,
    children,
    peers,
    sentAtDrain,
    exited: exited.promise,
  };
}

const INFO = { generation: 4, firstStartedAt: 1, startedAt: 2, restarts: 3 };

Deno.test("handover: hello, state, ready, then drain, done and exit 0", async () => {
  const { seam, calls, children, peers, sentAtDrain, exited } = scriptedSeam({
    child(child, connect) {
      const peer = connect(child.pid);
      peer.push({ type: "ready", pid: child.pid });
    },
  });
  const restarter = new Restarter(seam, INFO, { startTimeout: 5000 });
  const result = await restarter.restart({ trigger: "api" });
  assertEquals(result, { pid: 1000, generation: 5 });
  assertEquals(await exited, 0);
  const state = peers[0].sent[0];
  assertEquals(state.type, "state");
  assertEquals((state as { state: unknown }).state, {
    generation: 5,
    firstStartedAt: 1,
    restarts: 4,
    listeners: [{ fd: 3, name: "http", addr: "127.0.0.1:8000" }],
    app: { http: { counter: 7 } },
    restart: {
      trigger: "api",
      at: (state as { state: { restart: { at: number } } }).state.restart.at,
    },
  });
  assertEquals(peers[0].sent.map((m) => m.type), ["state", "draining", "done"]);
  // It stops accepting before it tells the child so.
  assertEquals(sentAtDrain, ["state"]);
  assertEquals(calls.filter((c) => /committed|drain|exit/.test(c)), [
    "committed 1000",
    "drain",
    "exit 0",
  ]);
  assert(children[0].unrefed);
  assertEquals(children[0].killedWith, undefined);
  assertEquals(restarter.lastRestart?.ok, true);
  assertEquals(restarter.phase, "exited");
});

Deno.test("handover: a child that exits early is reported and this generation keeps serving", async () => {
  const { seam, calls, children } = scriptedSeam({
    child(child) {
      child.exit(1);
    },
  });
  const restarter = new Restarter(seam, INFO, { startTimeout: 5000 });
  const error = await assertRejects(() => restarter.restart());
  assert(error instanceof RestartError);
  assertMatch(error.message, /exited with code 1 before it was ready/);
  assertEquals(restarter.phase, "serving");
  assertEquals(restarter.lastRestart?.ok, false);
  assert(!calls.includes("drain"));
  assertEquals(children[0].killedWith, "SIGTERM");
});

Deno.test("handover: a child that never connects is killed at startTimeout", async () => {
  const { seam, children } = scriptedSeam({ child() {} });
  const restarter = new Restarter(seam, INFO, { startTimeout: 50 });
  const error = await assertRejects(() => restarter.restart());
  assertMatch(error.message, /did not connect within 50 ms/);
  assertEquals(children[0].killedWith, "SIGTERM");
  assertEquals(restarter.phase, "serving");
});

Deno.test("handover: a child that connects but is never ready is killed at startTimeout", async () => {
  const { seam, children, peers } = scriptedSeam({
    child(child, connect) {
      connect(child.pid);
    },
  });
  const restarter = new Restarter(seam, INFO, { startTimeout: 50 });
  const error = await assertRejects(() => restarter.restart());
  assertMatch(error.message, /did not become ready within 50 ms/);
  assertEquals(children[0].killedWith, "SIGTERM");
  assert(peers[0].closed);
});

Deno.test("handover: a child that reports failure may drain and exit by itself; the reason surfaces", async () => {
  const { seam, children } = scriptedSeam({
    child(child, connect) {
      connect(child.pid).push({ type: "fail", reason: "port 9 in use" });
      // It drains what it had accepted, then exits 1 on its own.
      setTimeout(() => child.exit(1), 20);
    },
  });
  const restarter = new Restarter(seam, INFO);
  const error = await assertRejects(() => restarter.restart());
  assertMatch(error.message, /port 9 in use/);
  assertEquals(await children[0].exited, { code: 1, signal: null });
  assertEquals(restarter.phase, "serving");
});

Deno.test("handover: a child that reports failure and exits at once: the reason wins even when the exit is seen first", async () => {
  const { seam } = scriptedSeam({
    child(child, connect) {
      const peer = connect(child.pid);
      // The exit is seen before the message is read (a loaded machine).
      peer.receive = () =>
        child.exited.then(() => ({ type: "fail", reason: "warm-up failed" }));
      child.exit(1);
    },
  });
  const restarter = new Restarter(seam, INFO, { startTimeout: 60_000 });
  const error = await assertRejects(() => restarter.restart());
  assertMatch(error.message, /failed to start: warm-up failed/);
  assertEquals(restarter.phase, "serving");
});

for (const order of ["exit first", "end of the channel first"]) {
  Deno.test(`handover: a child that connects, then exits without a word, is reported by its exit (${order})`, async () => {
    const { seam } = scriptedSeam({
      child(child, connect) {
        const peer = connect(child.pid);
        setTimeout(() => {
          if (order === "exit first") {
            child.exit(3);
            peer.end();
          } else {
            peer.end();
            child.exit(3);
          }
        }, 10);
      },
    });
    const restarter = new Restarter(seam, INFO, { startTimeout: 60_000 });
    const error = await assertRejects(() => restarter.restart());
    assertMatch(error.message, /exited with code 3 before it was ready/);
  });
}

Deno.test("handover: a child that reports failure but does not exit is killed at startTimeout", async () => {
  const { seam, children } = scriptedSeam({
    child(child, connect) {
      connect(child.pid).push({ type: "fail", reason: "port 9 in use" });
    },
  });
  const restarter = new Restarter(seam, INFO, { startTimeout: 50 });
  const error = await assertRejects(() => restarter.restart());
  assertMatch(error.message, /port 9 in use/);
  assertEquals(children[0].killedWith, "SIGTERM");
  assertEquals(await children[0].exited, { code: null, signal: "SIGTERM" });
});

Deno.test("handover: a hello from another pid is refused", async () => {
  const { seam } = scriptedSeam({
    child(_child, connect) {
      connect(4242).push({ type: "ready", pid: 4242 });
    },
  });
  const restarter = new Restarter(seam, INFO);
  const error = await assertRejects(() => restarter.restart());
  assertMatch(error.message, /pid 4242/);
});

Deno.test("handover: concurrent restarts coalesce into one child", async () => {
  let release: (() => void) | undefined;
  const { seam, children } = scriptedSeam({
    child(child, connect) {
      const peer = connect(child.pid);
      release = () => peer.push({ type: "ready", pid: child.pid });
    },
  });
  const restarter = new Restarter(seam, INFO);
  const first = restarter.restart({ trigger: "signal" });
  const second = restarter.restart({ trigger: "signal" });
  assert(first === second);
  while (!release) await new Promise((r) => setTimeout(r, 1));
  release();
  assertEquals(await first, { pid: 1000, generation: 5 });
  assertEquals(children.length, 1);
  await assertRejects(() => restarter.restart());
});

Deno.test("handover: cancel() before ready kills the child and rejects", async () => {
  const { seam, children } = scriptedSeam({
    child(child, connect) {
      connect(child.pid);
    },
  });
  const restarter = new Restarter(seam, INFO, { startTimeout: 60_000 });
  const restart = restarter.restart();
  while (restarter.phase !== "handshaking") {
    await new Promise((r) => setTimeout(r, 1));
  }
  await restarter.cancel("by SIGTERM");
  const error = await assertRejects(() => restart);
  assertMatch(error.message, /by SIGTERM/);
  assertEquals(children[0].killedWith, "SIGTERM");
  assertEquals(restarter.phase, "serving");
});
