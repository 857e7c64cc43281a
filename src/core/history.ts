/**
 * A table's history and its identity. Revisions are positions in one
 * history; a table's history starts over (and gets a new table_uid) when a
 * memory-store daemon restarts, when the table is deleted and made again,
 * or when an etcd store's data is wiped. These are the checks every store
 * makes before it takes a position a client sends back.
 */
import { futureRevision, tableUidMismatch } from "./errors.js";

/** Where a table's history is now: its identity and revision. */
export interface HistoryHead {
  tableUid: string;
  revision: number;
}

/** Throws TABLE_UID_MISMATCH when the client's position (`expected`, if any) is from another history. */
export function checkSameHistory(table: string, expected: string | undefined, head: HistoryHead): void {
  if (expected !== undefined && expected !== head.tableUid) throw tableUidMismatch(table, expected, head);
}

/**
 * Throws FUTURE_REVISION for a watch start no client of this history can
 * have reached: past `highest + 1`, where `highest` bounds every revision
 * the history has handed out (the table's revision, or a store-wide one).
 * It catches a position from another history even without a table_uid.
 */
export function checkNotFuture(table: string, startRevision: number, highest: number, head: HistoryHead): void {
  if (startRevision > highest + 1) throw futureRevision(table, startRevision, head);
}
