/**
 * One-off probe behind BENCHMARKS.md's "Where an etcd-store Register goes",
 * not part of `npm run bench`: what one Register's Txn carries, in bytes on
 * the wire by part, and the CPU this process spends per Register through an
 * EtcdStore against a raw Txn of the same shape (bench/etcd.ts), with and
 * without a prefix watch receiving the Txn's puts, as each daemon's
 * expiry watch does. Client and store share one process; etcd is the
 * tests' (test/helpers/etcd.ts).
 *
 *   node --conditions=source --import tsx bench/etcd-register-probe.ts [registers per round]
 */
import { randomBytes, randomUUID } from "node:crypto";

import type { Etcd3, ICompare, IRequestOp, ITxnRequest } from "etcd3";

import type { NewSession } from "../src/core/model.js";
import { createClient } from "../src/store/etcd/client.js";
import { Keys } from "../src/store/etcd/keys.js";
import { put } from "../src/store/etcd/ops.js";
import { EtcdStore } from "../src/store/etcd/store.js";
import { startEtcd } from "../test/helpers/etcd.js";
import { rawRegisterTxn } from "./etcd.js";
import { round } from "./stats.js";

const PER_ROUND = Number(process.argv[2] ?? 3000);
const ROUNDS = 3;
const CONCURRENCY = 64;
const LIMITS = { defaultMaxSessions: 10, maxTables: 100, watchHistory: 1000 };

/** etcd3's own encoder of a Txn request (what goes on the wire), from the client's KV service. */
function txnEncoder(client: Etcd3): (req: ITxnRequest) => number {
  const pool = (client as unknown as { pool: { hosts: { getServiceClient(name: string): object }[] } }).pool;
  const service = (pool.hosts[0]!.getServiceClient("KV").constructor as unknown as { service: Record<string, unknown> }).service;
  const txn = service.Txn as { requestSerialize(req: ITxnRequest): Buffer };
  return (req) => txn.requestSerialize(req).length;
}

/** CPU µs of this process per call of `op`, CONCURRENCY in flight, PER_ROUND calls. */
async function cpuPerCall(op: (i: number) => Promise<unknown>): Promise<number> {
  let next = 0;
  const start = process.cpuUsage();
  await Promise.all(
    Array.from({ length: CONCURRENCY }, async () => {
      for (let i = next++; i < PER_ROUND; i = next++) await op(i);
    }),
  );
  const used = process.cpuUsage(start);
  return (used.user + used.system) / PER_ROUND;
}

const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!;

const session = (i: number): NewSession => {
  const id = randomUUID();
  return { id, name: `project-${i}`, projectPath: `/home/user/projects/project-${i}`, metadata: new Map(), ttl: undefined };
};

const etcd = await startEtcd();
try {
  const store = new EtcdStore(LIMITS, { endpoints: [etcd.endpoint], prefix: `/probe-${randomBytes(4).toString("hex")}/` });
  const client = createClient({ endpoints: [etcd.endpoint] });
  try {
    // 1. Bytes: the store's own Txn, caught on its way to etcd3.
    const storeClient = (store as unknown as { kv: { client: Etcd3 } }).kv.client;
    const encoded = txnEncoder(storeClient);
    const sent: ITxnRequest[] = [];
    const txn = storeClient.kv.txn.bind(storeClient.kv);
    storeClient.kv.txn = (req: ITxnRequest) => {
      sent.push(req);
      return txn(req);
    };
    await store.createTable("bytes", 10);
    sent.length = 0;
    await store.register("bytes", session(0));
    const req = sent[0]!;
    const part = (compare: ICompare[], success: IRequestOp[], failure: IRequestOp[]) => encoded({ compare, success, failure });
    console.log("One Register's Txn (no ttl, no request_id; a 36-character id, a 32-byte path), bytes on the wire:");
    console.log({
      total: encoded(req),
      compare: part(req.compare ?? [], [], []),
      success: part([], req.success ?? [], []),
      failure: part([], [], req.failure ?? []),
      compares: (req.compare ?? []).map((c) => part([c], [], [])),
      puts: (req.success ?? []).map((op) => part([], [op], [])),
    });
    storeClient.kv.txn = txn;

    // 2. CPU per Register: raw Txn, raw Txn with a prefix watch taking its puts, EtcdStore.
    await store.createTable("cpu", 1_000_000);
    const k = new Keys(`/probe-raw-${randomBytes(4).toString("hex")}/`);
    await client.kv.txn({ compare: [], success: [put(k.tableMeta("raw"), "{}"), put(k.rev("raw"), "")] });
    const rev = await client.kv.range({ key: Buffer.from(k.rev("raw")) });
    const createRevision = rev.kvs[0]!.create_revision;
    const value = JSON.stringify({
      v: 1,
      name: "bench",
      path: "/bench/raw",
      md: [],
      ct: Date.now(),
      ut: Date.now(),
      ttl: null,
      exp: null,
      slot: 0,
    });
    const figures: Record<string, number[]> = { raw: [], raw_watched: [], store: [] };
    let n = 0;
    // Round -1 warms up (JIT, connections) and is not counted.
    for (let r = -1; r < ROUNDS; r++) {
      const counted = (key: string, us: number) => r >= 0 && figures[key]!.push(us);
      counted("raw", await cpuPerCall(() => client.kv.txn(rawRegisterTxn(k, "raw", createRevision, value, n++))));
      const watcher = await client.watch().prefix(k.allTables).withPreviousKV().create();
      watcher.on("data", () => undefined);
      counted("raw_watched", await cpuPerCall(() => client.kv.txn(rawRegisterTxn(k, "raw", createRevision, value, n++))));
      await watcher.cancel();
      counted("store", await cpuPerCall(() => store.register("cpu", session(n++))));
    }
    console.log(`\nCPU µs of this process per Register (${CONCURRENCY} in flight, ${PER_ROUND} a round, median of ${ROUNDS} rounds):`);
    console.log(
      Object.fromEntries(
        Object.entries(figures).map(([key, xs]) => [key, { median: round(median(xs), 0), rounds: xs.map((x) => round(x, 0)) }]),
      ),
    );
  } finally {
    client.close();
    await store.close();
  }
} finally {
  await etcd.stop();
}
