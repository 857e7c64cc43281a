/**
 * A memory table's change feed: its bounded event history and its live
 * watchers. Every write appends an event and hands it to the watchers in
 * the same turn, so a watch that replays history and then subscribes (in
 * one turn too) can neither miss nor repeat an event. Also the budget's
 * history reclaimer, which drops the oldest events of all tables first.
 */
import type { MemoryBudget } from "../../core/budget.js";
import { revisionCompacted, type RegistryError } from "../../core/errors.js";
import type { EventType, Session, WatchEvent } from "../../core/model.js";
import type { StoreLimits, WatchSink, WatchSubscription } from "../../core/store.js";
import { EventHistory } from "./event-history.js";

/** A live watch: it gets every event with revision >= `from`. */
interface Watcher {
  sink: WatchSink;
  from: number;
}

export class TableFeed {
  readonly history: EventHistory;
  private readonly watchers = new Set<Watcher>();

  constructor(limits: StoreLimits, budget: MemoryBudget) {
    this.history = new EventHistory(limits.watchHistory, limits.watchHistoryBytes ?? Infinity, budget);
  }

  /** Records a change at `revision` and hands it to every watcher. */
  emit(type: EventType, revision: number, session: Session, sessionSize: number): void {
    const event: WatchEvent = { type, revision, session };
    this.history.push(event, sessionSize);
    for (const w of this.watchers) {
      if (event.revision >= w.from) w.sink.event(event);
    }
  }

  /** Hands `sink` every retained event from `startRevision` on; REVISION_COMPACTED if some are gone. */
  replay(tableName: string, startRevision: number, sink: WatchSink): void {
    const compact = this.history.compactRevision;
    if (startRevision < compact) throw revisionCompacted(tableName, startRevision, compact);
    for (const event of this.history.from(startRevision)) sink.event(event);
  }

  /** Hands `sink` every event from `from` on, until cancelled. */
  subscribe(sink: WatchSink, from: number): WatchSubscription {
    const watcher: Watcher = { sink, from };
    this.watchers.add(watcher);
    return { cancel: () => this.watchers.delete(watcher) };
  }

  /** Ends every watch with `error`. */
  endWatches(error: RegistryError): void {
    const watchers = [...this.watchers];
    this.watchers.clear();
    for (const w of watchers) w.sink.end(error);
  }
}

/**
 * The budget's history reclaimer: drops the oldest retained events of all
 * `feeds` (revisions are store-wide, so "oldest" is one order across
 * tables) until `bytes` are freed or no history is left. The number of
 * events dropped.
 */
export function reclaimOldest(feeds: () => Iterable<TableFeed>, bytes: number): number {
  let freed = 0;
  let dropped = 0;
  while (freed < bytes) {
    let oldest: EventHistory | undefined;
    let oldestRevision = Infinity;
    let next = Infinity;
    for (const { history } of feeds()) {
      const r = history.oldestRevision;
      if (r === undefined) continue;
      if (r < oldestRevision) {
        next = oldestRevision;
        oldest = history;
        oldestRevision = r;
      } else if (r < next) {
        next = r;
      }
    }
    if (oldest === undefined) break;
    // From that table, until another table holds the oldest event (one scan per run, not per event).
    do {
      freed += oldest.dropOldest();
      dropped++;
    } while (freed < bytes && (oldest.oldestRevision ?? Infinity) < next);
  }
  return dropped;
}
