/**
 * The request timeouts' queue on a clock of the test's own: every entry
 * expires a full timeout after it was last armed, in that order, never
 * after it is disarmed, and the queue's timers wake when the oldest entry
 * is due.
 */
import { expect } from "chai";

import { DeadlineQueue, type DeadlineClock, type DeadlineEntry } from "../../src/transport/deadline-queue.js";

/** A clock whose time moves only when the test says, running each timer that has come due. */
class TestClock implements DeadlineClock {
  time = 0;
  private timers: { at: number; run: () => void; ms: number }[] = [];

  now(): number {
    return this.time;
  }

  setTimeout(run: () => void, ms: number) {
    const timer = { at: this.time + ms, run, ms };
    this.timers.push(timer);
    return {
      refresh: () => {
        timer.at = this.time + timer.ms;
        if (!this.timers.includes(timer)) this.timers.push(timer);
      },
      unref: () => undefined,
    };
  }

  advance(ms: number): void {
    const until = this.time + ms;
    for (;;) {
      const due = this.timers.filter((t) => t.at <= until).sort((a, b) => a.at - b.at)[0];
      if (due === undefined) break;
      this.timers.splice(this.timers.indexOf(due), 1);
      this.time = due.at;
      due.run();
    }
    this.time = until;
  }
}

function entry(name: string, expired: string[], clock: TestClock): DeadlineEntry {
  return { dueAt: 0, newer: undefined, older: undefined, queued: false, expire: () => expired.push(`${name}@${clock.time}`) };
}

describe("deadline queue", () => {
  it("expires each entry a full timeout after it was armed, oldest first", () => {
    const clock = new TestClock();
    const queue = new DeadlineQueue(100, clock);
    const expired: string[] = [];
    queue.arm(entry("a", expired, clock));
    clock.advance(30);
    queue.arm(entry("b", expired, clock));
    clock.advance(50);
    queue.arm(entry("c", expired, clock));
    clock.advance(1000);
    expect(expired).to.deep.equal(["a@100", "b@130", "c@180"]);
  });

  it("never expires a disarmed entry, and re-arming restarts the timeout", () => {
    const clock = new TestClock();
    const queue = new DeadlineQueue(100, clock);
    const expired: string[] = [];
    const a = entry("a", expired, clock);
    const b = entry("b", expired, clock);
    const c = entry("c", expired, clock);
    queue.arm(a);
    queue.arm(b);
    queue.arm(c);
    clock.advance(60);
    queue.disarm(a);
    queue.arm(b);
    queue.disarm(a);
    clock.advance(1000);
    expect(expired).to.deep.equal(["c@100", "b@160"]);
    expect([a.queued, b.queued, c.queued]).to.deep.equal([false, false, false]);
  });

  it("keeps time after it has been empty: an entry armed later gets its full timeout", () => {
    const clock = new TestClock();
    const queue = new DeadlineQueue(100, clock);
    const expired: string[] = [];
    const a = entry("a", expired, clock);
    queue.arm(a);
    clock.advance(10);
    queue.disarm(a);
    clock.advance(50);
    queue.arm(entry("b", expired, clock));
    clock.advance(95);
    queue.arm(entry("c", expired, clock));
    clock.advance(1000);
    expect(expired).to.deep.equal(["b@160", "c@255"]);
  });
});
