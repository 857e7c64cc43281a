/**
 * The daemon's configuration: command-line flags, each with an environment
 * variable fallback (`--max-sessions` <- SESSION_REGISTRY_MAX_SESSIONS; a
 * flag beats its variable). Every flag is declared once in FLAGS, which
 * drives parsing, validation and the --help text alike.
 */
import { isIPv4, isIPv6 } from "node:net";
import { parseArgs } from "node:util";

import { LOG_LEVELS, type LogLevel } from "./logger.js";

export type StoreKind = "memory";

export interface DaemonConfig {
  /** host:port to listen on; IPv6 hosts in brackets. Port 0 picks a free port. */
  listen: string;
  /** The limit of a table created without one, the `default` table's included. */
  maxSessions: number;
  maxTables: number;
  store: StoreKind;
  logLevel: LogLevel;
  /** How long shutdown waits for running calls before cutting them off. */
  shutdownGraceMs: number;
  maxReceiveMessageBytes: number;
  /** How many events each table keeps for Watch replay (the store's history). */
  watchHistory: number;
  /** The most watches open at once on this daemon. */
  maxWatchers: number;
  /** The most messages one watcher may have waiting to be sent before it is ended as too slow. */
  watchQueue: number;
  /** Set by parseConfig when --help was given; the caller prints usageText() and exits 0. */
  help?: boolean;
}

export const MAX_SESSIONS_LIMIT = 1_000_000;
/** gRPC keeps message sizes in a signed 32-bit int. */
export const MAX_MESSAGE_BYTES_LIMIT = 2 ** 31 - 1;
/** Beyond this, setTimeout would misfire; and no one means a grace of days. */
export const MAX_SHUTDOWN_GRACE_MS = 24 * 60 * 60 * 1000;
/** Each retained event holds a session; this bounds the history's memory per table. */
export const MAX_WATCH_HISTORY = 10_000_000;
export const MAX_WATCHERS_LIMIT = 1_000_000;
export const MAX_WATCH_QUEUE = 1_000_000;

export const DEFAULT_CONFIG: Readonly<DaemonConfig> = Object.freeze({
  listen: "127.0.0.1:50051",
  maxSessions: 10,
  maxTables: 1000,
  store: "memory",
  logLevel: "info",
  shutdownGraceMs: 10_000,
  maxReceiveMessageBytes: 1024 * 1024,
  watchHistory: 10_000,
  maxWatchers: 10_000,
  watchQueue: 1024,
});

/** A bad flag, variable or argument; main prints the message and exits 2. */
export class ConfigError extends Error {
  override readonly name = "ConfigError";
}

type ValueKey = Exclude<keyof DaemonConfig, "help">;

interface FlagSpec<K extends ValueKey = ValueKey> {
  flag: string;
  key: K;
  valueName: string;
  description: string;
  /** How the default reads in --help. */
  defaultText: string;
  /** Returns the value, or an error fragment ("must be ..."). */
  parse: (raw: string) => DaemonConfig[K] | { error: string };
}

function spec<K extends ValueKey>(s: FlagSpec<K>): FlagSpec {
  return s as unknown as FlagSpec;
}

const FLAGS: readonly FlagSpec[] = [
  spec({
    flag: "listen",
    key: "listen",
    valueName: "host:port",
    description: "Address to listen on; IPv6 as [::1]:port; port 0 picks a free port.",
    defaultText: DEFAULT_CONFIG.listen,
    parse: (raw) => {
      try {
        parseListen(raw);
        return raw;
      } catch (err) {
        return { error: (err as Error).message };
      }
    },
  }),
  spec({
    flag: "max-sessions",
    key: "maxSessions",
    valueName: "n",
    description: "Session limit of tables created without one, the default table's included.",
    defaultText: String(DEFAULT_CONFIG.maxSessions),
    parse: (raw) => parseInteger(raw, 1, MAX_SESSIONS_LIMIT),
  }),
  spec({
    flag: "max-tables",
    key: "maxTables",
    valueName: "n",
    description: "The most tables the daemon holds.",
    defaultText: String(DEFAULT_CONFIG.maxTables),
    parse: (raw) => parseInteger(raw, 1, Number.MAX_SAFE_INTEGER),
  }),
  spec({
    flag: "store",
    key: "store",
    valueName: "kind",
    description: "Where sessions live: memory (lost on exit).",
    defaultText: DEFAULT_CONFIG.store,
    parse: (raw) => (raw === "memory" ? raw : { error: 'must be "memory"' }),
  }),
  spec({
    flag: "log-level",
    key: "logLevel",
    valueName: "level",
    description: `Least severe log level written to stderr: ${LOG_LEVELS.join(", ")}.`,
    defaultText: DEFAULT_CONFIG.logLevel,
    parse: (raw) =>
      (LOG_LEVELS as readonly string[]).includes(raw)
        ? (raw as LogLevel)
        : { error: `must be one of ${LOG_LEVELS.join(", ")}` },
  }),
  spec({
    flag: "shutdown-grace",
    key: "shutdownGraceMs",
    valueName: "duration",
    description: "On SIGINT/SIGTERM, how long running calls may finish: seconds, or e.g. 10s, 500ms, 1m.",
    defaultText: "10s",
    parse: parseDurationMs,
  }),
  spec({
    flag: "max-receive-message-size",
    key: "maxReceiveMessageBytes",
    valueName: "bytes",
    description: "Largest request message accepted, in bytes.",
    defaultText: String(DEFAULT_CONFIG.maxReceiveMessageBytes),
    parse: (raw) => parseInteger(raw, 1, MAX_MESSAGE_BYTES_LIMIT),
  }),
  spec({
    flag: "watch-history",
    key: "watchHistory",
    valueName: "n",
    description: "Events each table keeps for Watch to replay; a start revision older than them is OUT_OF_RANGE.",
    defaultText: String(DEFAULT_CONFIG.watchHistory),
    parse: (raw) => parseInteger(raw, 1, MAX_WATCH_HISTORY),
  }),
  spec({
    flag: "max-watchers",
    key: "maxWatchers",
    valueName: "n",
    description: "The most watches open at once on the daemon.",
    defaultText: String(DEFAULT_CONFIG.maxWatchers),
    parse: (raw) => parseInteger(raw, 1, MAX_WATCHERS_LIMIT),
  }),
  spec({
    flag: "watch-queue",
    key: "watchQueue",
    valueName: "n",
    description: "Messages a watcher may fall behind by before it is ended as WATCHER_TOO_SLOW.",
    defaultText: String(DEFAULT_CONFIG.watchQueue),
    parse: (raw) => parseInteger(raw, 1, MAX_WATCH_QUEUE),
  }),
];

export const ENV_PREFIX = "SESSION_REGISTRY_";

/** `max-sessions` -> `SESSION_REGISTRY_MAX_SESSIONS`. */
export function envVarName(flag: string): string {
  return ENV_PREFIX + flag.toUpperCase().replaceAll("-", "_");
}

/**
 * Parses argv (without node and the script) and the environment. Throws
 * ConfigError naming the offending flag. An optional leading `serve` is
 * accepted: it is the only command for now.
 */
export function parseConfig(argv: readonly string[], env: Record<string, string | undefined>): DaemonConfig {
  const options: Record<string, { type: "string" | "boolean"; short?: string }> = { help: { type: "boolean", short: "h" } };
  for (const f of FLAGS) options[f.flag] = { type: "string" };

  let parsed: ReturnType<typeof parseArgs>;
  try {
    parsed = parseArgs({ args: [...argv], options, strict: true, allowPositionals: true });
  } catch (err) {
    throw new ConfigError(describeParseArgsError(err));
  }

  // Help wins over bad values: someone asking for it may be fixing one.
  if (parsed.values.help === true) return { ...DEFAULT_CONFIG, help: true };

  const positionals = [...parsed.positionals];
  if (positionals[0] === "serve") positionals.shift();
  if (positionals.length > 0) {
    throw new ConfigError(`unexpected argument ${JSON.stringify(positionals[0])}`);
  }

  const config: DaemonConfig = { ...DEFAULT_CONFIG, help: false };
  const target = config as unknown as Record<string, unknown>;
  for (const f of FLAGS) {
    const fromFlag = parsed.values[f.flag];
    const envName = envVarName(f.flag);
    // An empty variable counts as unset, as shells make clearing one awkward.
    const fromEnv = env[envName] === "" ? undefined : env[envName];
    let raw: string;
    let source: string;
    if (typeof fromFlag === "string") {
      raw = fromFlag;
      source = `--${f.flag}`;
    } else if (fromEnv !== undefined) {
      raw = fromEnv;
      source = `--${f.flag} (from ${envName})`;
    } else {
      continue;
    }
    const value = f.parse(raw);
    if (typeof value === "object" && value !== null && "error" in value) {
      throw new ConfigError(`${source} ${value.error}, got ${JSON.stringify(raw)}`);
    }
    target[f.key] = value;
  }
  return config;
}

/** The --help text: every flag with its variable and default. */
export function usageText(): string {
  const rows = FLAGS.map((f) => ({
    left: `--${f.flag} <${f.valueName}>`,
    lines: [f.description, `env ${envVarName(f.flag)}, default ${f.defaultText}`],
  }));
  rows.push({ left: "-h, --help", lines: ["Print this help and exit."] });
  const width = Math.max(...rows.map((r) => r.left.length)) + 2;
  const body = rows
    .map((r) => r.lines.map((line, i) => `  ${(i === 0 ? r.left : "").padEnd(width)}${line}`).join("\n"))
    .join("\n");
  return [
    "Usage: session-registry [serve] [flags]",
    "",
    "Runs the session-registry gRPC daemon. Every flag can also be set through",
    "the environment variable shown; a flag beats its variable.",
    "",
    "Flags:",
    body,
    "",
  ].join("\n");
}

/** Splits `host:port` / `[v6]:port`; throws a plain Error ("must be ...") when malformed. */
export function parseListen(listen: string): { host: string; port: number } {
  const malformed = () => new Error("must be host:port (IPv6 as [::1]:port) with a port from 0 to 65535");
  let host: string;
  let portText: string;
  if (listen.startsWith("[")) {
    const m = /^\[([^\]]+)\]:([^:]*)$/.exec(listen);
    if (!m || !isIPv6(m[1]!)) throw malformed();
    host = m[1]!;
    portText = m[2]!;
  } else {
    const i = listen.lastIndexOf(":");
    if (i <= 0) throw malformed();
    host = listen.slice(0, i);
    portText = listen.slice(i + 1);
    // A bare IPv6 address has colons of its own; insist on brackets so the port is unambiguous.
    if (host.includes(":")) throw malformed();
    if (!isIPv4(host) && !/^[A-Za-z0-9]([A-Za-z0-9-]*[A-Za-z0-9])?(\.[A-Za-z0-9]([A-Za-z0-9-]*[A-Za-z0-9])?)*$/.test(host)) {
      throw malformed();
    }
  }
  if (!/^\d{1,5}$/.test(portText) || Number(portText) > 65535) throw malformed();
  return { host, port: Number(portText) };
}

function parseInteger(raw: string, min: number, max: number): number | { error: string } {
  const range = max === Number.MAX_SAFE_INTEGER ? `an integer >= ${min}` : `an integer from ${min} to ${max}`;
  // Digits only: no sign, exponent, hex or surrounding space, so "1e3" and " 5" are rejected, not guessed at.
  if (!/^\d+$/.test(raw)) return { error: `must be ${range}` };
  const n = Number(raw);
  if (!Number.isSafeInteger(n) || n < min || n > max) return { error: `must be ${range}` };
  return n;
}

/** "10" (seconds), "10s", "1.5s", "500ms", "2m" -> milliseconds. */
function parseDurationMs(raw: string): number | { error: string } {
  const m = /^(\d+(?:\.\d+)?)(ms|s|m)?$/.exec(raw);
  const error = { error: "must be a duration from 0s to 24h: seconds, or a number with ms, s or m" };
  if (!m) return error;
  const factor = m[2] === "ms" ? 1 : m[2] === "m" ? 60_000 : 1000;
  const ms = Math.round(Number(m[1]) * factor);
  if (!Number.isFinite(ms) || ms > MAX_SHUTDOWN_GRACE_MS) return error;
  return ms;
}

/** Rewords util.parseArgs errors, whose messages are long and name options in quotes. */
function describeParseArgsError(err: unknown): string {
  const code = (err as { code?: unknown }).code;
  const message = err instanceof Error ? err.message : String(err);
  // The quoted part names the option, e.g. 'Option '-h, --help' does not take an argument'.
  const quoted = /'([^']+)'/.exec(message)?.[1] ?? "";
  const option = /--[A-Za-z0-9-]+/.exec(quoted)?.[0] ?? /^-{1,2}[^\s]+/.exec(quoted)?.[0];
  if (code === "ERR_PARSE_ARGS_UNKNOWN_OPTION" && option) return `unknown flag ${option}`;
  if (code === "ERR_PARSE_ARGS_INVALID_OPTION_VALUE" && option) {
    if (/does not take an argument/.test(message)) return `${option} takes no value`;
    if (/ambiguous/.test(message)) return `${option} needs a value (write ${option}=VALUE for one starting with "-")`;
    return `${option} needs a value`;
  }
  return message;
}
