/**
 * A local copy of one store's keys in etcd (keys.ts), fed by a Range and
 * then by the events of a watch, in revision order, that answers the reads
 * reads.ts and tables.ts make of etcd (Lookup, List, GetTable, ListTables)
 * with what etcd would answer at the revision it has applied.
 *
 * It knows nothing of freshness: read-cache.ts decides when an answer from
 * it is linearizable. Per session it holds the data key's value (JSON, as
 * stored) and revisions, the `x` key's value, its slot, and its path and
 * name index entries; per table its meta and `rev` key. Request records
 * and other keys are not kept.
 */
import type { IEvent, IKeyValue } from "etcd3";

import { badPageToken, parseRevisionCursor, revisionCursor } from "../../core/page-token.js";
import { sessionNotFound, tableNotFound } from "../../core/errors.js";
import type { LookupKey, Session, SessionPage, Table } from "../../core/model.js";
import { decodeStoredSession, parseTable, tableUidOf, type StoredSession } from "./codec.js";
import { isDelete } from "./events.js";
import { pathHash, type Keys } from "./keys.js";

/** A table's meta, as its key holds it. */
interface MetaState {
  tableUid: string;
  maxSessions: number;
  createTime: number;
}

/** A session's data key in create-revision order; `alive` false once the key is deleted. */
interface OrderNode {
  createRevision: number;
  id: string;
  alive: boolean;
}

interface SessionState {
  /** The data key's value (JSON); undefined while only the `x` key is known. */
  data: string | undefined;
  revision: number;
  createRevision: number;
  expiry: string | undefined;
  node: OrderNode | undefined;
  /** The session as last read (sessions are immutable snapshots), until a key of it changes. */
  decoded: Session | undefined;
}

/** What the mirror holds of the keys under `t/<table>/`. */
interface TableState {
  rev: { createRevision: number; revision: number } | undefined;
  slots: Set<number>;
  sessions: Map<string, SessionState>;
  /** sha256(path) in hex -> id */
  paths: Map<string, string>;
  /** hex(name) -> id -> the create revision that orders same-named sessions */
  names: Map<string, Map<string, number>>;
  /** Sessions by create revision: appended as data keys are created, so always sorted. */
  order: OrderNode[];
  /** Nodes in `order` no longer alive. */
  dead: number;
}

/** Dead nodes a table's order may hold before it is rewritten without them (and at least as many as live ones). */
const MIN_DEAD_TO_COMPACT = 1024;

export class Mirror {
  private readonly metas = new Map<string, MetaState>();
  private readonly tables = new Map<string, TableState>();
  /** A mirror starts with its load: data keys come in key order, and `order` is sorted when it ends (loaded()). */
  private loading = true;

  constructor(private readonly keys: Keys) {}

  /** Keys of a Range at one revision (the load, in pages). */
  load(kvs: readonly IKeyValue[]): void {
    for (const kv of kvs) this.put(kv);
  }

  /** The load is over: every table's sessions are put in create-revision order. */
  loaded(): void {
    this.loading = false;
    for (const t of this.tables.values()) t.order.sort((a, b) => a.createRevision - b.createRevision);
  }

  /** A watch response's events, in revision order: each revision applied whole. */
  apply(events: readonly IEvent[]): void {
    const touched = new Set<string>();
    for (const ev of events) {
      const table = isDelete(ev) ? this.delete(ev.kv.key.toString("utf8")) : this.put(ev.kv);
      if (table !== undefined) touched.add(table);
    }
    // A table deleted (or whose last keys went): its state goes too.
    for (const name of touched) {
      const t = this.tables.get(name);
      if (
        t !== undefined &&
        t.rev === undefined &&
        t.sessions.size === 0 &&
        t.slots.size === 0 &&
        t.paths.size === 0 &&
        t.names.size === 0
      ) {
        this.tables.delete(name);
      }
    }
  }

  /** Lookup, as reads.ts answers it: the table first (its meta), then the session. */
  lookup(tableName: string, key: LookupKey): Session {
    const meta = this.metas.get(tableName);
    if (meta === undefined) throw tableNotFound(tableName);
    const t = this.tables.get(tableName);
    let id: string | undefined;
    if (key.by === "id") id = key.value;
    else if (key.by === "projectPath") id = t?.paths.get(pathHash(key.value));
    else {
      let oldest = Infinity;
      for (const [candidate, createRevision] of t?.names.get(hex(key.value)) ?? []) {
        if (createRevision < oldest) {
          oldest = createRevision;
          id = candidate;
        }
      }
    }
    const s = id === undefined ? undefined : t?.sessions.get(id);
    if (id === undefined || s?.data === undefined) {
      throw sessionNotFound(tableName, { field: key.by === "projectPath" ? "project_path" : key.by, value: key.value });
    }
    return decode(id, s, meta.tableUid);
  }

  /** A List page, as reads.ts answers it: the `rev` key tells that the table exists, then the cursor is checked. */
  list(tableName: string, after: string | undefined, limit: number): SessionPage {
    const t = this.tables.get(tableName);
    const afterRevision = after === undefined ? 0 : parseRevisionCursor(after);
    if (t?.rev === undefined) throw tableNotFound(tableName);
    if (afterRevision === undefined) throw badPageToken();
    const meta = this.metas.get(tableName);
    if (meta === undefined) throw tableNotFound(tableName);
    const sessions: Session[] = [];
    let more = false;
    for (let i = firstAfter(t.order, afterRevision); i < t.order.length; i++) {
      const node = t.order[i]!;
      if (!node.alive) continue;
      if (sessions.length === limit) {
        more = true;
        break;
      }
      sessions.push(decode(node.id, t.sessions.get(node.id)!, meta.tableUid));
    }
    const last = sessions[sessions.length - 1];
    return {
      sessions,
      nextCursor: more && last !== undefined ? revisionCursor(last.createRevision) : undefined,
      totalSize: t.slots.size,
      revision: t.rev.revision,
      tableUid: meta.tableUid,
    };
  }

  getTable(name: string): Table {
    const table = this.tableOf(name);
    if (table === undefined) throw tableNotFound(name);
    return table;
  }

  /** Every table, in byte order of name (the order of their meta keys in etcd). */
  listTables(): Table[] {
    const names = [...this.metas.keys()].sort((a, b) => Buffer.compare(Buffer.from(a, "utf8"), Buffer.from(b, "utf8")));
    const out: Table[] = [];
    for (const name of names) {
      const table = this.tableOf(name);
      if (table !== undefined) out.push(table);
    }
    return out;
  }

  /** Sessions held, over every table (for the cost figures). */
  get sessionCount(): number {
    let n = 0;
    for (const t of this.tables.values()) n += t.sessions.size;
    return n;
  }

  /** A table as tables.ts reads it: both its meta and its `rev` key must be there. */
  private tableOf(name: string): Table | undefined {
    const meta = this.metas.get(name);
    const t = this.tables.get(name);
    if (meta === undefined || t?.rev === undefined) return undefined;
    return {
      name,
      maxSessions: meta.maxSessions,
      sessionCount: t.slots.size,
      createTime: new Date(meta.createTime),
      revision: t.rev.revision,
      tableUid: meta.tableUid,
    };
  }

  /** Applies a put; returns the table whose keys it changed, if any. */
  private put(kv: IKeyValue): string | undefined {
    const key = kv.key.toString("utf8");
    if (key.startsWith(this.keys.tablesPrefix)) {
      const name = key.slice(this.keys.tablesPrefix.length);
      const stored = parseTable(kv);
      this.metas.set(name, { tableUid: tableUidOf(kv, stored), maxSessions: stored.maxSessions, createTime: stored.createTime });
      return undefined;
    }
    const located = this.locate(key);
    if (located === undefined) return undefined;
    const { name, rest } = located;
    const revision = Number(kv.mod_revision);
    let t = this.tables.get(name);
    if (t === undefined) {
      t = { rev: undefined, slots: new Set(), sessions: new Map(), paths: new Map(), names: new Map(), order: [], dead: 0 };
      this.tables.set(name, t);
    }
    if (rest === "rev") {
      t.rev = { createRevision: Number(kv.create_revision), revision };
    } else if (rest.startsWith("slot/")) {
      t.slots.add(Number(rest.slice(5)));
    } else if (rest.startsWith("s/")) {
      const slash = rest.lastIndexOf("/");
      const id = rest.slice(2, slash);
      const leaf = rest.slice(slash + 1);
      let s = t.sessions.get(id);
      if (s === undefined) {
        s = { data: undefined, revision: 0, createRevision: 0, expiry: undefined, node: undefined, decoded: undefined };
        t.sessions.set(id, s);
      }
      s.decoded = undefined;
      if (leaf === "d") {
        const createRevision = Number(kv.create_revision);
        s.data = kv.value.toString("utf8");
        s.revision = revision;
        if (s.node === undefined || s.createRevision !== createRevision) {
          if (s.node !== undefined) this.bury(t, s.node);
          s.node = { createRevision, id, alive: true };
          t.order.push(s.node);
        }
        s.createRevision = createRevision;
      } else if (leaf === "x") {
        s.expiry = kv.value.toString("utf8");
      }
    } else if (rest.startsWith("p/")) {
      t.paths.set(rest.slice(2), kv.value.toString("utf8"));
    } else if (rest.startsWith("n/")) {
      const slash = rest.indexOf("/", 2);
      const nameHex = rest.slice(2, slash);
      const value = kv.value.toString("utf8");
      let ids = t.names.get(nameHex);
      if (ids === undefined) {
        ids = new Map();
        t.names.set(nameHex, ids);
      }
      // "": made by Register, whose own create revision is the session's (reads.ts reads it so).
      ids.set(rest.slice(slash + 1), value === "" ? Number(kv.create_revision) : Number(value));
    }
    return name;
  }

  /** Applies a delete; returns the table whose keys it changed, if any. */
  private delete(key: string): string | undefined {
    if (key.startsWith(this.keys.tablesPrefix)) {
      this.metas.delete(key.slice(this.keys.tablesPrefix.length));
      return undefined;
    }
    const located = this.locate(key);
    if (located === undefined) return undefined;
    const { name, rest } = located;
    const t = this.tables.get(name);
    if (t === undefined) return undefined;
    if (rest === "rev") {
      t.rev = undefined;
    } else if (rest.startsWith("slot/")) {
      t.slots.delete(Number(rest.slice(5)));
    } else if (rest.startsWith("s/")) {
      const slash = rest.lastIndexOf("/");
      const id = rest.slice(2, slash);
      const s = t.sessions.get(id);
      if (s === undefined) return name;
      s.decoded = undefined;
      if (rest.endsWith("/d")) {
        s.data = undefined;
        if (s.node !== undefined) this.bury(t, s.node);
        s.node = undefined;
      } else if (rest.endsWith("/x")) {
        s.expiry = undefined;
      }
      if (s.data === undefined && s.expiry === undefined) t.sessions.delete(id);
    } else if (rest.startsWith("p/")) {
      t.paths.delete(rest.slice(2));
    } else if (rest.startsWith("n/")) {
      const slash = rest.indexOf("/", 2);
      const nameHex = rest.slice(2, slash);
      const ids = t.names.get(nameHex);
      ids?.delete(rest.slice(slash + 1));
      if (ids?.size === 0) t.names.delete(nameHex);
    }
    return name;
  }

  /** A session's node leaves the order; the order is rewritten once dead nodes outnumber live ones. */
  private bury(t: TableState, node: OrderNode): void {
    node.alive = false;
    t.dead++;
    if (this.loading || t.dead < MIN_DEAD_TO_COMPACT || t.dead < t.order.length - t.dead) return;
    t.order = t.order.filter((n) => n.alive);
    t.dead = 0;
  }

  /** The table and the rest of a key under `t/`; undefined for keys the mirror does not keep. */
  private locate(key: string): { name: string; rest: string } | undefined {
    const name = this.keys.tableOf(key);
    if (name === undefined) return undefined;
    const rest = key.slice(this.keys.allTables.length + name.length + 1);
    return rest.startsWith("req/") ? undefined : { name, rest };
  }
}

function hex(name: string): string {
  return Buffer.from(name, "utf8").toString("hex");
}

/** The session `s` holds, decoded once per change of its keys (and of the table's history). */
function decode(id: string, s: SessionState, tableUid: string): Session {
  if (s.decoded?.tableUid === tableUid) return s.decoded;
  s.decoded = decodeStoredSession(id, JSON.parse(s.data!) as StoredSession, s.revision, s.createRevision, tableUid, s.expiry);
  return s.decoded;
}

/** The index of the first node created after `revision` (binary search: the order is sorted). */
function firstAfter(order: readonly OrderNode[], revision: number): number {
  let lo = 0;
  let hi = order.length;
  while (lo < hi) {
    const mid = (lo + hi) >>> 1;
    if (order[mid]!.createRevision <= revision) lo = mid + 1;
    else hi = mid;
  }
  return lo;
}
