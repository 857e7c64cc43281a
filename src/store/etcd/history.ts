/**
 * What of a table's history etcd still serves, for Watch: whether a start
 * revision is retained, why etcd cancelled a watch, and whether a watch
 * that etcd3 re-created after a lost connection still follows its history.
 *
 * A start revision is served when the table has at most `watchHistory`
 * writes since it, counted by the `rev` key's etcd version; expiries are
 * not counted, but the revision bumps after them are (at most one per
 * expiry, expiry.ts), so at least `watchHistory` events are retained.
 * etcd's own compaction (its --auto-compaction-*) bounds it too: a start
 * below it is REVISION_COMPACTED.
 */
import type { IKeyValue } from "etcd3";

import { revisionCompacted, tableNotFound, tableUidMismatch, type RegistryError } from "../../core/errors.js";
import { isCompacted } from "./client.js";
import type { EtcdKv } from "./kv.js";
import { first, get, utf8 } from "./ops.js";
import { historyOf } from "./tables.js";

export class HistoryProbes {
  constructor(
    private readonly kv: EtcdKv,
    /** The fewest writes of a table a watch may replay (StoreLimits.watchHistory). */
    private readonly watchHistory: number,
  ) {}

  /**
   * Throws REVISION_COMPACTED when more than `watchHistory` writes of the
   * table have a revision >= `from`: the `rev` key's etcd version counts the
   * table's writes, and a read of it at `from - 1` gives the count before.
   */
  async checkRetained(tableName: string, requested: number, from: number, rev: IKeyValue, head: number): Promise<void> {
    const version = Number(rev.version);
    let before: number;
    try {
      before = await this.versionAt(tableName, from - 1);
    } catch (err) {
      if (!isCompacted(err)) throw this.kv.errors.toStoreError(err);
      throw revisionCompacted(tableName, requested, (await this.etcdCompactRevision(from - 1, head)) + 1);
    }
    if (version - before <= this.watchHistory) return;
    // The oldest retained write is the one that made version `target + 1`; find the revision of `target`.
    const target = version - this.watchHistory;
    let lo = from - 1; // version there < target
    let hi = Number(rev.mod_revision); // version there = version >= target
    while (hi - lo > 1) {
      const mid = Math.floor((lo + hi) / 2);
      if ((await this.versionAt(tableName, mid)) >= target) hi = mid;
      else lo = mid;
    }
    throw revisionCompacted(tableName, requested, hi + 1);
  }

  /** The error that ends a watch etcd cancelled: REVISION_COMPACTED if etcd compacted past `next`, else UNAVAILABLE. */
  async whyCancelled(tableName: string, next: number): Promise<RegistryError> {
    const { client, keys } = this.kv;
    try {
      await client.kv.range({ key: utf8(keys.tablesEpoch), revision: next - 1, count_only: true });
    } catch (err) {
      if (isCompacted(err)) {
        const header = await client.kv.range({ key: utf8(keys.tablesEpoch), count_only: true }).catch(() => undefined);
        if (header !== undefined) {
          const compact = await this.etcdCompactRevision(next - 1, Number(header.header.revision)).catch(() => undefined);
          if (compact !== undefined) return revisionCompacted(tableName, next, compact + 1);
        }
      }
    }
    return this.kv.errors.unavailable(`cancelled the watch of table "${tableName}"; resume from revision ${next}`);
  }

  /**
   * Whether a watch that etcd3 re-created after a lost connection still
   * watches its history: undefined if so; else the error that ends it. etcd
   * may have come back wiped: revisions then start over (the watch, re-created
   * from `next`, would wait for a future revision and then deliver another
   * history's events as this one's), and the table is gone or another one.
   */
  async whyNotResumable(tableName: string, tableUid: string, next: number): Promise<RegistryError | undefined> {
    const res = await this.kv.read([get(this.kv.keys.tableMeta(tableName)), get(this.kv.keys.rev(tableName))]);
    const history = historyOf(first(res, 0), first(res, 1));
    if (history === undefined) return tableNotFound(tableName);
    if (history.tableUid !== tableUid) return tableUidMismatch(tableName, tableUid, history);
    // The same table, but etcd's revisions went back below what this watch has seen: not one history any more.
    if (Number(res.header.revision) + 1 < next) return tableUidMismatch(tableName, tableUid, history);
    return undefined;
  }

  /** The table's write count (`rev`'s version) as of etcd revision `revision`. */
  private async versionAt(tableName: string, revision: number): Promise<number> {
    try {
      const res = await this.kv.client.kv.range({ key: utf8(this.kv.keys.rev(tableName)), revision, keys_only: true });
      return Number(res.kvs[0]?.version ?? 0);
    } catch (err) {
      // A compaction error stays as it is, for isCompacted.
      throw this.kv.errors.toStoreError(err);
    }
  }

  /** etcd's compact revision, known to lie in (below, upTo]: the oldest revision a Range still serves. */
  private async etcdCompactRevision(below: number, upTo: number): Promise<number> {
    let lo = below; // compacted
    let hi = upTo; // served
    while (hi - lo > 1) {
      const mid = Math.floor((lo + hi) / 2);
      try {
        await this.kv.client.kv.range({ key: utf8(this.kv.keys.tablesEpoch), revision: mid, count_only: true });
        hi = mid;
      } catch (err) {
        if (!isCompacted(err)) throw this.kv.errors.toStoreError(err);
        lo = mid;
      }
    }
    return hi;
  }
}
