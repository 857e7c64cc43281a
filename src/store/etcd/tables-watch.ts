/**
 * The tables watch on etcd: while anyone watches, one etcd watch over the
 * store's prefix tells which tables a change may have touched (a meta, a
 * `rev` key, a slot), and one refresh loop reads those tables again, all in
 * one read at one etcd revision, then hands each watcher what differs from
 * what it was last given.
 *
 * The watch only says where to look; what watchers get always comes from a
 * linearizable read. The loop runs one read at a time and hands each
 * result to every watcher before the next read starts, so watchers see
 * states in the order etcd reached them (whatever its revisions say: an
 * etcd whose data was wiped counts them from 1 again); names touched
 * meanwhile wait, coalesced, for the next read. A new watcher's snapshot is
 * the loop's next read of the whole list, started once the etcd watch is
 * in place, so every later change makes a read after it. After a lost
 * connection or a cancelled etcd watch, the etcd watch starts anew from now
 * and, once it is in place, the whole list is read again: no event lost
 * while away can leave a watcher behind. (etcd3 would resume the old watch
 * from its last revision, which an etcd whose data was wiped reaches only
 * much later.) A new etcd watch not yet in place (etcd away again) is left
 * to etcd3, which creates it again on each reconnection, as for every watch
 * of the store, until it is in place or cancelled: the store closing, or
 * its last watcher leaving. Only a subscriber's wait for it has a deadline.
 *
 * What waits is bounded by the number of tables: a set of names, and per
 * watcher the last state it was given of each table.
 */
import type { Watcher } from "etcd3";

import { shuttingDown } from "../../core/errors.js";
import type { Table } from "../../core/model.js";
import type { TablesSink, WatchSubscription } from "../../core/store.js";
import type { EtcdKv } from "./kv.js";
import type { Tables } from "./tables.js";

/** How long the loop waits before it reads again after a failed read (etcd away). */
const RETRY_MS = 1_000;

export class TablesWatch {
  private watcher: Watcher | undefined;
  /** Resolves once an etcd watch is in place; one that replaces a watch not yet in place keeps its promise. */
  private watching: Promise<void> = Promise.resolve();
  /** Resolves `watching` while it is pending. */
  private inPlace: (() => void) | undefined;
  private readonly watchers = new Set<TableWatcher>();
  /** Tables to read again. */
  private readonly dirty = new Set<string>();
  /** The whole list is to be read again. */
  private relist = false;
  private loop: Promise<void> | undefined;
  private stopped = false;

  constructor(
    private readonly kv: EtcdKv,
    private readonly tables: Tables,
  ) {}

  async subscribe(sink: TablesSink): Promise<WatchSubscription> {
    if (this.stopped) throw shuttingDown();
    const watcher = new TableWatcher(sink);
    this.watchers.add(watcher);
    const cancel = () => {
      if (this.watchers.delete(watcher) && this.watchers.size === 0) void this.unwatch();
    };
    try {
      await this.watched(watcher);
      this.markAll();
      await watcher.started;
    } catch (err) {
      cancel();
      throw err;
    }
    return { cancel };
  }

  /** Ends every tables watch (the store is closing); settles once etcd let go of the watch. */
  stop(): Promise<unknown> {
    this.stopped = true;
    for (const watcher of this.watchers) watcher.end();
    this.watchers.clear();
    return this.unwatch();
  }

  /** Waits, at most requestTimeoutMs, until the etcd watch is in place (starting it unless it runs), or `watcher` ends. */
  private async watched(watcher: TableWatcher): Promise<void> {
    let timer: NodeJS.Timeout | undefined;
    const late = new Promise<never>((_, reject) => {
      timer = setTimeout(
        () => reject(this.kv.errors.unavailable(`did not set up the tables watch within ${this.kv.requestTimeoutMs} ms`)),
        this.kv.requestTimeoutMs,
      );
    });
    try {
      // The store closing ends the watcher, and with it the wait.
      await Promise.race([this.watch(), late, watcher.started]);
    } finally {
      clearTimeout(timer);
    }
  }

  /** Starts the etcd watch unless it runs; resolves once one is in place. */
  private watch(): Promise<void> {
    if (this.watcher !== undefined) return this.watching;
    const watcher = this.kv.client.watch().prefix(this.kv.keys.prefix).watcher();
    this.watcher = watcher;
    if (this.inPlace === undefined) this.watching = new Promise<void>((resolve) => (this.inPlace = resolve));
    let connected = false;
    watcher.on("connected", () => {
      // A cancelled watch may still be created meanwhile; only the current one counts.
      if (this.watcher !== watcher) return;
      if (connected) {
        // Back after a lost connection: what changed meanwhile may not all come as events.
        this.rewatch(watcher);
        return;
      }
      connected = true;
      this.inPlace?.();
      this.inPlace = undefined;
    });
    watcher.on("data", (res) => {
      for (const ev of res.events) {
        const name = this.kv.keys.listedTableOf(ev.kv.key.toString("utf8"));
        if (name !== undefined) this.dirty.add(name);
      }
      this.kick();
    });
    // etcd cancelled the watch (e.g. a revision it owed was compacted), or refused it: a refusal
    // that lasts (e.g. permissions) must not make a loop of watch requests, so the next waits a while.
    watcher.on("error", () => setTimeout(() => this.rewatch(watcher), RETRY_MS).unref());
    return this.watching;
  }

  /** Replaces the etcd watch `old` with one from now; once that is in place, reads everything again. */
  private rewatch(old: Watcher): void {
    if (this.watcher !== old) return;
    void this.unwatch();
    if (this.watchers.size === 0 || this.stopped) return;
    void this.watch().then(() => this.markAll());
  }

  private unwatch(): Promise<unknown> {
    const watcher = this.watcher;
    this.watcher = undefined;
    return watcher === undefined ? Promise.resolve() : watcher.cancel().catch(() => undefined);
  }

  private markAll(): void {
    this.relist = true;
    this.kick();
  }

  /** Runs the refresh loop unless it runs or has nothing to read. */
  private kick(): void {
    if (this.loop !== undefined || this.stopped || this.watchers.size === 0 || (!this.relist && this.dirty.size === 0)) return;
    this.loop = this.refresh().finally(() => {
      this.loop = undefined;
      // What was marked between the loop's last check and now.
      this.kick();
    });
  }

  /** One read at a time, until nothing is left to read. */
  private async refresh(): Promise<void> {
    while (!this.stopped && this.watchers.size > 0 && (this.relist || this.dirty.size > 0)) {
      const relist = this.relist;
      const names = [...this.dirty];
      this.relist = false;
      this.dirty.clear();
      // Watchers that joined during an earlier read wait for this one's whole list.
      const ready = [...this.watchers].filter((w) => relist || w.isStarted);
      try {
        if (relist) {
          const { tables } = await this.tables.listAt();
          for (const watcher of ready) watcher.list(tables);
        } else {
          const { tables } = await this.tables.readMany(names);
          for (const watcher of ready) watcher.apply(tables);
        }
      } catch (err) {
        // etcd unreachable or slow: a new watcher is refused; for the others, read again a little later.
        for (const watcher of ready) if (!watcher.isStarted) watcher.refuse(err);
        if (relist) this.relist = true;
        for (const name of names) this.dirty.add(name);
        await new Promise((resolve) => setTimeout(resolve, RETRY_MS).unref());
      }
    }
  }
}

/** One tables watcher: the last state it was given of each table. */
class TableWatcher {
  private readonly known = new Map<string, Table>();
  private ended = false;
  isStarted = false;
  /** Settles once it was handed its snapshot, or refused. */
  readonly started: Promise<void>;
  private settle!: { resolve: () => void; reject: (err: unknown) => void };

  constructor(private readonly sink: TablesSink) {
    this.started = new Promise((resolve, reject) => (this.settle = { resolve, reject }));
    // Nobody may wait on it if subscribe() failed before: its rejection is subscribe()'s.
    this.started.catch(() => undefined);
  }

  /** The states of some tables (undefined: missing), read at one etcd revision. */
  apply(tables: ReadonlyMap<string, Table | undefined>): void {
    if (this.ended) return;
    for (const [name, table] of tables) this.set(name, table);
  }

  /** Every table, read at one etcd revision: the snapshot, or else those it knows and is not given are gone. */
  list(tables: readonly Table[]): void {
    if (this.ended) return;
    if (!this.isStarted) {
      this.isStarted = true;
      for (const table of tables) this.known.set(table.name, table);
      this.sink.snapshot([...tables]);
      this.settle.resolve();
      return;
    }
    const listed = new Set<string>();
    for (const table of tables) {
      listed.add(table.name);
      this.set(table.name, table);
    }
    for (const name of [...this.known.keys()]) if (!listed.has(name)) this.set(name, undefined);
  }

  /** Its snapshot could not be read. */
  refuse(err: unknown): void {
    this.ended = true;
    this.settle.reject(err);
  }

  end(): void {
    if (this.ended) return;
    this.ended = true;
    this.settle.reject(shuttingDown());
    if (this.isStarted) this.sink.end(shuttingDown());
  }

  private set(name: string, table: Table | undefined): void {
    const before = this.known.get(name);
    if (table === undefined) {
      if (before === undefined) return;
      this.known.delete(name);
      this.sink.deleted(name);
      return;
    }
    if (before !== undefined && sameState(before, table)) return;
    this.known.set(name, table);
    this.sink.changed(table);
  }
}

function sameState(a: Table, b: Table): boolean {
  return a.tableUid === b.tableUid && a.revision === b.revision && a.sessionCount === b.sessionCount && a.maxSessions === b.maxSessions;
}
