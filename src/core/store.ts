/**
 * The storage contract the registry needs, which src/store implements (the
 * memory and etcd stores); core owns it, so no import runs from core back up
 * to the stores. Each operation is atomic at the registry level: the
 * checks it names and the write it makes happen as one step, so that no
 * interleaving of concurrent calls (on one daemon, or on many daemons sharing
 * one backend) can break the limit or uniqueness rules.
 *
 * Inputs are already validated and normalized by the core; a store
 * enforces only what depends on the stored state, and reports it with the
 * core's RegistryError constructors (src/core/errors.ts).
 */
import type { RegistryError } from "./errors.js";
import type { LookupKey, NewSession, Session, SessionPage, SessionPatch, Table, WatchEvent } from "./model.js";

export interface StoreLimits {
  /** The limit of a table created without an explicit one. */
  defaultMaxSessions: number;
  /** The most tables the store holds. */
  maxTables: number;
  /** How many events each table keeps for Watch replay; older ones are compacted. */
  watchHistory: number;
  /** The most estimated bytes of events each table keeps (a store that keeps its history itself, like etcd, ignores it); default: no limit. */
  watchHistoryBytes?: number;
}

/**
 * Where a store delivers one watch's messages. Calls are synchronous, in
 * revision order, never after `end`; a sink must not throw and must not
 * block (the transport queues, bounded, and ends slow watchers itself).
 */
export interface WatchSink {
  /** Once, first, when the watch started at revision 0: every session, oldest first, at `revision` of history `tableUid`. */
  snapshot(sessions: Session[], revision: number, tableUid: string): void;
  event(event: WatchEvent): void;
  /** The store ended the watch: TABLE_NOT_FOUND when the table is deleted, UNAVAILABLE when the store closes. */
  end(error: RegistryError): void;
}

/**
 * Where a store delivers the tables watch's messages: the same rules as
 * WatchSink (synchronous, never after `end`, must not throw or block).
 * After the snapshot, a table's states arrive in the order they were
 * reached; a store may skip states between two it delivers, never deliver
 * one older than the last, and delivers `deleted` only for a table it
 * delivered before (in the snapshot or `changed`).
 */
export interface TablesSink {
  /** Once, first: every table now, in name order. */
  snapshot(tables: Table[]): void;
  /** A table was created, or its count, revision or history changed: its state now. */
  changed(table: Table): void;
  /** A table was deleted. */
  deleted(name: string): void;
  /** The store ended the watch: UNAVAILABLE when the store closes. */
  end(error: RegistryError): void;
}

/** Things a store reports that no call asked for; the daemon turns them into metrics and logs. */
export interface StoreObserver {
  /** A session's ttl ran out and the store removed it (watchers got EXPIRED). */
  expired(table: string, session: Session): void;
}

export interface WatchSubscription {
  /** Stops delivery and releases what the watch holds; idempotent. */
  cancel(): void;
}

/** The checks a conditional write makes, after the table's existence, in this order. */
export interface WriteConditions {
  /**
   * When set, the table's history must be this one (Table.tableUid), else
   * TABLE_UID_MISMATCH; checked right after the table, before the request_id.
   */
  tableUid?: string | undefined;
  /** When > 0, the session's revision must equal it, else REVISION_MISMATCH. */
  expectedRevision: number;
  /** The idempotency key (see register). */
  requestId?: string | undefined;
}

/** Where a watch starts. */
export interface WatchStart {
  /** 0: a snapshot, then live events. N: every retained event with revision >= N, then live events. */
  startRevision: number;
  /** With N > 0: the history N belongs to. */
  tableUid?: string | undefined;
}

export interface Store {
  /**
   * Creates a table, idempotently: an existing table is returned with
   * created=false when `maxSessions` is undefined or equals its limit;
   * otherwise TABLE_EXISTS. A new table gets `maxSessions ?? defaultMaxSessions`.
   * TABLE_LIMIT_REACHED past maxTables.
   */
  createTable(name: string, maxSessions: number | undefined): Promise<{ table: Table; created: boolean }>;

  /** TABLE_NOT_FOUND when absent. */
  getTable(name: string): Promise<Table>;

  /** Every table, in byte order of name. */
  listTables(): Promise<Table[]>;

  /** TABLE_NOT_FOUND; TABLE_NOT_EMPTY unless force. */
  deleteTable(name: string, force: boolean): Promise<void>;

  /**
   * Inserts a session after checking, atomically and in this order: table
   * exists, limit, duplicate id, duplicate project path.
   *
   * With a `requestId`: if the table has a remembered Register with that
   * request_id (within REQUEST_ID_RETENTION_MS), nothing is written and that
   * Register's result is returned, whatever the state now (checked right
   * after the table, in the same atomic step as the write). A successful
   * Register remembers its requestId; a failed one does not.
   */
  register(table: string, session: NewSession, requestId?: string): Promise<Session>;

  /** SESSION_NOT_FOUND (or TABLE_NOT_FOUND). O(1) in the table's size. */
  lookup(table: string, key: LookupKey): Promise<Session>;

  /**
   * Up to `limit` sessions in creation order, starting after `after` (a
   * cursor from a previous page). A cursor this store did not make is
   * INVALID_ARGUMENT on `page_token`.
   */
  list(table: string, after: string | undefined, limit: number): Promise<SessionPage>;

  /**
   * Applies a patch after checking, atomically: table exists, table history
   * (conditions.tableUid), session exists, revision (when
   * expectedRevision > 0), new project path unique. `requestId` as in
   * register (kept apart from Register's and Remove's): a remembered one
   * returns that Update's result, right after the table checks.
   */
  update(table: string, id: string, patch: SessionPatch, conditions: WriteConditions): Promise<Session>;

  /**
   * Removes a session after checking, atomically: table exists, table
   * history (conditions.tableUid), session exists, revision (when
   * expectedRevision > 0). Unknown id: SESSION_NOT_FOUND, or undefined when
   * allowMissing. `requestId` as in register (kept apart from Register's and
   * Update's): a remembered one returns that Remove's result, right after
   * the table checks.
   */
  remove(table: string, id: string, conditions: WriteConditions & { allowMissing: boolean }): Promise<Session | undefined>;

  /**
   * Pushes a session's expire time to now + ttl. No revision, no event. A
   * session without ttl is returned unchanged. SESSION_NOT_FOUND once expired.
   */
  keepAlive(table: string, id: string): Promise<Session>;

  /**
   * Starts a watch. startRevision 0: sink.snapshot, then live events.
   * startRevision N: every retained event with revision >= N, then live
   * events, with none lost and none twice. Rejected (nothing delivered), in
   * this order: TABLE_NOT_FOUND; TABLE_UID_MISMATCH when `tableUid` is set
   * and the table's history is another one; FUTURE_REVISION when N is past
   * every revision the table's history has handed out + 1 (it comes from
   * another history); REVISION_COMPACTED when N is older than the retained
   * history. A running watch whose history ends under it (the table
   * deleted, the store's data wiped) is ended: TABLE_NOT_FOUND, or
   * TABLE_UID_MISMATCH when a new history of the table is already there.
   */
  watch(table: string, start: WatchStart, sink: WatchSink): Promise<WatchSubscription>;

  /** Starts a tables watch: sink.snapshot of every table, then their changes (see TablesSink). */
  watchTables(sink: TablesSink): Promise<WatchSubscription>;

  /**
   * Releases the store's resources. Open watches end with UNAVAILABLE.
   * Sessions with a ttl expire on their own (EXPIRED events), whatever call
   * comes or does not come.
   */
  close(): Promise<void>;
}
