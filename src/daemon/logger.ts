/**
 * A minimal structured logger: one JSON object per line on stderr (stdout is
 * reserved for the daemon's single "listening" line). The call shape,
 * `log.info({fields}, "msg")`, is pino's, so that pino can replace this file
 * without touching any caller.
 */

export type LogLevel = "debug" | "info" | "warn" | "error" | "silent";

export const LOG_LEVELS: readonly LogLevel[] = ["debug", "info", "warn", "error", "silent"];

import type { LogFn, Logger } from "../core/logger.js";

export type { LogFn, Logger };

const SEVERITY: Record<LogLevel, number> = { debug: 20, info: 30, warn: 40, error: 50, silent: Infinity };

export interface LoggerOptions {
  level: LogLevel;
  /** Where each line goes; stderr unless a test wants to capture lines. */
  write?: (line: string) => void;
  /** The clock; injectable for tests. */
  now?: () => Date;
}

export function createLogger(options: LoggerOptions): Logger {
  const write = options.write ?? ((line: string) => process.stderr.write(line));
  const now = options.now ?? (() => new Date());
  const threshold = SEVERITY[options.level];

  const make = (level: Exclude<LogLevel, "silent">): LogFn => {
    if (SEVERITY[level] < threshold) return () => {};
    return (obj, msg) => {
      const time = now().toISOString();
      // level, time and msg lead the line, and are set again after the fields so that none can overwrite them.
      const record: Record<string, unknown> = { level, time, msg, ...serializeFields(obj) };
      record.level = level;
      record.time = time;
      record.msg = msg;
      let line: string;
      try {
        line = JSON.stringify(record);
      } catch {
        // A cyclic or BigInt field must not turn a log call into a crash.
        line = JSON.stringify({ level, time, msg, logError: "unserializable fields" });
      }
      write(line + "\n");
    };
  };

  return { debug: make("debug"), info: make("info"), warn: make("warn"), error: make("error") };
}

/** A logger that drops everything; for tests. */
export const silentLogger: Logger = createLogger({ level: "silent" });

function serializeFields(obj: Record<string, unknown>): Record<string, unknown> {
  const out: Record<string, unknown> = {};
  for (const [key, value] of Object.entries(obj)) {
    out[key] = value instanceof Error ? serializeError(value) : value;
  }
  return out;
}

/** Errors have no enumerable own properties, so JSON.stringify would print `{}`. */
export function serializeError(err: Error): Record<string, unknown> {
  const out: Record<string, unknown> = { type: err.name, message: err.message, stack: err.stack };
  const code = (err as { code?: unknown }).code;
  if (code !== undefined) out.code = code;
  if (err.cause instanceof Error) out.cause = serializeError(err.cause);
  return out;
}
