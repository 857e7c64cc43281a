/**
 * The memory store under a small memory budget: sessions are refused past
 * their share with nothing changed, history gives back its oldest events
 * across tables, and the bookkeeping returns to zero whatever way memory
 * is freed.
 */
import { expect } from "chai";

import { MemoryBudget, sessionBytes, SESSION_SHARE } from "../../src/core/budget.js";
import { RegistryError } from "../../src/core/errors.js";
import type { NewSession, Session, WatchEvent } from "../../src/core/model.js";
import { MemoryStore } from "../../src/store/memory/store.js";
import type { WatchSink } from "../../src/core/store.js";

const LIMITS = { defaultMaxSessions: 100_000, maxTables: 10, watchHistory: 10_000 };
/** The most metadata a session may carry: 4 x (2 + 4094) = 16384 bytes. */
const BIG = new Map(Array.from({ length: 4 }, (_, i) => [`k${i}`, "v".repeat(4094)]));

function session(id: string, metadata: ReadonlyMap<string, string> = BIG): NewSession {
  return { id, name: id, projectPath: `/p/${id}`, metadata: new Map(metadata), ttl: undefined };
}

async function rejection(p: Promise<unknown>): Promise<RegistryError> {
  try {
    await p;
  } catch (err) {
    expect(err).to.be.instanceOf(RegistryError);
    return err as RegistryError;
  }
  return expect.fail("expected a rejection");
}

class Recorder implements WatchSink {
  events: WatchEvent[] = [];
  snapshot(_sessions: Session[]): void {}
  event(event: WatchEvent): void {
    this.events.push(event);
  }
  end(): void {}
}

describe("memory store: memory budget", () => {
  let budget: MemoryBudget;
  let store: MemoryStore;
  const one = sessionBytes({
    ...session("s0000"),
    createTime: new Date(),
    updateTime: new Date(),
    revision: 1,
    createRevision: 1,
    expireTime: undefined,
    tableUid: "u",
  });

  beforeEach(async () => {
    // Room for about 40 of the largest sessions.
    budget = new MemoryBudget(Math.ceil((40 * one) / SESSION_SHARE));
    store = new MemoryStore(LIMITS, { budget });
    await store.createTable("t", undefined);
  });
  afterEach(async () => {
    await store.close();
  });

  it("refuses a Register past the sessions' share with MEMORY_BUDGET_REACHED, changing nothing, while reads go on", async () => {
    let n = 0;
    let refused: RegistryError | undefined;
    for (; n < 1000 && refused === undefined; n++) {
      try {
        await store.register("t", session(`s${String(n).padStart(4, "0")}`));
      } catch (err) {
        refused = err as RegistryError;
      }
    }
    expect(refused?.reason).to.equal("MEMORY_BUDGET_REACHED");
    expect(refused?.code).to.equal("RESOURCE_EXHAUSTED");
    expect(Number(refused?.metadata.budget_bytes)).to.equal(Math.round(budget.sessionLimit));
    expect(Number(refused?.metadata.used_bytes)).to.be.at.most(budget.sessionLimit);
    expect(n - 1).to.be.within(38, 40);
    expect(budget.usage("sessions")).to.be.at.most(budget.sessionLimit);

    const before = await store.getTable("t");
    const watch = new Recorder();
    await store.watch("t", { startRevision: before.revision + 1 }, watch);
    const err = await rejection(store.register("t", session("late")));
    expect(err.reason).to.equal("MEMORY_BUDGET_REACHED");
    // Nothing changed: no revision taken, no event, no session.
    expect((await store.getTable("t")).revision).to.equal(before.revision);
    expect(watch.events).to.deep.equal([]);
    expect((await rejection(store.lookup("t", { by: "id", value: "late" }))).reason).to.equal("SESSION_NOT_FOUND");
    // Reads work, and an Update that does not grow the session is admitted.
    expect((await store.list("t", undefined, 1000)).sessions).to.have.length(n - 1);
    const small = await store.update("t", "s0000", { metadata: new Map() }, { expectedRevision: 0 });
    expect(small.metadata.size).to.equal(0);
    // Once sessions are gone, writes fit again.
    await store.remove("t", "s0001", { expectedRevision: 0, allowMissing: false });
    expect((await store.register("t", session("late"))).id).to.equal("late");
  });

  it("refuses an Update that would grow a session past the share, and keeps the session as it was", async () => {
    const small = new Map([["k", "v"]]);
    for (let i = 0; ; i++) {
      try {
        await store.register("t", session(`s${i}`, small));
      } catch {
        break;
      }
      if (i > 100_000) expect.fail("never refused");
    }
    const before = await store.lookup("t", { by: "id", value: "s0" });
    const err = await rejection(store.update("t", "s0", { metadata: BIG }, { expectedRevision: 0 }));
    expect(err.reason).to.equal("MEMORY_BUDGET_REACHED");
    expect(await store.lookup("t", { by: "id", value: "s0" })).to.equal(before);
  });

  it("drops the oldest history of all tables first when the budget is full, so that old resumes are REVISION_COMPACTED", async () => {
    await store.createTable("u", undefined);
    await store.register("t", session("a"));
    await store.register("u", session("b"));
    const first = (await store.getTable("t")).revision;
    // Each update keeps an event of ~2x one session: far more than the budget holds.
    for (let i = 0; i < 200; i++) {
      await store.update(
        i % 2 === 0 ? "t" : "u",
        i % 2 === 0 ? "a" : "b",
        { metadata: new Map(BIG).set("n", String(i)) },
        { expectedRevision: 0 },
      );
      expect(budget.usage()).to.be.at.most(budget.limit);
    }
    expect(budget.usage("history")).to.be.greaterThan(0);
    const err = await rejection(store.watch("t", { startRevision: first }, new Recorder()));
    expect(err.reason).to.equal("REVISION_COMPACTED");
    // What is kept is the newest of both tables: each still replays its latest update.
    const compactT = Number(err.metadata.compact_revision);
    const replay = new Recorder();
    await store.watch("t", { startRevision: compactT }, replay);
    expect(replay.events.length).to.be.greaterThan(0);
    const replayU = new Recorder();
    const compactU = Number((await rejection(store.watch("u", { startRevision: first }, new Recorder()))).metadata.compact_revision);
    await store.watch("u", { startRevision: compactU }, replayU);
    expect(replayU.events.length).to.be.greaterThan(0);
  });

  it("gives back every byte when sessions are removed, expire, or their table is deleted", async () => {
    let clock = 1_000_000;
    await store.close();
    budget = new MemoryBudget(1024 * 1024 * 1024);
    store = new MemoryStore(LIMITS, { budget, now: () => clock });
    await store.createTable("t", undefined);
    await store.createTable("u", undefined);
    await store.register("t", session("a"), "r1");
    await store.register("t", { ...session("b"), ttl: { seconds: 1, nanos: 0 } });
    await store.register("u", session("c"));
    await store.update("t", "a", { metadata: new Map([["k", "v"]]) }, { expectedRevision: 0, requestId: "r2" });
    expect(budget.usage("sessions")).to.be.greaterThan(0);
    expect(budget.usage("history")).to.be.greaterThan(0);
    await store.remove("t", "a", { expectedRevision: 0, allowMissing: false });
    clock += 2000;
    expect((await store.list("t", undefined, 10)).sessions).to.deep.equal([]);
    await store.deleteTable("t", true);
    await store.deleteTable("u", true);
    expect(budget.usage("sessions")).to.equal(0);
    expect(budget.usage("history")).to.equal(0);
  });
});
