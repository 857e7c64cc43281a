import { expect } from "chai";

import { ConfigError, DEFAULT_CONFIG, parseConfig, usageText, type DaemonConfig } from "../../src/daemon/config.js";

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
        logLevel: "info",
        shutdownGraceMs: 10_000,
        maxReceiveMessageBytes: 1024 * 1024,
        watchHistory: 10_000,
        maxWatchers: 10_000,
        watchQueue: 1024,
        help: false,
      });
      expect(parse([])).to.deep.include(DEFAULT_CONFIG);
    });

    it("accepts and ignores a leading serve command", () => {
      expect(parse(["serve", "--max-sessions", "3"]).maxSessions).to.equal(3);
      expect(parse(["serve"])).to.deep.equal(parse([]));
    });

    const accepted: { argv: string[]; env?: Env; expected: Partial<DaemonConfig> }[] = [
      { argv: ["--listen", "0.0.0.0:7000"], expected: { listen: "0.0.0.0:7000" } },
      { argv: ["--listen=127.0.0.1:0"], expected: { listen: "127.0.0.1:0" } },
      { argv: ["--listen", "localhost:65535"], expected: { listen: "localhost:65535" } },
      { argv: ["--listen", "[::1]:50051"], expected: { listen: "[::1]:50051" } },
      { argv: ["--listen", "[::]:0"], expected: { listen: "[::]:0" } },
      { argv: ["--max-sessions", "1"], expected: { maxSessions: 1 } },
      { argv: ["--max-sessions", "1000000"], expected: { maxSessions: 1_000_000 } },
      { argv: ["--max-tables", "1"], expected: { maxTables: 1 } },
      { argv: ["--store", "memory"], expected: { store: "memory" } },
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
      // Environment variables, one per flag.
      { argv: [], env: { SESSION_REGISTRY_LISTEN: "127.0.0.1:9" }, expected: { listen: "127.0.0.1:9" } },
      { argv: [], env: { SESSION_REGISTRY_MAX_SESSIONS: "42" }, expected: { maxSessions: 42 } },
      { argv: [], env: { SESSION_REGISTRY_MAX_TABLES: "7" }, expected: { maxTables: 7 } },
      { argv: [], env: { SESSION_REGISTRY_STORE: "memory" }, expected: { store: "memory" } },
      { argv: [], env: { SESSION_REGISTRY_LOG_LEVEL: "warn" }, expected: { logLevel: "warn" } },
      { argv: [], env: { SESSION_REGISTRY_SHUTDOWN_GRACE: "250ms" }, expected: { shutdownGraceMs: 250 } },
      { argv: [], env: { SESSION_REGISTRY_MAX_RECEIVE_MESSAGE_SIZE: "2048" }, expected: { maxReceiveMessageBytes: 2048 } },
      { argv: [], env: { SESSION_REGISTRY_WATCH_HISTORY: "500" }, expected: { watchHistory: 500 } },
      { argv: [], env: { SESSION_REGISTRY_MAX_WATCHERS: "3" }, expected: { maxWatchers: 3 } },
      { argv: [], env: { SESSION_REGISTRY_WATCH_QUEUE: "16" }, expected: { watchQueue: 16 } },
      { argv: ["--watch-queue", "8"], env: { SESSION_REGISTRY_WATCH_QUEUE: "0" }, expected: { watchQueue: 8 } },
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
      { argv: ["--store", "redis"], message: /^--store must be "memory", got "redis"$/ },
      { argv: ["--log-level", "verbose"], message: /^--log-level must be one of debug, info, warn, error, silent, got "verbose"$/ },
      { argv: ["--shutdown-grace", "soon"], message: /^--shutdown-grace must be a duration.*got "soon"$/ },
      { argv: ["--shutdown-grace", "10h"], message: /^--shutdown-grace must be a duration.*got "10h"$/ },
      { argv: ["--shutdown-grace", "25h"], message: /^--shutdown-grace must be/ },
      { argv: ["--shutdown-grace", "100000"], message: /^--shutdown-grace must be .*got "100000"$/ },
      { argv: ["--max-receive-message-size", "1MiB"], message: /^--max-receive-message-size must be an integer .*got "1MiB"$/ },
      { argv: ["--max-receive-message-size", "0"], message: /^--max-receive-message-size must be an integer from 1 to 2147483647/ },
      { argv: ["--max-receive-message-size", "2147483648"], message: /^--max-receive-message-size must be/ },
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
      // Unknown flags and stray arguments.
      { argv: ["--max-session", "5"], message: /^unknown flag --max-session$/ },
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

  describe("usageText", () => {
    it("lists every flag with its variable and default", () => {
      const text = usageText();
      for (const [flag, env, def] of [
        ["--listen", "SESSION_REGISTRY_LISTEN", "127.0.0.1:50051"],
        ["--max-sessions", "SESSION_REGISTRY_MAX_SESSIONS", "10"],
        ["--max-tables", "SESSION_REGISTRY_MAX_TABLES", "1000"],
        ["--store", "SESSION_REGISTRY_STORE", "memory"],
        ["--log-level", "SESSION_REGISTRY_LOG_LEVEL", "info"],
        ["--shutdown-grace", "SESSION_REGISTRY_SHUTDOWN_GRACE", "10s"],
        ["--max-receive-message-size", "SESSION_REGISTRY_MAX_RECEIVE_MESSAGE_SIZE", "1048576"],
        ["--watch-history", "SESSION_REGISTRY_WATCH_HISTORY", "10000"],
        ["--max-watchers", "SESSION_REGISTRY_MAX_WATCHERS", "10000"],
        ["--watch-queue", "SESSION_REGISTRY_WATCH_QUEUE", "1024"],
      ] as const) {
        expect(text).to.include(flag);
        expect(text).to.include(`env ${env}, default ${def}`);
      }
      expect(text).to.include("--help");
    });
  });
});
