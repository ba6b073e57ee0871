/**
 * Which engine serves a listener: Deno.serve transplanted onto it (the
 * native engine) once its self-check proved it accepts there, node:http
 * otherwise, with a warning once per process that says why.
 *
 * @module
 */

import type {
  Addr,
  Engine,
  EngineBinding,
  EngineServeOptions,
  Listener,
} from "../listen/types.ts";
import { formatAddr } from "../listen/address.ts";
import {
  createTransplantEngine,
  type TransplantBinding,
  transplantUnavailable,
} from "../engine/transplant.ts";
import { opensOwnAddresses, portableEngine } from "../os/platform.ts";
import { serveOwnAddress } from "../engine/own_address.ts";
import { releaseListener } from "../listen/registry.ts";
import type { EngineName } from "./options.ts";
import { type CheckResult, checkTransplant } from "../engine/check.ts";
import { logger, print } from "../util/log.ts";
import { trace } from "../restart/trace.ts";
import { errorMessage } from "../util/error_message.ts";

const log = logger("server");

let nodeFallbackWarned = false;

/** Says once per process that a listener falls back to node:http, and why. */
export function warnNodeFallback(addr: Addr, reason: string): void {
  if (nodeFallbackWarned) return;
  nodeFallbackWarned = true;
  log.warn(
    "{addr}: the native engine failed its check ({reason}); serving " +
      "with node:http",
    { addr: formatAddr(addr), reason },
  );
  print(
    console.warn,
    `serveGraceful: native engine unavailable on ${formatAddr(addr)} ` +
      `(${reason}); using node:http`,
  );
}

let nodeEngine: Promise<Engine> | undefined;

/** node:http, loaded the first time a listener needs it. */
export function loadNodeEngine(): Promise<Engine> {
  nodeEngine ??= import("../engine/node.ts").then((m) => m.createNodeEngine());
  return nodeEngine;
}

/** One listener, the engine chosen for it and why. */
export interface Attached {
  binding: EngineBinding;
  engine: "native" | "node";
  why: string;
  /** The accept check still to come (in a new generation). */
  verify?: () => Promise<CheckResult>;
}

/** How long a new generation's accept check may wait for the old one's drain. */
const LATE_CHECK_LIMIT_MS = 60_000;

/**
 * Serves one listener: Deno.serve transplanted onto it, once its check
 * passed; node:http otherwise. The reason goes into the start-up log line.
 * `notNative` says why the native engine is not even tried; `handover`
 * (a new generation) defers the accept check to `verify`.
 */
export async function attachEngine(
  listener: Listener,
  options: EngineServeOptions,
  notNative: string | undefined,
  handover: boolean,
): Promise<Attached> {
  if (opensOwnAddresses()) return serveOwnAddress(listener, options);
  let reason = notNative;
  if (reason === undefined) {
    let binding: TransplantBinding | undefined;
    try {
      binding = createTransplantEngine().serve(listener, options);
    } catch (error) {
      reason = errorMessage(error);
    }
    if (binding !== undefined) {
      const result = await checkTransplant(binding, {
        registrationOnly: handover,
      });
      trace("server: transplant checked");
      if (result.failure === undefined) {
        const transplanted = binding;
        return {
          binding,
          engine: "native",
          why: whyNative(result),
          verify: handover
            ? () =>
              checkTransplant(transplanted, {
                limitMs: LATE_CHECK_LIMIT_MS,
                signal: options.draining,
              })
            : undefined,
        };
      }
      reason = result.failure;
      await binding.discard();
    }
    warnNodeFallback(listener.addr, reason!);
  }
  const node = await loadNodeEngine();
  return {
    binding: node.serve(listener, options),
    engine: "node",
    why: reason!,
  };
}

function whyNative(result: CheckResult): string {
  return result.proof === "accept"
    ? "Deno.serve transplanted, checked by its own accept"
    : `Deno.serve transplanted, checked by its epoll registration ` +
      `(${result.note})`;
}

/** Why the native engine is not tried for `asked`; undefined when it is. */
export function notNativeReason(asked: EngineName): string | undefined {
  const wanted = portableEngine(asked);
  return wanted !== "node"
    ? transplantUnavailable()
    : asked === "node"
    ? 'engine: "node" was asked for'
    : "this platform mode serves with node:http";
}

/**
 * Serves every listener, or none: when one fails, the others stop and every
 * listener is released before the failure is thrown.
 */
export async function attachAll(
  listeners: Listener[],
  options: EngineServeOptions,
  notNative: string | undefined,
  handover: boolean,
): Promise<Attached[]> {
  const attached = await Promise.allSettled(
    listeners.map((l) => attachEngine(l, options, notNative, handover)),
  );
  const failed = attached.find((a) => a.status === "rejected");
  if (failed === undefined) {
    return attached.map((a) => (a as PromiseFulfilledResult<Attached>).value);
  }
  for (const a of attached) {
    if (a.status === "fulfilled") a.value.binding.abort();
  }
  await Promise.all(
    attached.map((a) =>
      a.status === "fulfilled" ? a.value.binding.stopAccepting() : undefined
    ),
  );
  for (const listener of listeners) releaseListener(listener);
  throw (failed as PromiseRejectedResult).reason;
}

/** The start-up log line of a listener: where, which fd, which engine, why. */
export function logListening(
  listener: Listener,
  engine: "native" | "node",
  why: string,
): void {
  log.info("listening on {addr} (fd {fd}{how}, {engine} engine: {why})", {
    addr: formatAddr(listener.addr),
    fd: listener.fd,
    how: listener.inherited ? ", inherited" : "",
    engine,
    why,
  });
}
