/**
 * Prometheus metrics (`--metrics-listen host:port`, off by default), through
 * prom-client with a registry of our own, never the global one, so that two
 * daemons in one process (tests) keep their counts apart.
 *
 * Series (all but the process ones start with `session_registry_`):
 *   build_info{version,store,node}  gauge    1; the package version, the store kind (memory, etcd)
 *                                   and the Node.js version (process.version) running it
 *   tables                          gauge    tables held
 *   table_sessions{table}           gauge    sessions open per table
 *   table_max_sessions{table}       gauge    each table's session limit
 *   active_watchers                 gauge    Watch and WatchTables streams open
 *   max_watchers                    gauge    the daemon's watcher limit
 *   rpcs_total{method,code}         counter  calls by how they ended (code: OK, NOT_FOUND, ...)
 *   rpc_duration_seconds{method}    histogram  unary call latency, from arrival to answer
 *   rejections_total{reason}        counter  error statuses by ErrorInfo reason
 *   expirations_total               counter  sessions removed because their ttl ran out
 *   store_requests_total{kind}      counter  requests the store sent to etcd (etcd store only), by kind:
 *                                   reads, txns, lease_grants, lease_revokes, lease_keep_alives,
 *                                   probes (the read cache's freshness checks), fences
 *   memory_budget_bytes             gauge    --memory-budget
 *   memory_used_bytes{kind}         gauge    estimated bytes held: sessions, history, queues
 *   memory_reclaimed_bytes_total{kind}  counter  given back because the budget was full
 *   memory_reclaimed_total{kind}    counter  history events dropped, watchers ended for it
 *   connections                     gauge    connections open, on both listeners
 *   transport_connections{transport}  gauge  connections open on each listener: grpc, http
 *   connections_closed_total{reason}  counter  connections the daemon closed on its own: max_connections
 *                                   (refused as they arrived), evicted (closed to make room: no
 *                                   call started), setup_timeout, request_timeout; both listeners
 *   pending_requests                gauge    calls being read whose request is not complete yet (gRPC and HTTP)
 *   held_requests                   gauge    calls waiting unread for a --max-pending-requests slot (gRPC and HTTP)
 *   process_*, nodejs_*             prom-client's default metrics, under their usual
 *                                   names so that stock dashboards and alerts work
 *
 * Table gauges are read from the Registry at scrape time, so a deleted table's
 * series disappear with it and no write pays for them. Per-call counting is a
 * few array and map lookups: label children are cached per method and code.
 */
import { createServer, type IncomingMessage, type ServerResponse } from "node:http";

import { status } from "@grpc/grpc-js";
import { collectDefaultMetrics, Counter, Gauge, Histogram, Registry as PromRegistry } from "prom-client";

import { BUDGET_KINDS, type MemoryBudget } from "../core/budget.js";
import type { Logger } from "../core/logger.js";
import type { Table } from "../core/model.js";
import type { Registry } from "../core/registry.js";
import type { StoreObserver } from "../core/store.js";
import type { RpcRecorder } from "../transport/status.js";
import { packageVersion } from "../version.js";
import { listenOn } from "./listen-error.js";

export const METRICS_PREFIX = "session_registry_";

/** Seconds; in-memory calls take tens of microseconds, a remote store milliseconds. */
export const LATENCY_BUCKETS: readonly number[] = [
  0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10,
];

export interface Metrics extends RpcRecorder {
  /** The prom-client registry holding every series. */
  readonly prometheus: PromRegistry;
  /** Give it to the store: it counts expirations. */
  readonly observer: StoreObserver;
  /** Counts what the memory budget gave back. */
  reclaimed(kind: "history" | "queues", bytes: number, items: number): void;
  /** The exposition text, as served at /metrics. */
  text(): Promise<string>;
  /** Its content type (Prometheus text format 0.0.4). */
  readonly contentType: string;
  /** Counts a connection the daemon closed on its own, by why (see connections.ts). */
  connectionClosed(reason: string): void;
  /** Where the connection and request gauges read from, once the server exists. */
  observeTransport(source: TransportGauges): void;
}

/** What the transport gauges show, read at scrape time. */
export interface TransportGauges {
  /** Connections open on each listener that is on, by transport: grpc, http. */
  connections(): Record<string, number>;
  pendingRequests(): number;
  heldRequests(): number;
}

interface MethodSeries {
  /** Indexed by status code number. */
  readonly byCode: (Counter.Internal | undefined)[];
  readonly latency: Histogram.Internal<"method">;
}

/** What build_info labels besides the package and Node.js versions, which it reads itself. */
export interface BuildInfo {
  /** The store kind, as --store names it. */
  store: string;
  /** The requests the store has sent to the service behind it so far, by kind in camelCase (etcd only). */
  requests?: (() => Record<string, number>) | undefined;
}

export function createMetrics(registry: Registry, budget?: MemoryBudget, build: BuildInfo = { store: "memory" }): Metrics {
  const prometheus = new PromRegistry();
  const registers = [prometheus];
  const name = (n: string) => METRICS_PREFIX + n;

  // The usual *_build_info form: a constant 1 whose labels say what runs, for joins and "which version where".
  new Gauge({
    name: name("build_info"),
    help: "Always 1; labels: the daemon's version, its store (memory, etcd) and the Node.js version running it.",
    labelNames: ["version", "store", "node"] as const,
    registers,
  }).set({ version: packageVersion(), store: build.store, node: process.version }, 1);

  // Both table gauges come from one listTables per scrape: the collects run concurrently and share it.
  let tablesInFlight: Promise<Table[]> | undefined;
  const tables = () =>
    (tablesInFlight ??= registry.listTables().finally(() => {
      tablesInFlight = undefined;
    }));

  new Gauge({
    name: name("tables"),
    help: "Tables the daemon holds.",
    registers,
    async collect() {
      this.set((await tables()).length);
    },
  });
  new Gauge({
    name: name("table_sessions"),
    help: "Sessions open in each table.",
    labelNames: ["table"] as const,
    registers,
    async collect() {
      const list = await tables();
      this.reset();
      for (const t of list) this.set({ table: t.name }, t.sessionCount);
    },
  });
  new Gauge({
    name: name("table_max_sessions"),
    help: "Each table's session limit.",
    labelNames: ["table"] as const,
    registers,
    async collect() {
      const list = await tables();
      this.reset();
      for (const t of list) this.set({ table: t.name }, t.maxSessions);
    },
  });
  new Gauge({
    name: name("active_watchers"),
    help: "Watch and WatchTables streams open now.",
    registers,
    collect() {
      this.set(registry.activeWatchers);
    },
  });
  new Gauge({
    name: name("max_watchers"),
    help: "The most Watch and WatchTables streams the daemon allows open at once.",
    registers,
    collect() {
      this.set(registry.maxWatchers);
    },
  });

  const rpcs = new Counter({
    name: name("rpcs_total"),
    help: "SessionRegistry calls by method and the status code they ended with (CANCELLED: the client ended the call).",
    labelNames: ["method", "code"] as const,
    registers,
  });
  const latency = new Histogram({
    name: name("rpc_duration_seconds"),
    help: "Time from a unary call's arrival to its answer, by method (Watch streams are not timed).",
    labelNames: ["method"] as const,
    buckets: [...LATENCY_BUCKETS],
    registers,
  });
  const rejections = new Counter({
    name: name("rejections_total"),
    help: "Calls answered with an error status, by ErrorInfo reason (e.g. SESSION_LIMIT_REACHED, UNAUTHENTICATED, INTERNAL).",
    labelNames: ["reason"] as const,
    registers,
  });
  const expirations = new Counter({
    name: name("expirations_total"),
    help: "Sessions removed because their ttl ran out without a KeepAlive.",
    registers,
  });

  const storeRequests = build.requests;
  if (storeRequests !== undefined) {
    new Counter({
      name: name("store_requests_total"),
      help: "Requests the store sent to etcd, by kind: reads, txns, lease_grants, lease_revokes, lease_keep_alives, probes (the read cache's check of etcd's revision, one per batch of reads), fences (puts that bring the read cache's watch up to a probe).",
      labelNames: ["kind"] as const,
      registers,
      // Read from the store's own counts at scrape time: no request pays for the series.
      collect() {
        this.reset();
        for (const [kind, n] of Object.entries(storeRequests())) this.inc({ kind: snakeCase(kind) }, n);
      },
    });
  }

  new Gauge({
    name: name("memory_budget_bytes"),
    help: "The daemon's memory budget (--memory-budget) for sessions, watch history and watch queues.",
    registers,
    collect() {
      if (budget !== undefined && Number.isFinite(budget.limit)) this.set(budget.limit);
    },
  });
  new Gauge({
    name: name("memory_used_bytes"),
    help: "Estimated bytes held against the memory budget, by kind: sessions, history, queues.",
    labelNames: ["kind"] as const,
    registers,
    collect() {
      if (budget === undefined) return;
      for (const kind of BUDGET_KINDS) this.set({ kind }, budget.usage(kind));
    },
  });
  const reclaimedBytes = new Counter({
    name: name("memory_reclaimed_bytes_total"),
    help: "Estimated bytes given back because the memory budget was full, by kind: history (oldest events dropped), queues (slowest watchers ended).",
    labelNames: ["kind"] as const,
    registers,
  });
  const reclaimedItems = new Counter({
    name: name("memory_reclaimed_total"),
    help: "History events dropped (kind=history) and watchers ended as WATCHER_TOO_SLOW (kind=queues) because the memory budget was full.",
    labelNames: ["kind"] as const,
    registers,
  });
  let transport: TransportGauges | undefined;
  const transportGauge = (gaugeName: string, help: string, read: (t: TransportGauges) => number) =>
    new Gauge({
      name: name(gaugeName),
      help,
      registers,
      collect() {
        if (transport !== undefined) this.set(read(transport));
      },
    });
  transportGauge("connections", "Connections open now, on the gRPC and HTTP listeners together.", (t) =>
    Object.values(t.connections()).reduce((a, n) => a + n, 0),
  );
  new Gauge({
    name: name("transport_connections"),
    help: "Connections open now on each listener: grpc (--listen), http (--http-listen).",
    labelNames: ["transport"] as const,
    registers,
    collect() {
      if (transport === undefined) return;
      this.reset();
      for (const [kind, n] of Object.entries(transport.connections())) this.set({ transport: kind }, n);
    },
  });
  transportGauge("pending_requests", "Calls being read whose request has not fully arrived.", (t) => t.pendingRequests());
  transportGauge("held_requests", "Calls waiting, unread, for a --max-pending-requests slot.", (t) => t.heldRequests());
  const connectionsClosed = new Counter({
    name: name("connections_closed_total"),
    help: "Connections the daemon closed on its own, on either listener: max_connections (refused as they arrived), evicted (had started no call, closed to make room at the cap), setup_timeout, request_timeout.",
    labelNames: ["reason"] as const,
    registers,
  });

  collectDefaultMetrics({ register: prometheus });

  const byMethod = new Map<string, MethodSeries>();
  const byReason = new Map<string, Counter.Internal>();

  return {
    prometheus,
    contentType: prometheus.contentType,
    observer: {
      expired: () => expirations.inc(),
    },
    text: () => prometheus.metrics(),
    reclaimed(kind, bytes, items) {
      reclaimedBytes.inc({ kind }, bytes);
      reclaimedItems.inc({ kind }, items);
    },
    connectionClosed: (reason) => connectionsClosed.inc({ reason }),
    observeTransport(source) {
      transport = source;
    },
    rpcEnded(method, code, reason, startedAt) {
      let series = byMethod.get(method);
      if (series === undefined) {
        series = { byCode: [], latency: latency.labels(method) };
        byMethod.set(method, series);
      }
      let counter = series.byCode[code];
      if (counter === undefined) {
        counter = rpcs.labels(method, codeName(code));
        series.byCode[code] = counter;
      }
      counter.inc();
      if (startedAt !== undefined) series.latency.observe((performance.now() - startedAt) / 1000);
      if (reason !== undefined) {
        let rejected = byReason.get(reason);
        if (rejected === undefined) {
          rejected = rejections.labels(reason);
          byReason.set(reason, rejected);
        }
        rejected.inc();
      }
    },
  };
}

/** `status.NOT_FOUND` -> "NOT_FOUND"; grpc-js's status is a numeric enum with reverse names. */
function codeName(code: status): string {
  return (status as unknown as Record<number, string | undefined>)[code] ?? String(code);
}

export interface MetricsServer {
  /** `host:port` with the bound port; IPv6 hosts in brackets. */
  address: string;
  /** Stops listening and closes every connection (keep-alive ones too). Idempotent. */
  close(): Promise<void>;
}

/**
 * Serves `GET /metrics` (and HEAD) over plain HTTP on `listen`; anything else
 * is 404, or 405 for another method on /metrics. Rejects when it cannot bind.
 * The endpoint has no auth: bind it to loopback or a private network.
 */
export async function startMetricsServer(listen: string, metrics: Metrics, log: Logger): Promise<MetricsServer> {
  const server = createServer((req, res) => serve(req, res, metrics, log));
  const address = await listenOn(server, "--metrics-listen", listen);
  // After listening, an error is a broken socket or the like: log it, keep serving.
  server.on("error", (err) => log.error({ err }, "metrics server error"));
  log.debug({ address, path: "/metrics" }, "serving metrics");

  let closing: Promise<void> | undefined;
  return {
    address,
    close() {
      closing ??= new Promise<void>((resolve) => {
        server.close(() => resolve());
        // close() alone waits for keep-alive connections (a scraper's) to go idle and time out.
        server.closeAllConnections();
      });
      return closing;
    },
  };
}

function serve(req: IncomingMessage, res: ServerResponse, metrics: Metrics, log: Logger): void {
  const path = (req.url ?? "/").split("?", 1)[0];
  if (path !== "/metrics") {
    res.writeHead(404, { "content-type": "text/plain; charset=utf-8" }).end("not found; metrics are at /metrics\n");
    return;
  }
  if (req.method !== "GET" && req.method !== "HEAD") {
    res.writeHead(405, { "content-type": "text/plain; charset=utf-8", allow: "GET, HEAD" }).end("use GET\n");
    return;
  }
  metrics.text().then(
    (body) => {
      res.writeHead(200, { "content-type": metrics.contentType, "content-length": Buffer.byteLength(body) });
      res.end(req.method === "HEAD" ? undefined : body);
    },
    (err: unknown) => {
      log.error({ err }, "collecting metrics failed");
      res.writeHead(500, { "content-type": "text/plain; charset=utf-8" }).end("collecting metrics failed\n");
    },
  );
}

/** leaseGrants -> lease_grants: Prometheus label values in the style of the rest of the exposition. */
function snakeCase(camel: string): string {
  return camel.replace(/[A-Z]/g, (c) => `_${c.toLowerCase()}`);
}
