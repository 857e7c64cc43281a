/**
 * Expiry in the memory store. Sessions with a ttl sit in one min-heap of
 * deadlines (ExpiryQueue); a timer armed for the earliest one expires them,
 * and every store call first expires what is due (expireDue), so no call
 * ever sees a session past its expire time.
 */
import { ExpiryQueue, type Deadline } from "./expiry-queue.js";
import type { Entry, MemoryTable } from "./table.js";

/** What the expiry queue holds: a session's slot and its table. */
interface Expiring {
  table: MemoryTable;
  entry: Entry;
}

export interface ExpiryHooks {
  /** The clock, in epoch milliseconds. */
  now(): number;
  /** Whether `table` is still the store's table of its name (not deleted, not made again). */
  holds(table: MemoryTable): boolean;
  /** Removes a session whose expire time has passed, as one write. */
  expire(table: MemoryTable, entry: Entry): void;
}

export class Expiries {
  private readonly queue = new ExpiryQueue<Expiring>((d) => this.isScheduled(d));
  private timer: NodeJS.Timeout | undefined;
  private timerAt = Infinity;
  private closed = false;

  constructor(private readonly hooks: ExpiryHooks) {}

  /**
   * Makes sure the expiry queue holds a deadline no later than the session's
   * expire time. A later expire time (after a keep-alive) needs nothing: the
   * earlier deadline comes due first and is pushed on then, so keep-alives
   * cost no heap growth.
   */
  schedule(table: MemoryTable, entry: Entry): void {
    const at = entry.session.expireTime?.getTime();
    if (at === undefined || (entry.heapAt !== undefined && entry.heapAt <= at)) return;
    if (entry.heapAt !== undefined) this.queue.markStale();
    entry.heapAt = at;
    this.queue.push(at, { table, entry });
    this.armTimer();
  }

  /** Notes that `count` scheduled sessions are gone (removed, or their table deleted): their deadlines are stale. */
  unscheduled(count = 1): void {
    this.queue.markStale(count);
  }

  /** Expires every session whose expire time has passed. O(log n) per session. */
  expireDue(): void {
    // Every call comes through here: with nothing scheduled and no timer armed
    // (no session has a ttl) there is nothing to do, not even to read the clock.
    if (this.queue.size === 0 && this.timerAt === Infinity) return;
    const now = this.hooks.now();
    for (let top = this.queue.peek(); top !== undefined && top.at <= now; top = this.queue.peek()) {
      this.queue.pop();
      if (!this.isScheduled(top)) {
        this.queue.stalePopped();
        continue;
      }
      const { table, entry } = top.item;
      entry.heapAt = undefined;
      const expireAt = entry.session.expireTime?.getTime();
      if (expireAt === undefined) continue;
      if (expireAt > now) {
        // Kept alive since this deadline was set: wait for the new one.
        entry.heapAt = expireAt;
        this.queue.push(expireAt, top.item);
        continue;
      }
      this.hooks.expire(table, entry);
    }
    this.armTimer();
  }

  /** Stops the timer and forgets every deadline, for good. */
  close(): void {
    this.closed = true;
    clearTimeout(this.timer);
    this.timer = undefined;
    this.queue.clear();
  }

  private isScheduled(d: Deadline<Expiring>): boolean {
    const { table, entry } = d.item;
    return entry.alive && entry.heapAt === d.at && this.hooks.holds(table);
  }

  /** Keeps one timer armed for the earliest deadline; it never holds the process open. */
  private armTimer(): void {
    if (this.closed) return;
    const next = this.queue.peek()?.at ?? Infinity;
    if (next === this.timerAt) return;
    clearTimeout(this.timer);
    this.timer = undefined;
    this.timerAt = next;
    if (next === Infinity) return;
    this.timer = setTimeout(
      () => {
        this.timer = undefined;
        this.timerAt = Infinity;
        this.expireDue();
      },
      Math.max(0, next - this.hooks.now()),
    );
    this.timer.unref();
  }
}
