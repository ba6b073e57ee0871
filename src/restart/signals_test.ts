import { assertEquals } from "../../tests/assert.ts";
import { resolveSignals, signalFacts } from "./signals.ts";

const NO_TERMINAL = { terminal: false, hangupIgnored: false };
const TERMINAL = { terminal: true, hangupIgnored: false };
const NOHUP = { terminal: true, hangupIgnored: true };

Deno.test("resolveSignals: defaults without a terminal: SIGHUP restarts", () => {
  assertEquals(resolveSignals({}, NO_TERMINAL), {
    shutdown: ["SIGTERM", "SIGINT", "SIGQUIT"],
    restart: ["SIGUSR2", "SIGUSR1", "SIGHUP"],
  });
});

Deno.test("resolveSignals: defaults in a terminal: SIGHUP shuts down", () => {
  assertEquals(resolveSignals({}, TERMINAL), {
    shutdown: ["SIGTERM", "SIGINT", "SIGQUIT", "SIGHUP"],
    restart: ["SIGUSR2", "SIGUSR1"],
  });
});

Deno.test("resolveSignals: SIGHUP ignored from the start is on neither side, even when asked for", () => {
  assertEquals(resolveSignals({}, NOHUP), {
    shutdown: ["SIGTERM", "SIGINT", "SIGQUIT"],
    restart: ["SIGUSR2", "SIGUSR1"],
  });
  assertEquals(
    resolveSignals({ restartSignals: ["SIGHUP", "SIGUSR2"] }, NOHUP).restart,
    ["SIGUSR2"],
  );
});

Deno.test("resolveSignals: a given list wins; SIGHUP named on one side is not added to the other", () => {
  assertEquals(resolveSignals({ restartSignals: ["SIGUSR2"] }, NO_TERMINAL), {
    shutdown: ["SIGTERM", "SIGINT", "SIGQUIT"],
    restart: ["SIGUSR2"],
  });
  assertEquals(
    resolveSignals({ shutdownSignals: ["SIGTERM", "SIGHUP"] }, NO_TERMINAL),
    { shutdown: ["SIGTERM", "SIGHUP"], restart: ["SIGUSR2", "SIGUSR1"] },
  );
  assertEquals(
    resolveSignals({ restartSignals: ["SIGHUP"] }, TERMINAL),
    { shutdown: ["SIGTERM", "SIGINT", "SIGQUIT"], restart: ["SIGHUP"] },
  );
  assertEquals(
    resolveSignals({ shutdownSignals: false, restartSignals: false }, TERMINAL),
    { shutdown: [], restart: [] },
  );
});

Deno.test("signalFacts: read from /proc at load (this test process)", () => {
  const stat = Deno.readTextFileSync("/proc/self/stat");
  const tty = Number(stat.slice(stat.lastIndexOf(")") + 2).split(" ")[4]);
  assertEquals(signalFacts().terminal, tty !== 0);
});
