/**
 * Deadlines that all run for the same time, without a timer per entry:
 * entries are kept in the order they were armed, which is the order they
 * fall due in, and one timer wakes for the oldest. Arming, re-arming and
 * disarming an entry allocate nothing; the timer is re-armed in place
 * (Timeout.refresh) when the queue was empty, which is most of the time
 * for requests that arrive whole.
 */

/** What the queue links; an entry is in at most one queue. */
export interface DeadlineEntry {
  /** When it falls due (the queue's clock); set by the queue. */
  dueAt: number;
  /** The queue's links; undefined when not queued. */
  newer: DeadlineEntry | undefined;
  older: DeadlineEntry | undefined;
  queued: boolean;
  /** Called once when it falls due, after it has left the queue. */
  expire(): void;
}

/** The clock and timers a queue uses; tests pass their own. */
export interface DeadlineClock {
  now(): number;
  setTimeout(run: () => void, ms: number): { refresh(): unknown; unref(): unknown };
}

const realClock: DeadlineClock = { now: () => performance.now(), setTimeout: (run, ms) => setTimeout(run, ms) };

export class DeadlineQueue {
  private oldest: DeadlineEntry | undefined;
  private newest: DeadlineEntry | undefined;
  /** The timer that runs for the full timeout, re-armed in place. */
  private full: { refresh(): unknown } | undefined;
  /** When the earliest timer that will run is due; Infinity when none is. */
  private wakeAt = Infinity;
  private readonly wake = () => this.expireDue();

  constructor(
    private readonly timeoutMs: number,
    private readonly clock: DeadlineClock = realClock,
  ) {}

  /** Starts (or restarts) the entry's timeout from now. */
  arm(entry: DeadlineEntry): void {
    if (entry.queued) this.unlink(entry);
    const now = this.clock.now();
    entry.dueAt = now + this.timeoutMs;
    entry.queued = true;
    entry.older = this.newest;
    entry.newer = undefined;
    if (this.newest === undefined) this.oldest = entry;
    else this.newest.newer = entry;
    this.newest = entry;
    if (this.wakeAt > entry.dueAt) this.schedule(entry.dueAt, now);
  }

  /** Stops the entry's timeout; nothing if it is not queued. */
  disarm(entry: DeadlineEntry): void {
    if (entry.queued) this.unlink(entry);
  }

  private unlink(entry: DeadlineEntry): void {
    if (entry.older === undefined) this.oldest = entry.newer;
    else entry.older.newer = entry.newer;
    if (entry.newer === undefined) this.newest = entry.older;
    else entry.newer.older = entry.older;
    entry.older = entry.newer = undefined;
    entry.queued = false;
  }

  /**
   * Makes sure a timer runs at `at`. A wake a full timeout from now re-arms
   * the reused timer; a shorter one (the next entry after an expiry) takes
   * a timer of its own. A timer that finds nothing due only schedules the next.
   */
  private schedule(at: number, now: number): void {
    this.wakeAt = at;
    if (at - now >= this.timeoutMs) {
      if (this.full === undefined) {
        const timer = this.clock.setTimeout(this.wake, this.timeoutMs);
        // A pending request holds its connection open; the timer need not hold the process.
        timer.unref();
        this.full = timer;
      } else {
        this.full.refresh();
      }
    } else {
      this.clock.setTimeout(this.wake, Math.max(0, at - now)).unref();
    }
  }

  private expireDue(): void {
    this.wakeAt = Infinity;
    const now = this.clock.now();
    for (let entry = this.oldest; entry !== undefined && entry.dueAt <= now; entry = this.oldest) {
      this.unlink(entry);
      entry.expire();
    }
    if (this.oldest !== undefined) this.schedule(this.oldest.dueAt, this.clock.now());
  }
}
