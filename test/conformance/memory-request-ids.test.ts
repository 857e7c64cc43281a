/**
 * The memory store's bounds on remembered Register request_ids, which the
 * contract suite cannot reach through a daemon: the retention window (on the
 * store's clock) and the per-table count cap, oldest forgotten first.
 */
import { expect } from "chai";

import { REQUEST_ID_RETENTION_MS, type NewSession } from "../../src/core/model.js";
import { MAX_REQUEST_IDS_PER_TABLE } from "../../src/store/memory/requests.js";
import { MemoryStore } from "../../src/store/memory/store.js";

const LIMITS = { defaultMaxSessions: 100_000, maxTables: 10, watchHistory: 10 };

function session(id: string): NewSession {
  return { id, name: id, projectPath: `/p/${id}`, metadata: new Map(), ttl: undefined };
}

describe("memory store: request_id bounds", () => {
  let clock = 1_000_000;
  let store: MemoryStore;

  beforeEach(async () => {
    clock = 1_000_000;
    store = new MemoryStore(LIMITS, { now: () => clock });
    await store.createTable("t", undefined);
  });
  afterEach(async () => {
    await store.close();
  });

  it("answers a repeat within the retention window and forgets the request_id after it", async () => {
    const first = await store.register("t", session("a"), "req");
    clock += REQUEST_ID_RETENTION_MS - 1;
    expect(await store.register("t", session("a"), "req")).to.equal(first);
    clock += 1;
    // Forgotten: the repeat is a new Register, checked as usual.
    await store.remove("t", "a", { expectedRevision: 0, allowMissing: false });
    const again = await store.register("t", session("a"), "req");
    expect(again.revision).to.be.greaterThan(first.revision);
  });

  it("keeps at most MAX_REQUEST_IDS_PER_TABLE request_ids, forgetting the oldest first", async () => {
    const first = await store.register("t", session("s0"), "r0");
    for (let i = 1; i <= MAX_REQUEST_IDS_PER_TABLE; i++) await store.register("t", session(`s${i}`), `r${i}`);
    // r0 is forgotten: its repeat is checked afresh and finds the id taken.
    let error: unknown;
    try {
      await store.register("t", session("s0"), "r0");
    } catch (err) {
      error = err;
    }
    expect(error).to.have.property("reason", "SESSION_EXISTS");
    // r1 is still remembered.
    expect((await store.register("t", session("s1"), "r1")).id).to.equal("s1");
    expect(first.id).to.equal("s0");
  });

  it("forgets a table's request_ids when the table is deleted", async () => {
    await store.register("t", session("a"), "req");
    await store.deleteTable("t", true);
    await store.createTable("t", undefined);
    const s = await store.register("t", session("b"), "req");
    expect(s.id).to.equal("b");
  });
});
