/**
 * The logging interface every layer writes to. Its call shape,
 * `log.info({fields}, "msg")`, is pino's; the daemon supplies the
 * implementation (src/daemon/logger.ts).
 */
export type LogFn = (obj: Record<string, unknown>, msg: string) => void;

export interface Logger {
  debug: LogFn;
  info: LogFn;
  warn: LogFn;
  error: LogFn;
  /**
   * Whether lines of `level` are written (pino's). Hot paths ask before they
   * build a line's fields; a logger without it is taken to write them all.
   */
  isLevelEnabled?(level: "debug" | "info" | "warn" | "error"): boolean;
}
