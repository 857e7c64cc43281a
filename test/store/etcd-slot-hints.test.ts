/**
 * The etcd store's slot hints (src/store/etcd/slots.ts), without etcd: a
 * pick is a slot not known taken, and is marked at once; a full read
 * replaces what was known; the prefix watch's slot puts and deletes move
 * the hint unless they are older than the last full read; a deleted or
 * remade table starts afresh.
 */
import { expect } from "chai";
import type { IEvent } from "etcd3";

import { Keys } from "../../src/store/etcd/keys.js";
import { SlotHints } from "../../src/store/etcd/slots.js";

const keys = new Keys("/p/");

function event(type: "PUT" | "DELETE", key: string, revision: number): IEvent {
  const kv = { key: Buffer.from(key), value: Buffer.from(""), mod_revision: String(revision) };
  return { type, kv } as unknown as IEvent;
}

/** Every slot `pick` hands out until the hint is full, in order. */
function drain(h: SlotHints, table: string, uid: string, max: number, picks: number): number[] {
  return Array.from({ length: picks }, () => h.pick(table, uid, max));
}

describe("etcd slot hints", () => {
  it("hands out every slot once before any again, then random ones", () => {
    const h = new SlotHints(keys);
    const picked = drain(h, "t", "u", 70, 70);
    expect(new Set(picked).size).to.equal(70);
    for (const slot of picked) expect(slot).to.be.within(0, 69);
    const more = h.pick("t", "u", 70);
    expect(more).to.be.within(0, 69);
  });

  it("takes a full read of the taken slots as the truth", () => {
    const h = new SlotHints(keys);
    drain(h, "t", "u", 10, 10);
    h.learn("t", "u", 10, [0, 1, 2, 3, 4, 5, 6, 7, 9], 100);
    expect(h.pick("t", "u", 10)).to.equal(8);
  });

  it("follows slot puts and deletes newer than the last full read", () => {
    const h = new SlotHints(keys);
    h.learn("t", "u", 4, [0, 1, 2, 3], 100);
    // Older than the read: already in it.
    h.observe([event("DELETE", keys.slot("t", 1), 100)]);
    h.observe([event("DELETE", keys.slot("t", 2), 101), event("PUT", keys.data("t", "x"), 101)]);
    expect(h.pick("t", "u", 4)).to.equal(2);
    h.observe([event("DELETE", keys.slot("t", 3), 102), event("PUT", keys.slot("t", 3), 103)]);
    h.observe([event("DELETE", keys.slot("t", 0), 104)]);
    expect(h.pick("t", "u", 4)).to.equal(0);
  });

  it("ignores tables it holds no hint of, and forgets a deleted one", () => {
    const h = new SlotHints(keys);
    h.observe([event("PUT", keys.slot("other", 0), 5)]);
    h.learn("t", "u", 2, [0, 1], 10);
    h.observe([event("DELETE", keys.rev("t"), 11)]);
    // A new hint: nothing known taken.
    expect(drain(h, "t", "u", 2, 2).sort()).to.deep.equal([0, 1]);
  });

  it("starts afresh for a table made again (another table_uid)", () => {
    const h = new SlotHints(keys);
    h.learn("t", "u1", 2, [0, 1], 10);
    expect(drain(h, "t", "u2", 2, 2).sort()).to.deep.equal([0, 1]);
  });
});
