/**
 * One Watch of the etcd store: an etcd watch on the table's prefix from a
 * revision, mapped to the feed by events.ts. Events that arrive before the
 * watch is set up (etcd sends from the start revision as soon as it is
 * created) wait, so that the snapshot goes first. etcd3 re-creates the watch
 * after a disconnection from the revision after the last one delivered:
 * nothing lost, nothing twice.
 */
import type { Etcd3, Watcher } from "etcd3";

import { storeUnavailable, tableNotFound, type RegistryError } from "../../core/errors.js";
import type { WatchSink } from "../store.js";
import { toChanges } from "./events.js";
import type { Keys } from "./keys.js";

export class TableWatch {
  private watcher: Watcher | undefined;
  private ready = false;
  private ended = false;
  /** The revision of the first event the sink has not had yet. */
  private next = 0;
  private readonly pending: Parameters<typeof toChanges>[1][] = [];
  /** While start() waits: checks whether it may stop waiting. */
  private progressed = () => {};

  constructor(
    private readonly keys: Keys,
    private readonly table: string,
    private readonly sink: WatchSink,
    private readonly onDone: (w: TableWatch) => void,
    /** Why etcd cancelled (or refused) a watch whose next revision was `next`. */
    private readonly cancelled: (next: number) => Promise<RegistryError>,
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
      if (this.ready) {
        this.deliver(res.events);
        return;
      }
      this.pending.push(res.events);
      for (const ev of res.events) received = Math.max(received, Number(ev.kv.mod_revision));
      this.progressed();
    });
    let connected = false;
    let started = false;
    const created = new Promise<void>((resolve, reject) => {
      const timer = setTimeout(() => {
        void watcher.cancel().catch(() => undefined);
        reject(storeUnavailable(`etcd did not set up the watch and send its history within ${timeoutMs} ms`));
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
          void this.cancelled(from).then(reject);
          return;
        }
        // etcd cancelled the watch: typically a revision it still owed was compacted while it was away.
        void this.cancelled(this.next).then((error) => this.end(error));
      });
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
    for (const events of this.pending.splice(0)) {
      if (this.ended) break;
      this.deliver(events);
    }
  }

  cancel(): void {
    if (this.ended) return;
    this.ended = true;
    this.onDone(this);
    void this.watcher?.cancel().catch(() => undefined);
  }

  /** Ends the watch with `error`, once; resolves when etcd has let go of it (or could not be asked). */
  async end(error: RegistryError): Promise<void> {
    if (this.ended) return;
    this.ended = true;
    this.onDone(this);
    this.sink.end(error);
    this.progressed();
    await this.watcher?.cancel().catch(() => undefined);
  }

  private deliver(events: Parameters<typeof toChanges>[1]): void {
    for (const change of toChanges(this.keys, events, this.table)) {
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
