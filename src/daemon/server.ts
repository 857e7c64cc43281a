/**
 * Wires a daemon together: store, Registry, the `default` table, and a gRPC
 * server serving SessionRegistry, grpc.health.v1.Health and reflection,
 * over plaintext or TLS, with optional token auth and a metrics endpoint;
 * and the same SessionRegistry over HTTP (Connect, gRPC-Web) with --http-listen.
 * Connections come in through the ConnectionGate (./connections.ts), and
 * every call passes the CallGuard interceptor (../transport/call-guard.ts)
 * before grpc-js reads its request.
 * Used by main.ts and by tests, which start real daemons on 127.0.0.1:0.
 */
import { readFile } from "node:fs/promises";

import * as grpc from "@grpc/grpc-js";

import { parseListen } from "../args/index.js";
import { MemoryBudget } from "../core/budget.js";
import { Reason, RegistryError, shuttingDown } from "../core/errors.js";
import { DEFAULT_TABLE, Registry } from "../core/registry.js";
import type { EtcdStoreOptions } from "../store/etcd/store.js";
import { MemoryStore } from "../store/memory/store.js";
import type { Store, StoreObserver } from "../core/store.js";
import { AuthConfigError, loadAuthTokens, type Authorizer } from "../transport/auth.js";
import { CallGuard } from "../transport/call-guard.js";
import { SessionRegistryService } from "../transport/service.js";
import { packageVersion } from "../version.js";
import { AvailabilityMonitor, storeProblem } from "./availability.js";
import { reportBudget, resolveMemoryBudget, type BudgetReport } from "./budget.js";
import { ConfigError, validateConfig, type DaemonConfig } from "./config.js";
import { ConnectionGate } from "./connections.js";
import { DaemonHealth } from "./health.js";
import { listenError } from "./listen-error.js";
import { createLogger, type Logger } from "./logger.js";
import type { HttpServer } from "./http.js";
import type { Metrics, MetricsServer } from "./metrics.js";
import { createReflectionService } from "./reflection.js";
import { loadServerTransport, type TransportSecurity } from "./tls.js";

/** Responses are bounded by List's page cap; this leaves a wide margin and still stops a runaway message. */
export const MAX_SEND_MESSAGE_BYTES = 16 * 1024 * 1024;

export interface RunningDaemon {
  /** `host:port` with the bound port, e.g. "127.0.0.1:41234"; IPv6 hosts in brackets. */
  address: string;
  port: number;
  /** plaintext, tls, or mtls (TLS with client certificates required). */
  security: TransportSecurity;
  /** Whether calls need a bearer token (--auth-tokens). */
  auth: boolean;
  /** `http://host:port` (or https) of the HTTP listener with its bound port, when --http-listen is on. */
  httpUrl: string | undefined;
  /** `host:port` of the /metrics endpoint with its bound port, when --metrics-listen is set. */
  metricsAddress: string | undefined;
  /**
   * Why health reports NOT_SERVING now because the store (etcd) is
   * unavailable, e.g. "etcd at http://127.0.0.1:2379 is unreachable
   * (connection refused)"; undefined while the store serves.
   */
  readonly storeProblem: string | undefined;
  registry: Registry;
  /**
   * Shuts down gracefully, in order: health turns NOT_SERVING; the server
   * takes no new calls (new connections are refused, open ones get GOAWAY)
   * while running unary calls finish; open watches (registry and health)
   * end at once with UNAVAILABLE; after `graceMs` (default: the config's
   * shutdownGraceMs) whatever remains is cancelled. The HTTP listener
   * closes alongside, within the same grace. Then the metrics
   * endpoint and the store close. Idempotent: later calls return the first
   * call's promise.
   */
  shutdown(graceMs?: number): Promise<void>;
}

export interface DaemonDeps {
  /** A store to use instead of the one `config.store` names. The daemon owns it: shutdown closes it. */
  store?: Store;
  /** How often health checks a store that can be unreachable (one with `probe`, i.e. etcd); default 1 s. */
  probeIntervalMs?: number;
  logger?: Logger;
  /** How often repeated refusals (connections, calls) are logged, as one line with a count; default 10 s. */
  refusalLogIntervalMs?: number;
}

/** After a request timeout, how long its status has to reach the client before the connection is closed. */
const TIMED_OUT_CONNECTION_CLOSE_MS = 1000;

/**
 * Starts a daemon; rejects (with everything it opened closed again) if the
 * store, a file or a port fails. A bad config, TLS file or auth tokens file
 * rejects with ConfigError before anything is opened.
 */
export async function startDaemon(config: DaemonConfig, deps: DaemonDeps = {}): Promise<RunningDaemon> {
  validateConfig(config);
  const budgetBytes = resolveMemoryBudget(config.memoryBudget);
  const log = deps.logger ?? createLogger({ level: config.logLevel });
  const { host } = parseListen(config.listen);
  // Files first: a missing or bad one stops start-up before anything opens.
  // etcd3, prom-client and connect are loaded only when the config uses them:
  // each costs start-up time that a daemon without them should not pay.
  const [transport, authorizer, reflection, etcdOptions, metricsModule, httpModule] = await Promise.all([
    loadServerTransport(config),
    loadAuthorizer(config.authTokensFile),
    createReflectionService(),
    deps.store === undefined && config.store === "etcd" ? loadEtcdOptions(config) : undefined,
    config.metricsListen !== undefined ? import("./metrics.js") : undefined,
    config.httpListen !== undefined ? import("./http.js") : undefined,
  ]);

  // The store exists before the metrics that read the registry over it; its observer forwards once they do.
  let metrics: Metrics | undefined;
  const observer: StoreObserver = { expired: (table, session) => metrics?.observer.expired(table, session) };
  const budget = new MemoryBudget(budgetBytes);
  const store = deps.store ?? (await createStore(config, observer, etcdOptions, budget));
  const probe = probeOf(store);
  // What GetServerInfo and build_info name: a store handed in through deps
  // (tests) by what it is, not by config.store. The etcd store, loaded
  // lazily, is the one that can be unreachable: it has a probe.
  const storeKind = store instanceof MemoryStore ? "memory" : probe !== undefined ? "etcd" : config.store;
  const registry = new Registry(store, { maxWatchers: config.maxWatchers });
  if (metricsModule !== undefined)
    metrics = metricsModule.createMetrics(registry, budget, { store: storeKind, requests: requestsOf(store) });
  const budgetReport = reportBudget(budget, log, () => metrics);

  const logIntervalMs = deps.refusalLogIntervalMs ?? 10_000;
  const recorder = metrics;
  // Both listeners count the connections they close on their own in one series.
  const connectionClosed = recorder !== undefined ? (reason: string) => recorder.connectionClosed(reason) : undefined;
  // The guard and the gate know each other: calls start connections' lives, timeouts end them.
  let gate: ConnectionGate | undefined;
  const guard = new CallGuard({
    log,
    ...(authorizer !== undefined ? { authorizer } : {}),
    ...(metrics !== undefined ? { metrics } : {}),
    requestTimeoutMs: config.requestTimeoutMs,
    maxPendingRequests: config.maxPendingRequests,
    logIntervalMs,
    callStarted: (connection) => gate?.callStarted(connection),
    closeConnection: (connection) => gate?.closeSoon(connection),
  });
  const server = new grpc.Server({ ...serverOptions(config), interceptors: [guard.interceptor] });
  gate = new ConnectionGate(
    server.createConnectionInjector(transport.credentials),
    {
      maxConnections: config.maxConnections,
      setupTimeoutMs: config.connectionSetupTimeoutMs,
      logIntervalMs,
      closeDelayMs: TIMED_OUT_CONNECTION_CLOSE_MS,
      ...(connectionClosed !== undefined ? { closed: connectionClosed } : {}),
    },
    log,
  );
  const open = gate;
  const health = new DaemonHealth();
  const version = packageVersion();
  const service = new SessionRegistryService(registry, log, {
    serverInfo: () => ({ version, store: storeKind, storeAvailable: health.isStoreAvailable }),
    watchQueue: config.watchQueue,
    watchQueueBytes: config.watchQueueBytes,
    budget,
    ...(authorizer !== undefined ? { authorizer } : {}),
    ...(metrics !== undefined ? { metrics } : {}),
  });
  service.addToServer(server);
  health.addToServer(server);
  reflection.addToServer(server);

  let port: number;
  let metricsServer: MetricsServer | undefined;
  let httpServer: HttpServer | undefined;
  let monitor: AvailabilityMonitor | undefined;
  recorder?.observeTransport({
    connections: () => (httpServer !== undefined ? { grpc: open.size, http: httpServer.connections } : { grpc: open.size }),
    pendingRequests: () => guard.pendingRequests,
    heldRequests: () => guard.heldRequests,
  });
  try {
    // Before binding, so that no client ever sees a daemon without its `default` table.
    // A store that can be unreachable (etcd) may be so now: the daemon then
    // starts NOT_SERVING, and creates the table once the store is back.
    let defaultReady = false;
    const createDefault = async () => {
      if (defaultReady) return;
      await registry.createTable({ table: DEFAULT_TABLE, maxSessions: 0 });
      defaultReady = true;
    };
    let problem: string | undefined;
    try {
      await createDefault();
    } catch (err) {
      if (probe === undefined || !isStoreUnavailable(err)) throw err;
      problem = storeProblem(err);
      log.warn(
        { health: "NOT_SERVING", why: problem },
        "the store is unavailable at start-up; health reports NOT_SERVING until it is back",
      );
      health.setStoreAvailable(false);
    }
    if (probe !== undefined) {
      monitor = new AvailabilityMonitor({
        initial: defaultReady,
        ...(problem !== undefined ? { initialProblem: problem } : {}),
        ...(deps.probeIntervalMs !== undefined ? { intervalMs: deps.probeIntervalMs } : {}),
        log,
        check: async () => {
          await probe();
          await createDefault();
        },
        onChange: (available) => health.setStoreAvailable(available),
      });
    }
    port = await bind(gate, config.listen);
    if (httpModule !== undefined) {
      const calls = service.calls;
      httpServer = await httpModule.startHttpServer(
        config,
        transport,
        log,
        async () => {
          const [{ connectHandler }, { pageHandler }] = await Promise.all([
            import("../transport/connect/service.js"),
            import("../transport/page.js"),
          ]);
          // What is not an RPC: the live page at `/`, else 404.
          return connectHandler(calls, {
            readMaxBytes: config.maxReceiveMessageBytes,
            writeMaxBytes: MAX_SEND_MESSAGE_BYTES,
            // One --max-pending-requests for both listeners.
            slots: guard.slots,
            fallback: pageHandler(),
          });
        },
        connectionClosed,
      );
    }
    if (metricsModule !== undefined && metrics !== undefined) {
      metricsServer = await metricsModule.startMetricsServer(config.metricsListen!, metrics, log);
    }
  } catch (err) {
    gate.stopAccepting();
    server.forceShutdown();
    gate.closeAll();
    await httpServer?.close(0);
    budgetReport.stop();
    await monitor?.stop();
    await store.close().catch((closeErr: unknown) => log.warn({ err: closeErr }, "closing the store failed"));
    throw err;
  }

  const address = `${host.includes(":") ? `[${host}]` : host}:${port}`;
  const { help: _help, etcdPassword, ...rest } = config;
  // The etcd password never reaches a log; only whether there is one (none: no key, like any unset option).
  const effective = { ...rest, etcdPassword: etcdPassword === undefined ? undefined : "[redacted]", memoryBudget: budgetBytes };
  log.info(
    {
      address,
      http: httpServer !== undefined ? `${httpServer.scheme}://${httpServer.address}` : "off",
      security: transport.security,
      auth: authorizer !== undefined ? "tokens" : "none",
      metrics: metricsServer?.address ?? "off",
      // Paths only: the tokens file's contents and the TLS key never reach a log.
      config: effective,
    },
    "daemon started",
  );
  if (config.insecure) {
    // Say what --insecure let through, if anything: the refusal it waived.
    try {
      validateConfig({ ...config, insecure: false });
    } catch (err) {
      log.warn({ address, waived: (err as Error).message }, "--insecure: serving without the usual protection");
    }
  }

  let stopping: Promise<void> | undefined;
  return {
    address,
    port,
    security: transport.security,
    auth: authorizer !== undefined,
    httpUrl: httpServer !== undefined ? `${httpServer.scheme}://${httpServer.address}` : undefined,
    metricsAddress: metricsServer?.address,
    get storeProblem() {
      return monitor?.problem;
    },
    registry,
    shutdown(graceMs = config.shutdownGraceMs) {
      stopping ??= shutdown(
        { server, gate, guard, service, health, store, httpServer, metricsServer, monitor, budgetReport },
        graceMs,
        log,
      );
      return stopping;
    },
  };
}

/** The gRPC server's limits; see the flags in config.ts. */
export function serverOptions(config: DaemonConfig): grpc.ServerOptions {
  const options: grpc.ServerOptions = {
    "grpc.max_receive_message_length": config.maxReceiveMessageBytes,
    "grpc.max_send_message_length": MAX_SEND_MESSAGE_BYTES,
    // Per connection; a client's calls beyond it wait in its own HTTP/2 layer for a free stream.
    "grpc.max_concurrent_streams": config.maxConcurrentStreams,
    "grpc.keepalive_timeout_ms": config.keepaliveTimeoutMs,
  };
  // grpc-js's defaults for these are "never". It also enforces no minimum
  // interval on clients' pings (there is no ping strike policy to relax), so
  // an SDK's keepalive pings are never answered with GOAWAY.
  if (config.keepaliveTimeMs > 0) options["grpc.keepalive_time_ms"] = config.keepaliveTimeMs;
  if (config.maxConnectionIdleMs > 0) options["grpc.max_connection_idle_ms"] = config.maxConnectionIdleMs;
  // No grace after the age: a running watch keeps its (old) connection; new calls go to a new one.
  if (config.maxConnectionAgeMs > 0) options["grpc.max_connection_age_ms"] = config.maxConnectionAgeMs;
  return options;
}

async function loadAuthorizer(path: string | undefined): Promise<Authorizer | undefined> {
  if (path === undefined) return undefined;
  try {
    return await loadAuthTokens(path);
  } catch (err) {
    // A bad file is a bad flag: main exits 2, as for any other.
    if (err instanceof AuthConfigError) throw new ConfigError(`--auth-tokens: ${err.message}`, { cause: err });
    throw err;
  }
}

/** A store that can be unreachable (etcd) tells health so through `probe`. */
interface ProbedStore {
  probe(): Promise<void>;
}

function probeOf(store: Store): (() => Promise<void>) | undefined {
  const candidate = store as Partial<ProbedStore>;
  return typeof candidate.probe === "function" ? () => (store as unknown as ProbedStore).probe() : undefined;
}

/** A store with a service behind it (etcd) counts the requests it made to it through `calls`. */
interface CountingStore {
  calls(): object;
}

function requestsOf(store: Store): (() => Record<string, number>) | undefined {
  const candidate = store as Partial<CountingStore>;
  return typeof candidate.calls === "function" ? () => (store as unknown as CountingStore).calls() as Record<string, number> : undefined;
}

function isStoreUnavailable(err: unknown): boolean {
  return err instanceof RegistryError && err.reason === Reason.STORE_UNAVAILABLE;
}

type EtcdConnection = Omit<EtcdStoreOptions, "prefix" | "observer">;

/** The etcd connection options of the config, with the TLS files read; an unreadable file is a ConfigError. */
async function loadEtcdOptions(config: DaemonConfig): Promise<EtcdConnection> {
  const read = async (flag: string, path: string | undefined): Promise<Buffer | undefined> => {
    if (path === undefined) return undefined;
    try {
      return await readFile(path);
    } catch (err) {
      throw new ConfigError(`--${flag}: cannot read ${path}: ${(err as NodeJS.ErrnoException).code ?? (err as Error).message}`, {
        cause: err,
      });
    }
  };
  const [ca, cert, key] = await Promise.all([
    read("etcd-ca", config.etcdCa),
    read("etcd-cert", config.etcdCert),
    read("etcd-key", config.etcdKey),
  ]);
  const options: EtcdConnection = { endpoints: [...config.etcdEndpoints] };
  if (config.etcdEndpoints.every((u) => u.startsWith("https://")) && (ca !== undefined || cert !== undefined)) {
    options.tls = { ...(ca !== undefined ? { ca } : {}), ...(cert !== undefined ? { cert } : {}), ...(key !== undefined ? { key } : {}) };
  }
  if (config.etcdUser !== undefined && config.etcdPassword !== undefined) {
    options.auth = { username: config.etcdUser, password: config.etcdPassword };
  }
  return options;
}

async function createStore(
  config: DaemonConfig,
  observer: StoreObserver,
  etcd: EtcdConnection | undefined,
  budget: MemoryBudget,
): Promise<Store> {
  const limits = {
    defaultMaxSessions: config.maxSessions,
    maxTables: config.maxTables,
    watchHistory: config.watchHistory,
    watchHistoryBytes: config.watchHistoryBytes,
  };
  switch (config.store) {
    case "etcd": {
      const { EtcdStore } = await import("../store/etcd/store.js");
      return new EtcdStore(limits, {
        ...(etcd ?? { endpoints: [...config.etcdEndpoints] }),
        prefix: config.etcdPrefix,
        observer,
        readCache: config.etcdReadCache,
      });
    }
    case "memory":
      return new MemoryStore(limits, { observer, budget });
  }
}

/** Listens through the gate (see connections.ts for why not bindAsync), with an error that says which address failed and why. */
async function bind(gate: ConnectionGate, listen: string): Promise<number> {
  const { host, port } = parseListen(listen);
  try {
    return await gate.listen(host, port);
  } catch (err) {
    throw listenError("--listen", listen, err);
  }
}

interface DaemonParts {
  server: grpc.Server;
  gate: ConnectionGate;
  guard: CallGuard;
  service: SessionRegistryService;
  health: DaemonHealth;
  store: Store;
  httpServer: HttpServer | undefined;
  metricsServer: MetricsServer | undefined;
  monitor: AvailabilityMonitor | undefined;
  budgetReport: BudgetReport;
}

/**
 * The shutdown order of RunningDaemon.shutdown. Health goes first, so that
 * a load balancer watching it stops sending calls. The gate stops accepting
 * connections and closes those that never started a call. tryShutdown then
 * stops accepting calls (GOAWAY) and lets running ones finish; after the
 * grace, forceShutdown cancels the rest, and the gate closes any socket left. Watches never finish on their own, so
 * they are ended right away with UNAVAILABLE, which tells their clients to
 * reconnect (elsewhere). The store is closed only once the server is down:
 * closing it clears the tables that running unary calls still use. The
 * promise settles when the server is down and everything closed, whichever
 * way the server got there.
 */
async function shutdown(parts: DaemonParts, graceMs: number, log: Logger): Promise<void> {
  const { server, gate, guard, service, health, store, httpServer, metricsServer, monitor, budgetReport } = parts;
  log.info({ graceMs, openWatches: service.openWatches, openConnections: gate.size }, "shutting down");
  health.setNotServing();
  // New connections are refused; those that never started a call have nothing to finish.
  gate.stopAccepting();
  gate.closeUnstarted();
  // Stopped now (no more health changes), awaited before the store closes under its check.
  const monitorStopped = monitor?.stop();
  // The HTTP listener stops accepting now too; its watches end with the others below, its calls within the grace.
  const httpClosed = httpServer?.close(graceMs);
  await new Promise<void>((resolve) => {
    const timer = setTimeout(() => {
      log.warn({ graceMs }, "grace period over; cancelling the remaining calls");
      server.forceShutdown();
      resolve();
    }, graceMs);
    server.tryShutdown(() => {
      clearTimeout(timer);
      resolve();
    });
    service.endAllWatches(shuttingDown());
    health.endWatches();
  });
  // The server is down (or forced down); what it never took over goes too.
  gate.closeAll();
  guard.flushLogs();
  await httpClosed;
  try {
    await metricsServer?.close();
  } catch (err) {
    log.warn({ err }, "closing the metrics server failed");
  }
  await monitorStopped;
  try {
    await store.close();
  } catch (err) {
    log.warn({ err }, "closing the store failed");
  }
  budgetReport.stop();
  log.info({}, "shut down");
}
