/**
 * The etcd read cache's mirror (src/store/etcd/mirror.ts), without etcd: a
 * small keyspace stands in for etcd (revisions, create and mod revisions,
 * a Range, the events of each write), and the store's writes are made as
 * their Txns make them (keys.ts). The mirror, loaded from a Range and then
 * fed the events, answers Lookup, List, GetTable and ListTables as reads of
 * etcd would: the table first, the oldest of a name, create-revision order
 * and cursors, counts from slots, the `x` key's expire time.
 */
import { expect } from "chai";
import type { IEvent, IKeyValue } from "etcd3";

import { RegistryError } from "../../src/core/errors.js";
import type { LookupKey } from "../../src/core/model.js";
import { encodeSession, encodeTable } from "../../src/store/etcd/codec.js";
import { Keys } from "../../src/store/etcd/keys.js";
import { Mirror } from "../../src/store/etcd/mirror.js";

const keys = new Keys("/m/");

interface Stored {
  value: string;
  create: number;
  mod: number;
}

/** A keyspace with etcd's revisions: each write is one revision, and yields its events. */
class Keyspace {
  revision = 1;
  readonly kvs = new Map<string, Stored>();

  write(ops: ({ put: string; value: string } | { del: string } | { delPrefix: string })[]): IEvent[] {
    const rev = ++this.revision;
    const events: IEvent[] = [];
    for (const op of ops) {
      if ("put" in op) {
        const before = this.kvs.get(op.put);
        const stored = { value: op.value, create: before?.create ?? rev, mod: rev };
        this.kvs.set(op.put, stored);
        events.push({ type: "Put", kv: kv(op.put, stored) } as unknown as IEvent);
        continue;
      }
      const matches = "del" in op ? [op.del] : [...this.kvs.keys()].filter((k) => k.startsWith(op.delPrefix));
      for (const key of matches) {
        if (!this.kvs.delete(key)) continue;
        events.push({ type: "Delete", kv: kv(key, { value: "", create: 0, mod: rev }) } as unknown as IEvent);
      }
    }
    return events;
  }

  /** Every key, in key order, as a Range returns them. */
  range(): IKeyValue[] {
    return [...this.kvs.entries()].sort(([a], [b]) => Buffer.compare(Buffer.from(a), Buffer.from(b))).map(([k, s]) => kv(k, s));
  }
}

function kv(key: string, s: Stored): IKeyValue {
  return {
    key: Buffer.from(key),
    value: Buffer.from(s.value),
    create_revision: String(s.create),
    mod_revision: String(s.mod),
    version: "1",
    lease: "0",
  };
}

/** The store's writes, as their Txns' puts and deletes. */
class Writer {
  constructor(readonly etcd: Keyspace) {}

  createTable(name: string, uid: string, maxSessions = 10): IEvent[] {
    return this.etcd.write([
      { put: keys.tableMeta(name), value: encodeTable({ v: 1, maxSessions, createTime: 1000, uid }) },
      { put: keys.rev(name), value: "" },
      { put: keys.tablesEpoch, value: "" },
    ]);
  }

  deleteTable(name: string): IEvent[] {
    return this.etcd.write([{ delPrefix: keys.table(name) }, { del: keys.tableMeta(name) }]);
  }

  register(table: string, id: string, name: string, path: string, slot: number, exp?: number): IEvent[] {
    const value = session(name, path, slot, exp);
    return this.etcd.write([
      { put: keys.request(table, "register", `r-${id}`), value: "{}" },
      { put: keys.slot(table, slot), value: id },
      { put: keys.data(table, id), value },
      { put: keys.expiry(table, id), value: exp === undefined ? "" : String(exp) },
      { put: keys.path(table, path), value: id },
      { put: keys.name(table, name, id), value: "" },
      { put: keys.rev(table), value: "" },
    ]);
  }

  rename(table: string, id: string, from: string, to: string, path: string, slot: number): IEvent[] {
    const create = this.etcd.kvs.get(keys.data(table, id))!.create;
    return this.etcd.write([
      { put: keys.data(table, id), value: session(to, path, slot) },
      { put: keys.rev(table), value: "" },
      { del: keys.name(table, from, id) },
      { put: keys.name(table, to, id), value: String(create) },
    ]);
  }

  keepAlive(table: string, id: string, exp: number): IEvent[] {
    return this.etcd.write([{ put: keys.expiry(table, id), value: String(exp) }]);
  }

  /** A Remove (`rev` put) or, without it, an expiry (the lease's keys deleted in one revision). */
  remove(table: string, id: string, name: string, path: string, slot: number, expired = false): IEvent[] {
    return this.etcd.write([
      { del: keys.slot(table, slot) },
      { del: keys.data(table, id) },
      { del: keys.expiry(table, id) },
      { del: keys.path(table, path) },
      { del: keys.name(table, name, id) },
      ...(expired ? [] : [{ put: keys.rev(table), value: "" }]),
    ]);
  }
}

function session(name: string, path: string, slot: number, exp?: number): string {
  return encodeSession({
    name,
    projectPath: path,
    metadata: new Map([["k", "v"]]),
    createTime: 1,
    updateTime: 2,
    ttl: exp === undefined ? undefined : { seconds: 30, nanos: 0 },
    expireTime: exp,
    slot,
  });
}

function loaded(etcd: Keyspace): Mirror {
  const m = new Mirror(keys);
  const all = etcd.range();
  // In pages, as the cache loads it.
  for (let i = 0; i < all.length; i += 3) m.load(all.slice(i, i + 3));
  m.loaded();
  return m;
}

function reasonOf(fn: () => unknown): string {
  try {
    fn();
  } catch (err) {
    if (err instanceof RegistryError) return err.reason;
    throw err;
  }
  return "none";
}

const byId = (value: string): LookupKey => ({ by: "id", value });
const byPath = (value: string): LookupKey => ({ by: "projectPath", value });
const byName = (value: string): LookupKey => ({ by: "name", value });

describe("etcd read cache: the mirror", () => {
  let etcd: Keyspace;
  let w: Writer;

  beforeEach(() => {
    etcd = new Keyspace();
    w = new Writer(etcd);
  });

  it("answers from a load as from the events that follow it, the same", () => {
    w.createTable("t", "uid-1");
    w.register("t", "a", "alpha", "/a", 0);
    const m = loaded(etcd);
    m.apply(w.register("t", "b", "beta", "/b", 1, 5000));
    for (const mirror of [m, loaded(etcd)]) {
      const a = mirror.lookup("t", byId("a"));
      expect(a).to.include({ id: "a", name: "alpha", projectPath: "/a", tableUid: "uid-1" });
      expect(a.revision).to.equal(etcd.kvs.get(keys.data("t", "a"))!.mod);
      expect(a.createRevision).to.equal(etcd.kvs.get(keys.data("t", "a"))!.create);
      expect([...a.metadata]).to.deep.equal([["k", "v"]]);
      expect(mirror.lookup("t", byPath("/b")).id).to.equal("b");
      expect(mirror.lookup("t", byName("beta")).expireTime?.getTime()).to.equal(5000);
      expect(mirror.getTable("t")).to.deep.include({ name: "t", maxSessions: 10, sessionCount: 2, tableUid: "uid-1" });
      expect(mirror.getTable("t").revision).to.equal(etcd.kvs.get(keys.rev("t"))!.mod);
    }
  });

  it("reports a missing table before a missing session, for every read", () => {
    const m = loaded(etcd);
    expect(reasonOf(() => m.lookup("t", byId("a")))).to.equal("TABLE_NOT_FOUND");
    expect(reasonOf(() => m.list("t", "not-a-cursor", 10))).to.equal("TABLE_NOT_FOUND");
    expect(reasonOf(() => m.getTable("t"))).to.equal("TABLE_NOT_FOUND");
    m.apply(w.createTable("t", "u"));
    expect(reasonOf(() => m.lookup("t", byId("a")))).to.equal("SESSION_NOT_FOUND");
    expect(reasonOf(() => m.lookup("t", byPath("/a")))).to.equal("SESSION_NOT_FOUND");
    expect(reasonOf(() => m.lookup("t", byName("a")))).to.equal("SESSION_NOT_FOUND");
    expect(reasonOf(() => m.list("t", "not-a-cursor", 10))).to.equal("INVALID_ARGUMENT");
  });

  it("finds the oldest session of a name, also after a rename", () => {
    const m = loaded(etcd);
    m.apply(w.createTable("t", "u"));
    m.apply(w.register("t", "a", "same", "/a", 0));
    m.apply(w.register("t", "b", "same", "/b", 1));
    expect(m.lookup("t", byName("same")).id).to.equal("a");
    expect(m.lookup("t", byId("a")).name).to.equal("same");
    m.apply(w.rename("t", "a", "same", "other", "/a", 0));
    expect(m.lookup("t", byId("a")).name).to.equal("other");
    expect(m.lookup("t", byName("same")).id).to.equal("b");
    m.apply(w.rename("t", "a", "other", "same", "/a", 0));
    // Renamed back: it keeps its create revision, so it is the oldest again.
    expect(m.lookup("t", byName("same")).id).to.equal("a");
    expect(m.lookup("t", byName("same")).name).to.equal("same");
  });

  it("moves the expire time with a keep-alive, and forgets removed and expired sessions", () => {
    const m = loaded(etcd);
    m.apply(w.createTable("t", "u"));
    m.apply(w.register("t", "a", "a", "/a", 0, 1000));
    m.apply(w.register("t", "b", "b", "/b", 1, 1000));
    const before = m.getTable("t").revision;
    expect(m.lookup("t", byId("a")).expireTime?.getTime()).to.equal(1000);
    m.apply(w.keepAlive("t", "a", 9000));
    expect(m.lookup("t", byId("a")).expireTime?.getTime()).to.equal(9000);
    // No session revision, no table revision.
    expect(m.getTable("t").revision).to.equal(before);
    m.apply(w.remove("t", "a", "a", "/a", 0));
    m.apply(w.remove("t", "b", "b", "/b", 1, true));
    for (const key of [byId("a"), byPath("/a"), byName("a"), byId("b"), byPath("/b"), byName("b")]) {
      expect(reasonOf(() => m.lookup("t", key))).to.equal("SESSION_NOT_FOUND");
    }
    expect(m.getTable("t").sessionCount).to.equal(0);
    expect(m.list("t", undefined, 10).sessions).to.deep.equal([]);
  });

  it("pages in create-revision order with cursors, skipping removed sessions, across rewrites of the order", () => {
    const m = loaded(etcd);
    m.apply(w.createTable("t", "u", 5000));
    for (let i = 0; i < 2000; i++) m.apply(w.register("t", `s${i}`, "n", `/p${i}`, i));
    // Most removed: the order is rewritten without them on the way.
    for (let i = 0; i < 2000; i++) if (i % 10 !== 0) m.apply(w.remove("t", `s${i}`, "n", `/p${i}`, i));
    // Registered again: created last.
    m.apply(w.register("t", "s1", "n", "/p1", 1));
    const want = [...Array.from({ length: 200 }, (_, i) => `s${i * 10}`), "s1"];
    for (const mirror of [m, loaded(etcd)]) {
      const got: string[] = [];
      let cursor: string | undefined;
      for (;;) {
        const page = mirror.list("t", cursor, 7);
        expect(page.totalSize).to.equal(201);
        expect(page.tableUid).to.equal("u");
        got.push(...page.sessions.map((s) => s.id));
        cursor = page.nextCursor;
        if (cursor === undefined) break;
      }
      expect(got).to.deep.equal(want);
    }
  });

  it("lists tables in name order, and follows a table deleted and made again", () => {
    const m = loaded(etcd);
    m.apply(w.createTable("b", "ub"));
    m.apply(w.createTable("a", "ua"));
    m.apply(w.register("a", "x", "x", "/x", 0));
    expect(m.listTables().map((t) => [t.name, t.sessionCount])).to.deep.equal([
      ["a", 1],
      ["b", 0],
    ]);
    m.apply(w.deleteTable("a"));
    expect(m.listTables().map((t) => t.name)).to.deep.equal(["b"]);
    expect(reasonOf(() => m.lookup("a", byId("x")))).to.equal("TABLE_NOT_FOUND");
    m.apply(w.createTable("a", "ua2"));
    expect(m.getTable("a")).to.deep.include({ tableUid: "ua2", sessionCount: 0 });
    expect(reasonOf(() => m.lookup("a", byId("x")))).to.equal("SESSION_NOT_FOUND");
    expect(m.sessionCount).to.equal(0);
  });
});
