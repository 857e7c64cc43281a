/**
 * etcd store vs raw etcd: Register and Lookup throughput through a daemon
 * on `--store etcd`, and, in the same run, raw etcd3 Txns shaped like one
 * Register's and raw Ranges (a Lookup's etcd work). Plus Register and
 * Lookup through a memory-store daemon, for the "memory ≥ 10× etcd"
 * Register comparison and the read cache's "etcd Lookup ≥ 0.8× memory
 * Lookup"; Lookup with the read cache off; and the total Lookup throughput
 * of 1, 2 and 3 daemons on one etcd and prefix.
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
import { startDaemonProcess, type ServerProcess } from "./daemon-process.js";
import { LoadGenerator } from "./load/generator.js";
import { round } from "./stats.js";

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
}

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

/** Lookups/s by id over `ids` of table "look", through each daemon at once (its own generator each), summed. */
async function lookupRps(
  daemons: readonly ServerProcess[],
  loads: readonly LoadGenerator[],
  ids: string[],
  opts: EtcdBenchOptions,
): Promise<number> {
  // A few Lookups first: a daemon's first read starts loading its read cache, which a short window would otherwise measure.
  for (const d of daemons) {
    const client = new SessionRegistryClient(d.address, credentials.createInsecure());
    try {
      for (let i = 0; i < 20; i++)
        await call((cb) => client.lookup({ table: "look", key: { $case: "id", value: ids[i % ids.length]! } }, cb));
    } finally {
      client.close();
    }
  }
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
    const memoryIds = await fillLookupTable(memory, opts);
    const memory_lookup_rps = await lookupRps([memory.daemon], [load], memoryIds, opts);
    await stopAll();

    // 2. etcd store, through a daemon (the read cache on, as by default).
    const etcd: TestEtcd = await startEtcd();
    stops.push(() => etcd.stop());
    const prefix = `/bench-${randomBytes(4).toString("hex")}/`;
    const etcdFlags = (...more: string[]) => ["--store", "etcd", "--etcd-endpoints", etcd.endpoint, "--etcd-prefix", prefix, ...more];
    const gen = await startGenerator(etcdFlags(), opts.channels);
    stops.push(() => gen.close());
    const etcd_register_rps = await registerRps(gen, load, opts);

    const ids = await fillLookupTable(gen, opts);
    const etcd_lookup_rps = await lookupRps([gen.daemon], [load], ids, opts);

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
    };
  } finally {
    await stopAll();
  }
}
