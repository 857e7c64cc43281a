/**
 * Reads of sessions in etcd: Lookup and List, and the sessions of a Range
 * (List's pages and the Watch snapshot).
 *
 * A List page (and the watch snapshot) is an etcd Range over the table's
 * session keys sorted by create revision (from the cursor on). etcd sorts
 * in memory, so one page costs O(sessions in the table) inside etcd, not
 * O(page). An index keyed by create revision cannot be written in the
 * Register Txn itself (the revision is assigned at commit).
 *
 * Lookup by name reads every session with that name (O(k)), to pick the
 * oldest; by path and by name take two reads (index, then session at the
 * same revision).
 */
import type { IKeyValue } from "etcd3";
import { SortOrder, SortTarget } from "etcd3";

import { sessionNotFound, tableNotFound } from "../../core/errors.js";
import type { LookupKey, Session, SessionPage } from "../../core/model.js";
import { badPageToken, parseRevisionCursor, revisionCursor } from "../../core/page-token.js";
import { decodeSession } from "./codec.js";
import type { Keys } from "./keys.js";
import type { EtcdKv } from "./kv.js";
import { count, first, get, getPrefix, kvs, sessionKvs, type SessionKvs } from "./ops.js";
import type { Tables } from "./tables.js";

export class SessionReads {
  constructor(
    private readonly kv: EtcdKv,
    private readonly tables: Tables,
  ) {}

  async lookup(tableName: string, key: LookupKey): Promise<Session> {
    const k = this.kv.keys;
    const notFound = () => sessionNotFound(tableName, { field: key.by === "projectPath" ? "project_path" : key.by, value: key.value });
    // The table's meta (created and deleted with `rev`) tells both that the table exists and its history.
    if (key.by === "id") {
      const res = await this.kv.read([get(k.tableMeta(tableName)), getPrefix(k.session(tableName, key.value))]);
      const tableUid = this.tables.uidFrom(tableName, first(res, 0));
      const s = sessionKvs(kvs(res, 1));
      if (s.data === undefined) throw notFound();
      return decodeSession(key.value, s.data, tableUid, s.expiry?.value.toString("utf8"));
    }
    let id: string | undefined;
    let at: string;
    let tableUid: string;
    if (key.by === "projectPath") {
      const res = await this.kv.read([get(k.tableMeta(tableName)), get(k.path(tableName, key.value))]);
      tableUid = this.tables.uidFrom(tableName, first(res, 0));
      id = first(res, 1)?.value.toString("utf8");
      at = res.header.revision;
    } else {
      const prefix = k.names(tableName, key.value);
      const res = await this.kv.read([get(k.tableMeta(tableName)), getPrefix(prefix)]);
      tableUid = this.tables.uidFrom(tableName, first(res, 0));
      let oldest = Infinity;
      for (const kv of kvs(res, 1)) {
        const value = kv.value.toString("utf8");
        const createRevision = value === "" ? Number(kv.create_revision) : Number(value);
        if (createRevision < oldest) {
          oldest = createRevision;
          id = kv.key.toString("utf8").slice(prefix.length);
        }
      }
      at = res.header.revision;
    }
    if (id === undefined) throw notFound();
    // The session as of the index read: one snapshot, even if it changed since.
    const res = await this.kv.read([getPrefix(k.session(tableName, id), { revision: at })]);
    const s = sessionKvs(kvs(res, 0));
    if (s.data === undefined) throw notFound();
    return decodeSession(id, s.data, tableUid, s.expiry?.value.toString("utf8"));
  }

  async list(tableName: string, after: string | undefined, limit: number): Promise<SessionPage> {
    const k = this.kv.keys;
    const afterRevision = after === undefined ? 0 : parseRevisionCursor(after);
    if (afterRevision === undefined) {
      // An unknown table is reported first, as for every call.
      if (first(await this.kv.read([get(k.rev(tableName))]), 0) === undefined) throw tableNotFound(tableName);
      throw badPageToken();
    }
    const res = await this.kv.read([
      get(k.rev(tableName)),
      getPrefix(k.slots(tableName), { count_only: true }),
      // Two keys per session (d and x, created together): limit + 1 sessions tell whether more follow.
      getPrefix(k.sessions(tableName), {
        sort_target: SortTarget.Create,
        sort_order: SortOrder.Ascend,
        min_create_revision: afterRevision + 1,
        limit: 2 * (limit + 1),
      }),
      get(k.tableMeta(tableName)),
    ]);
    const rev = first(res, 0);
    if (rev === undefined) throw tableNotFound(tableName);
    const tableUid = this.tables.uidFrom(tableName, first(res, 3));
    const all = sessionsOf(k, tableName, kvs(res, 2), tableUid);
    const sessions = all.slice(0, limit);
    const last = sessions[sessions.length - 1];
    return {
      sessions,
      nextCursor: all.length > limit && last !== undefined ? revisionCursor(last.createRevision) : undefined,
      totalSize: count(res, 1),
      revision: Number(rev.mod_revision),
      tableUid,
    };
  }
}

/** Sessions from a Range over a table's `s/` keys sorted by create revision. */
export function sessionsOf(keys: Keys, tableName: string, list: readonly IKeyValue[], tableUid: string): Session[] {
  const prefix = keys.sessions(tableName);
  const byId = new Map<string, SessionKvs>();
  for (const kv of list) {
    const key = kv.key.toString("utf8");
    const rest = key.slice(prefix.length);
    const id = rest.slice(0, rest.lastIndexOf("/"));
    let entry = byId.get(id);
    if (entry === undefined) {
      entry = { data: undefined, expiry: undefined };
      byId.set(id, entry);
    }
    if (key.endsWith("/d")) entry.data = kv;
    else entry.expiry = kv;
  }
  const out: Session[] = [];
  for (const [id, s] of byId) {
    if (s.data !== undefined) out.push(decodeSession(id, s.data, tableUid, s.expiry?.value.toString("utf8")));
  }
  return out;
}
