/**
 * A table's retained change feed: the newest events, so that a watcher can
 * resume from any revision still held. It is bounded three ways: at most
 * `maxEvents` events and `maxBytes` estimated bytes of its own, and the
 * daemon's memory budget, which may take its oldest events early
 * (dropOldest). Whatever is dropped moves compactRevision on: a watch that
 * starts before it gets REVISION_COMPACTED and resyncs.
 */
import { eventBytes, type MemoryBudget } from "../../core/budget.js";
import type { WatchEvent } from "../../core/model.js";

export class EventHistory {
  /** Oldest first from `head`; dropped slots are emptied at once (their events are garbage), and cut off once they are most of the array. */
  private events: (WatchEvent | undefined)[] = [];
  private sizes: number[] = [];
  private head = 0;
  /** Estimated bytes of the retained events. */
  bytes = 0;
  /** The oldest start revision still served: everything from it on is retained. */
  compactRevision = 1;

  constructor(
    private readonly maxEvents: number,
    private readonly maxBytes: number,
    private readonly budget: MemoryBudget,
  ) {}

  get size(): number {
    return this.events.length - this.head;
  }

  /** The revision of the oldest retained event, if any. */
  get oldestRevision(): number | undefined {
    return this.events[this.head]?.revision;
  }

  /** `sessionSize`: sessionBytes(event.session), when the caller has it. */
  push(event: WatchEvent, sessionSize?: number): void {
    const size = eventBytes(event, sessionSize);
    this.events.push(event);
    this.sizes.push(size);
    this.bytes += size;
    // The budget may reclaim from this very history: it is consistent by now.
    this.budget.charge("history", size);
    while (this.size > this.maxEvents || this.bytes > this.maxBytes) this.dropOldest();
  }

  /** Drops the oldest event; returns the bytes it freed (0 when empty). */
  dropOldest(): number {
    if (this.size === 0) return 0;
    const event = this.events[this.head]!;
    const size = this.sizes[this.head]!;
    this.events[this.head] = undefined;
    this.head++;
    this.bytes -= size;
    this.compactRevision = event.revision + 1;
    this.budget.release("history", size);
    if (this.head >= 1024 && this.head * 2 >= this.events.length) {
      this.events = this.events.slice(this.head);
      this.sizes = this.sizes.slice(this.head);
      this.head = 0;
    }
    return size;
  }

  /** Drops every event (the table is gone); its bytes go back to the budget. */
  clear(): void {
    this.budget.release("history", this.bytes);
    this.bytes = 0;
    this.events = [];
    this.sizes = [];
    this.head = 0;
  }

  /** Every retained event with revision >= `revision`, oldest first. */
  from(revision: number): WatchEvent[] {
    let lo = this.head;
    let hi = this.events.length;
    while (lo < hi) {
      const mid = (lo + hi) >>> 1;
      if (this.events[mid]!.revision < revision) lo = mid + 1;
      else hi = mid;
    }
    return this.events.slice(lo) as WatchEvent[];
  }
}
