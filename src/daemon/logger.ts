/**
 * The daemon's logger: pino, one JSON object per line on stderr (stdout is
 * reserved for the daemon's single "listening" line). Every layer writes to
 * the core's Logger interface, whose call shape, `log.info({fields}, "msg")`,
 * is pino's; a pino logger satisfies it as it is.
 *
 * Lines look like
 * `{"level":"info","time":"2025-01-01T00:00:00.000Z","pid":1,"hostname":"h","method":"Register","msg":"rpc rejected"}`:
 * the level is its name (not pino's number) and the time is ISO 8601, so that
 * people can read a line without a lookup table. An Error under `err` is
 * serialized with its type, message, stack and cause (pino's serializer).
 * Secrets are censored by path (REDACT_PATHS) as a second line of defence:
 * the code already never logs tokens or whole payloads.
 */
import { pino, stdTimeFunctions, type DestinationStream, type Logger as PinoLogger } from "pino";

import type { LogFn, Logger } from "../core/logger.js";

export type { LogFn, Logger };

export type LogLevel = "debug" | "info" | "warn" | "error" | "silent";

export const LOG_LEVELS: readonly LogLevel[] = ["debug", "info", "warn", "error", "silent"];

/** The pino logger createLogger returns; `flush()` is there for exits. */
export type DaemonLogger = PinoLogger;

/**
 * Field paths whose values are replaced by "[redacted]" wherever they are
 * logged: an `authorization` header, a `token` at the top or one level down
 * (e.g. `{config: {token}}`), a list of `tokens`, and a password (the etcd one)
 * in the same places. An absent value (undefined or null) is left as it is.
 */
export const REDACT_PATHS: readonly string[] = [
  "authorization",
  "*.authorization",
  "headers.authorization",
  "metadata.authorization",
  "token",
  "*.token",
  "tokens",
  "*.tokens",
  "password",
  "*.password",
  "etcdPassword",
  "*.etcdPassword",
];

export interface LoggerOptions {
  level: LogLevel;
  /**
   * Where the lines go; stderr (fd 2, written synchronously so that nothing
   * is lost when the process exits) unless a test captures them. Any object
   * with `write(line: string)` will do.
   */
  destination?: DestinationStream;
}

export function createLogger(options: LoggerOptions): DaemonLogger {
  return pino(
    {
      level: options.level,
      // Names ("info") rather than numbers (30): people and `jq 'select(.level=="error")'` read them.
      formatters: { level: (label) => ({ level: label }) },
      timestamp: stdTimeFunctions.isoTime,
      // pino censors a path whenever its key is there, value or not: "[redacted]"
      // for an unset password would claim one that was never given.
      redact: { paths: [...REDACT_PATHS], censor: (value: unknown) => (value === undefined || value === null ? value : "[redacted]") },
    },
    options.destination ?? pino.destination({ fd: 2, sync: true }),
  );
}

const ignore: LogFn = () => {};

/** A logger that drops everything; for tests. */
export const silentLogger: Logger = { debug: ignore, info: ignore, warn: ignore, error: ignore };
