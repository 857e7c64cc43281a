/**
 * The embedded store: every table lives in this process's memory. This is
 * the Store the daemon holds; its tables and their indexes are in table.ts,
 * each table's change feed in feed.ts, expiry in expiry.ts, request_id
 * results in requests.ts.
 *
 * Atomicity comes from JavaScript's run-to-completion: each operation checks
 * and writes within one synchronous turn (no await between its check and its
 * write), so no other call can interleave. The async signatures are the
 * Store contract's, shared with stores that do I/O.
 *
 * Every session, every remembered request result and every retained event
 * is charged to the daemon's memory budget (src/core/budget.ts). A write
 * that would take sessions past their share is refused before it changes
 * anything; when the budget is full, the oldest events of all tables'
 * histories go first (the store is the budget's history reclaimer).
 */
import {
  projectAlreadyOpen,
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
} from "../../core/errors.js";
import {
  newSession,
  type LookupKey,
  type NewSession,
  type Session,
  type SessionPage,
  type SessionPatch,
  type Table,
} from "../../core/model.js";
import { MemoryBudget, sessionBytes, unlimitedBudget, type Reclaimer } from "../../core/budget.js";
import { checkNotFuture, checkSameHistory } from "../../core/history.js";
import { badPageToken, parseRevisionCursor, revisionCursor } from "../../core/page-token.js";
import { expiresAt, updatedSession } from "../../core/update.js";
import type {
  Store,
  StoreLimits,
  StoreObserver,
  TablesSink,
  WatchSink,
  WatchStart,
  WatchSubscription,
  WriteConditions,
} from "../../core/store.js";
import { Expiries } from "./expiry.js";
import { reclaimOldest, type TableFeed } from "./feed.js";
import { RequestLog } from "./requests.js";
import { TablesFeed } from "./tables-feed.js";
import { MemoryTable, type Entry } from "./table.js";

export interface MemoryStoreOptions {
  /** The clock, in epoch milliseconds; tests of expiry replace it. */
  now?: () => number;
  /** Told of expirations (metrics, logs). */
  observer?: StoreObserver;
  /** What sessions, request results and history are charged to; default: unlimited. */
  budget?: MemoryBudget;
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
  private readonly expiries = new Expiries({
    now: () => this.now(),
    holds: (table) => this.tables.get(table.name) === table,
    expire: (table, entry) => {
      this.drop(table, entry, "EXPIRED");
      this.observer?.expired(table.name, entry.session);
    },
  });
  private readonly budget: MemoryBudget;
  private readonly tablesFeed = new TablesFeed();
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

  /** The budget's history reclaimer (see reclaimOldest). */
  reclaim(bytes: number): number {
    return reclaimOldest(() => feedsOf(this.tables), bytes);
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
    this.tableChanged(table);
    return { table: table.snapshot(), created: true };
  }

  async getTable(name: string): Promise<Table> {
    this.expiries.expireDue();
    return this.table(name).snapshot();
  }

  async listTables(): Promise<Table[]> {
    this.expiries.expireDue();
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
    this.expiries.unscheduled(scheduled);
    table.endWatches(tableNotFound(name));
    this.tablesFeed.deleted(name);
  }

  async register(tableName: string, input: NewSession, requestId?: string): Promise<Session> {
    this.expiries.expireDue();
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
    this.expiries.schedule(table, entry);
    table.emit("REGISTERED", session, bytes);
    this.tableChanged(table);
    if (requestId !== undefined) table.requests.add(`register:${requestId}`, session, bytes, now);
    return session;
  }

  async lookup(tableName: string, key: LookupKey): Promise<Session> {
    this.expiries.expireDue();
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
    this.expiries.expireDue();
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
    this.expiries.expireDue();
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
    this.expiries.schedule(table, entry);
    table.emit("UPDATED", next, bytes);
    this.tableChanged(table);
    if (requestId !== undefined) table.requests.add(`update:${requestId}`, next, bytes, now);
    return next;
  }

  async remove(tableName: string, id: string, conditions: WriteConditions & { allowMissing: boolean }): Promise<Session | undefined> {
    const { expectedRevision, allowMissing, requestId } = conditions;
    this.expiries.expireDue();
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
    this.expiries.expireDue();
    const table = this.table(tableName);
    const entry = table.byId.get(id);
    if (entry === undefined) throw sessionNotFound(tableName, { field: "id", value: id });
    const prev = entry.session;
    if (prev.ttl === undefined) return prev;
    // Only the deadline moves: same revision, same indexes, no event.
    const next: Session = { ...prev, expireTime: new Date(expiresAt(prev.ttl, this.now())) };
    entry.session = next;
    this.expiries.schedule(table, entry);
    return next;
  }

  async watch(tableName: string, start: WatchStart, sink: WatchSink): Promise<WatchSubscription> {
    const { startRevision } = start;
    this.expiries.expireDue();
    const table = this.table(tableName);
    // Replay and subscribe in one turn: no write can fall between them.
    if (startRevision === 0) {
      sink.snapshot(table.allSessions(), table.revision, table.tableUid);
    } else {
      checkSameHistory(tableName, start.tableUid, table);
      // Every revision this history handed out is at most the table's: an event's is the table's revision when it is made.
      checkNotFuture(tableName, startRevision, table.revision, table);
      table.feed.replay(tableName, startRevision, sink);
    }
    return table.feed.subscribe(sink, startRevision);
  }

  async watchTables(sink: TablesSink): Promise<WatchSubscription> {
    // Snapshot and subscription in one turn: no write falls between them.
    return this.tablesFeed.subscribe(sink, await this.listTables());
  }

  async close(): Promise<void> {
    this.expiries.close();
    this.tablesFeed.endAll(shuttingDown());
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
    if (entry.heapAt !== undefined) this.expiries.unscheduled();
    table.emit(type, entry.session, entry.bytes);
    this.tableChanged(table);
  }

  /** Tells the tables watches of a table's new state, right after the write that made it. */
  private tableChanged(table: MemoryTable): void {
    if (this.tablesFeed.listening) this.tablesFeed.changed(table.snapshot());
  }

  private table(name: string): MemoryTable {
    const table = this.tables.get(name);
    if (table === undefined) throw tableNotFound(name);
    return table;
  }
}

function* feedsOf(tables: ReadonlyMap<string, MemoryTable>): Iterable<TableFeed> {
  for (const table of tables.values()) yield table.feed;
}
