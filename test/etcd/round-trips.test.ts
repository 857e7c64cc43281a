/**
 * Round trips to etcd per store operation, counted by the store itself
 * (EtcdStore.calls(): reads, Txns, lease grants, revokes and keep-alives).
 * A Register in the common case (no ttl, no request_id, a table the store
 * has seen) is one Txn and nothing else, however full the table (the slot
 * it tries is one it has seen free); with a ttl or a request_id at most two
 * calls. The other operations' counts are pinned too, so that a call
 * added to any of them shows here. Reads served by the read cache cost one
 * probe of etcd's revision each (shared by the reads that wait together),
 * plus a fence when the cache's watch lags behind the probe.
 */
import { expect } from "chai";

import type { LookupKey } from "../../src/core/model.js";
import type { StoreLimits } from "../../src/core/store.js";
import type { EtcdCalls } from "../../src/store/etcd/kv.js";
import { EtcdStore } from "../../src/store/etcd/store.js";
import { startEtcd, uniquePrefix, type TestEtcd } from "../helpers/etcd.js";

const LIMITS: StoreLimits = { defaultMaxSessions: 10, maxTables: 1000, watchHistory: 10_000 };
const NONE: EtcdCalls = { reads: 0, txns: 0, leaseGrants: 0, leaseRevokes: 0, leaseKeepAlives: 0, probes: 0, fences: 0 };
/** Long enough that no lease expires while a test runs (an expiry would add the watch's bump Txn). */
const TTL = { seconds: 600, nanos: 0 };

const session = (id: string, ttl?: { seconds: number; nanos: number }) => ({
  id,
  name: `n-${id}`,
  projectPath: `/p/${id}`,
  metadata: new Map<string, string>(),
  ttl,
});

describe("etcd: round trips per operation", function () {
  this.timeout(30_000);
  let etcd: TestEtcd | undefined;
  let prefix: string;
  const stores: EtcdStore[] = [];
  let store: EtcdStore;
  let table: string;
  let n = 0;

  const open = (options: { readCache?: boolean } = {}): EtcdStore => {
    const s = new EtcdStore(LIMITS, { endpoints: [etcd!.endpoint], prefix, ...options });
    stores.push(s);
    return s;
  };

  /** The calls `op` made on `on`, every kind given (0 for none). */
  async function callsOf(op: () => Promise<unknown>, on: EtcdStore = store): Promise<EtcdCalls> {
    const before = on.calls();
    await op();
    const after = on.calls();
    const out = { ...NONE };
    for (const k of Object.keys(NONE) as (keyof EtcdCalls)[]) out[k] = after[k] - before[k];
    return out;
  }

  /** `op`, which must fail. */
  const rejected = (op: () => Promise<unknown>) => () =>
    op().then(
      () => expect.fail("expected a rejection"),
      () => undefined,
    );

  before(async () => {
    etcd = await startEtcd();
    prefix = uniquePrefix();
    store = open();
  });

  beforeEach(async () => {
    table = `rt${n++}`;
    await store.createTable(table, 10);
  });

  after(async () => {
    for (const s of stores) await s.close();
    await etcd?.stop();
  });

  it("Register, no ttl and no request_id: one Txn, no read", async () => {
    expect(await callsOf(() => store.register(table, session("a")))).to.deep.equal({ ...NONE, txns: 1 });
  });

  it("Register on a table the store has not seen: one read of the table, then the Txn", async () => {
    const other = open();
    expect(await callsOf(() => other.register(table, session("a")), other)).to.deep.equal({ ...NONE, reads: 1, txns: 1 });
    expect(await callsOf(() => other.register(table, session("b")), other)).to.deep.equal({ ...NONE, txns: 1 });
  });

  it("Register with a ttl: the lease grant and the Txn", async () => {
    expect(await callsOf(() => store.register(table, session("a", TTL)))).to.deep.equal({ ...NONE, leaseGrants: 1, txns: 1 });
  });

  it("Register with a request_id: the Txn, and a grant of the shared request lease only when there is none yet", async () => {
    const first = await callsOf(() => store.register(table, session("a"), "req-a"));
    expect(first.txns).to.equal(1);
    expect(first.reads).to.equal(0);
    expect(first.leaseGrants).to.be.at.most(1);
    expect(first.txns + first.leaseGrants).to.be.at.most(2);
    expect(await callsOf(() => store.register(table, session("b"), "req-b"))).to.deep.equal({ ...NONE, txns: 1 });
    // A replay is answered by the same Txn's else-branch.
    expect(await callsOf(() => store.register(table, session("a"), "req-a"))).to.deep.equal({ ...NONE, txns: 1 });
  });

  it("Register with a ttl and a request_id: the session's lease grant and the Txn; the request lease's grant besides when there is none yet", async () => {
    const cold = open();
    await cold.createTable(`${table}c`, 10);
    expect(await callsOf(() => cold.register(`${table}c`, session("a", TTL), "req-a"), cold)).to.deep.equal({
      ...NONE,
      leaseGrants: 2,
      txns: 1,
    });
    expect(await callsOf(() => cold.register(`${table}c`, session("b", TTL), "req-b"), cold)).to.deep.equal({
      ...NONE,
      leaseGrants: 1,
      txns: 1,
    });
  });

  it("a rejected Register: one Txn, whose else-branch reads why (and the unused lease given back)", async () => {
    await store.register(table, session("a"));
    expect(await callsOf(rejected(() => store.register(table, session("a"))))).to.deep.equal({ ...NONE, txns: 1 });
    expect(await callsOf(rejected(() => store.register(table, session("a", TTL))))).to.deep.equal({
      ...NONE,
      leaseGrants: 1,
      txns: 1,
      leaseRevokes: 1,
    });
  });

  it("Register into a table filling up: one Txn each, the slot tried being one seen free; the limit too", async () => {
    for (let i = 0; i < 10; i++) expect(await callsOf(() => store.register(table, session(`f${i}`)))).to.deep.equal({ ...NONE, txns: 1 });
    expect(await callsOf(rejected(() => store.register(table, session("over"))))).to.deep.equal({ ...NONE, txns: 1 });
  });

  it("a replayed request_id gives back the slot it had picked: the Register after it is still one Txn", async () => {
    for (let i = 0; i < 9; i++) await store.register(table, session(`q${i}`), `req-q${i}`);
    expect(await callsOf(() => store.register(table, session("q0"), "req-q0"))).to.deep.equal({ ...NONE, txns: 1 });
    expect(await callsOf(() => store.register(table, session("last")))).to.deep.equal({ ...NONE, txns: 1 });
  });

  it("Lookup from the read cache: one probe of etcd's revision, whatever the key, and a fence only while the watch lags", async () => {
    await store.register(table, session("a"));
    expect(await store.readCacheReady()).to.equal(true);
    for (const key of [
      { by: "id" as const, value: "a" },
      { by: "projectPath" as const, value: "/p/a" },
      { by: "name" as const, value: "n-a" },
    ]) {
      const calls = await callsOf(() => store.lookup(table, key));
      expect(calls.fences).to.be.at.most(1);
      expect(calls).to.deep.equal({ ...NONE, probes: 1, fences: calls.fences });
    }
  });

  it("Lookup without the read cache: one read by id, two by path or by name (the index, then the session)", async () => {
    const uncached = open({ readCache: false });
    await uncached.register(table, session("a"));
    const lookup = (key: LookupKey) => callsOf(() => uncached.lookup(table, key), uncached);
    expect(await lookup({ by: "id", value: "a" })).to.deep.equal({ ...NONE, reads: 1 });
    expect(await lookup({ by: "projectPath", value: "/p/a" })).to.deep.equal({ ...NONE, reads: 2 });
    expect(await lookup({ by: "name", value: "n-a" })).to.deep.equal({ ...NONE, reads: 2 });
  });

  it("List, GetTable and ListTables from the read cache: one probe each", async () => {
    await store.register(table, session("a"));
    expect(await store.readCacheReady()).to.equal(true);
    for (const op of [() => store.list(table, undefined, 10), () => store.getTable(table), () => store.listTables()]) {
      const calls = await callsOf(op);
      expect(calls).to.deep.equal({ ...NONE, probes: 1, fences: calls.fences });
    }
  });

  it("Update: a read and a Txn; a new ttl adds the new lease's grant and the old one's revoke", async () => {
    await store.register(table, session("a", TTL));
    const conditions = { expectedRevision: 0 };
    expect(await callsOf(() => store.update(table, "a", { name: "m" }, conditions))).to.deep.equal({ ...NONE, reads: 1, txns: 1 });
    expect(await callsOf(() => store.update(table, "a", { ttl: { seconds: 900, nanos: 0 } }, conditions))).to.deep.equal({
      ...NONE,
      reads: 1,
      leaseGrants: 1,
      txns: 1,
      leaseRevokes: 1,
    });
  });

  it("Remove: a read and a Txn, plus the revoke of the session's lease when it has one", async () => {
    await store.register(table, session("a"));
    await store.register(table, session("b", TTL));
    const conditions = { expectedRevision: 0, allowMissing: false };
    expect(await callsOf(() => store.remove(table, "a", conditions))).to.deep.equal({ ...NONE, reads: 1, txns: 1 });
    expect(await callsOf(() => store.remove(table, "b", conditions))).to.deep.equal({ ...NONE, reads: 1, txns: 1, leaseRevokes: 1 });
  });

  it("KeepAlive: a read, the lease keep-alive and the Txn that moves the expire time", async () => {
    await store.register(table, session("a", TTL));
    expect(await callsOf(() => store.keepAlive(table, "a"))).to.deep.equal({ ...NONE, reads: 1, leaseKeepAlives: 1, txns: 1 });
  });
});
