/**
 * A table's retained change feed: the last `capacity` events in a ring, so
 * that a watcher can resume from any revision still held, and memory stays
 * bounded however long the table lives.
 */
import type { WatchEvent } from "../core/model.js";

export class EventHistory {
  private readonly ring: (WatchEvent | undefined)[];
  private start = 0;
  private size = 0;
  /** The oldest start revision still served: everything from it on is retained. */
  compactRevision = 1;

  constructor(private readonly capacity: number) {
    this.ring = new Array<WatchEvent | undefined>(capacity);
  }

  push(event: WatchEvent): void {
    if (this.size < this.capacity) {
      this.ring[(this.start + this.size) % this.capacity] = event;
      this.size++;
      return;
    }
    const evicted = this.ring[this.start]!;
    this.compactRevision = evicted.revision + 1;
    this.ring[this.start] = event;
    this.start = (this.start + 1) % this.capacity;
  }

  /** Every retained event with revision >= `revision`, oldest first. */
  from(revision: number): WatchEvent[] {
    let lo = 0;
    let hi = this.size;
    while (lo < hi) {
      const mid = (lo + hi) >>> 1;
      if (this.at(mid).revision < revision) lo = mid + 1;
      else hi = mid;
    }
    const out: WatchEvent[] = [];
    for (let i = lo; i < this.size; i++) out.push(this.at(i));
    return out;
  }

  private at(i: number): WatchEvent {
    return this.ring[(this.start + i) % this.capacity]!;
  }
}
