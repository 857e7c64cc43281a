/**
 * A memory table: its sessions and the indexes that keep every lookup O(1)
 * in the table's size: by id and by path in Maps, by name in a Map of
 * creation-ordered lists (a name held by one session maps to its entry
 * alone). Creation order for List is an append-only array with tombstones,
 * compacted when half dead, so that a page starts with a binary search
 * instead of a rescan from the start. Every session is charged to the
 * memory budget while the table holds it.
 */
import { randomUUID } from "node:crypto";

import type { MemoryBudget } from "../../core/budget.js";
import type { RegistryError } from "../../core/errors.js";
import { REQUEST_ID_RETENTION_MS, type EventType, type Session, type Table } from "../../core/model.js";
import type { StoreLimits } from "../../core/store.js";
import { TableFeed } from "./feed.js";
import { MAX_REQUEST_IDS_PER_TABLE, RequestLog } from "./requests.js";

/** A session's slot in its table. The session snapshot is replaced on update; the slot keeps its place in creation order. */
export interface Entry {
  session: Session;
  alive: boolean;
  /** The deadline this entry has in the expiry queue, if any. */
  heapAt: number | undefined;
  /** What the session is charged to the budget. */
  bytes: number;
}

/** Compact the creation-order array once this many tombstones make up at least half of it. */
const COMPACT_MIN_DEAD = 64;

export class MemoryTable {
  readonly byId = new Map<string, Entry>();
  readonly byPath = new Map<string, Entry>();
  /**
   * Sessions of each name, oldest (lowest createRevision) first: the entry
   * itself while it is the only one of its name (most names are unique, and
   * a one-element array costs ~56 bytes per session), a list from two on.
   */
  private readonly byName = new Map<string, Entry | Entry[]>();
  /** Every entry in creation order (ascending createRevision), with tombstones. */
  private order: Entry[] = [];
  private dead = 0;
  readonly feed: TableFeed;
  readonly requests: RequestLog;
  /** This table's history: new for every table this process makes, so a restart or a re-creation is never mistaken for it. */
  readonly tableUid = randomUUID();

  constructor(
    readonly name: string,
    readonly maxSessions: number,
    readonly createTime: Date,
    public revision: number,
    limits: StoreLimits,
    private readonly budget: MemoryBudget,
  ) {
    this.feed = new TableFeed(limits, budget);
    this.requests = new RequestLog(REQUEST_ID_RETENTION_MS, MAX_REQUEST_IDS_PER_TABLE, budget);
  }

  get size(): number {
    return this.byId.size;
  }

  snapshot(): Table {
    return {
      name: this.name,
      maxSessions: this.maxSessions,
      sessionCount: this.byId.size,
      createTime: this.createTime,
      revision: this.revision,
      tableUid: this.tableUid,
    };
  }

  insert(entry: Entry): void {
    const s = entry.session;
    this.budget.charge("sessions", entry.bytes);
    this.byId.set(s.id, entry);
    this.byPath.set(s.projectPath, entry);
    this.addName(entry);
    this.order.push(entry);
  }

  delete(entry: Entry): void {
    const s = entry.session;
    entry.alive = false;
    this.budget.release("sessions", entry.bytes);
    this.byId.delete(s.id);
    this.byPath.delete(s.projectPath);
    this.removeName(entry, s.name);
    this.dead++;
    if (this.dead >= COMPACT_MIN_DEAD && this.dead * 2 >= this.order.length) {
      this.order = this.order.filter((e) => e.alive);
      this.dead = 0;
    }
  }

  /** Replaces an entry's session, keeping the indexes and the budget in step. */
  replace(entry: Entry, next: Session, bytes: number): void {
    const prev = entry.session;
    entry.session = next;
    this.budget.release("sessions", entry.bytes);
    entry.bytes = bytes;
    this.budget.charge("sessions", bytes);
    if (prev.projectPath !== next.projectPath) {
      this.byPath.delete(prev.projectPath);
      this.byPath.set(next.projectPath, entry);
    }
    if (prev.name !== next.name) {
      this.removeName(entry, prev.name);
      this.addName(entry);
    }
  }

  /** Up to `limit` live entries created after `afterRevision`, and whether more follow. */
  page(afterRevision: number, limit: number): { sessions: Session[]; more: boolean } {
    let i = firstIndexAfter(this.order, afterRevision);
    const sessions: Session[] = [];
    for (; i < this.order.length && sessions.length < limit; i++) {
      const e = this.order[i]!;
      if (e.alive) sessions.push(e.session);
    }
    for (; i < this.order.length; i++) {
      if (this.order[i]!.alive) return { sessions, more: true };
    }
    return { sessions, more: false };
  }

  /** The oldest session named `name`. */
  oldestNamed(name: string): Entry | undefined {
    const named = this.byName.get(name);
    return Array.isArray(named) ? named[0] : named;
  }

  /** Every live session, oldest first. */
  allSessions(): Session[] {
    const out: Session[] = [];
    for (const e of this.order) if (e.alive) out.push(e.session);
    return out;
  }

  /** Records a change at the table's current revision and hands it to every watcher. */
  emit(type: EventType, session: Session, sessionSize: number): void {
    this.feed.emit(type, this.revision, session, sessionSize);
  }

  /** Gives everything the table holds back to the budget (the table is gone). */
  release(): void {
    for (const entry of this.byId.values()) this.budget.release("sessions", entry.bytes);
    this.feed.history.clear();
    this.requests.clear();
  }

  /** Ends every watch of this table with `error`. */
  endWatches(error: RegistryError): void {
    this.feed.endWatches(error);
  }

  private addName(entry: Entry): void {
    const name = entry.session.name;
    const named = this.byName.get(name);
    if (named === undefined) {
      this.byName.set(name, entry);
      return;
    }
    const list = Array.isArray(named) ? named : [named];
    if (list !== named) this.byName.set(name, list);
    // Usually appended (new sessions are the newest); a rename can bring an older one.
    const rev = entry.session.createRevision;
    let i = list.length;
    while (i > 0 && list[i - 1]!.session.createRevision > rev) i--;
    list.splice(i, 0, entry);
  }

  private removeName(entry: Entry, name: string): void {
    const named = this.byName.get(name);
    if (named === undefined) return;
    if (!Array.isArray(named)) {
      if (named === entry) this.byName.delete(name);
      return;
    }
    // The list is in createRevision order: a binary search, not a scan of every session of the name.
    const rev = entry.session.createRevision;
    let lo = 0;
    let hi = named.length;
    while (lo < hi) {
      const mid = (lo + hi) >>> 1;
      if (named[mid]!.session.createRevision < rev) lo = mid + 1;
      else hi = mid;
    }
    if (named[lo] === entry) named.splice(lo, 1);
    if (named.length === 1) this.byName.set(name, named[0]!);
  }
}

/** Index of the first entry whose createRevision is greater than `revision`. */
function firstIndexAfter(order: readonly Entry[], revision: number): number {
  let lo = 0;
  let hi = order.length;
  while (lo < hi) {
    const mid = (lo + hi) >>> 1;
    if (order[mid]!.session.createRevision <= revision) lo = mid + 1;
    else hi = mid;
  }
  return lo;
}
