import { expect } from "chai";

import { ExpiryQueue } from "../../src/store/memory/expiry-queue.js";

describe("ExpiryQueue", () => {
  it("pops deadlines in time order, whatever order they were pushed in", () => {
    const q = new ExpiryQueue<number>(() => true);
    // A fixed pseudo-random sequence: deterministic, and far from sorted.
    let x = 7;
    const times: number[] = [];
    for (let i = 0; i < 2000; i++) {
      x = (x * 48271) % 2147483647;
      times.push(x % 10_000);
      q.push(x % 10_000, i);
    }
    const popped: number[] = [];
    for (let d = q.pop(); d !== undefined; d = q.pop()) popped.push(d.at);
    expect(popped).to.deep.equal([...times].sort((a, b) => a - b));
    expect(q.size).to.equal(0);
  });

  it("drops stale entries once they make up half the heap, keeping the live ones in order", () => {
    const live = new Set<number>();
    const q = new ExpiryQueue<number>((d) => live.has(d.item));
    for (let i = 0; i < 4000; i++) {
      q.push(4000 - i, i);
      if (i % 4 === 0) live.add(i);
    }
    q.markStale(3000);
    expect(q.size).to.equal(1000);
    const popped: number[] = [];
    for (let d = q.pop(); d !== undefined; d = q.pop()) popped.push(d.item);
    expect(popped).to.deep.equal([...live].sort((a, b) => b - a));
  });
});
