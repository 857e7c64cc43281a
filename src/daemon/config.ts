/**
 * The daemon's configuration: command-line flags, each with an environment
 * variable fallback (`--max-sessions` <- SESSION_REGISTRY_MAX_SESSIONS; a
 * flag beats its variable). Every flag is declared once in FLAGS, which
 * drives parsing, validation and the --help text alike; the parser, the
 * value parsers and the variable names are the shared ones of src/args/. validateConfig then
 * checks the rules that span flags: TLS files come in pairs, and the daemon
 * is safe by default on a network (see there).
 */
import { readFileSync } from "node:fs";
import { BlockList, isIPv4, isIPv6 } from "node:net";

import {
  envValue,
  envVarName,
  isParseError,
  parseBoolean,
  parseBytes,
  parseDuration,
  parseFlags,
  parseInteger,
  parseListen,
  UsageError,
} from "../args/index.js";
import { LOG_LEVELS, type LogLevel } from "./logger.js";

export type StoreKind = "memory" | "etcd";

export const STORE_KINDS: readonly StoreKind[] = ["memory", "etcd"];

export interface DaemonConfig {
  /** host:port to listen on; IPv6 hosts in brackets. Port 0 picks a free port. */
  listen: string;
  /** The limit of a table created without one, the `default` table's included. */
  maxSessions: number;
  maxTables: number;
  store: StoreKind;
  /** etcd client URLs (--store etcd), all http:// or all https://. */
  etcdEndpoints: string[];
  /** Every key the daemon writes to etcd starts with it; starts and ends with "/". */
  etcdPrefix: string;
  /** PEM CA bundle that signed etcd's server certificates (default: the system's roots); needs https:// endpoints. */
  etcdCa: string | undefined;
  /** PEM client certificate for etcd (mTLS); with etcdKey. */
  etcdCert: string | undefined;
  /** PEM private key of etcdCert. */
  etcdKey: string | undefined;
  /** etcd user name; with etcdPassword. */
  etcdUser: string | undefined;
  /** etcd password; never logged. Best passed as SESSION_REGISTRY_ETCD_PASSWORD, which `ps` does not show. */
  etcdPassword: string | undefined;
  /** Serve Lookup, List, GetTable and ListTables from a watch-fed, linearizable copy of the prefix (--store etcd). */
  etcdReadCache: boolean;
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
  /** The most estimated bytes of events each table keeps for Watch replay (memory store). */
  watchHistoryBytes: number;
  /** The most estimated bytes of messages one watcher may have waiting before it is ended as too slow. */
  watchQueueBytes: number;
  /** What sessions, watch history and watch queues may hold together, in estimated bytes (src/core/budget.ts); undefined: 512 MiB, or half the JavaScript heap if less. */
  memoryBudget: number | undefined;
  /** PEM certificate chain; with tlsKey, turns TLS on. */
  tlsCert: string | undefined;
  /** PEM private key of tlsCert. */
  tlsKey: string | undefined;
  /** PEM CA bundle; when set, clients must present a certificate it signed (mTLS). */
  tlsClientCa: string | undefined;
  /** File of `ROLE TOKEN [TABLE ...]` lines; when set, every SessionRegistry call needs a token. */
  authTokensFile: string | undefined;
  /** host:port of the HTTP listener (Connect, gRPC-Web); off when undefined. */
  httpListen: string | undefined;
  /** host:port of the Prometheus /metrics endpoint; off when undefined. */
  metricsListen: string | undefined;
  /** Accept a non-loopback address without TLS or client authentication. */
  insecure: boolean;
  /** HTTP/2 streams (calls) one connection may have open at once. */
  maxConcurrentStreams: number;
  /** How often the daemon pings each connection to find dead peers; 0 = never. */
  keepaliveTimeMs: number;
  /** How long a ping may go unanswered before the connection is closed. */
  keepaliveTimeoutMs: number;
  /** A connection with no call for this long is closed (the client reconnects when it needs to); 0 = never. */
  maxConnectionIdleMs: number;
  /** A connection older than this takes no new calls (running ones go on); 0 = no limit. */
  maxConnectionAgeMs: number;
  // Hostile clients: connections and unfinished requests (see src/daemon/connections.ts, src/transport/call-guard.ts).
  /** The most connections open at once; past it new ones are closed as they arrive. */
  maxConnections: number;
  /** A connection that has not started a call this long after it was accepted (TLS handshake and HTTP/2 preface included) is closed. */
  connectionSetupTimeoutMs: number;
  /** A call whose request (its message and end) has not fully arrived this long after its headers is refused, and its connection closed. */
  requestTimeoutMs: number;
  /** Calls, across all connections, read while their request is incomplete; more wait at their headers, unread. */
  maxPendingRequests: number;
  /** Set by parseConfig when --help was given; the caller prints usageText() and exits 0. */
  help?: boolean;
  /** Set by parseConfig when --version was given; the caller prints the version and exits 0. */
  version?: boolean;
}

export const MAX_SESSIONS_LIMIT = 1_000_000;
/** gRPC keeps message sizes in a signed 32-bit int. */
export const MAX_MESSAGE_BYTES_LIMIT = 2 ** 31 - 1;
/** Beyond this, setTimeout would misfire; and no one means a grace (or a keepalive) of days. */
export const MAX_DURATION_MS = 24 * 60 * 60 * 1000;
/** HTTP/2 keeps SETTINGS_MAX_CONCURRENT_STREAMS in 31 bits. */
export const MAX_CONCURRENT_STREAMS_LIMIT = 2 ** 31 - 1;
/** Each retained event holds a session; this bounds the history's memory per table. */
export const MAX_WATCH_HISTORY = 10_000_000;
export const MAX_WATCHERS_LIMIT = 1_000_000;
export const MAX_WATCH_QUEUE = 1_000_000;
const MIB = 1024 * 1024;
/** Below this a daemon could not hold one table's largest session and its events. */
export const MIN_MEMORY_BUDGET = 16 * MIB;
/** A watcher must be able to queue at least one of the largest events. */
export const MIN_WATCH_QUEUE_BYTES = MIB;
/** Open files the daemon keeps for itself beside client connections: store, metrics, logs, TLS files. */
export const FILE_HEADROOM = 128;
/** Above this, connections cost more memory (TLS and HTTP/2 state) than a daemon of this size should hold. */
export const MAX_CONNECTIONS_DEFAULT_CAP = 10_000;
export const MAX_CONNECTIONS_LIMIT = 1_000_000;

/**
 * The default --max-connections: the process's soft open-file limit less
 * FILE_HEADROOM, so that the daemon refuses connections itself (and keeps
 * serving the ones it has) before accept() fails with EMFILE; at most
 * MAX_CONNECTIONS_DEFAULT_CAP, and 1,000 where the limit cannot be read.
 */
export function defaultMaxConnections(limitsText: string | undefined = readProcLimits()): number {
  const soft = limitsText === undefined ? undefined : /^Max open files\s+(\S+)/m.exec(limitsText)?.[1];
  if (soft === undefined) return 1000;
  if (soft === "unlimited") return MAX_CONNECTIONS_DEFAULT_CAP;
  const files = Number(soft);
  if (!Number.isSafeInteger(files)) return 1000;
  return Math.min(MAX_CONNECTIONS_DEFAULT_CAP, Math.max(16, files - FILE_HEADROOM));
}

function readProcLimits(): string | undefined {
  try {
    return readFileSync("/proc/self/limits", "utf8");
  } catch {
    return undefined;
  }
}

export const DEFAULT_CONFIG: Readonly<DaemonConfig> = Object.freeze({
  listen: "127.0.0.1:50051",
  maxSessions: 10,
  maxTables: 1000,
  store: "memory",
  etcdEndpoints: ["http://127.0.0.1:2379"],
  etcdPrefix: "/session-registry/",
  etcdCa: undefined,
  etcdCert: undefined,
  etcdKey: undefined,
  etcdUser: undefined,
  etcdPassword: undefined,
  etcdReadCache: true,
  logLevel: "info",
  shutdownGraceMs: 10_000,
  // The largest valid request is a Register with 16 KiB of metadata, a 4 KiB
  // project path and every other field at its longest: under 22 KiB (see
  // LIMITS in src/core/validation.ts; test/daemon/limits.test.ts measures it).
  // 64 KiB keeps a margin over it and bounds what an unfinished request may hold.
  maxReceiveMessageBytes: 64 * 1024,
  watchHistory: 10_000,
  maxWatchers: 10_000,
  watchQueue: 1024,
  watchHistoryBytes: 64 * MIB,
  watchQueueBytes: 8 * MIB,
  memoryBudget: undefined,
  tlsCert: undefined,
  tlsKey: undefined,
  tlsClientCa: undefined,
  authTokensFile: undefined,
  httpListen: "127.0.0.1:50052",
  metricsListen: undefined,
  insecure: false,
  maxConcurrentStreams: 100,
  keepaliveTimeMs: 60_000,
  keepaliveTimeoutMs: 20_000,
  maxConnectionIdleMs: 30 * 60_000,
  maxConnectionAgeMs: 0,
  maxConnections: defaultMaxConnections(),
  connectionSetupTimeoutMs: 10_000,
  requestTimeoutMs: 10_000,
  maxPendingRequests: 256,
});

/** A bad flag, variable or argument; main prints the message and exits 2. */
export class ConfigError extends Error {
  override readonly name = "ConfigError";
}

type ValueKey = Exclude<keyof DaemonConfig, "help" | "version">;

interface FlagSpec<K extends ValueKey = ValueKey> {
  flag: string;
  key: K;
  /** A switch (`--insecure`) takes no value; its variable reads 1/true/yes or 0/false/no. */
  boolean?: true;
  valueName: string;
  description: string;
  /** How the default reads in --help. */
  defaultText: string;
  /** Returns the value, or an error fragment ("must be ..."). */
  parse: (raw: string) => DaemonConfig[K] | { error: string };
}

function spec<K extends ValueKey>(s: FlagSpec<K>): FlagSpec {
  return s;
}

const FLAGS: readonly FlagSpec[] = [
  spec({
    flag: "listen",
    key: "listen",
    valueName: "host:port",
    description: "Address to listen on; IPv6 as [::1]:port; port 0 picks a free port.",
    defaultText: DEFAULT_CONFIG.listen,
    parse: parseListenFlag,
  }),
  spec({
    flag: "tls-cert",
    key: "tlsCert",
    valueName: "file",
    description: "PEM certificate chain; with --tls-key, serves TLS instead of plaintext.",
    defaultText: "none (plaintext)",
    parse: parsePath,
  }),
  spec({
    flag: "tls-key",
    key: "tlsKey",
    valueName: "file",
    description: "PEM private key of --tls-cert.",
    defaultText: "none",
    parse: parsePath,
  }),
  spec({
    flag: "tls-client-ca",
    key: "tlsClientCa",
    valueName: "file",
    description: "PEM CA certificates; clients must present a certificate signed by one (mTLS). Needs --tls-cert.",
    defaultText: "none (no client certificates)",
    parse: parsePath,
  }),
  spec({
    flag: "auth-tokens",
    key: "authTokensFile",
    valueName: "file",
    description: "Lines of ROLE TOKEN [TABLE ...] (roles read, write, admin); every call then needs a bearer token.",
    defaultText: "none (no token needed)",
    parse: parsePath,
  }),
  spec({
    flag: "insecure",
    key: "insecure",
    boolean: true,
    valueName: "",
    description:
      "Allow a non-loopback --listen or --http-listen without TLS or without client authentication, and a non-loopback --metrics-listen.",
    defaultText: "off",
    parse: parseBoolean,
  }),
  spec({
    flag: "http-listen",
    key: "httpListen",
    valueName: "host:port|off",
    description:
      "Also serve the API over HTTP/1.1 (Connect JSON and binary, gRPC-Web), with --listen's TLS files and tokens; off turns it off.",
    defaultText: DEFAULT_CONFIG.httpListen!,
    parse: (raw) => (raw === "off" ? undefined : parseListenFlag(raw)),
  }),
  spec({
    flag: "metrics-listen",
    key: "metricsListen",
    valueName: "host:port",
    description: "Serve Prometheus metrics over HTTP at /metrics on this address.",
    defaultText: "off",
    parse: parseListenFlag,
  }),
  spec({
    flag: "log-level",
    key: "logLevel",
    valueName: "level",
    description: `Least severe log level written to stderr: ${LOG_LEVELS.join(", ")}.`,
    defaultText: DEFAULT_CONFIG.logLevel,
    parse: (raw) =>
      (LOG_LEVELS as readonly string[]).includes(raw) ? (raw as LogLevel) : { error: `must be one of ${LOG_LEVELS.join(", ")}` },
  }),
  spec({
    flag: "store",
    key: "store",
    valueName: "kind",
    description: "Where sessions live: memory (one daemon, lost on exit) or etcd (shared by every daemon on the same etcd and prefix).",
    defaultText: DEFAULT_CONFIG.store,
    parse: (raw) => ((STORE_KINDS as readonly string[]).includes(raw) ? (raw as StoreKind) : { error: 'must be "memory" or "etcd"' }),
  }),
  spec({
    flag: "etcd-endpoints",
    key: "etcdEndpoints",
    valueName: "urls",
    description: "Comma-separated etcd client URLs (--store etcd), all http:// or all https://.",
    defaultText: DEFAULT_CONFIG.etcdEndpoints.join(","),
    parse: parseEtcdEndpoints,
  }),
  spec({
    flag: "etcd-prefix",
    key: "etcdPrefix",
    valueName: "prefix",
    description: "Key prefix of the daemon's data in etcd; daemons with the same prefix share their tables.",
    defaultText: DEFAULT_CONFIG.etcdPrefix,
    parse: parseEtcdPrefix,
  }),
  spec({
    flag: "etcd-read-cache",
    key: "etcdReadCache",
    valueName: "on|off",
    description:
      "Serve Lookup, List, GetTable and ListTables from a copy of the prefix kept by an etcd watch, still linearizable (--store etcd); off reads etcd every time.",
    defaultText: "on",
    parse: parseOnOff,
  }),
  spec({
    flag: "etcd-ca",
    key: "etcdCa",
    valueName: "file",
    description: "PEM CA certificates that signed etcd's server certificate; needs https:// endpoints.",
    defaultText: "the system's roots (with https:// endpoints)",
    parse: parsePath,
  }),
  spec({
    flag: "etcd-cert",
    key: "etcdCert",
    valueName: "file",
    description: "PEM client certificate presented to etcd; with --etcd-key and https:// endpoints.",
    defaultText: "none",
    parse: parsePath,
  }),
  spec({
    flag: "etcd-key",
    key: "etcdKey",
    valueName: "file",
    description: "PEM private key of --etcd-cert.",
    defaultText: "none",
    parse: parsePath,
  }),
  spec({
    flag: "etcd-user",
    key: "etcdUser",
    valueName: "name",
    description: "etcd user name (etcd auth); with --etcd-password.",
    defaultText: "none (no etcd auth)",
    parse: (raw) => (raw === "" || raw.includes(":") ? { error: 'must be a non-empty name without ":"' } : raw),
  }),
  spec({
    flag: "etcd-password",
    key: "etcdPassword",
    valueName: "password",
    description: "Password of --etcd-user; prefer the variable (a flag shows in `ps`). Never logged.",
    defaultText: "none",
    parse: (raw) => (raw === "" ? { error: "must not be empty" } : raw),
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
  spec({
    flag: "memory-budget",
    key: "memoryBudget",
    valueName: "bytes",
    description:
      "What sessions, watch history and watch queues may hold together (estimated). Sessions may take 3/4: past it, writes are RESOURCE_EXHAUSTED (MEMORY_BUDGET_REACHED); when it is full, the oldest history and the slowest watchers go first.",
    defaultText: "512MiB, or half node's heap limit if less",
    parse: (raw) => parseBytes(raw, MIN_MEMORY_BUDGET),
  }),
  spec({
    flag: "watch-history-bytes",
    key: "watchHistoryBytes",
    valueName: "bytes",
    description: "Estimated bytes of events each table keeps for Watch to replay (memory store), besides --watch-history's count.",
    defaultText: "64MiB",
    parse: (raw) => parseBytes(raw, 1),
  }),
  spec({
    flag: "watch-queue-bytes",
    key: "watchQueueBytes",
    valueName: "bytes",
    description:
      "Estimated bytes of messages a watcher may fall behind by before it is ended as WATCHER_TOO_SLOW, besides --watch-queue's count.",
    defaultText: "8MiB",
    parse: (raw) => parseBytes(raw, MIN_WATCH_QUEUE_BYTES),
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
    flag: "max-concurrent-streams",
    key: "maxConcurrentStreams",
    valueName: "n",
    description: "Calls (watches included) one connection may have open at once; more wait for a free slot.",
    defaultText: String(DEFAULT_CONFIG.maxConcurrentStreams),
    parse: (raw) => parseInteger(raw, 1, MAX_CONCURRENT_STREAMS_LIMIT),
  }),
  spec({
    flag: "keepalive-time",
    key: "keepaliveTimeMs",
    valueName: "duration",
    description: "Ping each connection this often, to find dead peers and free their watches; 0 turns pings off.",
    defaultText: "60s",
    parse: (raw) => parseDurationMs(raw, 0),
  }),
  spec({
    flag: "keepalive-timeout",
    key: "keepaliveTimeoutMs",
    valueName: "duration",
    description: "Close a connection whose ping goes unanswered this long.",
    defaultText: "20s",
    parse: (raw) => parseDurationMs(raw, 1),
  }),
  spec({
    flag: "max-connection-idle",
    key: "maxConnectionIdleMs",
    valueName: "duration",
    description: "Close a connection that has had no call for this long (clients reconnect on demand); 0 = never.",
    defaultText: "30m",
    parse: (raw) => parseDurationMs(raw, 0),
  }),
  spec({
    flag: "max-connection-age",
    key: "maxConnectionAgeMs",
    valueName: "duration",
    description: "Ask clients to move to a new connection after this long (running calls go on); 0 = never.",
    defaultText: "0 (never)",
    parse: (raw) => parseDurationMs(raw, 0),
  }),
  spec({
    flag: "shutdown-grace",
    key: "shutdownGraceMs",
    valueName: "duration",
    description: "On SIGINT/SIGTERM, how long running calls may finish: seconds, or e.g. 10s, 500ms, 1m.",
    defaultText: "10s",
    parse: (raw) => parseDurationMs(raw, 0),
  }),
  // Hostile clients: connections and unfinished requests.
  spec({
    flag: "max-connections",
    key: "maxConnections",
    valueName: "n",
    description:
      "Connections open at once; at it, a new one replaces the oldest that has started no call, or is closed at once when all have (counted in the log). Keep it below ulimit -n.",
    defaultText: `the open-file limit less ${FILE_HEADROOM}, at most ${MAX_CONNECTIONS_DEFAULT_CAP} (here ${DEFAULT_CONFIG.maxConnections})`,
    parse: (raw) => parseInteger(raw, 1, MAX_CONNECTIONS_LIMIT),
  }),
  spec({
    flag: "connection-setup-timeout",
    key: "connectionSetupTimeoutMs",
    valueName: "duration",
    description:
      "Close a connection that has not started a call this long after it was accepted (TLS handshake and HTTP/2 preface included).",
    defaultText: "10s",
    parse: (raw) => parseDurationMs(raw, 1),
  }),
  spec({
    flag: "request-timeout",
    key: "requestTimeoutMs",
    valueName: "duration",
    description:
      "End a call (DEADLINE_EXCEEDED) whose request has not fully arrived this long after its headers (streaming requests: each message), and close its connection.",
    defaultText: "10s",
    parse: (raw) => parseDurationMs(raw, 1),
  }),
  spec({
    flag: "max-pending-requests",
    key: "maxPendingRequests",
    valueName: "n",
    description:
      "Calls, across all connections, read while their request is incomplete; up to 4 times as many more wait unread (64 KiB each at most) until one completes, and past that calls are refused UNAVAILABLE. Times --max-receive-message-size, it bounds the memory of half-sent requests.",
    defaultText: String(DEFAULT_CONFIG.maxPendingRequests),
    parse: (raw) => parseInteger(raw, 1, MAX_CONNECTIONS_LIMIT),
  }),
];

/** Every flag of the daemon, without its dashes (for the CLI's hints and shell completion). */
export const DAEMON_FLAG_NAMES: readonly string[] = [...FLAGS.map((f) => f.flag), "help", "version"];

export { ENV_PREFIX, envVarName } from "../args/index.js";

/**
 * Parses argv (without node and the script) and the environment, then
 * checks the rules that span flags (validateConfig). Throws ConfigError
 * naming the offending flag. An optional leading `serve` is accepted: the
 * CLI's subcommand for the daemon.
 */
export function parseConfig(argv: readonly string[], env: Record<string, string | undefined>): DaemonConfig {
  const options: Record<string, { type: "string" | "boolean"; short?: string }> = {
    help: { type: "boolean", short: "h" },
    version: { type: "boolean", short: "V" },
  };
  for (const f of FLAGS) options[f.flag] = { type: f.boolean ? "boolean" : "string" };

  let parsed: ReturnType<typeof parseFlags>;
  try {
    parsed = parseFlags(argv, options);
  } catch (err) {
    if (err instanceof UsageError) throw new ConfigError(err.message);
    throw err;
  }

  // Help (and the version) win over bad values: someone asking for them may be fixing one.
  if (parsed.values.help === true) return { ...DEFAULT_CONFIG, help: true };
  if (parsed.values.version === true) return { ...DEFAULT_CONFIG, version: true };

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
    const fromEnv = envValue(env, envName);
    let raw: string;
    let source: string;
    if (typeof fromFlag === "string" || typeof fromFlag === "boolean") {
      raw = String(fromFlag);
      source = `--${f.flag}`;
    } else if (fromEnv !== undefined) {
      raw = fromEnv;
      source = `--${f.flag} (from ${envName})`;
    } else {
      continue;
    }
    const value = f.parse(raw);
    if (isParseError(value)) {
      throw new ConfigError(`${source} ${value.error}, got ${JSON.stringify(raw)}`);
    }
    target[f.key] = value;
  }
  validateConfig(config);
  return config;
}

/**
 * The rules that span flags; parseConfig applies them, and so does
 * startDaemon for configs built in code.
 *
 * TLS needs a certificate and its key together, and client certificates
 * (mTLS) need TLS.
 *
 * Safe by default: on a loopback address (127.0.0.0/8, ::1, localhost) only
 * this machine can connect, and anything goes. On any other address the
 * daemon must both encrypt and authenticate, or be told `--insecure`:
 * - plaintext is refused, with or without --auth-tokens: without tokens
 *   anyone on the network could register and remove sessions, and with them
 *   the tokens would cross the network in clear text;
 * - TLS is refused unless clients authenticate, with a token
 *   (--auth-tokens) or a certificate (--tls-client-ca).
 * The metrics endpoint is plain HTTP with no authentication, so a
 * non-loopback --metrics-listen needs --insecure too.
 */
export function validateConfig(config: DaemonConfig): void {
  if ((config.tlsCert === undefined) !== (config.tlsKey === undefined)) {
    const [given, missing] = config.tlsCert === undefined ? ["--tls-key", "--tls-cert"] : ["--tls-cert", "--tls-key"];
    throw new ConfigError(`${given} needs ${missing} as well: TLS takes a certificate chain and its private key together`);
  }
  if (config.tlsClientCa !== undefined && config.tlsCert === undefined) {
    throw new ConfigError(
      "--tls-client-ca needs --tls-cert and --tls-key: client certificates are checked in the TLS handshake, so the daemon must serve TLS",
    );
  }
  validateEtcd(config);
  if (config.insecure) return;

  refuseUnprotected(config, "--listen", config.listen);
  if (config.httpListen !== undefined) refuseUnprotected(config, "--http-listen", config.httpListen);
  if (config.metricsListen !== undefined) {
    const metricsHost = parseListen(config.metricsListen).host;
    if (!isLoopbackHost(metricsHost)) {
      throw new ConfigError(
        `refusing to serve metrics on ${config.metricsListen}: ${metricsHost} is not a loopback address, and the ` +
          "metrics endpoint is plain HTTP without authentication (it shows table names and session counts to anyone " +
          "who can reach it). Serve it on 127.0.0.1 (behind a proxy if others must scrape it), or pass --insecure to accept the risk",
      );
    }
  }
}

/**
 * Refuses a non-loopback address (of --listen or --http-listen, which serve
 * the same API with the same TLS files and tokens) unless the daemon both
 * encrypts and authenticates.
 */
function refuseUnprotected(config: DaemonConfig, flag: "--listen" | "--http-listen", listen: string): void {
  const { host } = parseListen(listen);
  if (isLoopbackHost(host)) return;
  const reach = `${host} is not a loopback address, so anyone who can reach it could list, register and remove sessions`;
  const what = flag === "--listen" ? "listen" : "serve HTTP";
  const ways = `${what} on 127.0.0.1, or pass --insecure to accept the risk`;
  if (config.tlsCert === undefined) {
    const tokens = config.authTokensFile !== undefined ? ", and the tokens of --auth-tokens would cross the network in clear text" : "";
    throw new ConfigError(
      `refusing to ${what} on ${listen} in plaintext: ${reach}${tokens}. ` +
        `Serve TLS (--tls-cert, --tls-key) and authenticate clients (--auth-tokens or --tls-client-ca), or ${ways}`,
    );
  }
  if (config.authTokensFile === undefined && config.tlsClientCa === undefined) {
    throw new ConfigError(
      `refusing to ${what} on ${listen} without client authentication: ${reach}. ` + `Add --auth-tokens or --tls-client-ca, or ${ways}`,
    );
  }
}

/** "on" or "off" (or a boolean's words). */
function parseOnOff(raw: string): boolean | { error: string } {
  if (raw === "on") return true;
  if (raw === "off") return false;
  const parsed = parseBoolean(raw);
  return isParseError(parsed) ? { error: "must be on or off" } : parsed;
}

/**
 * The etcd options' rules: TLS files only with https:// endpoints (an
 * http:// URL with a CA would be ambiguous: TLS or not?), a client
 * certificate with its key, a user with a password. Checked whatever the
 * store, so a mistake shows before someone switches to --store etcd.
 */
function validateEtcd(config: DaemonConfig): void {
  const endpoints = parseEtcdEndpoints(config.etcdEndpoints.join(","));
  if ("error" in endpoints)
    throw new ConfigError(`--etcd-endpoints ${endpoints.error}, got ${JSON.stringify(config.etcdEndpoints.join(","))}`);
  const prefix = parseEtcdPrefix(config.etcdPrefix);
  if (typeof prefix !== "string") throw new ConfigError(`--etcd-prefix ${prefix.error}, got ${JSON.stringify(config.etcdPrefix)}`);
  if ((config.etcdCert === undefined) !== (config.etcdKey === undefined)) {
    const [given, missing] = config.etcdCert === undefined ? ["--etcd-key", "--etcd-cert"] : ["--etcd-cert", "--etcd-key"];
    throw new ConfigError(`${given} needs ${missing} as well: a client certificate goes with its private key`);
  }
  const https = config.etcdEndpoints.every((u) => u.startsWith("https://"));
  if (!https) {
    const tlsFlag = config.etcdCa !== undefined ? "--etcd-ca" : config.etcdCert !== undefined ? "--etcd-cert" : undefined;
    if (tlsFlag !== undefined) {
      throw new ConfigError(`${tlsFlag} needs https:// --etcd-endpoints: TLS files are for a TLS connection to etcd`);
    }
  }
  if ((config.etcdUser === undefined) !== (config.etcdPassword === undefined)) {
    throw new ConfigError(
      config.etcdUser === undefined
        ? "--etcd-password needs --etcd-user as well"
        : "--etcd-user needs a password as well: set SESSION_REGISTRY_ETCD_PASSWORD (or --etcd-password)",
    );
  }
}

/** "http://a:2379,https://b:2379" -> URLs; one scheme for all, host and port only. */
function parseEtcdEndpoints(raw: string): string[] | { error: string } {
  const error = { error: "must be comma-separated etcd URLs like http://127.0.0.1:2379, all http:// or all https://" };
  const parts = raw.split(",").map((p) => p.trim());
  if (parts.some((p) => p === "")) return error;
  const urls: string[] = [];
  for (const part of parts) {
    let url: URL;
    try {
      url = new URL(part);
    } catch {
      return error;
    }
    const bare = url.pathname === "/" && url.search === "" && url.hash === "" && url.username === "" && url.password === "";
    if ((url.protocol !== "http:" && url.protocol !== "https:") || url.hostname === "" || !bare) return error;
    urls.push(`${url.protocol}//${url.host}`);
  }
  if (new Set(urls.map((u) => u.slice(0, u.indexOf(":")))).size > 1) return error;
  return urls;
}

function parseEtcdPrefix(raw: string): string | { error: string } {
  return raw.length >= 1 && raw.startsWith("/") && raw.endsWith("/") && !raw.includes("//")
    ? raw
    : { error: 'must start and end with "/" (e.g. /session-registry/), without "//"' };
}

const LOOPBACK = new BlockList();
LOOPBACK.addSubnet("127.0.0.0", 8, "ipv4");
LOOPBACK.addAddress("::1", "ipv6");
LOOPBACK.addSubnet("::ffff:127.0.0.0", 104, "ipv6");

/**
 * Whether only this machine can reach `host`: a loopback IP, or `localhost`
 * (which resolves to one). Any other name may resolve to a public address,
 * so it counts as not loopback; so do the wildcards 0.0.0.0 and ::.
 */
export function isLoopbackHost(host: string): boolean {
  if (host.toLowerCase() === "localhost") return true;
  if (isIPv4(host)) return LOOPBACK.check(host, "ipv4");
  if (isIPv6(host)) return LOOPBACK.check(host, "ipv6");
  return false;
}

/** The --help text: every flag with its variable and default. */
export function usageText(): string {
  const rows = FLAGS.map((f) => ({
    left: f.boolean ? `--${f.flag}` : `--${f.flag} <${f.valueName}>`,
    lines: [f.description, `env ${envVarName(f.flag)}${f.boolean ? "=1" : ""}, default ${f.defaultText}`],
  }));
  rows.push({ left: "-h, --help", lines: ["Print this help and exit."] });
  rows.push({ left: "-V, --version", lines: ["Print the version and exit."] });
  const width = Math.max(...rows.map((r) => r.left.length)) + 2;
  const body = rows.map((r) => r.lines.map((line, i) => `  ${(i === 0 ? r.left : "").padEnd(width)}${line}`).join("\n")).join("\n");
  return [
    "Usage: session-registry serve [flags]",
    "",
    "Runs the session-registry gRPC daemon. Every flag can also be set through",
    "the environment variable shown; a flag beats its variable. Durations are",
    "seconds, or a number with ms, s, m or h (500ms, 10s, 30m).",
    "",
    "On an address other than loopback, the daemon refuses to start unless it",
    "serves TLS and authenticates clients (--auth-tokens or --tls-client-ca),",
    "or --insecure is given.",
    "",
    "Flags:",
    body,
    "",
  ].join("\n");
}

function parseListenFlag(raw: string): string | { error: string } {
  try {
    parseListen(raw);
    return raw;
  } catch (err) {
    return { error: (err as Error).message };
  }
}

/** A file name; whether it can be read is checked when the daemon starts, which reads it. */
function parsePath(raw: string): string | { error: string } {
  return raw.trim() === "" ? { error: "must be a file path" } : raw;
}

/** A duration flag's value: from minMs to 24 h. */
function parseDurationMs(raw: string, minMs: number): number | { error: string } {
  return parseDuration(raw, minMs, MAX_DURATION_MS);
}
