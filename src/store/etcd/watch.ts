/**
 * One Watch of the etcd store: an etcd watch on the table's prefix from a
 * revision, mapped to the feed by events.ts. Events that arrive before the
 * watch is set up (etcd sends from the start revision as soon as it is
 * created) wait, so that the snapshot goes first. etcd3 re-creates the watch
 * after a disconnection from the revision after the last one delivered:
 * nothing lost, nothing twice, as long as etcd kept its data. Whether it did
 * is checked before anything more is delivered (see `reconnected`): etcd may
 * be back wiped, with revisions started over and the table gone or another.
 */
import type { Etcd3, IEvent, Watcher } from "etcd3";

import { RegistryError, tableNotFound } from "../../core/errors.js";
import type { WatchSink } from "../../core/store.js";
import type { EtcdErrors } from "./client.js";
import { toChanges } from "./events.js";
import type { Keys } from "./keys.js";

export interface TableWatchHooks {
  /** The watch is over (cancelled or ended); called once. */
  onDone(w: TableWatch): void;
  /** Why etcd cancelled (or refused) a watch whose next revision was `next`. */
  cancelled(next: number): Promise<RegistryError>;
  /** After etcd3 re-created the watch: undefined if it still watches its history, else the error that ends it. */
  reconnected(next: number): Promise<RegistryError | undefined>;
  /** Where etcd is, for errors that say so. */
  errors: EtcdErrors;
}

export class TableWatch {
  private watcher: Watcher | undefined;
  /** The snapshot (if any) went out: events may follow. */
  private ready = false;
  /** Lost the connection: events wait until the re-created watch is known to follow the same history. */
  private resuming = false;
  private ended = false;
  /** The revision of the first event the sink has not had yet. */
  private next = 0;
  private readonly pending: IEvent[][] = [];
  /** While start() waits: checks whether it may stop waiting. */
  private progressed = () => {};

  constructor(
    private readonly keys: Keys,
    private readonly table: string,
    /** The history this watch delivers; its sessions carry it. */
    private readonly tableUid: string,
    private readonly sink: WatchSink,
    private readonly hooks: TableWatchHooks,
  ) {}

  /**
   * Resolves once etcd has created the watch and sent the history up to etcd
   * revision `historyTo` (0: none to wait for); `onReady` runs first (the
   * snapshot), then what arrived meanwhile. etcd sends a replay after it has
   * created the watch, in batches: were they delivered after the store has
   * answered, the transport would take the replay for live messages and end
   * a watcher whose replay is longer than its queue as too slow.
   */
  async start(client: Etcd3, from: number, timeoutMs: number, onReady: () => void, historyTo = 0): Promise<void> {
    this.next = from;
    const watcher = client.watch().prefix(this.keys.table(this.table)).withPreviousKV().startRevision(String(from)).watcher();
    this.watcher = watcher;
    // The newest etcd revision received before the watch is ready.
    let received = from - 1;
    watcher.on("data", (res) => {
      if (this.ended) return;
      if (this.ready && !this.resuming) {
        this.deliver(res.events);
        return;
      }
      this.pending.push(res.events);
      // Ready but resuming: held for the history check; only start() counts what arrives.
      if (this.ready) return;
      for (const ev of res.events) received = Math.max(received, Number(ev.kv.mod_revision));
      this.progressed();
    });
    let connected = false;
    let started = false;
    const created = new Promise<void>((resolve, reject) => {
      const timer = setTimeout(() => {
        void watcher.cancel().catch(() => undefined);
        reject(this.hooks.errors.unavailable(`did not set up the watch and send its history within ${timeoutMs} ms`));
      }, timeoutMs);
      // Also called by end(): a watch ended meanwhile stops waiting for its history.
      this.progressed = () => {
        if (started || (!this.ended && (!connected || received < historyTo))) return;
        started = true;
        clearTimeout(timer);
        resolve();
      };
      watcher.once("connected", () => {
        connected = true;
        this.progressed();
      });
      // The one error listener, for the watch's whole life (an unheard "error" would throw).
      watcher.on("error", () => {
        if (!started) {
          // Refused at creation, or cancelled during the replay: typically a start revision etcd has compacted.
          clearTimeout(timer);
          void this.hooks.cancelled(from).then(reject);
          return;
        }
        // etcd cancelled the watch: typically a revision it still owed was compacted while it was away.
        void this.hooks.cancelled(this.next).then((error) => this.end(error));
      });
    });
    watcher.on("disconnected", () => {
      if (connected) this.resuming = true;
    });
    watcher.on("connected", () => {
      if (this.resuming) void this.resume();
    });
    try {
      await created;
    } catch (err) {
      this.ended = true;
      throw err;
    }
    // The store closed meanwhile: the sink has its end already, and nothing may follow it.
    if (this.ended) return;
    this.ready = true;
    onReady();
    this.flush();
  }

  cancel(): void {
    if (this.ended) return;
    this.ended = true;
    this.hooks.onDone(this);
    void this.watcher?.cancel().catch(() => undefined);
  }

  /** Ends the watch with `error`, once; resolves when etcd has let go of it (or could not be asked). */
  async end(error: RegistryError): Promise<void> {
    if (this.ended) return;
    this.ended = true;
    this.hooks.onDone(this);
    this.sink.end(error);
    this.progressed();
    await this.watcher?.cancel().catch(() => undefined);
  }

  /** The watch is back after a lost connection: goes on if etcd still has its history, else ends. */
  private async resume(): Promise<void> {
    let error: RegistryError | undefined;
    try {
      error = await this.hooks.reconnected(this.next);
    } catch (err) {
      // Could not tell (etcd gone again): nothing unchecked may go out, so the watcher resumes later instead.
      error =
        err instanceof RegistryError
          ? err
          : this.hooks.errors.unavailable(`${this.hooks.errors.why(err)} while the watch of table "${this.table}" resumed`);
    }
    if (this.ended) return;
    if (error !== undefined) {
      this.pending.length = 0;
      await this.end(error);
      return;
    }
    this.resuming = false;
    if (this.ready) this.flush();
  }

  /** Delivers what waited; stops (keeping the rest) if the connection is lost again meanwhile. */
  private flush(): void {
    while (this.pending.length > 0 && !this.ended && !this.resuming) this.deliver(this.pending.shift()!);
  }

  private deliver(events: readonly IEvent[]): void {
    for (const change of toChanges(this.keys, events, this.tableUid, this.table)) {
      if (this.ended) return;
      if (change.kind === "tableDeleted") {
        void this.end(tableNotFound(this.table));
        return;
      }
      this.sink.event(change.event);
      this.next = change.event.revision + 1;
    }
  }
}
