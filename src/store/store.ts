/**
 * The storage contract. Each operation is atomic at the registry level: the
 * checks it names and the write it makes happen as one step, so that no
 * interleaving of concurrent calls (on one daemon, or on many daemons sharing
 * one backend) can break the limit or uniqueness rules.
 *
 * Inputs are already validated and normalized by the core (src/core); a store
 * enforces only what depends on the stored state, and reports it with the
 * core's RegistryError constructors (src/core/errors.ts).
 */
import type { LookupKey, NewSession, Session, SessionPage, SessionPatch, Table } from "../core/model.js";

export interface StoreLimits {
  /** The limit of a table created without an explicit one. */
  defaultMaxSessions: number;
  /** The most tables the store holds. */
  maxTables: number;
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
   */
  register(table: string, session: NewSession): Promise<Session>;

  /** SESSION_NOT_FOUND (or TABLE_NOT_FOUND). O(1) in the table's size. */
  lookup(table: string, key: LookupKey): Promise<Session>;

  /**
   * Up to `limit` sessions in creation order, starting after `after` (a
   * cursor from a previous page). A cursor this store did not make is
   * INVALID_ARGUMENT on `page_token`.
   */
  list(table: string, after: string | undefined, limit: number): Promise<SessionPage>;

  /**
   * Applies a patch after checking, atomically: table exists, session exists,
   * revision (when expectedRevision > 0), new project path unique.
   */
  update(table: string, id: string, patch: SessionPatch, expectedRevision: number): Promise<Session>;

  /**
   * Removes a session after checking its revision (when expectedRevision > 0).
   * Unknown id: SESSION_NOT_FOUND, or undefined when allowMissing.
   */
  remove(table: string, id: string, expectedRevision: number, allowMissing: boolean): Promise<Session | undefined>;

  /** Releases the store's resources. */
  close(): Promise<void>;
}
