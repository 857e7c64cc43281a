/**
 * The embedded store: every table lives in this process's memory.
 *
 * Atomicity comes from JavaScript's run-to-completion: each operation checks
 * and writes within one synchronous turn (no await between its check and its
 * write), so no other call can interleave. The async signatures are the
 * Store contract's, shared with stores that do I/O.
 *
 * Indexes keep every lookup O(1) in the table's size: by id and by path in
 * Maps, by name in a Map of creation-ordered lists (a name held by one session
 * maps to its entry alone). Creation order for List
 * is an append-only array with tombstones, compacted when half dead, so that
 * a page starts with a binary search instead of a rescan from the start.
 *
 * Every session, every remembered request result and every retained event
 * is charged to the daemon's memory budget (src/core/budget.ts). A write
 * that would take sessions past their share is refused before it changes
 * anything; when the budget is full, the oldest events of all tables'
 * histories go first (the store is the budget's history reclaimer).
 *
 * Every write appends an event to the table's bounded history and hands it
 * to the table's watchers in the same turn, so a watch that replays history
 * and then subscribes can neither miss nor repeat an event. Sessions with a
 * ttl sit in one min-heap of deadlines; a timer armed for the earliest one
 * expires them, and every operation first expires what is due, so no call
 * ever sees a session past its expire time.
 */
import { randomUUID } from "node:crypto";

import {
  type RegistryError,
  projectAlreadyOpen,
  revisionCompacted,
  shuttingDown,
  revisionMismatch,
  sessionExists,
  sessionLimitReached,
  sessionNotFound,
  tableExists,
  tableLimitReached,
  tableNotEmpty,
  tableNotFound,
  memoryBudgetReached,
} from "../core/errors.js";
import {
  newSession,
  REQUEST_ID_RETENTION_MS,
  type EventType,
  type LookupKey,
  type NewSession,
  type Session,
  type SessionPage,
  type SessionPatch,
  type Table,
  type WatchEvent,
} from "../core/model.js";
import { MemoryBudget, sessionBytes, unlimitedBudget, type Reclaimer } from "../core/budget.js";
import { checkNotFuture, checkSameHistory } from "../core/history.js";
import { badPageToken, parseRevisionCursor, revisionCursor } from "../core/page-token.js";
import { expiresAt, updatedSession } from "../core/update.js";
import { EventHistory } from "./event-history.js";
import { ExpiryQueue, type Deadline } from "./expiry-queue.js";
import type { Store, StoreLimits, StoreObserver, WatchSink, WatchStart, WatchSubscription, WriteConditions } from "../core/store.js";

export interface MemoryStoreOptions {
  /** The clock, in epoch milliseconds; tests of expiry replace it. */
  now?: () => number;
  /** Told of expirations (metrics, logs). */
  observer?: StoreObserver;
  /** What sessions, request results and history are charged to; default: unlimited. */
  budget?: MemoryBudget;
}

/** A session's slot in its table. The session snapshot is replaced on update; the slot keeps its place in creation order. */
interface Entry {
  session: Session;
  alive: boolean;
  /** The deadline this entry has in the expiry queue, if any. */
  heapAt: number | undefined;
  /** What the session is charged to the budget. */
  bytes: number;
}

/** A live watch: it gets every event with revision >= `from`. */
interface Watcher {
  sink: WatchSink;
  from: number;
}

/** What the expiry queue holds: a session's slot and its table. */
interface Expiring {
  table: MemoryTable;
  entry: Entry;
}

/** The most request_ids (of Register, Update and Remove together) a table remembers; past it the oldest are forgotten first. */
export const MAX_REQUEST_IDS_PER_TABLE = 10_000;

/**
 * A table's remembered write results by method and request_id (keys
 * `register:<id>`, `update:<id>`, `remove:<id>`), oldest first (a Map keeps
 * insertion order, and entries are only ever appended with the current time),
 * bounded in count and in age.
 */
class RequestLog {
  private readonly entries = new Map<string, { result: Session; at: number; bytes: number }>();

  constructor(
    private readonly retentionMs: number,
    private readonly maxEntries: number,
    private readonly budget: MemoryBudget,
  ) {}

  /** What remembering `result` (of `resultSize` bytes) under `key` is charged: the result may outlive its session. */
  static bytesOf(key: string, resultSize: number): number {
    return 64 + 2 * key.length + resultSize;
  }

  get(key: string, now: number): Session | undefined {
    this.prune(now);
    return this.entries.get(key)?.result;
  }

  add(key: string, result: Session, resultSize: number, now: number): void {
    const bytes = RequestLog.bytesOf(key, resultSize);
    this.entries.set(key, { result, at: now, bytes });
    this.budget.charge("sessions", bytes);
    this.prune(now);
  }

  /** Forgets everything (the table is gone). */
  clear(): void {
    for (const e of this.entries.values()) this.budget.release("sessions", e.bytes);
    this.entries.clear();
  }

  private prune(now: number): void {
    for (const [id, e] of this.entries) {
      if (this.entries.size <= this.maxEntries && now - e.at < this.retentionMs) break;
      this.entries.delete(id);
      this.budget.release("sessions", e.bytes);
    }
  }
}

/** Compact the creation-order array once this many tombstones make up at least half of it. */
const COMPACT_MIN_DEAD = 64;

class MemoryTable {
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
  readonly history: EventHistory;
  readonly watchers = new Set<Watcher>();
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
    this.history = new EventHistory(limits.watchHistory, limits.watchHistoryBytes ?? Infinity, budget);
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
    const event: WatchEvent = { type, revision: this.revision, session };
    this.history.push(event, sessionSize);
    for (const w of this.watchers) {
      if (event.revision >= w.from) w.sink.event(event);
    }
  }

  /** Gives everything the table holds back to the budget (the table is gone). */
  release(): void {
    for (const entry of this.byId.values()) this.budget.release("sessions", entry.bytes);
    this.history.clear();
    this.requests.clear();
  }

  /** Ends every watch of this table with `error`. */
  endWatches(error: RegistryError): void {
    const watchers = [...this.watchers];
    this.watchers.clear();
    for (const w of watchers) w.sink.end(error);
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

export class MemoryStore implements Store, Reclaimer {
  private readonly tables = new Map<string, MemoryTable>();
  /**
   * One revision counter for the whole store, like etcd's: every write takes
   * the next value. Revisions are thus strictly increasing per table, and a
   * table deleted and created again never reuses an old revision.
   */
  private revision = 0;
  private readonly now: () => number;
  private readonly observer: StoreObserver | undefined;
  private readonly expiries = new ExpiryQueue<Expiring>((d) => this.isScheduled(d));
  private timer: NodeJS.Timeout | undefined;
  private timerAt = Infinity;
  private closed = false;
  private readonly budget: MemoryBudget;
  private readonly unregister: () => void;

  constructor(
    private readonly limits: StoreLimits,
    options: MemoryStoreOptions = {},
  ) {
    this.now = options.now ?? Date.now;
    this.observer = options.observer;
    this.budget = options.budget ?? unlimitedBudget();
    this.unregister = this.budget.addReclaimer("history", this);
  }

  /**
   * The budget's history reclaimer: drops the oldest retained events of all
   * tables (revisions are store-wide, so "oldest" is one order across
   * tables) until `bytes` are freed or no history is left.
   */
  reclaim(bytes: number): number {
    let freed = 0;
    let dropped = 0;
    while (freed < bytes) {
      let oldest: MemoryTable | undefined;
      let oldestRevision = Infinity;
      let next = Infinity;
      for (const table of this.tables.values()) {
        const r = table.history.oldestRevision;
        if (r === undefined) continue;
        if (r < oldestRevision) {
          next = oldestRevision;
          oldest = table;
          oldestRevision = r;
        } else if (r < next) {
          next = r;
        }
      }
      if (oldest === undefined) break;
      // From that table, until another table holds the oldest event (one scan per run, not per event).
      do {
        freed += oldest.history.dropOldest();
        dropped++;
      } while (freed < bytes && (oldest.history.oldestRevision ?? Infinity) < next);
    }
    return dropped;
  }

  async createTable(name: string, maxSessions: number | undefined): Promise<{ table: Table; created: boolean }> {
    const existing = this.tables.get(name);
    if (existing !== undefined) {
      if (maxSessions !== undefined && maxSessions !== existing.maxSessions) throw tableExists(name, existing.maxSessions);
      return { table: existing.snapshot(), created: false };
    }
    if (this.tables.size >= this.limits.maxTables) throw tableLimitReached(this.tables.size, this.limits.maxTables);
    const table = new MemoryTable(
      name,
      maxSessions ?? this.limits.defaultMaxSessions,
      new Date(this.now()),
      ++this.revision,
      this.limits,
      this.budget,
    );
    this.tables.set(name, table);
    return { table: table.snapshot(), created: true };
  }

  async getTable(name: string): Promise<Table> {
    this.expireDue();
    return this.table(name).snapshot();
  }

  async listTables(): Promise<Table[]> {
    this.expireDue();
    // Byte order of UTF-8 equals code point order; names are ASCII, where UTF-16 order agrees.
    return [...this.tables.values()].map((t) => t.snapshot()).sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0));
  }

  async deleteTable(name: string, force: boolean): Promise<void> {
    const table = this.table(name);
    if (table.size > 0 && !force) throw tableNotEmpty(name, table.size);
    this.tables.delete(name);
    table.release();
    let scheduled = 0;
    for (const entry of table.byId.values()) {
      entry.alive = false;
      if (entry.heapAt !== undefined) scheduled++;
    }
    this.expiries.markStale(scheduled);
    table.endWatches(tableNotFound(name));
  }

  async register(tableName: string, input: NewSession, requestId?: string): Promise<Session> {
    this.expireDue();
    const table = this.table(tableName);
    if (requestId !== undefined) {
      const original = table.requests.get(`register:${requestId}`, this.now());
      if (original !== undefined) return original;
    }
    if (table.size >= table.maxSessions) throw sessionLimitReached(tableName, table.size, table.maxSessions);
    if (table.byId.has(input.id)) throw sessionExists(tableName, input.id);
    const holder = table.byPath.get(input.projectPath);
    if (holder !== undefined) throw projectAlreadyOpen(tableName, input.projectPath, holder.session.id);

    const now = this.now();
    const revision = this.revision + 1;
    const session = newSession(input, revision, now, expiresAt(input.ttl, now), table.tableUid);
    const bytes = sessionBytes(session);
    this.admit(bytes + (requestId === undefined ? 0 : RequestLog.bytesOf(`register:${requestId}`, bytes)));
    this.revision = revision;
    table.revision = revision;
    const entry: Entry = { session, alive: true, heapAt: undefined, bytes };
    table.insert(entry);
    this.schedule(table, entry);
    table.emit("REGISTERED", session, bytes);
    if (requestId !== undefined) table.requests.add(`register:${requestId}`, session, bytes, now);
    return session;
  }

  async lookup(tableName: string, key: LookupKey): Promise<Session> {
    this.expireDue();
    const table = this.table(tableName);
    let entry: Entry | undefined;
    switch (key.by) {
      case "id":
        entry = table.byId.get(key.value);
        break;
      case "projectPath":
        entry = table.byPath.get(key.value);
        break;
      case "name":
        entry = table.oldestNamed(key.value);
        break;
    }
    if (entry === undefined) {
      throw sessionNotFound(tableName, { field: key.by === "projectPath" ? "project_path" : key.by, value: key.value });
    }
    return entry.session;
  }

  async list(tableName: string, after: string | undefined, limit: number): Promise<SessionPage> {
    this.expireDue();
    const table = this.table(tableName);
    const afterRevision = after === undefined ? 0 : parseRevisionCursor(after);
    if (afterRevision === undefined) throw badPageToken();
    const { sessions, more } = table.page(afterRevision, limit);
    const last = sessions[sessions.length - 1];
    return {
      sessions,
      nextCursor: more && last !== undefined ? revisionCursor(last.createRevision) : undefined,
      totalSize: table.size,
      revision: table.revision,
      tableUid: table.tableUid,
    };
  }

  async update(tableName: string, id: string, patch: SessionPatch, conditions: WriteConditions): Promise<Session> {
    const { expectedRevision, requestId } = conditions;
    this.expireDue();
    const table = this.table(tableName);
    checkSameHistory(tableName, conditions.tableUid, table);
    if (requestId !== undefined) {
      const original = table.requests.get(`update:${requestId}`, this.now());
      if (original !== undefined) return original;
    }
    const entry = table.byId.get(id);
    if (entry === undefined) throw sessionNotFound(tableName, { field: "id", value: id });
    const prev = entry.session;
    if (expectedRevision !== 0 && expectedRevision !== prev.revision) {
      throw revisionMismatch(tableName, id, expectedRevision, prev.revision);
    }
    if (patch.projectPath !== undefined && patch.projectPath !== prev.projectPath) {
      const holder = table.byPath.get(patch.projectPath);
      if (holder !== undefined) throw projectAlreadyOpen(tableName, patch.projectPath, holder.session.id);
    }

    const now = this.now();
    const revision = this.revision + 1;
    const next = updatedSession(prev, patch, now, revision);
    const bytes = sessionBytes(next);
    this.admit(bytes - entry.bytes + (requestId === undefined ? 0 : RequestLog.bytesOf(`update:${requestId}`, bytes)));
    this.revision = revision;
    table.revision = revision;
    table.replace(entry, next, bytes);
    this.schedule(table, entry);
    table.emit("UPDATED", next, bytes);
    if (requestId !== undefined) table.requests.add(`update:${requestId}`, next, bytes, now);
    return next;
  }

  async remove(tableName: string, id: string, conditions: WriteConditions & { allowMissing: boolean }): Promise<Session | undefined> {
    const { expectedRevision, allowMissing, requestId } = conditions;
    this.expireDue();
    const table = this.table(tableName);
    checkSameHistory(tableName, conditions.tableUid, table);
    const key = `remove:${requestId}`;
    if (requestId !== undefined) {
      const original = table.requests.get(key, this.now());
      if (original !== undefined) return original;
    }
    const entry = table.byId.get(id);
    if (entry === undefined) {
      // Nothing removed, nothing remembered (as the etcd store, whose record is written with a removal).
      if (allowMissing) return undefined;
      throw sessionNotFound(tableName, { field: "id", value: id });
    }
    if (expectedRevision !== 0 && expectedRevision !== entry.session.revision) {
      throw revisionMismatch(tableName, id, expectedRevision, entry.session.revision);
    }
    this.drop(table, entry, "REMOVED");
    if (requestId !== undefined) table.requests.add(key, entry.session, entry.bytes, this.now());
    return entry.session;
  }

  async keepAlive(tableName: string, id: string): Promise<Session> {
    this.expireDue();
    const table = this.table(tableName);
    const entry = table.byId.get(id);
    if (entry === undefined) throw sessionNotFound(tableName, { field: "id", value: id });
    const prev = entry.session;
    if (prev.ttl === undefined) return prev;
    // Only the deadline moves: same revision, same indexes, no event.
    const next: Session = { ...prev, expireTime: new Date(expiresAt(prev.ttl, this.now())) };
    entry.session = next;
    this.schedule(table, entry);
    return next;
  }

  async watch(tableName: string, start: WatchStart, sink: WatchSink): Promise<WatchSubscription> {
    const { startRevision } = start;
    this.expireDue();
    const table = this.table(tableName);
    // Replay and subscribe in one turn: no write can fall between them.
    if (startRevision === 0) {
      sink.snapshot(table.allSessions(), table.revision, table.tableUid);
    } else {
      checkSameHistory(tableName, start.tableUid, table);
      // Every revision this history handed out is at most the table's: an event's is the table's revision when it is made.
      checkNotFuture(tableName, startRevision, table.revision, table);
      const compact = table.history.compactRevision;
      if (startRevision < compact) throw revisionCompacted(tableName, startRevision, compact);
      for (const event of table.history.from(startRevision)) sink.event(event);
    }
    const watcher: Watcher = { sink, from: startRevision };
    table.watchers.add(watcher);
    return { cancel: () => table.watchers.delete(watcher) };
  }

  async close(): Promise<void> {
    this.closed = true;
    clearTimeout(this.timer);
    this.timer = undefined;
    this.expiries.clear();
    for (const table of this.tables.values()) {
      table.endWatches(shuttingDown());
      table.release();
    }
    this.tables.clear();
    this.unregister();
  }

  /** Refuses a write that would take sessions past their share of the budget; called before anything changes. */
  private admit(bytes: number): void {
    if (!this.budget.admits(bytes)) throw memoryBudgetReached(this.budget.usage("sessions"), this.budget.sessionLimit);
  }

  /** Removes a session as one write: a new revision, an event, the slot and path freed. */
  private drop(table: MemoryTable, entry: Entry, type: "REMOVED" | "EXPIRED"): void {
    table.revision = ++this.revision;
    table.delete(entry);
    if (entry.heapAt !== undefined) this.expiries.markStale();
    table.emit(type, entry.session, entry.bytes);
  }

  /**
   * Makes sure the expiry queue holds a deadline no later than the session's
   * expire time. A later expire time (after a keep-alive) needs nothing: the
   * earlier deadline comes due first and is pushed on then, so keep-alives
   * cost no heap growth.
   */
  private schedule(table: MemoryTable, entry: Entry): void {
    const at = entry.session.expireTime?.getTime();
    if (at === undefined || (entry.heapAt !== undefined && entry.heapAt <= at)) return;
    if (entry.heapAt !== undefined) this.expiries.markStale();
    entry.heapAt = at;
    this.expiries.push(at, { table, entry });
    this.armTimer();
  }

  private isScheduled(d: Deadline<Expiring>): boolean {
    const { table, entry } = d.item;
    return entry.alive && entry.heapAt === d.at && this.tables.get(table.name) === table;
  }

  /** Expires every session whose expire time has passed. O(log n) per session. */
  private expireDue(): void {
    // Every call comes through here: with nothing scheduled and no timer armed
    // (no session has a ttl) there is nothing to do, not even to read the clock.
    if (this.expiries.size === 0 && this.timerAt === Infinity) return;
    const now = this.now();
    for (let top = this.expiries.peek(); top !== undefined && top.at <= now; top = this.expiries.peek()) {
      this.expiries.pop();
      if (!this.isScheduled(top)) {
        this.expiries.stalePopped();
        continue;
      }
      const { table, entry } = top.item;
      entry.heapAt = undefined;
      const expireAt = entry.session.expireTime?.getTime();
      if (expireAt === undefined) continue;
      if (expireAt > now) {
        // Kept alive since this deadline was set: wait for the new one.
        entry.heapAt = expireAt;
        this.expiries.push(expireAt, top.item);
        continue;
      }
      this.drop(table, entry, "EXPIRED");
      this.observer?.expired(table.name, entry.session);
    }
    this.armTimer();
  }

  /** Keeps one timer armed for the earliest deadline; it never holds the process open. */
  private armTimer(): void {
    if (this.closed) return;
    const next = this.expiries.peek()?.at ?? Infinity;
    if (next === this.timerAt) return;
    clearTimeout(this.timer);
    this.timer = undefined;
    this.timerAt = next;
    if (next === Infinity) return;
    this.timer = setTimeout(() => {
      this.timer = undefined;
      this.timerAt = Infinity;
      this.expireDue();
    }, Math.max(0, next - this.now()));
    this.timer.unref();
  }

  private table(name: string): MemoryTable {
    const table = this.tables.get(name);
    if (table === undefined) throw tableNotFound(name);
    return table;
  }
}
