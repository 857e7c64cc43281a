/**
 * Logs an event that a client can repeat at will (a refused connection, a
 * timed-out request) at most once per interval: the first one at once, then
 * one line per interval with how many more there were. A flood then costs
 * a line per interval, not one per connection, and a single event still
 * shows without delay.
 */
export class IntervalLog {
  private pending = 0;
  private timer: NodeJS.Timeout | undefined;

  /** `write(count)` writes one line about `count` events. */
  constructor(
    private readonly write: (count: number) => void,
    private readonly intervalMs: number,
  ) {}

  add(): void {
    if (this.timer !== undefined) {
      this.pending += 1;
      return;
    }
    this.emit(1);
    this.arm();
  }

  /** Writes what the current interval has counted so far, and stops the timer (shutdown). */
  flush(): void {
    clearTimeout(this.timer);
    this.timer = undefined;
    const count = this.pending;
    this.pending = 0;
    if (count > 0) this.emit(count);
  }

  private arm(): void {
    this.timer = setTimeout(() => {
      this.timer = undefined;
      const count = this.pending;
      this.pending = 0;
      if (count === 0) return;
      this.emit(count);
      this.arm();
    }, this.intervalMs);
    // A pending summary never keeps the process alive.
    this.timer.unref();
  }

  private emit(count: number): void {
    try {
      this.write(count);
    } catch {
      // A failing logger must not fail the connection or call that is being refused.
    }
  }
}
