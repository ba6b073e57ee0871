/**
 * The systems the restart bench compares, as its report names them: label,
 * colour, trigger and what serves.
 *
 * @module
 */

/** The systems, in report order. */
export const SYSTEM_IDS = [
  "ours-native",
  "ours-native-tls",
  "ours-native-unix",
  "ours-node",
  "ours-posix",
  "ours-windows",
  "deno-kill",
  "tableflip",
  "grace",
  "nginx",
  "pm2",
] as const;

/** One of {@linkcode SYSTEM_IDS}. */
export type SystemId = typeof SYSTEM_IDS[number];

/** What the report says about a system. */
export interface SystemSpec {
  id: SystemId;
  /** Short name for tables and the chart. */
  label: string;
  /** Whether it is this module. */
  ours: boolean;
  /** Line colour in the charts. */
  color: string;
  /** How a restart is triggered. */
  trigger: string;
  /** What serves, and what the RSS figure covers. */
  processes: string;
}

/** The specs, by id. */
export const SPECS: Record<SystemId, SystemSpec> = {
  "ours-native": {
    id: "ours-native",
    label: "ours, native engine",
    ours: true,
    color: "#1f5fbf",
    trigger: "`kill -USR2 <pid from /pid>`",
    processes: "one Deno process per generation",
  },
  "ours-native-tls": {
    id: "ours-native-tls",
    label: "ours, native engine, HTTPS",
    ours: true,
    color: "#0b3d91",
    trigger: "`kill -USR2 <pid from /pid>` (`/pid` over TLS)",
    processes: "one Deno process per generation",
  },
  "ours-native-unix": {
    id: "ours-native-unix",
    label: "ours, native engine, unix socket",
    ours: true,
    color: "#7fa7e0",
    trigger: "`kill -USR2 <pid from /pid>` (`/pid` over the unix socket)",
    processes: "one Deno process per generation",
  },
  "ours-node": {
    id: "ours-node",
    label: "ours, node engine",
    ours: true,
    color: "#17a2b8",
    trigger: "`kill -USR2 <pid from /pid>`",
    processes: "one Deno process per generation",
  },
  "ours-posix": {
    id: "ours-posix",
    label: "ours, posix mode",
    ours: true,
    color: "#6f42c1",
    trigger: "`kill -USR2 <pid from /pid>` (`GRACEFUL_PORTABLE=posix`)",
    processes: "one Deno process per generation",
  },
  "ours-windows": {
    id: "ours-windows",
    label: "ours, windows mode",
    ours: true,
    color: "#d62728",
    trigger:
      "`POST /ops/restart` (admin API; `GRACEFUL_PORTABLE=windows`): a complete restart",
    processes: "one Deno process per generation",
  },
  "deno-kill": {
    id: "deno-kill",
    label: "Deno.serve, kill + start",
    ours: false,
    color: "#888888",
    trigger:
      "`kill -TERM <pid>`, wait for it to exit, start a new one on the port",
    processes: "one Deno process",
  },
  "tableflip": {
    id: "tableflip",
    label: "Go tableflip",
    ours: false,
    color: "#ff8c00",
    trigger: "`kill -HUP <pid from /pid>` (`upg.Upgrade()`)",
    processes: "one Go process per generation",
  },
  "grace": {
    id: "grace",
    label: "Go grace (gracehttp)",
    ours: false,
    color: "#2ca02c",
    trigger: "`kill -USR2 <pid from /pid>`",
    processes: "one Go process per generation",
  },
  "nginx": {
    id: "nginx",
    label: "nginx",
    ours: false,
    color: "#9467bd",
    trigger: "`nginx -s reload` (SIGHUP to the master)",
    processes: "master + 1 worker (`worker_processes 1`)",
  },
  "pm2": {
    id: "pm2",
    label: "pm2 cluster",
    ours: false,
    color: "#8c564b",
    trigger: "`pm2 reload hello`",
    processes: "pm2 daemon (cluster primary) + 1 node:http worker",
  },
};
