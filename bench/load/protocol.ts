/** What the load generator's main thread and its workers say to each other. */

/** The calls a worker makes; the same bytes go to the daemon and to the no-op server. */
export type Workload =
  /** Lookup by id, round-robin over `ids` in `table`. */
  | { kind: "lookup"; table: string; ids: string[] }
  /** Lookup by id of session i (bench/sessions.ts), i drawn uniformly from 0..size-1 for each call. */
  | { kind: "lookupRandom"; table: string; size: number }
  /** The other reads the etcd store's read cache answers: a List page of `pageSize`, a GetTable, a ListTables. */
  | { kind: "list"; table: string; pageSize: number }
  | { kind: "getTable"; table: string }
  | { kind: "listTables" }
  /** Register a new session (id and path unique to this worker and call), then Remove it by id: one pair. */
  | { kind: "registerRemove"; table: string }
  /** Register a new session and keep it: the table grows by every call. `prefix` keeps ids unique across runs. */
  | { kind: "register"; table: string; prefix: string };

/** How the calls go: gRPC over HTTP/2, or the HTTP door's Connect protocol with JSON over HTTP/1.1 (Lookup only). */
export type Transport = "grpc" | "connect-json";

export interface WorkerTask {
  /** With `run`, makes session ids unique across workers and runs. */
  worker: number;
  run: number;
  address: string;
  transport: Transport;
  /** gRPC channels (separate HTTP/2 connections) this worker opens; over HTTP/1.1, one connection per call in flight instead. */
  channels: number;
  /** Closed loop: this many calls (pairs) in flight. Open loop: the most in flight before it counts a call as dropped. */
  concurrency: number;
  workload: Workload;
  warmupMs: number;
  measureMs: number;
  /** Open loop at this many calls per second (this worker's share); closed loop when absent. */
  rate?: number;
}

export interface WorkerResult {
  /** Calls (pairs) completed in the measured window. */
  completed: number;
  /** Calls that failed; any failure makes the figure invalid. */
  errors: number;
  firstError: string | undefined;
  /** Open loop only: each measured call's latency from send to answer, in ms. */
  latenciesMs: number[];
  /** Open loop only: calls not sent because `concurrency` were already in flight. */
  dropped: number;
}
