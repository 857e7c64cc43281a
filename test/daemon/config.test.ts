import { expect } from "chai";

import {
  ConfigError,
  DEFAULT_CONFIG,
  defaultMaxConnections,
  isLoopbackHost,
  parseConfig,
  usageText,
  validateConfig,
  type DaemonConfig,
} from "../../src/daemon/config.js";

type Env = Record<string, string | undefined>;

function parse(argv: string[], env: Env = {}): DaemonConfig {
  return parseConfig(argv, env);
}

/** The ConfigError's message; fails if parsing succeeds or throws something else. */
function rejection(argv: string[], env: Env = {}): string {
  try {
    parseConfig(argv, env);
  } catch (err) {
    expect(err).to.be.instanceOf(ConfigError);
    return (err as ConfigError).message;
  }
  return expect.fail(`parseConfig(${JSON.stringify(argv)}) should have thrown`);
}

describe("daemon config", () => {
  describe("parseConfig", () => {
    it("uses the defaults when given nothing", () => {
      expect(parse([])).to.deep.equal({
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
        maxReceiveMessageBytes: 64 * 1024,
        watchHistory: 10_000,
        maxWatchers: 10_000,
        watchQueue: 1024,
        watchHistoryBytes: 64 * 1024 * 1024,
        watchQueueBytes: 8 * 1024 * 1024,
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
        maxConnectionIdleMs: 1_800_000,
        maxConnectionAgeMs: 0,
        maxConnections: defaultMaxConnections(),
        connectionSetupTimeoutMs: 10_000,
        requestTimeoutMs: 10_000,
        maxPendingRequests: 256,
        help: false,
      });
      expect(parse([])).to.deep.include(DEFAULT_CONFIG);
    });

    it("accepts and ignores a leading serve command", () => {
      expect(parse(["serve", "--max-sessions", "3"]).maxSessions).to.equal(3);
      expect(parse(["serve"])).to.deep.equal(parse([]));
    });

    const accepted: { argv: string[]; env?: Env; expected: Partial<DaemonConfig> }[] = [
      { argv: ["--listen", "0.0.0.0:7000", "--insecure"], expected: { listen: "0.0.0.0:7000", insecure: true } },
      { argv: ["--listen=127.0.0.1:0"], expected: { listen: "127.0.0.1:0" } },
      { argv: ["--listen", "localhost:65535"], expected: { listen: "localhost:65535" } },
      { argv: ["--listen", "[::1]:50051"], expected: { listen: "[::1]:50051" } },
      { argv: ["--listen", "[::]:0", "--insecure"], expected: { listen: "[::]:0", insecure: true } },
      { argv: ["--listen", "127.8.9.10:1"], expected: { listen: "127.8.9.10:1" } },
      { argv: ["--max-sessions", "1"], expected: { maxSessions: 1 } },
      { argv: ["--max-sessions", "1000000"], expected: { maxSessions: 1_000_000 } },
      { argv: ["--max-tables", "1"], expected: { maxTables: 1 } },
      { argv: ["--store", "memory"], expected: { store: "memory" } },
      { argv: ["--store", "etcd"], expected: { store: "etcd" } },
      { argv: ["--etcd-endpoints", "http://10.0.0.1:2379"], expected: { etcdEndpoints: ["http://10.0.0.1:2379"] } },
      {
        argv: ["--etcd-endpoints", "http://a:2379, http://b:2379/,http://[::1]:2379"],
        expected: { etcdEndpoints: ["http://a:2379", "http://b:2379", "http://[::1]:2379"] },
      },
      { argv: ["--etcd-prefix", "/sr/prod/"], expected: { etcdPrefix: "/sr/prod/" } },
      { argv: ["--etcd-read-cache", "off"], expected: { etcdReadCache: false } },
      { argv: ["--etcd-read-cache", "on"], expected: { etcdReadCache: true } },
      { argv: [], env: { SESSION_REGISTRY_ETCD_READ_CACHE: "off" }, expected: { etcdReadCache: false } },
      {
        argv: ["--etcd-endpoints", "https://e:2379", "--etcd-ca", "ca.pem", "--etcd-cert", "c.pem", "--etcd-key", "k.pem"],
        expected: { etcdEndpoints: ["https://e:2379"], etcdCa: "ca.pem", etcdCert: "c.pem", etcdKey: "k.pem" },
      },
      { argv: ["--etcd-endpoints", "https://e:2379"], expected: { etcdEndpoints: ["https://e:2379"] } },
      { argv: ["--etcd-user", "sr", "--etcd-password", "pw"], expected: { etcdUser: "sr", etcdPassword: "pw" } },
      {
        argv: ["--etcd-user", "sr"],
        env: { SESSION_REGISTRY_ETCD_PASSWORD: "s3cret" },
        expected: { etcdUser: "sr", etcdPassword: "s3cret" },
      },
      { argv: ["--log-level", "debug"], expected: { logLevel: "debug" } },
      { argv: ["--log-level", "silent"], expected: { logLevel: "silent" } },
      { argv: ["--shutdown-grace", "3"], expected: { shutdownGraceMs: 3000 } },
      { argv: ["--shutdown-grace", "0"], expected: { shutdownGraceMs: 0 } },
      { argv: ["--shutdown-grace", "1.5"], expected: { shutdownGraceMs: 1500 } },
      { argv: ["--shutdown-grace", "10s"], expected: { shutdownGraceMs: 10_000 } },
      { argv: ["--shutdown-grace", "500ms"], expected: { shutdownGraceMs: 500 } },
      { argv: ["--shutdown-grace", "2m"], expected: { shutdownGraceMs: 120_000 } },
      { argv: ["--max-receive-message-size", "4194304"], expected: { maxReceiveMessageBytes: 4_194_304 } },
      { argv: ["--watch-history", "1"], expected: { watchHistory: 1 } },
      { argv: ["--watch-history", "10000000"], expected: { watchHistory: 10_000_000 } },
      { argv: ["--max-watchers", "1"], expected: { maxWatchers: 1 } },
      { argv: ["--max-watchers", "1000000"], expected: { maxWatchers: 1_000_000 } },
      { argv: ["--watch-queue", "1"], expected: { watchQueue: 1 } },
      { argv: ["--watch-queue=1000000"], expected: { watchQueue: 1_000_000 } },
      { argv: ["--memory-budget", "64MiB"], expected: { memoryBudget: 64 * 1024 * 1024 } },
      { argv: ["--memory-budget", "2GiB"], expected: { memoryBudget: 2 * 1024 ** 3 } },
      { argv: ["--memory-budget", "16777216"], expected: { memoryBudget: 16 * 1024 * 1024 } },
      { argv: ["--watch-history-bytes", "1"], expected: { watchHistoryBytes: 1 } },
      { argv: ["--watch-queue-bytes", "1024KiB"], expected: { watchQueueBytes: 1024 * 1024 } },
      { argv: ["--shutdown-grace", "1h"], expected: { shutdownGraceMs: 3_600_000 } },
      { argv: ["--shutdown-grace", "24h"], expected: { shutdownGraceMs: 86_400_000 } },
      { argv: ["--tls-cert", "s.crt", "--tls-key", "s.key"], expected: { tlsCert: "s.crt", tlsKey: "s.key" } },
      {
        argv: ["--tls-cert", "s.crt", "--tls-key", "s.key", "--tls-client-ca", "ca.crt"],
        expected: { tlsCert: "s.crt", tlsKey: "s.key", tlsClientCa: "ca.crt" },
      },
      { argv: ["--auth-tokens", "/etc/tokens"], expected: { authTokensFile: "/etc/tokens" } },
      { argv: ["--metrics-listen", "127.0.0.1:9464"], expected: { metricsListen: "127.0.0.1:9464" } },
      { argv: ["--metrics-listen", "localhost:0"], expected: { metricsListen: "localhost:0" } },
      { argv: ["--insecure"], expected: { insecure: true } },
      { argv: ["--max-concurrent-streams", "1"], expected: { maxConcurrentStreams: 1 } },
      { argv: ["--max-concurrent-streams", "2147483647"], expected: { maxConcurrentStreams: 2 ** 31 - 1 } },
      { argv: ["--keepalive-time", "0"], expected: { keepaliveTimeMs: 0 } },
      { argv: ["--keepalive-time", "2h"], expected: { keepaliveTimeMs: 7_200_000 } },
      { argv: ["--keepalive-timeout", "5s"], expected: { keepaliveTimeoutMs: 5000 } },
      { argv: ["--keepalive-timeout", "1ms"], expected: { keepaliveTimeoutMs: 1 } },
      { argv: ["--max-connection-idle", "0"], expected: { maxConnectionIdleMs: 0 } },
      { argv: ["--max-connection-idle", "5m"], expected: { maxConnectionIdleMs: 300_000 } },
      { argv: ["--max-connection-age", "1h"], expected: { maxConnectionAgeMs: 3_600_000 } },
      // Environment variables, one per flag.
      { argv: [], env: { SESSION_REGISTRY_LISTEN: "127.0.0.1:9" }, expected: { listen: "127.0.0.1:9" } },
      { argv: [], env: { SESSION_REGISTRY_MAX_SESSIONS: "42" }, expected: { maxSessions: 42 } },
      { argv: [], env: { SESSION_REGISTRY_MAX_TABLES: "7" }, expected: { maxTables: 7 } },
      { argv: [], env: { SESSION_REGISTRY_STORE: "memory" }, expected: { store: "memory" } },
      { argv: [], env: { SESSION_REGISTRY_STORE: "etcd" }, expected: { store: "etcd" } },
      {
        argv: [],
        env: { SESSION_REGISTRY_ETCD_ENDPOINTS: "http://x:1,http://y:2", SESSION_REGISTRY_ETCD_PREFIX: "/p/" },
        expected: { etcdEndpoints: ["http://x:1", "http://y:2"], etcdPrefix: "/p/" },
      },
      {
        argv: [],
        env: {
          SESSION_REGISTRY_ETCD_ENDPOINTS: "https://x:1",
          SESSION_REGISTRY_ETCD_CA: "ca",
          SESSION_REGISTRY_ETCD_CERT: "c",
          SESSION_REGISTRY_ETCD_KEY: "k",
          SESSION_REGISTRY_ETCD_USER: "u",
          SESSION_REGISTRY_ETCD_PASSWORD: "p",
        },
        expected: { etcdEndpoints: ["https://x:1"], etcdCa: "ca", etcdCert: "c", etcdKey: "k", etcdUser: "u", etcdPassword: "p" },
      },
      { argv: [], env: { SESSION_REGISTRY_LOG_LEVEL: "warn" }, expected: { logLevel: "warn" } },
      { argv: [], env: { SESSION_REGISTRY_SHUTDOWN_GRACE: "250ms" }, expected: { shutdownGraceMs: 250 } },
      { argv: [], env: { SESSION_REGISTRY_MAX_RECEIVE_MESSAGE_SIZE: "2048" }, expected: { maxReceiveMessageBytes: 2048 } },
      { argv: [], env: { SESSION_REGISTRY_WATCH_HISTORY: "500" }, expected: { watchHistory: 500 } },
      { argv: [], env: { SESSION_REGISTRY_MAX_WATCHERS: "3" }, expected: { maxWatchers: 3 } },
      { argv: [], env: { SESSION_REGISTRY_WATCH_QUEUE: "16" }, expected: { watchQueue: 16 } },
      {
        argv: [],
        env: { SESSION_REGISTRY_TLS_CERT: "a.crt", SESSION_REGISTRY_TLS_KEY: "a.key", SESSION_REGISTRY_TLS_CLIENT_CA: "ca.crt" },
        expected: { tlsCert: "a.crt", tlsKey: "a.key", tlsClientCa: "ca.crt" },
      },
      { argv: [], env: { SESSION_REGISTRY_AUTH_TOKENS: "tokens.txt" }, expected: { authTokensFile: "tokens.txt" } },
      { argv: [], env: { SESSION_REGISTRY_METRICS_LISTEN: "127.0.0.1:1" }, expected: { metricsListen: "127.0.0.1:1" } },
      { argv: [], env: { SESSION_REGISTRY_INSECURE: "1" }, expected: { insecure: true } },
      { argv: [], env: { SESSION_REGISTRY_INSECURE: "TRUE" }, expected: { insecure: true } },
      { argv: [], env: { SESSION_REGISTRY_INSECURE: "yes" }, expected: { insecure: true } },
      { argv: [], env: { SESSION_REGISTRY_INSECURE: "0" }, expected: { insecure: false } },
      { argv: [], env: { SESSION_REGISTRY_INSECURE: "false" }, expected: { insecure: false } },
      { argv: ["--insecure"], env: { SESSION_REGISTRY_INSECURE: "no" }, expected: { insecure: true } },
      { argv: [], env: { SESSION_REGISTRY_MAX_CONCURRENT_STREAMS: "7" }, expected: { maxConcurrentStreams: 7 } },
      { argv: [], env: { SESSION_REGISTRY_KEEPALIVE_TIME: "30s" }, expected: { keepaliveTimeMs: 30_000 } },
      { argv: [], env: { SESSION_REGISTRY_KEEPALIVE_TIMEOUT: "2s" }, expected: { keepaliveTimeoutMs: 2000 } },
      { argv: [], env: { SESSION_REGISTRY_MAX_CONNECTION_IDLE: "1m" }, expected: { maxConnectionIdleMs: 60_000 } },
      { argv: [], env: { SESSION_REGISTRY_MAX_CONNECTION_AGE: "10m" }, expected: { maxConnectionAgeMs: 600_000 } },
      { argv: ["--watch-queue", "8"], env: { SESSION_REGISTRY_WATCH_QUEUE: "0" }, expected: { watchQueue: 8 } },
      { argv: [], env: { SESSION_REGISTRY_MAX_CONNECTIONS: "500" }, expected: { maxConnections: 500 } },
      { argv: [], env: { SESSION_REGISTRY_CONNECTION_SETUP_TIMEOUT: "2s" }, expected: { connectionSetupTimeoutMs: 2000 } },
      { argv: [], env: { SESSION_REGISTRY_REQUEST_TIMEOUT: "500ms" }, expected: { requestTimeoutMs: 500 } },
      { argv: [], env: { SESSION_REGISTRY_MAX_PENDING_REQUESTS: "32" }, expected: { maxPendingRequests: 32 } },
      // An empty variable counts as unset.
      { argv: [], env: { SESSION_REGISTRY_MAX_SESSIONS: "" }, expected: { maxSessions: 10 } },
      // A flag beats its variable, even an invalid one.
      { argv: ["--max-sessions", "5"], env: { SESSION_REGISTRY_MAX_SESSIONS: "6" }, expected: { maxSessions: 5 } },
      { argv: ["--log-level", "error"], env: { SESSION_REGISTRY_LOG_LEVEL: "loud" }, expected: { logLevel: "error" } },
      // The last of a repeated flag wins.
      { argv: ["--max-sessions", "5", "--max-sessions", "8"], expected: { maxSessions: 8 } },
    ];
    for (const { argv, env, expected } of accepted) {
      const label = [...argv, ...Object.entries(env ?? {}).map(([k, v]) => `${k}=${v}`)].join(" ");
      it(`accepts ${label}`, () => {
        expect(parse(argv, env)).to.deep.equal({ ...DEFAULT_CONFIG, help: false, ...expected });
      });
    }

    const rejected: { argv: string[]; env?: Env; message: RegExp }[] = [
      { argv: ["--max-sessions", "abc"], message: /^--max-sessions must be an integer from 1 to 1000000, got "abc"$/ },
      { argv: ["--max-sessions", "0"], message: /^--max-sessions must be an integer from 1 to 1000000, got "0"$/ },
      { argv: ["--max-sessions", "1000001"], message: /^--max-sessions must be .*got "1000001"$/ },
      { argv: ["--max-sessions", "-1"], message: /^--max-sessions needs a value \(write --max-sessions=VALUE/ },
      { argv: ["--max-sessions=-1"], message: /^--max-sessions must be .*got "-1"$/ },
      { argv: ["--max-sessions", "1e3"], message: /^--max-sessions must be .*got "1e3"$/ },
      { argv: ["--max-sessions", "2.5"], message: /^--max-sessions must be .*got "2.5"$/ },
      { argv: ["--max-sessions", " 5"], message: /^--max-sessions must be .*got " 5"$/ },
      { argv: ["--max-sessions="], message: /^--max-sessions must be .*got ""$/ },
      { argv: ["--max-tables", "0"], message: /^--max-tables must be an integer >= 1, got "0"$/ },
      { argv: ["--store", "redis"], message: /^--store must be "memory" or "etcd", got "redis"$/ },
      {
        argv: ["--etcd-endpoints", "127.0.0.1:2379"],
        message: /^--etcd-endpoints must be comma-separated etcd URLs .*got "127.0.0.1:2379"$/,
      },
      { argv: ["--etcd-endpoints", "grpc://e:2379"], message: /^--etcd-endpoints must be comma-separated etcd URLs/ },
      { argv: ["--etcd-endpoints", "http://e:2379/v3"], message: /^--etcd-endpoints must be .*got "http:\/\/e:2379\/v3"$/ },
      { argv: ["--etcd-endpoints", "http://a:1,,http://b:2"], message: /^--etcd-endpoints must be/ },
      { argv: ["--etcd-endpoints", "http://u:p@e:2379"], message: /^--etcd-endpoints must be/ },
      { argv: ["--etcd-endpoints", "http://a:1,https://b:2"], message: /^--etcd-endpoints must be .*all http:\/\/ or all https:\/\// },
      { argv: ["--etcd-endpoints="], message: /^--etcd-endpoints must be/ },
      { argv: ["--etcd-prefix", "session-registry/"], message: /^--etcd-prefix must start and end with "\/".*got "session-registry\/"$/ },
      { argv: ["--etcd-prefix", "/session-registry"], message: /^--etcd-prefix must start and end with "\/"/ },
      { argv: ["--etcd-prefix", "/a//b/"], message: /^--etcd-prefix must start and end with "\/".*without "\/\/"/ },
      { argv: ["--etcd-prefix="], message: /^--etcd-prefix must start and end/ },
      { argv: ["--etcd-read-cache", "maybe"], message: /^--etcd-read-cache must be on or off, got "maybe"$/ },
      { argv: ["--etcd-ca", ""], message: /^--etcd-ca must be a file path, got ""$/ },
      { argv: ["--etcd-ca", "ca.pem"], message: /^--etcd-ca needs https:\/\/ --etcd-endpoints/ },
      {
        argv: ["--etcd-endpoints", "https://e:1", "--etcd-cert", "c.pem"],
        message: /^--etcd-cert needs --etcd-key as well/,
      },
      { argv: ["--etcd-endpoints", "https://e:1", "--etcd-key", "k.pem"], message: /^--etcd-key needs --etcd-cert as well/ },
      { argv: ["--etcd-cert", "c.pem", "--etcd-key", "k.pem"], message: /^--etcd-cert needs https:\/\/ --etcd-endpoints/ },
      { argv: ["--etcd-user", "sr"], message: /^--etcd-user needs a password as well: set SESSION_REGISTRY_ETCD_PASSWORD/ },
      { argv: ["--etcd-password", "pw"], message: /^--etcd-password needs --etcd-user as well$/ },
      { argv: ["--etcd-user", "a:b", "--etcd-password", "pw"], message: /^--etcd-user must be a non-empty name without ":"/ },
      { argv: ["--etcd-user", "sr", "--etcd-password="], message: /^--etcd-password must not be empty/ },
      {
        argv: [],
        env: { SESSION_REGISTRY_ETCD_PREFIX: "x" },
        message: /^--etcd-prefix \(from SESSION_REGISTRY_ETCD_PREFIX\) must start and end with "\/"/,
      },
      { argv: ["--log-level", "verbose"], message: /^--log-level must be one of debug, info, warn, error, silent, got "verbose"$/ },
      { argv: ["--shutdown-grace", "soon"], message: /^--shutdown-grace must be a duration.*got "soon"$/ },
      { argv: ["--shutdown-grace", "10d"], message: /^--shutdown-grace must be a duration from 0s to 24h.*got "10d"$/ },
      { argv: ["--shutdown-grace", "25h"], message: /^--shutdown-grace must be/ },
      { argv: ["--shutdown-grace", "100000"], message: /^--shutdown-grace must be .*got "100000"$/ },
      { argv: ["--max-receive-message-size", "1MiB"], message: /^--max-receive-message-size must be an integer .*got "1MiB"$/ },
      { argv: ["--max-receive-message-size", "0"], message: /^--max-receive-message-size must be an integer from 1 to 2147483647/ },
      { argv: ["--max-receive-message-size", "2147483648"], message: /^--max-receive-message-size must be/ },
      {
        argv: ["--memory-budget", "15MiB"],
        message: /^--memory-budget must be a size of at least 16MiB: bytes, or a whole number with KiB, MiB or GiB, got "15MiB"$/,
      },
      { argv: ["--memory-budget", "1.5GiB"], message: /^--memory-budget must be a size .*got "1.5GiB"$/ },
      { argv: ["--memory-budget", "512MB"], message: /^--memory-budget must be a size .*got "512MB"$/ },
      { argv: ["--watch-history-bytes", "0"], message: /^--watch-history-bytes must be a size of at least 1 bytes/ },
      { argv: ["--watch-queue-bytes", "1000KiB"], message: /^--watch-queue-bytes must be a size of at least 1MiB/ },
      { argv: ["--watch-history", "0"], message: /^--watch-history must be an integer from 1 to 10000000, got "0"$/ },
      { argv: ["--watch-history", "10000001"], message: /^--watch-history must be an integer from 1 to 10000000, got "10000001"$/ },
      { argv: ["--watch-history", "1k"], message: /^--watch-history must be .*got "1k"$/ },
      { argv: ["--max-watchers", "0"], message: /^--max-watchers must be an integer from 1 to 1000000, got "0"$/ },
      { argv: ["--max-watchers", "1000001"], message: /^--max-watchers must be .*got "1000001"$/ },
      { argv: ["--max-watchers=-5"], message: /^--max-watchers must be .*got "-5"$/ },
      { argv: ["--watch-queue", "0"], message: /^--watch-queue must be an integer from 1 to 1000000, got "0"$/ },
      { argv: ["--watch-queue", "1000001"], message: /^--watch-queue must be .*got "1000001"$/ },
      { argv: ["--watch-queue", "1.5"], message: /^--watch-queue must be .*got "1.5"$/ },
      { argv: ["--listen", "50051"], message: /^--listen must be host:port \(IPv6 as \[::1\]:port\).*got "50051"$/ },
      { argv: ["--listen", ":50051"], message: /^--listen must be host:port.*got ":50051"$/ },
      { argv: ["--listen", "localhost:"], message: /^--listen must be host:port.*got "localhost:"$/ },
      { argv: ["--listen", "localhost:65536"], message: /^--listen must be host:port.*got "localhost:65536"$/ },
      { argv: ["--listen", "localhost:http"], message: /^--listen must be host:port/ },
      { argv: ["--listen", "::1:50051"], message: /^--listen must be host:port.*got "::1:50051"$/ },
      { argv: ["--listen", "[::1]"], message: /^--listen must be host:port/ },
      { argv: ["--listen", "[not-v6]:1"], message: /^--listen must be host:port/ },
      { argv: ["--listen", "bad host:1"], message: /^--listen must be host:port/ },
      { argv: ["--listen"], message: /^--listen needs a value$/ },
      { argv: ["--tls-cert", ""], message: /^--tls-cert must be a file path, got ""$/ },
      { argv: ["--auth-tokens="], message: /^--auth-tokens must be a file path, got ""$/ },
      { argv: ["--metrics-listen", "9464"], message: /^--metrics-listen must be host:port.*got "9464"$/ },
      { argv: ["--insecure=yes"], message: /^--insecure takes no value$/ },
      { argv: ["--max-concurrent-streams", "0"], message: /^--max-concurrent-streams must be an integer from 1 to 2147483647, got "0"$/ },
      { argv: ["--max-concurrent-streams", "2147483648"], message: /^--max-concurrent-streams must be/ },
      { argv: ["--keepalive-time", "25h"], message: /^--keepalive-time must be a duration from 0s to 24h.*got "25h"$/ },
      { argv: ["--keepalive-time", "-1s"], message: /^--keepalive-time needs a value/ },
      { argv: ["--keepalive-timeout", "0"], message: /^--keepalive-timeout must be a duration from 1ms to 24h.*got "0"$/ },
      { argv: ["--max-connection-idle", "forever"], message: /^--max-connection-idle must be a duration.*got "forever"$/ },
      { argv: ["--max-connection-age", "1d"], message: /^--max-connection-age must be a duration.*got "1d"$/ },
      { argv: ["--max-connections", "0"], message: /^--max-connections must be an integer from 1 to 1000000, got "0"$/ },
      { argv: ["--connection-setup-timeout", "0"], message: /^--connection-setup-timeout must be a duration from 1ms to 24h.*got "0"$/ },
      { argv: ["--request-timeout", "0s"], message: /^--request-timeout must be a duration from 1ms to 24h.*got "0s"$/ },
      { argv: ["--max-pending-requests", "0"], message: /^--max-pending-requests must be an integer from 1 to 1000000, got "0"$/ },
      // TLS files come in pairs, and client certificates need TLS.
      { argv: ["--tls-cert", "s.crt"], message: /^--tls-cert needs --tls-key as well/ },
      { argv: ["--tls-key", "s.key"], message: /^--tls-key needs --tls-cert as well/ },
      { argv: ["--tls-client-ca", "ca.crt"], message: /^--tls-client-ca needs --tls-cert and --tls-key/ },
      { argv: ["--tls-client-ca", "ca.crt", "--tls-key", "s.key"], message: /^--tls-key needs --tls-cert as well/ },
      // Invalid variables name the flag and the variable.
      {
        argv: [],
        env: { SESSION_REGISTRY_MAX_SESSIONS: "lots" },
        message: /^--max-sessions \(from SESSION_REGISTRY_MAX_SESSIONS\) must be an integer from 1 to 1000000, got "lots"$/,
      },
      {
        argv: [],
        env: { SESSION_REGISTRY_WATCH_QUEUE: "0" },
        message: /^--watch-queue \(from SESSION_REGISTRY_WATCH_QUEUE\) must be an integer from 1 to 1000000, got "0"$/,
      },
      { argv: [], env: { SESSION_REGISTRY_LISTEN: "nowhere" }, message: /^--listen \(from SESSION_REGISTRY_LISTEN\) must be/ },
      {
        argv: [],
        env: { SESSION_REGISTRY_INSECURE: "maybe" },
        message: /^--insecure \(from SESSION_REGISTRY_INSECURE\) must be 1, true or yes \(on\) or 0, false or no \(off\), got "maybe"$/,
      },
      // Unknown flags and stray arguments.
      { argv: ["--max-session", "5"], message: /^unknown flag --max-session; did you mean --max-sessions\?$/ },
      { argv: ["--lisen", "127.0.0.1:0"], message: /^unknown flag --lisen; did you mean --listen\?$/ },
      { argv: ["--frobnicate"], message: /^unknown flag --frobnicate$/ },
      { argv: ["-x"], message: /^unknown flag -x$/ },
      { argv: ["--help=yes"], message: /^--help takes no value$/ },
      { argv: ["start"], message: /^unexpected argument "start"$/ },
      { argv: ["serve", "serve"], message: /^unexpected argument "serve"$/ },
    ];
    for (const { argv, env, message } of rejected) {
      const label = [...argv.map((a) => JSON.stringify(a)), ...Object.entries(env ?? {}).map(([k, v]) => `${k}=${v}`)].join(" ");
      it(`rejects ${label}`, () => {
        expect(rejection(argv, env)).to.match(message);
      });
    }

    it("reports --help, which wins over bad values", () => {
      expect(parse(["--help"]).help).to.equal(true);
      expect(parse(["-h"]).help).to.equal(true);
      expect(parse(["serve", "--max-sessions", "abc", "--help"]).help).to.equal(true);
    });
  });

  describe("safe defaults", () => {
    const open = /anyone who can reach it could list, register and remove sessions/;
    const tls = ["--tls-cert", "s.crt", "--tls-key", "s.key"];
    const cases: { argv: string[]; env?: Env; refused?: RegExp }[] = [
      // Loopback: anything goes.
      { argv: [] },
      { argv: ["--listen", "localhost:50051"] },
      { argv: ["--listen", "LOCALHOST:1"] },
      { argv: ["--listen", "[::1]:50051"] },
      { argv: ["--listen", "127.0.0.2:1", ...tls] },
      // Plaintext elsewhere: refused, tokens or not.
      {
        argv: ["--listen", "0.0.0.0:50051"],
        refused: /^refusing to listen on 0\.0\.0\.0:50051 in plaintext: 0\.0\.0\.0 is not a loopback address/,
      },
      { argv: ["--listen", "[::]:50051"], refused: /^refusing to listen on \[::\]:50051 in plaintext/ },
      { argv: ["--listen", "192.168.1.20:50051"], refused: /in plaintext.*--tls-cert, --tls-key.*--insecure to accept the risk$/ },
      { argv: ["--listen", "registry.example.com:443"], refused: /^refusing to listen on registry\.example\.com:443 in plaintext/ },
      { argv: ["--listen", "[fe80::1]:1"], refused: /in plaintext/ },
      {
        argv: ["--listen", "0.0.0.0:1", "--auth-tokens", "t"],
        refused: /in plaintext: .*and the tokens of --auth-tokens would cross the network in clear text/,
      },
      { argv: [], env: { SESSION_REGISTRY_LISTEN: "10.0.0.1:1" }, refused: /^refusing to listen on 10\.0\.0\.1:1 in plaintext/ },
      // TLS elsewhere: only with client authentication.
      {
        argv: ["--listen", "0.0.0.0:1", ...tls],
        refused: /^refusing to listen on 0\.0\.0\.0:1 without client authentication: .*Add --auth-tokens or --tls-client-ca/,
      },
      { argv: ["--listen", "0.0.0.0:1", ...tls, "--auth-tokens", "t"] },
      { argv: ["--listen", "0.0.0.0:1", ...tls, "--tls-client-ca", "ca.crt"] },
      // --insecure accepts the risk.
      { argv: ["--listen", "0.0.0.0:1", "--insecure"] },
      { argv: ["--listen", "0.0.0.0:1", "--auth-tokens", "t", "--insecure"] },
      { argv: ["--listen", "0.0.0.0:1", ...tls, "--insecure"] },
      { argv: ["--listen", "0.0.0.0:1"], env: { SESSION_REGISTRY_INSECURE: "1" } },
      // The metrics endpoint has neither TLS nor auth.
      { argv: ["--metrics-listen", "127.0.0.1:9464"] },
      {
        argv: ["--metrics-listen", "0.0.0.0:9464"],
        refused: /^refusing to serve metrics on 0\.0\.0\.0:9464: 0\.0\.0\.0 is not a loopback address.*--insecure to accept the risk$/,
      },
      {
        argv: ["--listen", "0.0.0.0:1", ...tls, "--auth-tokens", "t", "--metrics-listen", "0.0.0.0:9464"],
        refused: /^refusing to serve metrics/,
      },
      { argv: ["--metrics-listen", "0.0.0.0:9464", "--insecure"] },
      // The HTTP listener serves the same API: the same rule, with the same TLS files and tokens.
      { argv: ["--http-listen", "off", "--listen", "0.0.0.0:1", "--insecure"] },
      {
        argv: ["--http-listen", "0.0.0.0:8080"],
        refused:
          /^refusing to serve HTTP on 0\.0\.0\.0:8080 in plaintext: 0\.0\.0\.0 is not a loopback address.*--insecure to accept the risk$/,
      },
      {
        argv: ["--http-listen", "0.0.0.0:8080", ...tls],
        refused: /^refusing to serve HTTP on 0\.0\.0\.0:8080 without client authentication: .*Add --auth-tokens or --tls-client-ca/,
      },
      { argv: [], env: { SESSION_REGISTRY_HTTP_LISTEN: "10.0.0.1:1" }, refused: /^refusing to serve HTTP on 10\.0\.0\.1:1 in plaintext/ },
      { argv: ["--http-listen", "0.0.0.0:8080", ...tls, "--auth-tokens", "t"] },
      { argv: ["--http-listen", "0.0.0.0:8080", "--insecure"] },
    ];
    for (const { argv, env, refused } of cases) {
      const label = [...argv, ...Object.entries(env ?? {}).map(([k, v]) => `${k}=${v}`)].join(" ") || "the defaults";
      if (refused === undefined) {
        it(`allows ${label}`, () => {
          expect(() => parse(argv, env)).to.not.throw();
        });
      } else {
        it(`refuses ${label}, saying why`, () => {
          const message = rejection(argv, env);
          expect(message).to.match(refused);
          if (/^refusing to (listen|serve HTTP)/.test(message)) expect(message).to.match(open);
        });
      }
    }

    it("turns the HTTP listener off with --http-listen off or its variable, and refuses a bad address naming the flag", () => {
      expect(parse(["--http-listen", "off"]).httpListen).to.equal(undefined);
      expect(parse([], { SESSION_REGISTRY_HTTP_LISTEN: "off" }).httpListen).to.equal(undefined);
      expect(parse(["--http-listen", "127.0.0.1:0"]).httpListen).to.equal("127.0.0.1:0");
      expect(rejection(["--http-listen", "nope"])).to.match(/^--http-listen /);
    });

    it("applies to configs built in code too (validateConfig)", () => {
      expect(() => validateConfig({ ...DEFAULT_CONFIG, listen: "0.0.0.0:1" })).to.throw(ConfigError, /in plaintext/);
      expect(() => validateConfig({ ...DEFAULT_CONFIG, listen: "0.0.0.0:1", insecure: true })).to.not.throw();
      expect(() => validateConfig({ ...DEFAULT_CONFIG, tlsKey: "k" })).to.throw(ConfigError, /--tls-key needs --tls-cert/);
    });

    const hosts: [string, boolean][] = [
      ["127.0.0.1", true],
      ["127.255.255.254", true],
      ["::1", true],
      ["0:0:0:0:0:0:0:1", true],
      ["::ffff:127.0.0.1", true],
      ["localhost", true],
      ["0.0.0.0", false],
      ["::", false],
      ["128.0.0.1", false],
      ["10.1.2.3", false],
      ["::ffff:10.0.0.1", false],
      ["localhost.example.com", false],
      ["myhost", false],
    ];
    for (const [host, loopback] of hosts) {
      it(`counts ${host} as ${loopback ? "" : "not "}loopback`, () => {
        expect(isLoopbackHost(host)).to.equal(loopback);
      });
    }
  });

  describe("defaultMaxConnections", () => {
    const limits = (soft: string) =>
      `Limit                     Soft Limit           Hard Limit           Units     \nMax open files            ${soft}                 524288               files     \n`;
    it("leaves 128 of the soft open-file limit to the daemon, and caps it at 10000", () => {
      expect(defaultMaxConnections(limits("1024"))).to.equal(896);
      expect(defaultMaxConnections(limits("1048576"))).to.equal(10_000);
      expect(defaultMaxConnections(limits("unlimited"))).to.equal(10_000);
      expect(defaultMaxConnections(limits("100"))).to.equal(16);
    });
    it("is 1000 where the limit cannot be read", () => {
      expect(defaultMaxConnections("")).to.equal(1000);
      expect(defaultMaxConnections("no such line")).to.equal(1000);
    });
  });

  describe("usageText", () => {
    it("lists every flag with its variable and default", () => {
      const text = usageText();
      for (const [flag, env, def] of [
        ["--listen", "SESSION_REGISTRY_LISTEN", "127.0.0.1:50051"],
        ["--max-sessions", "SESSION_REGISTRY_MAX_SESSIONS", "10"],
        ["--max-tables", "SESSION_REGISTRY_MAX_TABLES", "1000"],
        ["--store", "SESSION_REGISTRY_STORE", "memory"],
        ["--etcd-endpoints", "SESSION_REGISTRY_ETCD_ENDPOINTS", "http://127.0.0.1:2379"],
        ["--etcd-prefix", "SESSION_REGISTRY_ETCD_PREFIX", "/session-registry/"],
        ["--etcd-ca", "SESSION_REGISTRY_ETCD_CA", "the system's roots (with https:// endpoints)"],
        ["--etcd-cert", "SESSION_REGISTRY_ETCD_CERT", "none"],
        ["--etcd-key", "SESSION_REGISTRY_ETCD_KEY", "none"],
        ["--etcd-user", "SESSION_REGISTRY_ETCD_USER", "none (no etcd auth)"],
        ["--etcd-password", "SESSION_REGISTRY_ETCD_PASSWORD", "none"],
        ["--log-level", "SESSION_REGISTRY_LOG_LEVEL", "info"],
        ["--shutdown-grace", "SESSION_REGISTRY_SHUTDOWN_GRACE", "10s"],
        ["--max-receive-message-size", "SESSION_REGISTRY_MAX_RECEIVE_MESSAGE_SIZE", "65536"],
        ["--watch-history", "SESSION_REGISTRY_WATCH_HISTORY", "10000"],
        ["--max-watchers", "SESSION_REGISTRY_MAX_WATCHERS", "10000"],
        ["--watch-queue", "SESSION_REGISTRY_WATCH_QUEUE", "1024"],
        ["--tls-cert", "SESSION_REGISTRY_TLS_CERT", "none (plaintext)"],
        ["--tls-key", "SESSION_REGISTRY_TLS_KEY", "none"],
        ["--tls-client-ca", "SESSION_REGISTRY_TLS_CLIENT_CA", "none (no client certificates)"],
        ["--auth-tokens", "SESSION_REGISTRY_AUTH_TOKENS", "none (no token needed)"],
        ["--http-listen", "SESSION_REGISTRY_HTTP_LISTEN", "127.0.0.1:50052"],
        ["--metrics-listen", "SESSION_REGISTRY_METRICS_LISTEN", "off"],
        ["--insecure", "SESSION_REGISTRY_INSECURE=1", "off"],
        ["--max-concurrent-streams", "SESSION_REGISTRY_MAX_CONCURRENT_STREAMS", "100"],
        ["--keepalive-time", "SESSION_REGISTRY_KEEPALIVE_TIME", "60s"],
        ["--keepalive-timeout", "SESSION_REGISTRY_KEEPALIVE_TIMEOUT", "20s"],
        ["--max-connection-idle", "SESSION_REGISTRY_MAX_CONNECTION_IDLE", "30m"],
        ["--max-connection-age", "SESSION_REGISTRY_MAX_CONNECTION_AGE", "0 (never)"],
        ["--memory-budget", "SESSION_REGISTRY_MEMORY_BUDGET", "512MiB, or half node's heap limit if less"],
        ["--watch-history-bytes", "SESSION_REGISTRY_WATCH_HISTORY_BYTES", "64MiB"],
        ["--watch-queue-bytes", "SESSION_REGISTRY_WATCH_QUEUE_BYTES", "8MiB"],
        [
          "--max-connections",
          "SESSION_REGISTRY_MAX_CONNECTIONS",
          `the open-file limit less 128, at most 10000 (here ${defaultMaxConnections()})`,
        ],
        ["--connection-setup-timeout", "SESSION_REGISTRY_CONNECTION_SETUP_TIMEOUT", "10s"],
        ["--request-timeout", "SESSION_REGISTRY_REQUEST_TIMEOUT", "10s"],
        ["--max-pending-requests", "SESSION_REGISTRY_MAX_PENDING_REQUESTS", "256"],
      ] as const) {
        expect(text).to.include(flag);
        expect(text).to.include(`env ${env}, default ${def}`);
      }
      expect(text).to.include("--help");
    });

    it("has one entry per flag that parseConfig knows, and no other", () => {
      const listed = [...usageText().matchAll(/^ {2}(--[a-z-]+)/gm)].map((m) => m[1]!);
      expect(listed).to.have.length(37);
      for (const flag of listed) {
        // Every listed flag parses (a switch alone, the others with a value that may be invalid).
        const message = (() => {
          try {
            parseConfig(flag === "--insecure" ? [flag] : [flag, "x"], {});
            return "";
          } catch (err) {
            return (err as Error).message;
          }
        })();
        expect(message).to.not.match(/unknown flag/);
      }
    });
  });
});
