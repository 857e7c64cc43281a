/**
 * Which slots of a table a Register should try: a per-table hint of the
 * slots taken, so that a Register's one Txn picks a free slot instead of a
 * random one (in a table of 10 with 5 sessions, a random slot is taken half
 * the time, and the Txn then fails and goes again).
 *
 * A hint, never the rule: the Txn's compare that the slot key is absent
 * keeps the limit exact, and a wrong hint costs one more Txn, whose
 * else-branch reads every taken slot and sets the hint right. It learns
 * from this store's own Registers, from those else-branch reads, and from
 * the slot keys' puts and deletes the store's prefix watch sees (every
 * daemon's Registers, Removes and expiries: expiry.ts). One bit per slot,
 * for tables this store registered into only (125 KB for a table of
 * 1,000,000 sessions, the most a table takes), until the table is deleted.
 */
import type { IEvent } from "etcd3";

import { isDelete } from "./events.js";
import type { Keys } from "./keys.js";

interface TableSlots {
  tableUid: string;
  max: number;
  /** Bit i set: slot i is taken, as far as this store knows. */
  bits: Uint32Array;
  /** The etcd revision the last full read of the slots was at: watch events up to it are older news. */
  readAt: number;
}

/** Random probes before a scan, enough while the table is far from full. */
const PROBES = 4;

export class SlotHints {
  private readonly tables = new Map<string, TableSlots>();

  constructor(private readonly keys: Keys) {}

  /**
   * A slot of the table to try, marked taken at once so that this store's
   * concurrent Registers pick others; random among those seen free, so that
   * daemons spread out. When every slot looks taken, a random one: the
   * Txn decides.
   */
  pick(table: string, tableUid: string, max: number): number {
    const t = this.of(table, tableUid, max);
    const slot = freeSlot(t) ?? Math.floor(Math.random() * max);
    set(t.bits, slot, true);
    return slot;
  }

  /** A Register's Txn failed: the taken slots (a full read at etcd revision `at`) replace what was known. */
  learn(table: string, tableUid: string, max: number, taken: Iterable<number>, at: number): void {
    const t = this.of(table, tableUid, max);
    t.bits.fill(0);
    for (const slot of taken) if (slot >= 0 && slot < max) set(t.bits, slot, true);
    t.readAt = at;
  }

  /** Slot keys put or deleted under the prefix (a batch of the store's watch), for the tables with a hint. */
  observe(events: readonly IEvent[]): void {
    for (const ev of events) {
      const key = ev.kv.key.toString("utf8");
      const table = this.keys.tableOf(key);
      if (table === undefined) continue;
      const t = this.tables.get(table);
      if (t === undefined || Number(ev.kv.mod_revision) <= t.readAt) continue;
      const slots = this.keys.slots(table);
      if (!key.startsWith(slots)) {
        // The table's `rev` key deleted: the table is gone, and so is its hint.
        if (key === this.keys.rev(table) && isDelete(ev)) this.tables.delete(table);
        continue;
      }
      const slot = Number(key.slice(slots.length));
      if (Number.isInteger(slot) && slot >= 0 && slot < t.max) set(t.bits, slot, !isDelete(ev));
    }
  }

  /** The table's hint; a new one for a table not seen, or made again since (another table_uid). */
  private of(table: string, tableUid: string, max: number): TableSlots {
    let t = this.tables.get(table);
    if (t === undefined || t.tableUid !== tableUid || t.max !== max) {
      t = { tableUid, max, bits: new Uint32Array(Math.ceil(max / 32)), readAt: 0 };
      this.tables.set(table, t);
    }
    return t;
  }
}

function set(bits: Uint32Array, slot: number, taken: boolean): void {
  const word = slot >>> 5;
  const bit = 1 << (slot & 31);
  bits[word] = taken ? bits[word]! | bit : bits[word]! & ~bit;
}

function isTaken(bits: Uint32Array, slot: number): boolean {
  return (bits[slot >>> 5]! & (1 << (slot & 31))) !== 0;
}

/** A slot not marked taken: a few random probes, then the first free one from a random start; undefined when none is. */
function freeSlot(t: TableSlots): number | undefined {
  for (let i = 0; i < PROBES; i++) {
    const slot = Math.floor(Math.random() * t.max);
    if (!isTaken(t.bits, slot)) return slot;
  }
  const start = Math.floor(Math.random() * t.max);
  for (let n = 0; n < t.max; n++) {
    const slot = (start + n) % t.max;
    // A whole word taken: skip to the next word.
    if ((slot & 31) === 0 && t.bits[slot >>> 5] === 0xffffffff && slot + 32 <= t.max) {
      n += 31;
      continue;
    }
    if (!isTaken(t.bits, slot)) return slot;
  }
  return undefined;
}
