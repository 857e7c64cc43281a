/**
 * How a session and a table's meta are stored as etcd values. Revisions are
 * not stored: a session's revision and createRevision are its data key's
 * mod_revision and create_revision, which etcd assigns at commit.
 */
import type { IKeyValue } from "etcd3";

import type { Duration, Session } from "../../core/model.js";

/** The value of `s/<id>/d`. Short names: one is stored per session. */
export interface StoredSession {
  v: 1;
  name: string;
  path: string;
  /** Metadata entries, in their order. */
  md: [string, string][];
  /** create and update time, epoch ms */
  ct: number;
  ut: number;
  ttl: { s: number; n: number } | null;
  /** The expire time this write set (epoch ms); a later KeepAlive moves only `s/<id>/x`. */
  exp: number | null;
  /** The slot the session holds, `slot/<slot>`. */
  slot: number;
}

export interface StoredTable {
  v: 1;
  maxSessions: number;
  /** epoch ms */
  createTime: number;
  /** The table's history (Table.tableUid), random at creation; absent in metas written before it existed. */
  uid?: string;
}

export interface SessionFields {
  name: string;
  projectPath: string;
  metadata: ReadonlyMap<string, string>;
  createTime: number;
  updateTime: number;
  ttl: Duration | undefined;
  expireTime: number | undefined;
  slot: number;
}

export function encodeSession(f: SessionFields): string {
  const stored: StoredSession = {
    v: 1,
    name: f.name,
    path: f.projectPath,
    md: [...f.metadata],
    ct: f.createTime,
    ut: f.updateTime,
    ttl: f.ttl === undefined ? null : { s: f.ttl.seconds, n: f.ttl.nanos },
    exp: f.expireTime ?? null,
    slot: f.slot,
  };
  return JSON.stringify(stored);
}

export function parseSession(kv: IKeyValue): StoredSession {
  return JSON.parse(kv.value.toString("utf8")) as StoredSession;
}

/**
 * The session a data key holds. `expiry` is the value of its `x` key when
 * read with it (KeepAlive moves only that one); without it the expire time
 * is the one the data key's write set.
 */
export function decodeSession(id: string, kv: IKeyValue, tableUid: string, expiry?: string): Session {
  return decodeStoredSession(id, parseSession(kv), Number(kv.mod_revision), Number(kv.create_revision), tableUid, expiry);
}

/** The session of a data key's parsed value, its revisions and its `x` key's value (see decodeSession). */
export function decodeStoredSession(
  id: string,
  s: StoredSession,
  revision: number,
  createRevision: number,
  tableUid: string,
  expiry?: string,
): Session {
  const ttl = s.ttl === null ? undefined : { seconds: s.ttl.s, nanos: s.ttl.n };
  let expireTime: Date | undefined;
  if (ttl !== undefined) {
    const fromX = expiry !== undefined && expiry !== "" ? Number(expiry) : undefined;
    const at = fromX ?? s.exp;
    expireTime = at === null ? undefined : new Date(at);
  }
  return {
    id,
    name: s.name,
    projectPath: s.path,
    metadata: new Map(s.md),
    createTime: new Date(s.ct),
    updateTime: new Date(s.ut),
    revision,
    createRevision,
    ttl,
    expireTime,
    tableUid,
  };
}

export function encodeTable(t: StoredTable): string {
  return JSON.stringify(t);
}

export function parseTable(kv: IKeyValue): StoredTable {
  return JSON.parse(kv.value.toString("utf8")) as StoredTable;
}

/**
 * The table_uid of a table meta. One without a stored uid gets one made of
 * what every daemon reads alike and a wipe does not bring back: its create
 * time and the meta key's create revision.
 */
export function tableUidOf(meta: IKeyValue, stored: StoredTable = parseTable(meta)): string {
  return stored.uid ?? `m${meta.create_revision}-${stored.createTime}`;
}
