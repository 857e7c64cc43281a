/**
 * Tables in etcd: CreateTable, GetTable, ListTables and DeleteTable, and
 * what the store knows of each table between calls (its meta, cached; Txn
 * compares catch a stale entry).
 *
 * A table's meta holds a random uid, its table_uid: every daemon on the
 * prefix reports the same one, and a table made again, or made on a wiped
 * etcd, has a new one. Writes compare the meta's value, not a revision,
 * because a wiped etcd hands out the same revisions again.
 *
 * The table revision is the mod revision of the table's `rev` key, which
 * every session write puts in its Txn: so a write's session revision equals
 * the table revision right after it, reads and rejected writes (whose Txns
 * put nothing) leave it, and other tables' writes do not move it (an expiry
 * moves it a moment later, expiry.ts). Revisions are etcd's, global to the
 * cluster: strictly increasing per table, not contiguous.
 *
 * CreateTable compares `meta/tables`, which every create puts, so the table
 * count read before it still holds (max_tables is exact).
 */
import { randomUUID } from "node:crypto";

import type { IKeyValue, IRequestOp, ITxnResponse } from "etcd3";

import { tableExists, tableLimitReached, tableNotEmpty, tableNotFound } from "../../core/errors.js";
import type { HistoryHead } from "../../core/history.js";
import type { Table } from "../../core/model.js";
import type { StoreLimits } from "../../core/store.js";
import { encodeTable, parseTable, tableUidOf } from "./codec.js";
import type { EtcdKv } from "./kv.js";
import type { Leases } from "./leases.js";
import { MAX_TXN_OPS, count, createdAt, del, delPrefix, first, get, getPrefix, kvs, modifiedAt, put, utf8 } from "./ops.js";

/** What the store knows of a table between calls. */
export interface TableInfo {
  /**
   * The meta key's value. It holds the table's random uid, so a Txn that
   * compares it is sure to write into this incarnation of the name, even
   * after a wipe of etcd, where revisions (a create revision) come again.
   */
  meta: Buffer;
  tableUid: string;
  maxSessions: number;
}

/** A table's history as its meta and `rev` keys tell it; undefined when the table is missing (either key is). */
export function historyOf(meta: IKeyValue | undefined, rev: IKeyValue | undefined): HistoryHead | undefined {
  return meta === undefined || rev === undefined ? undefined : { tableUid: tableUidOf(meta), revision: Number(rev.mod_revision) };
}

export class Tables {
  private readonly cache = new Map<string, TableInfo>();

  constructor(
    private readonly kv: EtcdKv,
    private readonly leases: Leases,
    private readonly limits: StoreLimits,
  ) {}

  async create(name: string, maxSessions: number | undefined): Promise<{ table: Table; created: boolean }> {
    const k = this.kv.keys;
    for (let attempt = 0; attempt < this.kv.maxAttempts; attempt++) {
      const res = await this.readTable(name, [getPrefix(k.tablesPrefix, { count_only: true }), get(k.tablesEpoch)]);
      const existing = this.tableIn(name, res);
      if (existing !== undefined) {
        if (maxSessions !== undefined && maxSessions !== existing.maxSessions) throw tableExists(name, existing.maxSessions);
        return { table: existing, created: false };
      }
      const tables = count(res, 3);
      if (tables >= this.limits.maxTables) throw tableLimitReached(tables, this.limits.maxTables);
      const max = maxSessions ?? this.limits.defaultMaxSessions;
      const createTime = Date.now();
      // Stored, so that every daemon on this etcd and prefix reports the same one.
      const tableUid = randomUUID();
      const meta = encodeTable({ v: 1, maxSessions: max, createTime, uid: tableUid });
      const txn = await this.kv.txn(
        [modifiedAt(k.tablesEpoch, first(res, 4)?.mod_revision ?? 0), createdAt(k.tableMeta(name), 0)],
        [put(k.tableMeta(name), meta), put(k.rev(name), ""), put(k.tablesEpoch, "")],
      );
      if (!txn.succeeded) continue;
      this.cache.set(name, { meta: utf8(meta), tableUid, maxSessions: max });
      const revision = Number(txn.header.revision);
      return {
        table: { name, maxSessions: max, sessionCount: 0, createTime: new Date(createTime), revision, tableUid },
        created: true,
      };
    }
    throw this.kv.contention("CreateTable");
  }

  async get(name: string): Promise<Table> {
    const table = this.tableIn(name, await this.readTable(name));
    if (table === undefined) throw tableNotFound(name);
    return table;
  }

  async list(): Promise<Table[]> {
    return (await this.listAt()).tables;
  }

  /** Every table, in byte order of name, as one snapshot at etcd revision `at`. */
  async listAt(): Promise<{ at: number; tables: Table[] }> {
    const k = this.kv.keys;
    const metas = await this.kv.read([getPrefix(k.tablesPrefix)]);
    const at = metas.header.revision;
    const entries = kvs(metas, 0).map((kv) => ({ name: kv.key.toString("utf8").slice(k.tablesPrefix.length), meta: kv }));
    const out: Table[] = [];
    // Every read at the revision of the first, so the list is one snapshot.
    const perChunk = Math.floor(MAX_TXN_OPS / 2);
    for (let i = 0; i < entries.length; i += perChunk) {
      const chunk = entries.slice(i, i + perChunk);
      const res = await this.kv.read(
        chunk.flatMap((e) => [get(k.rev(e.name), { revision: at }), getPrefix(k.slots(e.name), { count_only: true, revision: at })]),
      );
      chunk.forEach((e, j) => {
        const table = this.tableFrom(e.name, e.meta, first(res, 2 * j), count(res, 2 * j + 1));
        if (table !== undefined) out.push(table);
      });
    }
    // etcd returns keys in byte order, which is the order the contract asks for.
    return { at: Number(at), tables: out };
  }

  /** The named tables (undefined: missing) as one snapshot at etcd revision `at`. */
  async readMany(names: readonly string[]): Promise<{ at: number; tables: Map<string, Table | undefined> }> {
    const k = this.kv.keys;
    const tables = new Map<string, Table | undefined>();
    const perChunk = Math.floor(MAX_TXN_OPS / 3);
    let at: string | undefined;
    for (let i = 0; i < names.length || at === undefined; i += perChunk) {
      const chunk = names.slice(i, i + perChunk);
      // The first read fixes the revision the others read at.
      const revision = at === undefined ? {} : { revision: at };
      const res = await this.kv.read([
        get(k.tablesEpoch, { count_only: true }),
        ...chunk.flatMap((name) => [
          get(k.tableMeta(name), revision),
          get(k.rev(name), revision),
          getPrefix(k.slots(name), { count_only: true, ...revision }),
        ]),
      ]);
      at ??= res.header.revision;
      chunk.forEach((name, j) =>
        tables.set(name, this.tableFrom(name, first(res, 1 + 3 * j), first(res, 2 + 3 * j), count(res, 3 + 3 * j))),
      );
    }
    return { at: Number(at), tables };
  }

  async delete(name: string, force: boolean): Promise<void> {
    const k = this.kv.keys;
    for (let attempt = 0; attempt < this.kv.maxAttempts; attempt++) {
      const res = await this.readTable(name, [getPrefix(k.sessions(name), { keys_only: true })]);
      const rev = first(res, 1);
      const table = this.tableIn(name, res);
      if (table === undefined || rev === undefined) throw tableNotFound(name);
      if (table.sessionCount > 0 && !force) throw tableNotEmpty(name, table.sessionCount);
      // Without force: no write since the read (every write puts `rev`), so the table is still empty.
      const guard = force ? createdAt(k.rev(name), rev.create_revision) : modifiedAt(k.rev(name), rev.mod_revision);
      const txn = await this.kv.txn([guard], [delPrefix(k.table(name)), del(k.tableMeta(name))]);
      if (!txn.succeeded) continue;
      this.cache.delete(name);
      // The sessions' leases hold no keys any more; release them rather than wait for their ttl.
      const leases = new Set(
        kvs(res, 3)
          .map((kv) => kv.lease)
          .filter((l) => l !== "0"),
      );
      for (const lease of leases) this.leases.revoke(lease);
      return;
    }
    throw this.kv.contention("DeleteTable");
  }

  /** The table, from the cache or else read. */
  async info(name: string): Promise<TableInfo> {
    const cached = this.cache.get(name);
    if (cached !== undefined) return cached;
    const res = await this.kv.read([get(this.kv.keys.tableMeta(name)), get(this.kv.keys.rev(name))]);
    const info = this.infoFrom(name, first(res, 0), first(res, 1));
    if (info === undefined) throw tableNotFound(name);
    return info;
  }

  /** What a read of the table's meta and `rev` keys tells of it (undefined if either is missing); refreshes the cache. */
  infoFrom(name: string, meta: IKeyValue | undefined, rev: IKeyValue | undefined): TableInfo | undefined {
    if (meta === undefined || rev === undefined) {
      this.cache.delete(name);
      return undefined;
    }
    const stored = parseTable(meta);
    const info: TableInfo = { meta: meta.value, tableUid: tableUidOf(meta, stored), maxSessions: stored.maxSessions };
    this.cache.set(name, info);
    return info;
  }

  /** The table_uid from a read of the table's meta; TABLE_NOT_FOUND when it is missing. */
  uidFrom(name: string, meta: IKeyValue | undefined): string {
    if (meta === undefined) {
      this.cache.delete(name);
      throw tableNotFound(name);
    }
    return tableUidOf(meta);
  }

  /** One round trip: the reads that tell of a table (its meta, `rev` and slot count: responses 0 to 2), then `more`. */
  private readTable(name: string, more: IRequestOp[] = []): Promise<ITxnResponse> {
    const k = this.kv.keys;
    return this.kv.read([get(k.tableMeta(name)), get(k.rev(name)), getPrefix(k.slots(name), { count_only: true }), ...more]);
  }

  /** The table a readTable() response tells of (undefined if it is missing); refreshes the cache. */
  private tableIn(name: string, res: ITxnResponse): Table | undefined {
    return this.tableFrom(name, first(res, 0), first(res, 1), count(res, 2));
  }

  /** The table from its meta and `rev` keys (undefined if either is missing); refreshes the cache. */
  private tableFrom(name: string, meta: IKeyValue | undefined, rev: IKeyValue | undefined, sessionCount: number): Table | undefined {
    const info = this.infoFrom(name, meta, rev);
    if (info === undefined || meta === undefined || rev === undefined) return undefined;
    return {
      name,
      maxSessions: info.maxSessions,
      sessionCount,
      createTime: new Date(parseTable(meta).createTime),
      revision: Number(rev.mod_revision),
      tableUid: info.tableUid,
    };
  }
}
