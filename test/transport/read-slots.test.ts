/**
 * The read slots on their own, without a wire: granting, holding in arrival
 * order, refusing past the waiting cap, preempting a connection that holds
 * several, and settling at any point (a request may complete as soon as it
 * starts being read).
 */
import { expect } from "chai";

import { silentLogger } from "../../src/daemon/logger.js";
import { HELD_PER_PENDING, ReadSlots, type SlotClaim } from "../../src/transport/read-slots.js";

function slots(maxPendingRequests: number): ReadSlots {
  return new ReadSlots({ maxPendingRequests, log: silentLogger, logIntervalMs: 60_000 });
}

/** Claims a slot for a request on `connection` that is never preempted; `started` says whether it may be read yet. */
function request(s: ReadSlots, connection: string): { started: boolean } {
  const state = { started: false };
  s.claim(
    connection,
    () => (state.started = true),
    () => undefined,
  );
  return state;
}

describe("read slots", () => {
  it("grants up to the limit at once, holds the rest, and starts them in arrival order as slots free", () => {
    const s = slots(2);
    const started: string[] = [];
    const claims = ["a", "b", "c", "d"].map((name) =>
      s.claim(
        name,
        () => started.push(name),
        () => undefined,
      )!,
    );
    expect(started).to.deep.equal(["a", "b"]);
    expect([s.pendingRequests, s.heldRequests]).to.deep.equal([2, 2]);
    claims[1]!.settle();
    expect(started).to.deep.equal(["a", "b", "c"]);
    // A held claim that settles (its client left) gives up its place in line.
    claims[3]!.settle();
    claims[0]!.settle();
    claims[0]!.settle();
    expect([s.pendingRequests, s.heldRequests]).to.deep.equal([1, 0]);
    expect(started).to.deep.equal(["a", "b", "c"]);
  });

  it("refuses once HELD_PER_PENDING requests per slot wait, and neither starts nor preempts the refused one", () => {
    const s = slots(1);
    let calls = 0;
    for (let i = 0; i <= HELD_PER_PENDING; i++)
      expect(
        s.claim(
          `c${i}`,
          () => calls++,
          () => calls++,
        ),
      ).to.not.equal(undefined);
    expect(
      s.claim(
        "late",
        () => calls++,
        () => calls++,
      ),
    ).to.equal(undefined);
    expect(calls).to.equal(1);
    expect(s.heldRequests).to.equal(HELD_PER_PENDING);
  });

  it("hands the slot of the oldest request of a connection holding several to a connection holding none, settled before it is told", () => {
    const s = slots(2);
    const preempted: string[] = [];
    const first = s.claim(
      "greedy",
      () => undefined,
      () => preempted.push(`first, pending ${s.pendingRequests}`),
    )!;
    s.claim(
      "greedy",
      () => undefined,
      () => preempted.push("second"),
    );
    expect(request(s, "other").started).to.equal(true);
    expect(preempted).to.deep.equal(["first, pending 1"]);
    expect(s.pendingRequests).to.equal(2);
    first.settle();
    expect(s.pendingRequests).to.equal(2);
  });

  it("gives start its claim, so that a request complete as soon as it is read frees its slot", () => {
    const s = slots(1);
    let claimed: SlotClaim | undefined;
    s.claim(
      "quick",
      (claim) => {
        claimed = claim;
        claim.settle();
      },
      () => undefined,
    );
    expect(claimed).to.not.equal(undefined);
    expect(s.pendingRequests).to.equal(0);
    expect(request(s, "next").started).to.equal(true);
  });
});
