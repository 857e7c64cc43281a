/**
 * Expiries in etcd: one watch over the store's whole prefix that tells the
 * observer of every expiry and moves the expired session's table revision
 * past it. The same watch tells the slot hints (slots.ts) of every slot
 * taken or freed, by any daemon.
 *
 * An expiry is etcd revoking the lease: one etcd revision E deletes all the
 * session's keys, and E is the EXPIRED event's revision (events.ts). No Txn
 * of ours runs then, so the table revision (the `rev` key) does not move at
 * E. Each store puts the table's `rev` key right after, in a Txn that
 * compares that it is the same incarnation and still below E (bump): of
 * several daemons only the first bumps, and none when a write moved it
 * already. The table revision then moves past E, one etcd revision later
 * than the memory store's would. What remains is the window between E and
 * that bump (a round trip, longer while etcd is slow or unreachable: the
 * bump is best effort, never retried, and the next write closes the window
 * anyway): a List or snapshot read in it reports the revision of the last
 * write, and a watch resumed from that + 1 may replay EXPIRED events of
 * sessions the page no longer had (harmless: removing an absent session).
 * A bump is a put of `rev` without session change: no event.
 *
 * The observer hears of every expiry in the store's prefix: each daemon on
 * one etcd counts every expiry.
 */
import type { Watcher } from "etcd3";

import type { StoreObserver } from "../../core/store.js";
import { isDelete, toChanges } from "./events.js";
import type { EtcdKv } from "./kv.js";
import { createdAfter, createdBefore, modifiedBefore, put } from "./ops.js";
import type { SlotHints } from "./slots.js";

export class ExpiryWatch {
  private watcher: Watcher | undefined;
  /** Tables whose `rev` bump after an expiry is running, with the highest expiry revision still to bump past. */
  private readonly bumps = new Map<string, { next: number | undefined; done: Promise<void> }>();
  private stopped = false;

  /** Watches every expiry under the prefix from now on. */
  constructor(
    private readonly kv: EtcdKv,
    private readonly observer: StoreObserver | undefined,
    slots: SlotHints,
  ) {
    const watcher = kv.client.watch().prefix(kv.keys.allTables).withPreviousKV().watcher();
    this.watcher = watcher;
    watcher.on("data", (res) => {
      slots.observe(res.events);
      // An expiry only deletes: the batches of puts every Register, Update and KeepAlive brings need no decoding.
      if (!res.events.some(isDelete)) return;
      // Only expiries are counted here, never handed out: the sessions need no table_uid.
      for (const change of toChanges(kv.keys, res.events, "")) {
        if (change.kind !== "event" || change.event.type !== "EXPIRED") continue;
        this.observer?.expired(change.table, change.event.session);
        this.bump(change.table, change.event.revision);
      }
    });
    // A cancelled watch (e.g. compaction while disconnected) only costs counts and bumps; etcd3 reconnects on its own otherwise.
    watcher.on("error", () => undefined);
  }

  /** Stops watching and bumping; settles once etcd let go of the watch and the running bumps are over. */
  stop(): Promise<unknown> {
    this.stopped = true;
    const cancels: Promise<unknown>[] = [];
    if (this.watcher !== undefined) cancels.push(this.watcher.cancel().catch(() => undefined));
    this.watcher = undefined;
    for (const bump of this.bumps.values()) cancels.push(bump.done);
    return Promise.allSettled(cancels);
  }

  /**
   * Moves the table revision past the expiry at etcd revision `expiredAt`:
   * puts the table's `rev` key (same value) in a Txn that compares that it
   * still exists and was created before `expiredAt` (so it is the
   * incarnation that held the session: a table is only deleted empty or with
   * its sessions, and a recreated one's `rev` is younger), and that its mod
   * revision is still below `expiredAt` (of several daemons the first one
   * bumps; a write since has moved it already). Best effort: a failed Txn is
   * ignored (the next write moves the revision anyway). At most one Txn per
   * table runs at a time; expiries meanwhile coalesce into one more, past
   * the highest of them.
   */
  private bump(tableName: string, expiredAt: number): void {
    if (this.stopped) return;
    const running = this.bumps.get(tableName);
    if (running !== undefined) {
      running.next = Math.max(running.next ?? 0, expiredAt);
      return;
    }
    const rev = this.kv.keys.rev(tableName);
    const entry: { next: number | undefined; done: Promise<void> } = { next: expiredAt, done: Promise.resolve() };
    this.bumps.set(tableName, entry);
    entry.done = (async () => {
      while (entry.next !== undefined && !this.stopped) {
        const at = entry.next;
        entry.next = undefined;
        try {
          await this.kv.txn([createdAfter(rev, 0), createdBefore(rev, at), modifiedBefore(rev, at)], [put(rev, "")]);
        } catch {
          // etcd unreachable or slow (each call has a deadline): the window stays open until the next write.
        }
      }
      this.bumps.delete(tableName);
    })();
  }
}
