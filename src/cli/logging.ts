/**
 * The command line's logging: LogTape configured with --log-level and
 * --json-logs, every record tagged with the pid and generation.
 *
 * @module
 */

import { processStatus } from "../restart/generation.ts";
import {
  loadLogging,
  type LogLevel,
  type LogRecord,
  logTape,
} from "../util/log.ts";

const LEVELS: Record<string, LogLevel> = {
  debug: "debug",
  info: "info",
  warning: "warning",
  warn: "warning",
  error: "error",
};

/** Configures logging; `level` is --log-level's value. */
export async function setupLogging(
  level: string,
  json: boolean,
): Promise<void> {
  const lowestLevel = LEVELS[level];
  if (!lowestLevel) {
    throw new TypeError(
      `--log-level "${level}" must be debug, info, warning or error`,
    );
  }
  const format = (values: {
    timestamp: string | null;
    level: string;
    category: string;
    message: string;
  }) => {
    const { generation } = processStatus();
    return `${values.timestamp} ${values.level} [pid ${Deno.pid} gen ${generation}] ${values.category}: ${values.message}`;
  };
  const logtape = await logTape();
  // Colour only for a person at a terminal, never in the journal or a file.
  const colour = Deno.stderr.isTerminal() && !Deno.env.get("NO_COLOR");
  const formatter = json
    ? jsonWithProcess(logtape.getJsonLinesFormatter())
    : colour
    ? logtape.getAnsiColorFormatter({ value: "bare", format })
    : logtape.getTextFormatter({ value: "bare", format });
  await logtape.configure({
    sinks: { console: logtape.getConsoleSink({ formatter }) },
    loggers: [
      { category: ["graceful"], lowestLevel, sinks: ["console"] },
      {
        category: ["logtape", "meta"],
        lowestLevel: "warning",
        sinks: ["console"],
      },
    ],
  });
  // LogTape is loaded already: records need not wait for a server to serve
  // (the workers' supervisor serves nothing itself).
  await loadLogging();
}

/** JSON lines, with the pid and generation added to every record. */
function jsonWithProcess(
  json: (record: LogRecord) => string,
): (record: LogRecord) => string {
  return function format(record: LogRecord): string {
    const { generation } = processStatus();
    return json({
      ...record,
      properties: { pid: Deno.pid, generation, ...record.properties },
    });
  };
}
