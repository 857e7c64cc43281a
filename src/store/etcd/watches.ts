/**
 * The etcd store's Watch calls: each starts one TableWatch (watch.ts) from a
 * snapshot or from a revision whose history etcd still serves (history.ts),
 * and the store ends them all when it closes.
 */
import { SortOrder, SortTarget } from "etcd3";

import { shuttingDown, tableNotFound } from "../../core/errors.js";
import { checkNotFuture, checkSameHistory } from "../../core/history.js";
import type { Session } from "../../core/model.js";
import type { WatchSink, WatchStart, WatchSubscription } from "../../core/store.js";
import type { HistoryProbes } from "./history.js";
import type { EtcdKv } from "./kv.js";
import { first, get, getPrefix, kvs } from "./ops.js";
import { sessionsOf } from "./reads.js";
import { historyOf } from "./tables.js";
import { TableWatch } from "./watch.js";

export class Watches {
  private readonly open = new Set<TableWatch>();

  constructor(
    private readonly kv: EtcdKv,
    private readonly history: HistoryProbes,
  ) {}

  async watch(tableName: string, start: WatchStart, sink: WatchSink): Promise<WatchSubscription> {
    const { startRevision } = start;
    const k = this.kv.keys;
    const ops = [get(k.rev(tableName)), get(k.tableMeta(tableName))];
    if (startRevision === 0) ops.push(getPrefix(k.sessions(tableName), { sort_target: SortTarget.Create, sort_order: SortOrder.Ascend }));
    const res = await this.kv.read(ops);
    const rev = first(res, 0);
    const history = historyOf(first(res, 1), rev);
    if (rev === undefined || history === undefined) throw tableNotFound(tableName);
    const tableRevision = history.revision;
    const createRevision = Number(rev.create_revision);
    const head = Number(res.header.revision);
    let from: number;
    let snapshot: Session[] | undefined;
    if (startRevision === 0) {
      snapshot = sessionsOf(k, tableName, kvs(res, 2), history.tableUid);
      from = head + 1;
    } else {
      checkSameHistory(tableName, start.tableUid, history);
      // An expiry's revision is above the table's until its bump (expiry.ts): etcd's own revision bounds every one handed out.
      checkNotFuture(tableName, startRevision, head, history);
      // Events before the table's creation belong to a former table of that name.
      from = Math.max(startRevision, createRevision + 1);
      if (from <= tableRevision) await this.history.checkRetained(tableName, startRevision, from, rev, head);
    }
    const watch = new TableWatch(k, tableName, history.tableUid, sink, {
      onDone: (w) => this.open.delete(w),
      cancelled: (next) => this.history.whyCancelled(tableName, next),
      reconnected: (next) => this.history.whyNotResumable(tableName, history.tableUid, next),
      errors: this.kv.errors,
    });
    this.open.add(watch);
    try {
      // A replay's last write put `rev` at tableRevision: the history is in once that has arrived.
      const historyTo = from <= tableRevision ? tableRevision : 0;
      await watch.start(
        this.kv.client,
        from,
        this.kv.requestTimeoutMs,
        () => {
          if (snapshot !== undefined) sink.snapshot(snapshot, tableRevision, history.tableUid);
        },
        historyTo,
      );
    } catch (err) {
      this.open.delete(watch);
      throw this.kv.errors.toStoreError(err);
    }
    return { cancel: () => watch.cancel() };
  }

  /** Ends every open watch with SHUTTING_DOWN; each promise settles when etcd has let go of its watch. */
  endAll(): Promise<void>[] {
    return [...this.open].map((w) => w.end(shuttingDown()));
  }
}
