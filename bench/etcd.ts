/**
 * etcd store vs raw etcd: Register and Lookup throughput through a daemon
 * on `--store etcd`, and, in the same run, raw etcd3 Txns shaped like one
 * Register's and raw Ranges (a Lookup's etcd work). Plus Register and
 * Lookup through a memory-store daemon, for the "memory ≥ 10× etcd"
 * Register comparison and the read cache's "etcd Lookup ≥ 0.8× memory
 * Lookup"; List (a page of 10), GetTable and ListTables through both
 * daemons, each against the same call on the memory store; Lookup with the
 * read cache off; and the total Lookup throughput of 1, 2 and 3 daemons on
 * one etcd and prefix.
 *
 * Every figure is a closed loop: `concurrency` calls in flight, each
 * sending its next call when the previous answers, for `warmupMs` (not
 * counted) then `measureMs` (calls that complete in it are counted). The
 * Register and Lookup figures through daemons come from the worker-thread
 * generator (./load/), one generator per daemon when several run; the raw
 * requests, from the etcd3 client the store itself uses, in this process:
 * etcd, not the client, is what saturates at those rates.
 *
 * etcd is Debian's /usr/bin/etcd on loopback with a temporary data dir (the
 * tests' helper, test/helpers/etcd.ts); the daemons are started as users
 * start them (bench/daemon-process.ts). Everything is stopped in `finally`.
 */
import { randomBytes } from "node:crypto";
import { performance } from "node:perf_hooks";
import { credentials } from "@grpc/grpc-js";
import { SessionRegistryClient } from "@session-registry/client/gen/sessionregistry/v1/session_registry";
import type { ICompare, IRequestOp } from "etcd3";

import { createClient } from "../src/store/etcd/client.js";
import { Keys } from "../src/store/etcd/keys.js";
import { createdAt, get, getPrefix, put } from "../src/store/etcd/ops.js";
import { startEtcd, type TestEtcd } from "../test/helpers/etcd.js";
import { call, sessionMessage } from "./calls.js";
import { processCpuMs, startDaemonProcess, type ServerProcess } from "./daemon-process.js";
import { LoadGenerator } from "./load/generator.js";
import type { Workload } from "./load/protocol.js";
import { round } from "./stats.js";
import { compare, type UnaryBenchOptions } from "./unary.js";

export interface EtcdBenchOptions {
  warmupMs: number;
  measureMs: number;
  /** Calls in flight. */
  concurrency: number;
  /** gRPC channels (separate HTTP/2 connections) to each daemon. */
  channels: number;
  /** Sessions in the Lookup table. */
  lookupSessions: number;
}

export interface EtcdBenchResult {
  memory_register_rps: number;
  etcd_register_rps: number;
  etcd_lookup_rps: number;
  etcd_raw_txn_rps: number;
  etcd_raw_range_rps: number;
  /** A read-only Txn of the two Ranges one Lookup by id sends (the daemon's actual etcd request). */
  etcd_raw_lookup_txn_rps: number;
  etcd_register_ratio: number;
  etcd_lookup_ratio: number;
  memory_vs_etcd_register: number;
  memory_lookup_rps: number;
  /** Lookups/s through an etcd daemon with --etcd-read-cache off (every read goes to etcd). */
  etcd_uncached_lookup_rps: number;
  /** etcd-store Lookup (read cache on) over memory-store Lookup, in the same run. */
  etcd_cached_lookup_ratio: number;
  /** Total Lookups/s of 1, 2 and 3 daemons on one etcd and prefix, each driven by a generator of its own. */
  etcd_lookup_rps_1_daemon: number;
  etcd_lookup_rps_2_daemons: number;
  etcd_lookup_rps_3_daemons: number;
  /** The other cached reads, calls/s on each store, and etcd / memory for the same call. */
  memory_list_rps: number;
  etcd_list_rps: number;
  etcd_cached_list_ratio: number;
  memory_get_table_rps: number;
  etcd_get_table_rps: number;
  etcd_cached_get_table_ratio: number;
  memory_list_tables_rps: number;
  etcd_list_tables_rps: number;
  etcd_cached_list_tables_ratio: number;
  /** Daemon CPU per Lookup (µs) in the same alternating windows, memory store and etcd store; memory / etcd. */
  memory_lookup_cpu_us: number;
  etcd_lookup_cpu_us: number;
  etcd_cached_lookup_cpu_ratio: number;
  /** etcd's own CPU per cached Lookup (µs): its share of the probes (etcd shares the cores here). */
  etcd_server_cpu_us_per_lookup: number;
  /** Requests the daemon sent to etcd per call, from its /metrics: per Register (txns, reads, lease grants), per cached Lookup. */
  etcd_round_trips_per_register: number;
  etcd_probes_per_lookup: number;
  etcd_fences_per_lookup: number;
  etcd_reads_per_lookup: number;
}

/** A daemon's counts so far, from its /metrics: its store's requests by kind, and its calls answered OK by method. */
async function daemonCounts(daemon: ServerProcess): Promise<Record<string, number>> {
  const text = await (await fetch(`http://${daemon.metricsAddress!}/metrics`)).text();
  const counts: Record<string, number> = {};
  for (const m of text.matchAll(/^session_registry_store_requests_total\{kind="(\w+)"\} (\d+)$/gm)) counts[m[1]!] = Number(m[2]);
  for (const m of text.matchAll(/^session_registry_rpcs_total\{method="(\w+)",code="OK"\} (\d+)$/gm)) counts[m[1]!] = Number(m[2]);
  return counts;
}

/** Per call of `method` between two counts: the `kinds` of store request added up. */
function perCall(from: Record<string, number>, to: Record<string, number>, method: string, ...kinds: string[]): number {
  const delta = (key: string) => (to[key] ?? 0) - (from[key] ?? 0);
  return kinds.reduce((sum, kind) => sum + delta(kind), 0) / delta(method);
}

/** The reads besides Lookup that the read cache answers, as load-generator workloads. */
const OTHER_READS = {
  list: { kind: "list", table: "look", pageSize: 10 },
  get_table: { kind: "getTable", table: "look" },
  list_tables: { kind: "listTables" },
} as const satisfies Record<string, Workload>;

type OtherReads = Record<keyof typeof OTHER_READS, number>;

/** Runs `op` in a closed loop; returns completed calls per second over the measured window. */
export async function closedLoop(opts: EtcdBenchOptions, op: (i: number) => Promise<unknown>): Promise<number> {
  const start = performance.now();
  const measureFrom = start + opts.warmupMs;
  const end = measureFrom + opts.measureMs;
  let next = 0;
  let counted = 0;
  const worker = async () => {
    for (;;) {
      if (performance.now() >= end) return;
      await op(next++);
      const now = performance.now();
      if (now >= measureFrom && now < end) counted++;
    }
  };
  await Promise.all(Array.from({ length: opts.concurrency }, worker));
  return counted / (opts.measureMs / 1000);
}

/** A daemon and its channels; Registers and Lookups round-robin over the channels. */
export class Generator {
  private readonly clients: SessionRegistryClient[];

  constructor(
    readonly daemon: ServerProcess,
    channels: number,
  ) {
    this.clients = Array.from(
      { length: channels },
      () => new SessionRegistryClient(daemon.address, credentials.createInsecure(), { "grpc.use_local_subchannel_pool": 1 }),
    );
  }

  private client(i: number): SessionRegistryClient {
    return this.clients[i % this.clients.length]!;
  }

  createTable(table: string, maxSessions: number) {
    return call((cb) => this.client(0).createTable({ table, maxSessions }, cb));
  }

  register(i: number, table: string, id: string) {
    return call((cb) =>
      this.client(i).register({ requestId: "", table, session: sessionMessage({ id, name: "bench", projectPath: `/bench/${id}` }) }, cb),
    );
  }

  lookup(i: number, table: string, id: string) {
    return call((cb) => this.client(i).lookup({ table, key: { $case: "id", value: id } }, cb));
  }

  async close(): Promise<void> {
    for (const c of this.clients.splice(0)) c.close();
    await this.daemon.stop();
  }
}

export async function startGenerator(flags: string[], channels: number): Promise<Generator> {
  return new Generator(await startDaemonProcess(["--max-sessions", "1000000", ...flags]), channels);
}

/**
 * Registers/s: distinct ids and paths into one table of 1,000,000; nothing
 * is removed. Driven by the worker-thread load generator (./load/), which,
 * unlike this process's grpc-js clients, does not saturate before a
 * memory-store daemon does: the memory vs etcd comparison compares stores.
 */
async function registerRps(gen: Generator, load: LoadGenerator, opts: EtcdBenchOptions): Promise<number> {
  await gen.createTable("reg", 1_000_000);
  const { rps } = await load.run({
    address: gen.daemon.address,
    channelsPerWorker: opts.channels,
    concurrency: opts.concurrency,
    warmupMs: opts.warmupMs,
    measureMs: opts.measureMs,
    workload: { kind: "register", table: "reg", prefix: randomBytes(3).toString("hex") },
  });
  return rps;
}

/** Fills table "look" with `lookupSessions` sessions through `gen`; returns their ids. */
async function fillLookupTable(gen: Generator, opts: EtcdBenchOptions): Promise<string[]> {
  await gen.createTable("look", opts.lookupSessions);
  const ids = Array.from({ length: opts.lookupSessions }, (_, i) => `l-${i}`);
  for (let i = 0; i < ids.length; i += opts.concurrency) {
    await Promise.all(ids.slice(i, i + opts.concurrency).map((id, j) => gen.register(i + j, "look", id)));
  }
  return ids;
}

/** The etcd bench's windows as compare() takes them: three alternating rounds, the memory daemon's, then the etcd daemon's. */
function alternatingRounds(opts: EtcdBenchOptions): UnaryBenchOptions {
  return {
    warmupMs: opts.warmupMs,
    measureMs: opts.measureMs,
    rounds: 3,
    channelsPerWorker: opts.channels,
    concurrency: opts.concurrency,
    sweep: [],
    sweepWarmupMs: 0,
    sweepMeasureMs: 0,
    lookupSessions: opts.lookupSessions,
  };
}

/** A few Lookups through each daemon: a daemon's first read starts loading its read cache, which a short window would otherwise measure. */
async function warmUp(daemons: readonly ServerProcess[], ids: string[]): Promise<void> {
  for (const d of daemons) {
    const client = new SessionRegistryClient(d.address, credentials.createInsecure());
    try {
      for (let i = 0; i < 20; i++)
        await call((cb) => client.lookup({ table: "look", key: { $case: "id", value: ids[i % ids.length]! } }, cb));
    } finally {
      client.close();
    }
  }
}

/** Lookups/s by id over `ids` of table "look", through each daemon at once (its own generator each), summed. */
async function lookupRps(
  daemons: readonly ServerProcess[],
  loads: readonly LoadGenerator[],
  ids: string[],
  opts: EtcdBenchOptions,
): Promise<number> {
  await warmUp(daemons, ids);
  const each = Math.max(1, Math.floor(opts.concurrency / daemons.length));
  const runs = daemons.map((d, i) =>
    loads[i]!.run({
      address: d.address,
      channelsPerWorker: opts.channels,
      concurrency: each,
      warmupMs: opts.warmupMs,
      measureMs: opts.measureMs,
      workload: { kind: "lookup", table: "look", ids },
    }),
  );
  return (await Promise.all(runs)).reduce((sum, r) => sum + r.rps, 0);
}

/**
 * One Register's Txn (no ttl, no request_id) as raw etcd requests: 4
 * compares, 6 puts, a 5-range else-branch; distinct keys per `i`, as the
 * daemon's. `createRevision` is the table's `rev` key's.
 */
export function rawRegisterTxn(
  k: Keys,
  table: string,
  createRevision: string,
  value: string,
  i: number,
): { compare: ICompare[]; success: IRequestOp[]; failure: IRequestOp[] } {
  const id = `r-${i}`;
  const path = `/bench/${id}`;
  return {
    compare: [
      createdAt(k.rev(table), createRevision),
      createdAt(k.slot(table, i), 0),
      createdAt(k.data(table, id), 0),
      createdAt(k.path(table, path), 0),
    ],
    success: [
      put(k.slot(table, i), id),
      put(k.data(table, id), value),
      put(k.expiry(table, id), ""),
      put(k.path(table, path), id),
      put(k.name(table, "bench", id), ""),
      put(k.rev(table), ""),
    ],
    // Sent with every Register, run only when a compare fails (never here).
    failure: [
      get(k.tableMeta(table)),
      get(k.rev(table)),
      getPrefix(k.slots(table), { keys_only: true }),
      get(k.data(table, id), { keys_only: true }),
      get(k.path(table, path)),
    ],
  };
}

export async function etcdBench(opts: EtcdBenchOptions, load: LoadGenerator): Promise<EtcdBenchResult> {
  const stops: (() => Promise<void>)[] = [];
  const stopAll = async () => {
    for (const stop of stops.splice(0).reverse()) await stop().catch(() => {});
  };
  try {
    // 1. Memory store, before etcd exists (nothing else running).
    const memory = await startGenerator([], opts.channels);
    stops.push(() => memory.close());
    const memory_register_rps = await registerRps(memory, load, opts);
    const ids = await fillLookupTable(memory, opts);

    // 2. etcd store, through a daemon (the read cache on, as by default).
    const etcd: TestEtcd = await startEtcd();
    stops.push(() => etcd.stop());
    const prefix = `/bench-${randomBytes(4).toString("hex")}/`;
    const etcdFlags = (...more: string[]) => ["--store", "etcd", "--etcd-endpoints", etcd.endpoint, "--etcd-prefix", prefix, ...more];
    const gen = await startGenerator(etcdFlags("--metrics-listen", "127.0.0.1:0"), opts.channels);
    stops.push(() => gen.close());
    const beforeRegister = await daemonCounts(gen.daemon);
    const etcd_register_rps = await registerRps(gen, load, opts);
    const afterRegister = await daemonCounts(gen.daemon);
    await fillLookupTable(gen, opts);

    // Each read through both daemons (the same ids in both tables), in alternating rounds, so that a slow spell of the machine falls on both.
    await warmUp([memory.daemon, gen.daemon], ids);
    const beforeLookup = await daemonCounts(gen.daemon);
    const etcdCpuMs = () => processCpuMs(etcd.pid()!);
    const etcdCpuBefore = etcdCpuMs();
    const [memoryLookup, etcdLookup] = await compare(load, memory.daemon, gen.daemon, alternatingRounds(opts), {
      kind: "lookup",
      table: "look",
      ids,
    });
    // etcd works for the etcd daemon's windows only (the memory daemon's leave it idle): its CPU per cached Lookup is mostly the probes'.
    const etcdCpuPerLookupUs = ((etcdCpuMs() - etcdCpuBefore) * 1000) / etcdLookup.calls;
    const afterLookup = await daemonCounts(gen.daemon);
    const [memory_lookup_rps, etcd_lookup_rps] = [memoryLookup.rps, etcdLookup.rps];
    const memoryReads = {} as OtherReads;
    const etcdReads = {} as OtherReads;
    for (const [name, workload] of Object.entries(OTHER_READS) as [keyof OtherReads, Workload][]) {
      const [m, e] = await compare(load, memory.daemon, gen.daemon, alternatingRounds(opts), workload);
      memoryReads[name] = m.rps;
      etcdReads[name] = e.rps;
    }
    await memory.close();

    // The same table through a daemon that reads etcd every time.
    const uncached = await startGenerator(etcdFlags("--etcd-read-cache", "off"), opts.channels);
    stops.push(() => uncached.close());
    const etcd_uncached_lookup_rps = await lookupRps([uncached.daemon], [load], ids, opts);
    await uncached.close();

    // 1, 2 and 3 cached daemons on the same etcd and prefix, each with a generator of its own.
    const more = [await startGenerator(etcdFlags(), opts.channels), await startGenerator(etcdFlags(), opts.channels)];
    for (const g of more) stops.push(() => g.close());
    const loads = [load, new LoadGenerator(1), new LoadGenerator(1)];
    stops.push(async () => {
      await loads[1]!.close();
      await loads[2]!.close();
    });
    const daemons = [gen.daemon, ...more.map((g) => g.daemon)];
    const etcd_lookup_rps_1_daemon = await lookupRps(daemons.slice(0, 1), loads, ids, opts);
    const etcd_lookup_rps_2_daemons = await lookupRps(daemons.slice(0, 2), loads, ids, opts);
    const etcd_lookup_rps_3_daemons = await lookupRps(daemons, loads, ids, opts);
    for (const g of more) await g.close();
    await gen.close();

    // 3. Raw etcd, from this process, with the store's own client settings, under a prefix of its own.
    const client = createClient({ endpoints: [etcd.endpoint] });
    stops.push(() => {
      client.close();
      return Promise.resolve();
    });
    const k = new Keys(`/bench-raw-${randomBytes(4).toString("hex")}/`);
    const table = "raw";
    await client.kv.txn({ compare: [], success: [put(k.tableMeta(table), "{}"), put(k.rev(table), "")] });
    const rev = await client.kv.range({ key: Buffer.from(k.rev(table)) });
    const createRevision = rev.kvs[0]!.create_revision;
    const value = JSON.stringify({
      name: "bench",
      projectPath: "/bench/raw-0",
      metadata: {},
      createTime: Date.now(),
      updateTime: Date.now(),
      slot: 0,
    });

    const registerTxn = (i: number) => rawRegisterTxn(k, table, createRevision, value, i);
    let failed = 0;
    const etcd_raw_txn_rps = await closedLoop(opts, async (i) => {
      const res = await client.kv.txn(registerTxn(i));
      if (!res.succeeded) failed++;
    });
    if (failed > 0) throw new Error(`${failed} raw Register Txns failed their compares`);

    // A Lookup by id's etcd work on a table of lookupSessions sessions.
    const lookTable = "rawlook";
    await client.kv.txn({ compare: [], success: [put(k.tableMeta(lookTable), "{}"), put(k.rev(lookTable), "")] });
    for (let i = 0; i < opts.lookupSessions; i += 50) {
      const ops: IRequestOp[] = [];
      for (let j = i; j < Math.min(i + 50, opts.lookupSessions); j++)
        ops.push(put(k.data(lookTable, `l-${j}`), value), put(k.expiry(lookTable, `l-${j}`), ""));
      await client.kv.txn({ compare: [], success: ops });
    }
    const dataKeys = Array.from({ length: opts.lookupSessions }, (_, i) => Buffer.from(k.data(lookTable, `l-${i}`)));
    const etcd_raw_range_rps = await closedLoop(opts, (i) => client.kv.range({ key: dataKeys[i % dataKeys.length]! }));
    const etcd_raw_lookup_txn_rps = await closedLoop(opts, (i) =>
      client.kv.txn({ compare: [], success: [get(k.rev(lookTable)), getPrefix(k.session(lookTable, `l-${i % opts.lookupSessions}`))] }),
    );

    return {
      memory_register_rps: round(memory_register_rps, 0),
      etcd_register_rps: round(etcd_register_rps, 0),
      etcd_lookup_rps: round(etcd_lookup_rps, 0),
      etcd_raw_txn_rps: round(etcd_raw_txn_rps, 0),
      etcd_raw_range_rps: round(etcd_raw_range_rps, 0),
      etcd_raw_lookup_txn_rps: round(etcd_raw_lookup_txn_rps, 0),
      etcd_register_ratio: round(etcd_register_rps / etcd_raw_txn_rps, 3),
      etcd_lookup_ratio: round(etcd_lookup_rps / etcd_raw_range_rps, 3),
      memory_vs_etcd_register: round(memory_register_rps / etcd_register_rps, 1),
      memory_lookup_rps: round(memory_lookup_rps, 0),
      etcd_uncached_lookup_rps: round(etcd_uncached_lookup_rps, 0),
      etcd_cached_lookup_ratio: round(etcd_lookup_rps / memory_lookup_rps, 3),
      etcd_lookup_rps_1_daemon: round(etcd_lookup_rps_1_daemon, 0),
      etcd_lookup_rps_2_daemons: round(etcd_lookup_rps_2_daemons, 0),
      etcd_lookup_rps_3_daemons: round(etcd_lookup_rps_3_daemons, 0),
      memory_list_rps: round(memoryReads.list, 0),
      etcd_list_rps: round(etcdReads.list, 0),
      etcd_cached_list_ratio: round(etcdReads.list / memoryReads.list, 3),
      memory_get_table_rps: round(memoryReads.get_table, 0),
      etcd_get_table_rps: round(etcdReads.get_table, 0),
      etcd_cached_get_table_ratio: round(etcdReads.get_table / memoryReads.get_table, 3),
      memory_list_tables_rps: round(memoryReads.list_tables, 0),
      etcd_list_tables_rps: round(etcdReads.list_tables, 0),
      etcd_cached_list_tables_ratio: round(etcdReads.list_tables / memoryReads.list_tables, 3),
      memory_lookup_cpu_us: round(memoryLookup.cpuUsPerCall, 1),
      etcd_lookup_cpu_us: round(etcdLookup.cpuUsPerCall, 1),
      etcd_cached_lookup_cpu_ratio: round(memoryLookup.cpuUsPerCall / etcdLookup.cpuUsPerCall, 3),
      etcd_server_cpu_us_per_lookup: round(etcdCpuPerLookupUs, 1),
      etcd_round_trips_per_register: round(perCall(beforeRegister, afterRegister, "Register", "txns", "reads", "lease_grants"), 3),
      etcd_probes_per_lookup: round(perCall(beforeLookup, afterLookup, "Lookup", "probes"), 4),
      etcd_fences_per_lookup: round(perCall(beforeLookup, afterLookup, "Lookup", "fences"), 4),
      etcd_reads_per_lookup: round(perCall(beforeLookup, afterLookup, "Lookup", "reads"), 4),
    };
  } finally {
    await stopAll();
  }
}
