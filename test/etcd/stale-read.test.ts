/**
 * The read cache never serves a stale read: two stores (two daemons' worth)
 * on one etcd and prefix, both reading from their caches; each write is
 * acknowledged by store A, and at once read on store B, which must see it,
 * thousands of times over. Meanwhile other reads keep B's probes busy, so a
 * read that joined a probe sent before it began would show here too. And a
 * write outside the prefix (another program on the same etcd) moves etcd's
 * revision past anything B's watch will hear of: B still answers from its
 * cache, with a fence, and does not hang.
 *
 * Nothing here waits on time: every read starts after its write's
 * acknowledgement, and passes only when the cache is fresh.
 */
import { expect } from "chai";

import { RegistryError } from "../../src/core/errors.js";
import type { LookupKey, NewSession, Session } from "../../src/core/model.js";
import type { StoreLimits } from "../../src/core/store.js";
import { createClient } from "../../src/store/etcd/client.js";
import { EtcdStore } from "../../src/store/etcd/store.js";
import { startEtcd, uniquePrefix, type TestEtcd } from "../helpers/etcd.js";

const LIMITS: StoreLimits = { defaultMaxSessions: 100_000, maxTables: 1000, watchHistory: 10_000 };
const TTL = { seconds: 600, nanos: 0 };
const ROUNDS = 150;
const TABLE_ROUNDS = 150;

const newSession = (i: number): NewSession => ({
  id: `s${i}`,
  name: `name-${i}`,
  projectPath: `/p/${i}`,
  metadata: new Map([["round", String(i)]]),
  ttl: TTL,
});

async function reasonOf(op: Promise<unknown>): Promise<string> {
  try {
    await op;
  } catch (err) {
    if (err instanceof RegistryError) return err.reason;
    throw err;
  }
  return "none";
}

/** The fields a read must agree on with the write it follows. */
const shape = (s: Session) => ({
  id: s.id,
  name: s.name,
  projectPath: s.projectPath,
  revision: s.revision,
  createRevision: s.createRevision,
  expireTime: s.expireTime?.getTime(),
  tableUid: s.tableUid,
});

describe("etcd read cache: no stale read across daemons", function () {
  this.timeout(120_000);
  let etcd: TestEtcd | undefined;
  let a: EtcdStore;
  let b: EtcdStore;

  before(async () => {
    etcd = await startEtcd();
    const prefix = uniquePrefix();
    a = new EtcdStore(LIMITS, { endpoints: [etcd.endpoint], prefix });
    b = new EtcdStore(LIMITS, { endpoints: [etcd.endpoint], prefix });
    await a.createTable("t", undefined);
    expect(await a.readCacheReady()).to.equal(true);
    expect(await b.readCacheReady()).to.equal(true);
  });

  after(async () => {
    await a.close();
    await b.close();
    await etcd?.stop();
  });

  /**
   * Runs `rounds` while other reads on B run in a loop, so that B's reads
   * share probes with ones already out; then checks that none of B's reads
   * went to etcd (every one was the cache's).
   */
  async function withBusyReads(rounds: () => Promise<void>): Promise<void> {
    const before = b.calls();
    let done = false;
    const loop = async () => {
      while (!done) {
        await b.listTables();
        // A read answered without a round trip must not starve the event loop.
        await new Promise((resolve) => setImmediate(resolve));
      }
    };
    const background = Promise.all(Array.from({ length: 3 }, loop));
    try {
      await rounds();
    } finally {
      done = true;
      await background;
    }
    const after = b.calls();
    expect(after.reads - before.reads, "reads of etcd").to.equal(0);
    expect(after.probes - before.probes).to.be.greaterThan(0);
  }

  it("every session write on A is seen by the next read on B: Register, Update, KeepAlive, Remove", () =>
    withBusyReads(async () => {
      for (let i = 0; i < ROUNDS; i++) {
        const keys: LookupKey[] = [
          { by: "id", value: `s${i}` },
          { by: "projectPath", value: `/p/${i}` },
          { by: "name", value: `name-${i}` },
        ];
        const registered = await a.register("t", newSession(i));
        for (const key of keys)
          expect(shape(await b.lookup("t", key)), `Register ${i} then Lookup by ${key.by}`).to.deep.equal(shape(registered));
        const page = await b.list("t", undefined, 1000);
        expect(page.revision, `Register ${i} then List`).to.be.at.least(registered.revision);
        expect(page.sessions.map((s) => s.id)).to.include(`s${i}`);

        const updated = await a.update("t", `s${i}`, { name: `renamed-${i}` }, { expectedRevision: 0 });
        expect(shape(await b.lookup("t", keys[0]!)), `Update ${i} then Lookup`).to.deep.equal(shape(updated));
        expect((await b.lookup("t", { by: "name", value: `renamed-${i}` })).revision).to.equal(updated.revision);

        const kept = await a.keepAlive("t", `s${i}`);
        expect((await b.lookup("t", keys[0]!)).expireTime?.getTime(), `KeepAlive ${i} then Lookup`).to.equal(kept.expireTime?.getTime());

        await a.remove("t", `s${i}`, { expectedRevision: 0, allowMissing: false });
        for (const key of [keys[0]!, keys[1]!, { by: "name" as const, value: `renamed-${i}` }]) {
          expect(await reasonOf(b.lookup("t", key)), `Remove ${i} then Lookup by ${key.by}`).to.equal("SESSION_NOT_FOUND");
        }
      }
    }));

  it("every table write on A is seen by the next read on B: CreateTable, DeleteTable", () =>
    withBusyReads(async () => {
      for (let i = 0; i < TABLE_ROUNDS; i++) {
        const { table } = await a.createTable(`x${i}`, 5);
        expect(await b.getTable(`x${i}`), `CreateTable ${i} then GetTable`).to.deep.include({ tableUid: table.tableUid, maxSessions: 5 });
        expect((await b.listTables()).map((t) => t.name)).to.include(`x${i}`);
        await a.deleteTable(`x${i}`, false);
        expect(await reasonOf(b.getTable(`x${i}`)), `DeleteTable ${i} then GetTable`).to.equal("TABLE_NOT_FOUND");
        expect((await b.listTables()).map((t) => t.name)).not.to.include(`x${i}`);
      }
    }));

  it("catches up, with a fence, when etcd's revision moved for keys outside the prefix", async () => {
    const other = createClient({ endpoints: [etcd!.endpoint] });
    try {
      const registered = await a.register("t", newSession(ROUNDS));
      await b.lookup("t", { by: "id", value: registered.id });
      for (let i = 0; i < 20; i++) {
        await other.put(`${uniquePrefix()}elsewhere`).value("x");
        const before = b.calls();
        expect(shape(await b.lookup("t", { by: "id", value: registered.id }))).to.deep.equal(shape(registered));
        const after = b.calls();
        expect(after.reads - before.reads, "a read of etcd").to.equal(0);
        expect(after.fences - before.fences, "fences").to.equal(1);
      }
    } finally {
      other.close();
    }
  });
});
