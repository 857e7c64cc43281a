/**
 * The etcd key layout of one store, under its prefix P (e.g. `/session-registry/`):
 *
 *   P tables/<table>            table meta: JSON {maxSessions, createTime}
 *   P meta/tables               touched by every table create and delete (serializes the table count)
 *   P meta/fence                put by a read cache that must see its watch reach a revision (read-cache.ts)
 *   P t/<table>/rev             the table's marker: created with the table, put by every session
 *                               write (its mod revision is the table revision), deleted with the table
 *   P t/<table>/slot/<i>        -> id; one of the table's max_sessions slots, i in [0, max)
 *   P t/<table>/s/<id>/d        the session (JSON); create_revision = createRevision, mod_revision = revision
 *   P t/<table>/s/<id>/x        its expire time in epoch ms ("" without ttl), moved by KeepAlive
 *   P t/<table>/p/<sha256(path)> -> id; the project path index
 *   P t/<table>/req/<method>/<request_id> -> JSON record of a Register's, Update's or Remove's result
 *                               (method: register, update, remove), on a shared lease of at least the
 *                               retention window (REQUEST_ID_RETENTION_MS)
 *   P t/<table>/n/<hex(name)>/<id> -> createRevision ("" when the key was made by Register: its own
 *                               create_revision is then the session's); the name index
 *
 * Every key of a session (slot, s/…/d, s/…/x, p/…, n/…) sits on the session's
 * lease when it has a ttl, so that an expiry frees all of them in one etcd
 * revision. Table names and ids never contain "/", so every prefix above is
 * unambiguous.
 */
import { createHash } from "node:crypto";

export type TableKey = { kind: "rev" } | { kind: "data"; id: string } | { kind: "expiry"; id: string } | { kind: "other" };

export class Keys {
  readonly tablesPrefix: string;
  readonly tablesEpoch: string;
  readonly fence: string;
  /** Every table's keys (not the metas): what the store-wide expiry watch covers. */
  readonly allTables: string;

  constructor(readonly prefix: string) {
    this.tablesPrefix = `${prefix}tables/`;
    this.tablesEpoch = `${prefix}meta/tables`;
    this.fence = `${prefix}meta/fence`;
    this.allTables = `${prefix}t/`;
  }

  tableMeta(table: string): string {
    return this.tablesPrefix + table;
  }

  table(table: string): string {
    return `${this.allTables}${table}/`;
  }

  rev(table: string): string {
    return `${this.table(table)}rev`;
  }

  slots(table: string): string {
    return `${this.table(table)}slot/`;
  }

  slot(table: string, i: number): string {
    return this.slots(table) + String(i);
  }

  sessions(table: string): string {
    return `${this.table(table)}s/`;
  }

  session(table: string, id: string): string {
    return `${this.sessions(table)}${id}/`;
  }

  data(table: string, id: string): string {
    return `${this.session(table, id)}d`;
  }

  expiry(table: string, id: string): string {
    return `${this.session(table, id)}x`;
  }

  path(table: string, projectPath: string): string {
    return `${this.table(table)}p/${pathHash(projectPath)}`;
  }

  names(table: string, name: string): string {
    return `${this.table(table)}n/${Buffer.from(name, "utf8").toString("hex")}/`;
  }

  name(table: string, name: string, id: string): string {
    return this.names(table, name) + id;
  }

  request(table: string, method: "register" | "update" | "remove", requestId: string): string {
    return `${this.table(table)}req/${method}/${requestId}`;
  }

  /** What a key under `t/<table>/` is, for the watch mapping. */
  classify(tablePrefix: string, key: string): TableKey {
    const rest = key.slice(tablePrefix.length);
    if (rest === "rev") return { kind: "rev" };
    if (rest.startsWith("s/")) {
      const slash = rest.lastIndexOf("/");
      const id = rest.slice(2, slash);
      const leaf = rest.slice(slash + 1);
      if (leaf === "d") return { kind: "data", id };
      if (leaf === "x") return { kind: "expiry", id };
    }
    return { kind: "other" };
  }

  /**
   * The table whose list entry a change of `key` may change (a table's meta,
   * its `rev` key or a slot: existence, revision, count), for the tables
   * watch; undefined for any other key.
   */
  listedTableOf(key: string): string | undefined {
    if (key.startsWith(this.tablesPrefix)) return key.slice(this.tablesPrefix.length) || undefined;
    const table = this.tableOf(key);
    if (table === undefined) return undefined;
    const rest = key.slice(this.allTables.length + table.length + 1);
    return rest === "rev" || rest.startsWith("slot/") ? table : undefined;
  }

  /** The table a key under `t/` belongs to, for the store-wide watch. */
  tableOf(key: string): string | undefined {
    if (!key.startsWith(this.allTables)) return undefined;
    const rest = key.slice(this.allTables.length);
    const slash = rest.indexOf("/");
    return slash <= 0 ? undefined : rest.slice(0, slash);
  }
}

/** The last segment of a project path's index key. */
export function pathHash(projectPath: string): string {
  return createHash("sha256").update(projectPath, "utf8").digest("hex");
}

/** The first key after every key that starts with `prefix` (etcd's range_end for a prefix). */
export function prefixEnd(prefix: string): Buffer {
  const end = Buffer.from(prefix, "utf8");
  for (let i = end.length - 1; i >= 0; i--) {
    const byte = end[i]!;
    if (byte < 0xff) {
      end[i] = byte + 1;
      return end.subarray(0, i + 1);
    }
  }
  // All 0xff: to the end of the keyspace.
  return Buffer.from([0]);
}
