import { expect } from "chai";

import { eventBytes, MemoryBudget, unlimitedBudget } from "../../src/core/budget.js";
import { newSession, type WatchEvent } from "../../src/core/model.js";
import { EventHistory } from "../../src/store/memory/event-history.js";

describe("EventHistory", () => {
  const event = (revision: number, value = ""): WatchEvent => ({
    type: "UPDATED",
    revision,
    session: newSession(
      { id: "s", name: "s", projectPath: "/s", metadata: new Map(value ? [["k", value]] : []), ttl: undefined },
      revision,
      0,
      undefined,
      "uid",
    ),
  });

  it("serves every event from a revision while nothing has been compacted", () => {
    const h = new EventHistory(5, Infinity, unlimitedBudget());
    for (const r of [3, 5, 8]) h.push(event(r));
    expect(h.compactRevision).to.equal(1);
    expect(h.from(1).map((e) => e.revision)).to.deep.equal([3, 5, 8]);
    expect(h.from(4).map((e) => e.revision)).to.deep.equal([5, 8]);
    expect(h.from(9)).to.deep.equal([]);
  });

  it("keeps the newest events and moves the compact revision past the evicted ones", () => {
    const h = new EventHistory(3, Infinity, unlimitedBudget());
    for (const r of [2, 4, 6, 8, 10]) h.push(event(r));
    expect(h.compactRevision).to.equal(5);
    expect(h.from(5).map((e) => e.revision)).to.deep.equal([6, 8, 10]);
    expect(h.from(7).map((e) => e.revision)).to.deep.equal([8, 10]);
  });

  it("keeps at most maxBytes of events, dropping the oldest, and charges exactly what it keeps to the budget", () => {
    const size = eventBytes(event(1, "x".repeat(1000)));
    const budget = unlimitedBudget();
    const h = new EventHistory(1000, size * 3, budget);
    for (let r = 1; r <= 10; r++) h.push(event(r, "x".repeat(1000)));
    expect(h.size).to.equal(3);
    expect(h.from(0).map((e) => e.revision)).to.deep.equal([8, 9, 10]);
    expect(h.compactRevision).to.equal(8);
    expect(budget.usage("history")).to.equal(3 * size);
    h.clear();
    expect(budget.usage("history")).to.equal(0);
  });

  it("gives its oldest events back when the daemon's budget is full", () => {
    const size = eventBytes(event(1, "x".repeat(1000)));
    const budget = new MemoryBudget(size * 10);
    const h = new EventHistory(1000, Infinity, budget);
    budget.addReclaimer("history", {
      reclaim: (bytes) => {
        let n = 0;
        for (let freed = 0; freed < bytes && h.size > 0; n++) freed += h.dropOldest();
        return n;
      },
    });
    for (let r = 1; r <= 100; r++) h.push(event(r, "x".repeat(1000)));
    expect(budget.usage()).to.be.at.most(budget.limit);
    expect(h.size).to.be.within(1, 10);
    expect(h.compactRevision).to.equal(h.from(0)[0]!.revision);
    expect(budget.usage("history")).to.equal(h.size * size);
  });
});
