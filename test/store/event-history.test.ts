import { expect } from "chai";

import type { Session, WatchEvent } from "../../src/core/model.js";
import { EventHistory } from "../../src/store/event-history.js";

describe("EventHistory", () => {
  const session = {} as Session;
  const event = (revision: number): WatchEvent => ({ type: "UPDATED", revision, session });

  it("serves every event from a revision while nothing has been compacted", () => {
    const h = new EventHistory(5);
    for (const r of [3, 5, 8]) h.push(event(r));
    expect(h.compactRevision).to.equal(1);
    expect(h.from(1).map((e) => e.revision)).to.deep.equal([3, 5, 8]);
    expect(h.from(4).map((e) => e.revision)).to.deep.equal([5, 8]);
    expect(h.from(9)).to.deep.equal([]);
  });

  it("keeps the newest events and moves the compact revision past the evicted ones", () => {
    const h = new EventHistory(3);
    for (const r of [2, 4, 6, 8, 10]) h.push(event(r));
    expect(h.compactRevision).to.equal(5);
    expect(h.from(5).map((e) => e.revision)).to.deep.equal([6, 8, 10]);
    expect(h.from(7).map((e) => e.revision)).to.deep.equal([8, 10]);
  });
});
