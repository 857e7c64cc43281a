/**
 * The etcd store: every table lives in an etcd cluster under one key prefix,
 * so any number of stateless daemons share the tables, their limits and one
 * change feed. The key layout is in keys.ts, the feed mapping in events.ts.
 *
 * Atomicity. Every write is one etcd Txn whose compares carry the checks the
 * contract names, in a bounded loop (maxAttempts, default 20; then
 * UNAVAILABLE) that re-reads and retries only when a compare failed for a
 * reason that is no error of the caller's:
 * - Register: compares that the table is the same incarnation (create
 *   revision of `rev`), that the chosen slot, the id and the path hash are
 *   all free. On failure the same Txn's else-branch reads the table, its
 *   taken slots, the id and the path, and the contract's order is decided on
 *   that one snapshot: table, limit, duplicate id, duplicate path; only a
 *   lost race for a slot retries, with a slot seen free. The limit is exact
 *   because a session can only exist holding one of `max_sessions` slots.
 * - Register, Update and Remove with a request_id also compare that the
 *   table's `req/<method>/<request_id>` key is absent and put it, holding the
 *   write's result (on a shared lease of at least the retention window).
 *   Register's else-branch reads it, Update and Remove read it with the
 *   session; a present one returns the first write's result (right after the
 *   table check).
 * - Update, Remove and KeepAlive read the session, check it (revision, new
 *   path), then commit with compares on the session's mod revision (and the
 *   new path's hash being free); a lost race re-reads.
 * - CreateTable compares `meta/tables`, which every create puts, so the
 *   table count read before it still holds (max_tables is exact).
 *
 * History. Each table's meta holds a random uid, its table_uid: every
 * daemon on the prefix reports the same one, and a table made again, or made
 * on a wiped etcd, has a new one. Writes compare the meta's value, not a
 * revision, because a wiped etcd hands out the same revisions again. A
 * watch that etcd3 re-creates after a lost connection checks the table's
 * uid and etcd's revision before it delivers anything more (TableWatch).
 *
 * Revisions are etcd's, global to the cluster: strictly increasing per table,
 * not contiguous. A session's revision and createRevision are its data key's
 * mod and create revisions. The table revision is the mod revision of the
 * table's `rev` key, which every session write puts in its Txn: so a write's
 * session revision equals the table revision right after it, reads and
 * rejected writes (whose Txns put nothing) leave it, and other tables'
 * writes do not move it. An expiry moves it a moment later (below).
 *
 * Deviations from the memory store, all forced by etcd (documented for the README):
 * - TTL is an etcd lease. Its TTL is whole seconds, rounded up, and at
 *   least etcd's minimum (about 1.5 x election timeout: 2 s with the default
 *   1 s election timeout); etcd revokes expired leases on a ~500 ms tick. So
 *   a session expires no earlier than its expire_time (computed from the
 *   clock before the lease was granted or renewed) but may outlive it by up
 *   to the rounding plus that tick; until then reads still show it.
 * - An expiry is etcd revoking the lease: one etcd revision E deletes all
 *   the session's keys, and E is the EXPIRED event's revision. No Txn of
 *   ours runs then, so the table revision (the `rev` key) does not move at
 *   E. Each store watches the whole prefix, and on an EXPIRED event puts the
 *   table's `rev` key right after, in a Txn that compares that it is the
 *   same incarnation and still below E (see bumpRevision): of several
 *   daemons only the first bumps, and none when a write moved it already.
 *   The table revision then moves past E, one etcd revision later than the
 *   memory store's would. What remains is the window between E and that
 *   bump (a round trip, longer while etcd is slow or unreachable: the bump
 *   is best effort, never retried, and the next write closes the window
 *   anyway): a List or snapshot read in it reports the revision of the
 *   last write, and a watch resumed from that + 1 may replay EXPIRED events
 *   of sessions the page no longer had (harmless: removing an absent
 *   session). A bump is a put of `rev` without session change: no event.
 * - Watch history: a start revision is served when the table has at most
 *   `watchHistory` writes since it (counted by the `rev` key's etcd
 *   version); expiries are not counted, but bumps after them are (at most
 *   one per expiry), so at least `watchHistory` events are retained. etcd's
 *   own compaction (its --auto-compaction-*) bounds it too: a start below
 *   it is REVISION_COMPACTED.
 * - List pages and the watch snapshot use an etcd Range over the table's
 *   session keys sorted by create revision (from the cursor on). etcd sorts
 *   in memory, so one page costs O(sessions in the table) inside etcd,
 *   not O(page). An index keyed by create revision cannot be written in the
 *   Register Txn itself (the revision is assigned at commit).
 * - Lookup by name reads every session with that name (O(k)), to pick the
 *   oldest; by path and by name take two reads (index, then session at the
 *   same revision).
 * - KeepAlive renews the lease and puts the session's `x` key (its expire
 *   time, so that every daemon reads the same one): an etcd revision, but no
 *   session revision, no table revision and no event.
 * - The observer hears of every expiry in the store's prefix: each daemon on
 *   one etcd counts every expiry (the store-wide watch that bumps revisions).
 *
 * Failures. etcd being unreachable, slow (each call has a deadline,
 * requestTimeoutMs) or leaderless is UNAVAILABLE with reason
 * STORE_UNAVAILABLE (client.ts). Such a write may have committed anyway:
 * etcd3's automatic retries are off, so that no retry of a committed Txn
 * reports the caller's own write as a conflict; retrying is the caller's
 * (a request_id is what makes a retried write safe). Watches
 * survive a disconnection: etcd3 re-creates them from the next revision.
 */
import { randomUUID } from "node:crypto";

import type { Etcd3, ICompare, IKeyValue, IRequestOp, ITxnResponse, Watcher } from "etcd3";
import { SortOrder, SortTarget } from "etcd3";

import {
  projectAlreadyOpen,
  revisionCompacted,
  revisionMismatch,
  sessionExists,
  sessionLimitReached,
  sessionNotFound,
  shuttingDown,
  tableExists,
  tableUidMismatch,
  tableLimitReached,
  tableNotEmpty,
  tableNotFound,
  type RegistryError,
} from "../../core/errors.js";
import {
  newSession,
  REQUEST_ID_RETENTION_MS,
  type Duration,
  type LookupKey,
  type NewSession,
  type Session,
  type SessionPage,
  type SessionPatch,
  type Table,
} from "../../core/model.js";
import { checkNotFuture, checkSameHistory, type HistoryHead } from "../../core/history.js";
import { badPageToken, parseRevisionCursor, revisionCursor } from "../../core/page-token.js";
import { expiresAt, updatedSession } from "../../core/update.js";
import { ttlMillis } from "../../core/validation.js";
import type { Store, StoreLimits, StoreObserver, WatchSink, WatchStart, WatchSubscription, WriteConditions } from "../../core/store.js";
import {
  DEFAULT_REQUEST_TIMEOUT_MS,
  createClient,
  isCompacted,
  isLeaseNotFound,
  EtcdErrors,
  type EtcdConnectionOptions,
} from "./client.js";
import { decodeSession, encodeSession, encodeTable, parseSession, parseTable, tableUidOf } from "./codec.js";
import { toChanges } from "./events.js";
import { Keys } from "./keys.js";
import {
  MAX_TXN_OPS,
  count,
  createdAfter,
  createdAt,
  createdBefore,
  del,
  delPrefix,
  first,
  get,
  getPrefix,
  kvs,
  modifiedAt,
  modifiedBefore,
  put,
  sessionKvs,
  utf8,
  valueIs,
  type SessionKvs,
} from "./ops.js";
import { TableWatch } from "./watch.js";

export interface EtcdStoreOptions extends EtcdConnectionOptions {
  /** Every key of this store starts with it, e.g. "/session-registry/"; a "/" is appended when missing. */
  prefix: string;
  /** Told of expirations (metrics, logs). */
  observer?: StoreObserver;
  /** Attempts of one optimistic write before UNAVAILABLE (default 20). */
  maxAttempts?: number;
}

/** What a store knows of a table between calls; Txn compares catch a stale entry. */
interface TableInfo {
  /**
   * The meta key's value. It holds the table's random uid, so a Txn that
   * compares it is sure to write into this incarnation of the name, even
   * after a wipe of etcd, where revisions (a create revision) come again.
   */
  meta: Buffer;
  tableUid: string;
  maxSessions: number;
}

function leaseSeconds(ttl: Duration): number {
  return Math.max(1, Math.ceil(ttlMillis(ttl) / 1000));
}

export class EtcdStore implements Store {
  private readonly client: Etcd3;
  /** Where etcd is, and what its failures mean in words. */
  private readonly errors: EtcdErrors;
  private readonly keys: Keys;
  private readonly maxAttempts: number;
  private readonly requestTimeoutMs: number;
  private readonly observer: StoreObserver | undefined;
  private readonly tables = new Map<string, TableInfo>();
  private readonly watches = new Set<TableWatch>();
  private expiryWatcher: Watcher | undefined;
  /** Tables whose `rev` bump after an expiry is running, with the highest expiry revision still to bump past. */
  private readonly bumps = new Map<string, { next: number | undefined; done: Promise<void> }>();
  /** The shared lease of request_id keys and until when new keys may use it; see retentionLease(). */
  private requestLease: { id: Promise<string>; until: number } | undefined;
  private closed = false;

  constructor(
    private readonly limits: StoreLimits,
    options: EtcdStoreOptions,
  ) {
    const prefix = options.prefix.endsWith("/") ? options.prefix : `${options.prefix}/`;
    this.keys = new Keys(prefix);
    this.client = createClient(options);
    this.errors = new EtcdErrors(options.endpoints);
    this.maxAttempts = options.maxAttempts ?? 20;
    this.requestTimeoutMs = options.requestTimeoutMs ?? DEFAULT_REQUEST_TIMEOUT_MS;
    this.observer = options.observer;
    this.watchExpiries();
  }

  // ---- tables ----

  async createTable(name: string, maxSessions: number | undefined): Promise<{ table: Table; created: boolean }> {
    const k = this.keys;
    for (let attempt = 0; attempt < this.maxAttempts; attempt++) {
      const res = await this.read([
        get(k.tableMeta(name)),
        get(k.rev(name)),
        getPrefix(k.slots(name), { count_only: true }),
        getPrefix(k.tablesPrefix, { count_only: true }),
        get(k.tablesEpoch),
      ]);
      const existing = this.tableFrom(name, first(res, 0), first(res, 1), count(res, 2));
      if (existing !== undefined) {
        if (maxSessions !== undefined && maxSessions !== existing.maxSessions) throw tableExists(name, existing.maxSessions);
        return { table: existing, created: false };
      }
      const tables = count(res, 3);
      if (tables >= this.limits.maxTables) throw tableLimitReached(tables, this.limits.maxTables);
      const max = maxSessions ?? this.limits.defaultMaxSessions;
      const createTime = Date.now();
      // Stored, so that every daemon on this etcd and prefix reports the same one.
      const tableUid = randomUUID();
      const meta = encodeTable({ v: 1, maxSessions: max, createTime, uid: tableUid });
      const txn = await this.txn(
        [modifiedAt(k.tablesEpoch, first(res, 4)?.mod_revision ?? 0), createdAt(k.tableMeta(name), 0)],
        [put(k.tableMeta(name), meta), put(k.rev(name), ""), put(k.tablesEpoch, "")],
      );
      if (!txn.succeeded) continue;
      this.tables.set(name, { meta: utf8(meta), tableUid, maxSessions: max });
      const revision = Number(txn.header.revision);
      return {
        table: { name, maxSessions: max, sessionCount: 0, createTime: new Date(createTime), revision, tableUid },
        created: true,
      };
    }
    throw this.contention("CreateTable");
  }

  async getTable(name: string): Promise<Table> {
    const k = this.keys;
    const res = await this.read([get(k.tableMeta(name)), get(k.rev(name)), getPrefix(k.slots(name), { count_only: true })]);
    const table = this.tableFrom(name, first(res, 0), first(res, 1), count(res, 2));
    if (table === undefined) throw tableNotFound(name);
    return table;
  }

  async listTables(): Promise<Table[]> {
    const k = this.keys;
    const metas = await this.read([getPrefix(k.tablesPrefix)]);
    const at = metas.header.revision;
    const entries = kvs(metas, 0).map((kv) => ({ name: kv.key.toString("utf8").slice(k.tablesPrefix.length), meta: kv }));
    const out: Table[] = [];
    // Every read at the revision of the first, so the list is one snapshot.
    const perChunk = Math.floor(MAX_TXN_OPS / 2);
    for (let i = 0; i < entries.length; i += perChunk) {
      const chunk = entries.slice(i, i + perChunk);
      const res = await this.read(
        chunk.flatMap((e) => [get(k.rev(e.name), { revision: at }), getPrefix(k.slots(e.name), { count_only: true, revision: at })]),
      );
      chunk.forEach((e, j) => {
        const table = this.tableFrom(e.name, e.meta, first(res, 2 * j), count(res, 2 * j + 1));
        if (table !== undefined) out.push(table);
      });
    }
    // etcd returns keys in byte order, which is the order the contract asks for.
    return out;
  }

  async deleteTable(name: string, force: boolean): Promise<void> {
    const k = this.keys;
    for (let attempt = 0; attempt < this.maxAttempts; attempt++) {
      const res = await this.read([
        get(k.tableMeta(name)),
        get(k.rev(name)),
        getPrefix(k.slots(name), { count_only: true }),
        getPrefix(k.sessions(name), { keys_only: true }),
      ]);
      const rev = first(res, 1);
      const table = this.tableFrom(name, first(res, 0), rev, count(res, 2));
      if (table === undefined || rev === undefined) throw tableNotFound(name);
      if (table.sessionCount > 0 && !force) throw tableNotEmpty(name, table.sessionCount);
      // Without force: no write since the read (every write puts `rev`), so the table is still empty.
      const guard = force ? createdAt(k.rev(name), rev.create_revision) : modifiedAt(k.rev(name), rev.mod_revision);
      const txn = await this.txn([guard], [delPrefix(k.table(name)), del(k.tableMeta(name))]);
      if (!txn.succeeded) continue;
      this.tables.delete(name);
      // The sessions' leases hold no keys any more; release them rather than wait for their ttl.
      const leases = new Set(kvs(res, 3).map((kv) => kv.lease).filter((l) => l !== "0"));
      for (const lease of leases) this.revoke(lease);
      return;
    }
    throw this.contention("DeleteTable");
  }

  // ---- sessions ----

  async register(tableName: string, input: NewSession, requestId?: string): Promise<Session> {
    const k = this.keys;
    let info = await this.tableInfo(tableName);
    // A request_id is remembered by a `req` key put in the Register's own Txn (which compares that
    // it is absent), on a shared lease of at least the retention window: see retentionLease().
    const reqKey = requestId === undefined ? undefined : k.request(tableName, "register", requestId);
    const now = Date.now();
    const expireTime = expiresAt(input.ttl, now);
    let lease: string | undefined;
    // Whether the lease may hold a committed session: after a Txn that failed with an unknown
    // outcome it may, so it is left to expire on its own rather than revoked.
    let maybeUsed = false;
    let slot = Math.floor(Math.random() * info.maxSessions);
    try {
      for (let attempt = 0; attempt < this.maxAttempts; attempt++) {
        if (input.ttl !== undefined && lease === undefined) lease = await this.grant(input.ttl);
        const reqLease = reqKey === undefined ? undefined : await this.retentionLease();
        const value = encodeSession({
          name: input.name,
          projectPath: input.projectPath,
          metadata: input.metadata,
          createTime: now,
          updateTime: now,
          ttl: input.ttl,
          expireTime,
          slot,
        });
        const dataKey = k.data(tableName, input.id);
        const pathKey = k.path(tableName, input.projectPath);
        const slotKey = k.slot(tableName, slot);
        let txn: ITxnResponse;
        try {
          txn = await this.txn(
            [
              valueIs(k.tableMeta(tableName), info.meta),
              createdAt(slotKey, 0),
              createdAt(dataKey, 0),
              createdAt(pathKey, 0),
              ...(reqKey === undefined ? [] : [createdAt(reqKey, 0)]),
            ],
            [
              ...(reqKey === undefined ? [] : [put(reqKey, requestRecord({ id: input.id, s: value }), reqLease)]),
              put(slotKey, input.id, lease),
              put(dataKey, value, lease),
              put(k.expiry(tableName, input.id), expireTime === undefined ? "" : String(expireTime), lease),
              put(pathKey, input.id, lease),
              put(k.name(tableName, input.name, input.id), "", lease),
              put(k.rev(tableName), ""),
            ],
            [
              get(k.tableMeta(tableName)),
              get(k.rev(tableName)),
              getPrefix(k.slots(tableName), { keys_only: true }),
              get(dataKey, { keys_only: true }),
              get(pathKey),
              ...(reqKey === undefined ? [] : [get(reqKey)]),
            ],
          );
        } catch (err) {
          // The lease ran out while we retried (a ttl of seconds and a slow etcd): take a new one.
          if ((lease !== undefined || reqLease !== undefined) && isLeaseNotFound(err)) {
            lease = undefined;
            this.requestLease = undefined;
            continue;
          }
          maybeUsed = true;
          throw err;
        }
        if (txn.succeeded) {
          maybeUsed = true;
          const revision = Number(txn.header.revision);
          return newSession(input, revision, now, expireTime, info.tableUid);
        }
        const current = this.tableInfoFrom(tableName, first(txn, 0), first(txn, 1));
        if (current === undefined) throw tableNotFound(tableName);
        if (current.tableUid !== info.tableUid) {
          // Deleted and created again since we cached it: start over on the new one.
          info = current;
          slot = Math.floor(Math.random() * info.maxSessions);
          continue;
        }
        // A repeated request_id: the first Register's result, before any other check.
        const original = first(txn, 5);
        if (reqKey !== undefined && original !== undefined) return recordedResult(original, info.tableUid);
        const taken = new Set(kvs(txn, 2).map((kv) => Number(kv.key.toString("utf8").slice(k.slots(tableName).length))));
        if (taken.size >= info.maxSessions) throw sessionLimitReached(tableName, taken.size, info.maxSessions);
        if (kvs(txn, 3).length > 0) throw sessionExists(tableName, input.id);
        const holder = first(txn, 4);
        if (holder !== undefined) throw projectAlreadyOpen(tableName, input.projectPath, holder.value.toString("utf8"));
        // Only the slot was taken (a concurrent Register won it): try one seen free.
        slot = pickFree(taken, info.maxSessions);
      }
      throw this.contention("Register");
    } finally {
      if (!maybeUsed && lease !== undefined) this.revoke(lease);
    }
  }

  async lookup(tableName: string, key: LookupKey): Promise<Session> {
    const k = this.keys;
    const notFound = () =>
      sessionNotFound(tableName, { field: key.by === "projectPath" ? "project_path" : key.by, value: key.value });
    // The table's meta (created and deleted with `rev`) tells both that the table exists and its history.
    if (key.by === "id") {
      const res = await this.read([get(k.tableMeta(tableName)), getPrefix(k.session(tableName, key.value))]);
      const tableUid = this.uidFrom(tableName, first(res, 0));
      const s = sessionKvs(kvs(res, 1));
      if (s.data === undefined) throw notFound();
      return decodeSession(key.value, s.data, tableUid, s.expiry?.value.toString("utf8"));
    }
    let id: string | undefined;
    let at: string;
    let tableUid: string;
    if (key.by === "projectPath") {
      const res = await this.read([get(k.tableMeta(tableName)), get(k.path(tableName, key.value))]);
      tableUid = this.uidFrom(tableName, first(res, 0));
      id = first(res, 1)?.value.toString("utf8");
      at = res.header.revision;
    } else {
      const prefix = k.names(tableName, key.value);
      const res = await this.read([get(k.tableMeta(tableName)), getPrefix(prefix)]);
      tableUid = this.uidFrom(tableName, first(res, 0));
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
    const res = await this.read([getPrefix(k.session(tableName, id), { revision: at })]);
    const s = sessionKvs(kvs(res, 0));
    if (s.data === undefined) throw notFound();
    return decodeSession(id, s.data, tableUid, s.expiry?.value.toString("utf8"));
  }

  async list(tableName: string, after: string | undefined, limit: number): Promise<SessionPage> {
    const k = this.keys;
    const afterRevision = after === undefined ? 0 : parseRevisionCursor(after);
    if (afterRevision === undefined) {
      // An unknown table is reported first, as for every call.
      if (first(await this.read([get(k.rev(tableName))]), 0) === undefined) throw tableNotFound(tableName);
      throw badPageToken();
    }
    const res = await this.read([
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
    const tableUid = this.uidFrom(tableName, first(res, 3));
    const all = this.sessionsOf(tableName, kvs(res, 2), tableUid);
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

  async update(tableName: string, id: string, patch: SessionPatch, conditions: WriteConditions): Promise<Session> {
    const { expectedRevision, requestId } = conditions;
    const k = this.keys;
    // A request_id: its `req` key is read with the session (a present one answers), compared absent and put by the Txn.
    const reqKey = requestId === undefined ? undefined : k.request(tableName, "update", requestId);
    for (let attempt = 0; attempt < this.maxAttempts; attempt++) {
      const ops = [
        get(k.rev(tableName)),
        getPrefix(k.session(tableName, id)),
        // Without a request_id, a stand-in that keeps the indexes below fixed.
        get(reqKey ?? k.rev(tableName), { keys_only: reqKey === undefined }),
        get(k.tableMeta(tableName)),
      ];
      if (patch.projectPath !== undefined) ops.push(get(k.path(tableName, patch.projectPath)));
      const res = await this.read(ops);
      const meta = first(res, 3);
      const history = historyOf(meta, first(res, 0));
      if (meta === undefined || history === undefined) throw tableNotFound(tableName);
      checkSameHistory(tableName, conditions.tableUid, history);
      const tableUid = history.tableUid;
      const recorded = first(res, 2);
      if (reqKey !== undefined && recorded !== undefined) return recordedResult(recorded, tableUid);
      const { data, expiry } = sessionKvs(kvs(res, 1));
      if (data === undefined) throw sessionNotFound(tableName, { field: "id", value: id });
      const prev = decodeSession(id, data, tableUid, expiry?.value.toString("utf8"));
      const reqLease = reqKey === undefined ? undefined : await this.retentionLease();
      if (expectedRevision !== 0 && expectedRevision !== prev.revision) {
        throw revisionMismatch(tableName, id, expectedRevision, prev.revision);
      }
      if (patch.projectPath !== undefined && patch.projectPath !== prev.projectPath) {
        const holder = first(res, 4);
        if (holder !== undefined) throw projectAlreadyOpen(tableName, patch.projectPath, holder.value.toString("utf8"));
      }

      const now = Date.now();
      // The session as the Txn writes it; its revision is etcd's, known once the Txn commits.
      const next = updatedSession(prev, patch, now, 0);
      const { name, projectPath } = next;
      const pathChanged = projectPath !== prev.projectPath;
      const oldLease = data.lease;
      // A changed ttl starts a new lease (a lease's TTL is fixed); a cleared one, none.
      let lease = oldLease;
      if (patch.ttl === null) lease = "0";
      else if (patch.ttl !== undefined) lease = await this.grant(patch.ttl);
      const leaseChanged = lease !== oldLease;
      const expireTime = next.expireTime?.getTime();
      const slot = parseSession(data).slot;
      const createRevision = String(prev.createRevision);
      const value = encodeSession({
        name,
        projectPath,
        metadata: next.metadata,
        createTime: prev.createTime.getTime(),
        updateTime: now,
        ttl: next.ttl,
        expireTime,
        slot,
      });

      const success: IRequestOp[] = [put(k.data(tableName, id), value, lease), put(k.rev(tableName), "")];
      if (leaseChanged || patch.ttl !== undefined) {
        success.push(put(k.expiry(tableName, id), expireTime === undefined ? "" : String(expireTime), lease));
      }
      if (pathChanged) {
        success.push(del(k.path(tableName, prev.projectPath)), put(k.path(tableName, projectPath), id, lease));
      } else if (leaseChanged) {
        success.push(put(k.path(tableName, projectPath), id, lease));
      }
      if (name !== prev.name) {
        success.push(del(k.name(tableName, prev.name, id)), put(k.name(tableName, name, id), createRevision, lease));
      } else if (leaseChanged) {
        success.push(put(k.name(tableName, name, id), createRevision, lease));
      }
      if (leaseChanged) success.push(put(k.slot(tableName, slot), id, lease));
      // The meta compare keeps the history checked above: after a wipe a data key's mod revision can come again.
      const compare = [modifiedAt(k.data(tableName, id), data.mod_revision), valueIs(k.tableMeta(tableName), meta.value)];
      if (pathChanged) compare.push(createdAt(k.path(tableName, projectPath), 0));
      if (reqKey !== undefined) {
        compare.push(createdAt(reqKey, 0));
        success.push(put(reqKey, requestRecord({ id, s: value, cr: prev.createRevision }), reqLease));
      }

      let txn: ITxnResponse;
      try {
        txn = await this.txn(compare, success);
      } catch (err) {
        // A lease ran out between the read and the write: read again (the session may have expired).
        if (isLeaseNotFound(err)) {
          if (leaseChanged && lease !== "0") this.revoke(lease);
          this.requestLease = undefined;
          continue;
        }
        // Unknown outcome: the session may be on the new lease now, so neither lease is revoked.
        throw err;
      }
      if (!txn.succeeded) {
        if (leaseChanged && lease !== "0") this.revoke(lease);
        continue;
      }
      if (leaseChanged && oldLease !== "0") this.revoke(oldLease);
      return { ...next, revision: Number(txn.header.revision) };
    }
    throw this.contention("Update");
  }

  async remove(tableName: string, id: string, conditions: WriteConditions & { allowMissing: boolean }): Promise<Session | undefined> {
    const { expectedRevision, allowMissing, requestId } = conditions;
    const k = this.keys;
    // A request_id: as in update(). A Remove that finds nothing writes nothing, so records nothing.
    const reqKey = requestId === undefined ? undefined : k.request(tableName, "remove", requestId);
    for (let attempt = 0; attempt < this.maxAttempts; attempt++) {
      const res = await this.read([
        get(k.rev(tableName)),
        getPrefix(k.session(tableName, id)),
        get(reqKey ?? k.rev(tableName), { keys_only: reqKey === undefined }),
        get(k.tableMeta(tableName)),
      ]);
      const meta = first(res, 3);
      const history = historyOf(meta, first(res, 0));
      if (meta === undefined || history === undefined) throw tableNotFound(tableName);
      checkSameHistory(tableName, conditions.tableUid, history);
      const tableUid = history.tableUid;
      const recorded = first(res, 2);
      if (reqKey !== undefined && recorded !== undefined) return recordedResult(recorded, tableUid);
      const { data, expiry } = sessionKvs(kvs(res, 1));
      if (data === undefined) {
        if (allowMissing) return undefined;
        throw sessionNotFound(tableName, { field: "id", value: id });
      }
      const prev = decodeSession(id, data, tableUid, expiry?.value.toString("utf8"));
      if (expectedRevision !== 0 && expectedRevision !== prev.revision) {
        throw revisionMismatch(tableName, id, expectedRevision, prev.revision);
      }
      const compare = [modifiedAt(k.data(tableName, id), data.mod_revision), valueIs(k.tableMeta(tableName), meta.value)];
      const success = [
        del(k.slot(tableName, parseSession(data).slot)),
        delPrefix(k.session(tableName, id)),
        del(k.path(tableName, prev.projectPath)),
        del(k.name(tableName, prev.name, id)),
        // Marks the deletion as a removal in the feed (an expiry touches no `rev`).
        put(k.rev(tableName), ""),
      ];
      if (reqKey !== undefined) {
        const record = requestRecord({
          id,
          s: data.value.toString("utf8"),
          ...(expiry !== undefined ? { x: expiry.value.toString("utf8") } : {}),
          cr: prev.createRevision,
          rev: prev.revision,
        });
        compare.push(createdAt(reqKey, 0));
        success.push(put(reqKey, record, await this.retentionLease()));
      }
      let txn: ITxnResponse;
      try {
        txn = await this.txn(compare, success);
      } catch (err) {
        // The request_id lease is gone (nothing else here has a lease): take a new one and read again.
        if (reqKey !== undefined && isLeaseNotFound(err)) {
          this.requestLease = undefined;
          continue;
        }
        throw err;
      }
      if (!txn.succeeded) continue;
      if (data.lease !== "0") this.revoke(data.lease);
      return prev;
    }
    throw this.contention("Remove");
  }

  async keepAlive(tableName: string, id: string): Promise<Session> {
    const k = this.keys;
    const notFound = () => sessionNotFound(tableName, { field: "id", value: id });
    for (let attempt = 0; attempt < this.maxAttempts; attempt++) {
      const res = await this.read([get(k.tableMeta(tableName)), getPrefix(k.session(tableName, id))]);
      const tableUid = this.uidFrom(tableName, first(res, 0));
      const { data, expiry } = sessionKvs(kvs(res, 1));
      if (data === undefined) throw notFound();
      const prev = decodeSession(id, data, tableUid, expiry?.value.toString("utf8"));
      if (prev.ttl === undefined || data.lease === "0") return prev;
      // The clock before the renewal: etcd's deadline is at least this + ttl.
      const now = Date.now();
      const left = await this.renew(data.lease);
      if (left <= 0) throw notFound();
      const expireTime = expiresAt(prev.ttl, now);
      let txn: ITxnResponse;
      try {
        // Only `x` moves: no new revision of the session, no `rev`, no event.
        txn = await this.txn(
          [modifiedAt(k.data(tableName, id), data.mod_revision)],
          [put(k.expiry(tableName, id), String(expireTime), data.lease)],
        );
      } catch (err) {
        // The lease went between the renewal and the write (expired, or replaced by an Update): read again.
        if (isLeaseNotFound(err)) continue;
        throw err;
      }
      if (!txn.succeeded) continue;
      return { ...prev, expireTime: new Date(expireTime) };
    }
    throw this.contention("KeepAlive");
  }

  // ---- watch ----

  async watch(tableName: string, start: WatchStart, sink: WatchSink): Promise<WatchSubscription> {
    const { startRevision } = start;
    const k = this.keys;
    const ops = [get(k.rev(tableName)), get(k.tableMeta(tableName))];
    if (startRevision === 0) ops.push(getPrefix(k.sessions(tableName), { sort_target: SortTarget.Create, sort_order: SortOrder.Ascend }));
    const res = await this.read(ops);
    const rev = first(res, 0);
    const history = historyOf(first(res, 1), rev);
    if (rev === undefined || history === undefined) throw tableNotFound(tableName);
    const tableRevision = history.revision;
    const createRevision = Number(rev.create_revision);
    const head = Number(res.header.revision);
    let from: number;
    let snapshot: Session[] | undefined;
    if (startRevision === 0) {
      snapshot = this.sessionsOf(tableName, kvs(res, 2), history.tableUid);
      from = head + 1;
    } else {
      checkSameHistory(tableName, start.tableUid, history);
      // An expiry's revision is above the table's until its bump (see bumpRevision): etcd's own revision bounds every one handed out.
      checkNotFuture(tableName, startRevision, head, history);
      // Events before the table's creation belong to a former table of that name.
      from = Math.max(startRevision, createRevision + 1);
      if (from <= tableRevision) await this.checkRetained(tableName, startRevision, from, rev, head);
    }
    const watch = new TableWatch(this.keys, tableName, history.tableUid, sink, {
      onDone: (w) => this.watches.delete(w),
      cancelled: (next) => this.whyCancelled(tableName, next),
      reconnected: (next) => this.whyNotResumable(tableName, history.tableUid, next),
      errors: this.errors,
    });
    this.watches.add(watch);
    try {
      // A replay's last write put `rev` at tableRevision: the history is in once that has arrived.
      const historyTo = from <= tableRevision ? tableRevision : 0;
      await watch.start(
        this.client,
        from,
        this.requestTimeoutMs,
        () => {
          if (snapshot !== undefined) sink.snapshot(snapshot, tableRevision, history.tableUid);
        },
        historyTo,
      );
    } catch (err) {
      this.watches.delete(watch);
      throw this.errors.toStoreError(err);
    }
    return { cancel: () => watch.cancel() };
  }

  /**
   * Whether etcd serves this store right now, for the daemon's health: one
   * linearizable Range of one key (so it needs a leader), with a deadline of
   * its own. Resolves when etcd answered; rejects with UNAVAILABLE
   * (STORE_UNAVAILABLE) when not. It runs on the store's own connection, so
   * it sees what calls see (etcd3's circuit breaker included).
   */
  async probe(timeoutMs = 1_000): Promise<void> {
    if (this.closed) throw shuttingDown();
    try {
      await this.client.kv.range({ key: Buffer.from(this.keys.tablesEpoch), count_only: true }, { deadline: Date.now() + timeoutMs });
    } catch (err) {
      throw this.errors.toStoreError(err);
    }
  }

  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    const cancels: Promise<void>[] = [];
    for (const w of [...this.watches]) cancels.push(w.end(shuttingDown()));
    if (this.expiryWatcher !== undefined) cancels.push(this.expiryWatcher.cancel().catch(() => undefined));
    this.expiryWatcher = undefined;
    for (const bump of this.bumps.values()) cancels.push(bump.done);
    // Cancelling needs etcd; an unreachable one must not hold shutdown.
    await Promise.race([Promise.allSettled(cancels), new Promise((resolve) => setTimeout(resolve, 1000).unref())]);
    this.client.close();
  }

  // ---- internals ----

  /**
   * Throws REVISION_COMPACTED when more than `watchHistory` writes of the
   * table have a revision >= `from`: the `rev` key's etcd version counts the
   * table's writes, and a read of it at `from - 1` gives the count before.
   */
  private async checkRetained(tableName: string, requested: number, from: number, rev: IKeyValue, head: number): Promise<void> {
    const version = Number(rev.version);
    let before: number;
    try {
      before = await this.versionAt(tableName, from - 1);
    } catch (err) {
      if (!isCompacted(err)) throw this.errors.toStoreError(err);
      throw revisionCompacted(tableName, requested, (await this.etcdCompactRevision(from - 1, head)) + 1);
    }
    if (version - before <= this.limits.watchHistory) return;
    // The oldest retained write is the one that made version `target + 1`; find the revision of `target`.
    const target = version - this.limits.watchHistory;
    let lo = from - 1; // version there < target
    let hi = Number(rev.mod_revision); // version there = version >= target
    while (hi - lo > 1) {
      const mid = Math.floor((lo + hi) / 2);
      if ((await this.versionAt(tableName, mid)) >= target) hi = mid;
      else lo = mid;
    }
    throw revisionCompacted(tableName, requested, hi + 1);
  }

  /** The table's write count (`rev`'s version) as of etcd revision `revision`. */
  private async versionAt(tableName: string, revision: number): Promise<number> {
    try {
      const res = await this.client.kv.range({ key: utf8(this.keys.rev(tableName)), revision, keys_only: true });
      return Number(res.kvs[0]?.version ?? 0);
    } catch (err) {
      // A compaction error stays as it is, for isCompacted.
      throw this.errors.toStoreError(err);
    }
  }

  /** The error that ends a watch etcd cancelled: REVISION_COMPACTED if etcd compacted past `next`, else UNAVAILABLE. */
  private async whyCancelled(tableName: string, next: number): Promise<RegistryError> {
    try {
      await this.client.kv.range({ key: utf8(this.keys.tablesEpoch), revision: next - 1, count_only: true });
    } catch (err) {
      if (isCompacted(err)) {
        const header = await this.client.kv.range({ key: utf8(this.keys.tablesEpoch), count_only: true }).catch(() => undefined);
        if (header !== undefined) {
          const compact = await this.etcdCompactRevision(next - 1, Number(header.header.revision)).catch(() => undefined);
          if (compact !== undefined) return revisionCompacted(tableName, next, compact + 1);
        }
      }
    }
    return this.errors.unavailable(`cancelled the watch of table "${tableName}"; resume from revision ${next}`);
  }

  /** etcd's compact revision, known to lie in (below, upTo]: the oldest revision a Range still serves. */
  private async etcdCompactRevision(below: number, upTo: number): Promise<number> {
    let lo = below; // compacted
    let hi = upTo; // served
    while (hi - lo > 1) {
      const mid = Math.floor((lo + hi) / 2);
      try {
        await this.client.kv.range({ key: utf8(this.keys.tablesEpoch), revision: mid, count_only: true });
        hi = mid;
      } catch (err) {
        if (!isCompacted(err)) throw this.errors.toStoreError(err);
        lo = mid;
      }
    }
    return hi;
  }

  /**
   * Whether a watch that etcd3 re-created after a lost connection still
   * watches its history: undefined if so; else the error that ends it. etcd
   * may have come back wiped: revisions then start over (the watch, re-created
   * from `next`, would wait for a future revision and then deliver another
   * history's events as this one's), and the table is gone or another one.
   */
  private async whyNotResumable(tableName: string, tableUid: string, next: number): Promise<RegistryError | undefined> {
    const res = await this.read([get(this.keys.tableMeta(tableName)), get(this.keys.rev(tableName))]);
    const history = historyOf(first(res, 0), first(res, 1));
    if (history === undefined) return tableNotFound(tableName);
    if (history.tableUid !== tableUid) return tableUidMismatch(tableName, tableUid, history);
    // The same table, but etcd's revisions went back below what this watch has seen: not one history any more.
    if (Number(res.header.revision) + 1 < next) return tableUidMismatch(tableName, tableUid, history);
    return undefined;
  }

  /** Sessions from a Range over a table's `s/` keys sorted by create revision. */
  private sessionsOf(tableName: string, list: readonly IKeyValue[], tableUid: string): Session[] {
    const prefix = this.keys.sessions(tableName);
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

  /** The table from its meta and `rev` keys (undefined if either is missing); refreshes the cache. */
  private tableFrom(name: string, meta: IKeyValue | undefined, rev: IKeyValue | undefined, sessionCount: number): Table | undefined {
    const info = this.tableInfoFrom(name, meta, rev);
    if (info === undefined || meta === undefined || rev === undefined) return undefined;
    return {
      name,
      maxSessions: info.maxSessions,
      sessionCount,
      createTime: new Date(parseTable(meta).createTime),
      revision: Number(rev.mod_revision),
      tableUid: info.tableUid,
    };
  }

  private tableInfoFrom(name: string, meta: IKeyValue | undefined, rev: IKeyValue | undefined): TableInfo | undefined {
    if (meta === undefined || rev === undefined) {
      this.tables.delete(name);
      return undefined;
    }
    const stored = parseTable(meta);
    const info: TableInfo = { meta: meta.value, tableUid: tableUidOf(meta, stored), maxSessions: stored.maxSessions };
    this.tables.set(name, info);
    return info;
  }

  /** The table_uid from a read of the table's meta; TABLE_NOT_FOUND when it is missing. */
  private uidFrom(name: string, meta: IKeyValue | undefined): string {
    if (meta === undefined) {
      this.tables.delete(name);
      throw tableNotFound(name);
    }
    return tableUidOf(meta);
  }

  private async tableInfo(name: string): Promise<TableInfo> {
    const cached = this.tables.get(name);
    if (cached !== undefined) return cached;
    const res = await this.read([get(this.keys.tableMeta(name)), get(this.keys.rev(name))]);
    const info = this.tableInfoFrom(name, first(res, 0), first(res, 1));
    if (info === undefined) throw tableNotFound(name);
    return info;
  }

  /** A linearizable read of several ranges in one round trip, at one revision. */
  private async read(ops: IRequestOp[]): Promise<ITxnResponse> {
    return this.txn([], ops);
  }

  private async txn(compare: ICompare[], success: IRequestOp[], failure: IRequestOp[] = []): Promise<ITxnResponse> {
    try {
      return await this.client.kv.txn({ compare, success, failure });
    } catch (err) {
      throw this.errors.toStoreError(err);
    }
  }

  private async grant(ttl: Duration): Promise<string> {
    try {
      const res = await this.client.leaseClient.leaseGrant({ TTL: leaseSeconds(ttl) });
      return res.ID;
    } catch (err) {
      throw this.errors.toStoreError(err);
    }
  }

  /**
   * The lease of the `req` keys that remember writes' request_ids. One
   * lease serves every such write for REQUEST_LEASE_REUSE_MS and lives that
   * much longer than the retention window, so that each key lives at least
   * REQUEST_ID_RETENTION_MS (and at most that plus the reuse period).
   */
  private retentionLease(): Promise<string> {
    const now = Date.now();
    if (this.requestLease === undefined || now >= this.requestLease.until) {
      const seconds = Math.ceil((REQUEST_ID_RETENTION_MS + REQUEST_LEASE_REUSE_MS) / 1000);
      const id = this.grant({ seconds, nanos: 0 });
      const entry = { id, until: now + REQUEST_LEASE_REUSE_MS };
      this.requestLease = entry;
      id.catch(() => {
        if (this.requestLease === entry) this.requestLease = undefined;
      });
    }
    return this.requestLease.id;
  }

  /** Releases a lease nobody uses any more; best effort (it expires on its own otherwise). */
  private revoke(lease: string): void {
    this.client.leaseClient.leaseRevoke({ ID: lease }).catch(() => undefined);
  }

  /** One keep-alive of a lease; its remaining TTL in seconds (<= 0: the lease is gone). */
  private async renew(lease: string): Promise<number> {
    let stream: Awaited<ReturnType<Etcd3["leaseClient"]["leaseKeepAlive"]>>;
    try {
      stream = await this.client.leaseClient.leaseKeepAlive();
    } catch (err) {
      throw this.errors.toStoreError(err);
    }
    return new Promise<number>((resolve, reject) => {
      const timer = setTimeout(() => {
        stream.end();
        reject(this.errors.unavailable(`did not answer a lease keep-alive within ${this.requestTimeoutMs} ms`));
      }, this.requestTimeoutMs);
      stream.on("data", (res: { TTL: string }) => {
        clearTimeout(timer);
        stream.end();
        resolve(Number(res.TTL));
      });
      stream.on("error", (err: unknown) => {
        clearTimeout(timer);
        reject(this.errors.toStoreError(err));
      });
      stream.write({ ID: lease });
    });
  }

  /**
   * Watches every expiry under the prefix, from now on: tells the observer,
   * and moves the table's revision past it (bumpRevision).
   */
  private watchExpiries(): void {
    const watcher = this.client.watch().prefix(this.keys.allTables).withPreviousKV().watcher();
    this.expiryWatcher = watcher;
    watcher.on("data", (res) => {
      // Only expiries are counted here, never handed out: the sessions need no table_uid.
      for (const change of toChanges(this.keys, res.events, "")) {
        if (change.kind !== "event" || change.event.type !== "EXPIRED") continue;
        this.observer?.expired(change.table, change.event.session);
        this.bumpRevision(change.table, change.event.revision);
      }
    });
    // A cancelled watch (e.g. compaction while disconnected) only costs counts and bumps; etcd3 reconnects on its own otherwise.
    watcher.on("error", () => undefined);
  }

  /**
   * Moves the table revision past the expiry at etcd revision `expiredAt`:
   * puts the table's `rev` key (same value) in a Txn that compares that it
   * still exists and was created before `expiredAt` (so it is the
   * incarnation that held the session: a table is only deleted empty or with
   * its sessions, and a recreated one's `rev` is younger), and that its mod
   * revision is still below `expiredAt` (of several daemons the first one
   * bumps; a write since has moved it already). Best effort: a failed Txn is
   * ignored (the next write moves the revision anyway). At most one Txn per
   * table runs at a time; expiries meanwhile coalesce into one more, past
   * the highest of them.
   */
  private bumpRevision(tableName: string, expiredAt: number): void {
    if (this.closed) return;
    const running = this.bumps.get(tableName);
    if (running !== undefined) {
      running.next = Math.max(running.next ?? 0, expiredAt);
      return;
    }
    const rev = this.keys.rev(tableName);
    const entry: { next: number | undefined; done: Promise<void> } = { next: expiredAt, done: Promise.resolve() };
    this.bumps.set(tableName, entry);
    entry.done = (async () => {
      while (entry.next !== undefined && !this.closed) {
        const at = entry.next;
        entry.next = undefined;
        try {
          await this.txn([createdAfter(rev, 0), createdBefore(rev, at), modifiedBefore(rev, at)], [put(rev, "")]);
        } catch {
          // etcd unreachable or slow (each call has a deadline): the window stays open until the next write.
        }
      }
      this.bumps.delete(tableName);
    })();
  }

  private contention(method: string): RegistryError {
    return this.errors.unavailableBecause(`${method} gave up after ${this.maxAttempts} attempts lost to concurrent writes; retry`);
  }
}

/** A table's history as its meta and `rev` keys tell it; undefined when the table is missing (either key is). */
function historyOf(meta: IKeyValue | undefined, rev: IKeyValue | undefined): HistoryHead | undefined {
  return meta === undefined || rev === undefined ? undefined : { tableUid: tableUidOf(meta), revision: Number(rev.mod_revision) };
}

/** How long one retention lease takes new request_id keys (it lives the retention window plus this). */
const REQUEST_LEASE_REUSE_MS = 60_000;

/**
 * A `req` key's value: the result of the write that put it. `s` is the
 * session value (as its data key holds it), `x` its `x` key's value when it
 * was read with it. `cr` and `rev` are its createRevision and revision; left
 * out, they are the req key's own, which the same Txn put (a Register's
 * both, an Update's revision).
 */
interface RequestRecord {
  id: string;
  s: string;
  x?: string;
  cr?: number;
  rev?: number;
}

function requestRecord(r: RequestRecord): string {
  return JSON.stringify(r);
}

/** The result a `req` key recorded; `tableUid` is the table's now (a table's `req` keys go with it). */
function recordedResult(kv: IKeyValue, tableUid: string): Session {
  const r = JSON.parse(kv.value.toString("utf8")) as RequestRecord;
  return decodeSession(
    r.id,
    {
      ...kv,
      value: Buffer.from(r.s, "utf8"),
      create_revision: r.cr === undefined ? kv.create_revision : String(r.cr),
      mod_revision: r.rev === undefined ? kv.mod_revision : String(r.rev),
    },
    tableUid,
    r.x,
  );
}

/** A free slot among [0, max), at random so that concurrent Registers spread out. */
function pickFree(taken: ReadonlySet<number>, max: number): number {
  if (taken.size * 2 < max) {
    for (;;) {
      const i = Math.floor(Math.random() * max);
      if (!taken.has(i)) return i;
    }
  }
  const free: number[] = [];
  for (let i = 0; i < max; i++) if (!taken.has(i)) free.push(i);
  return free[Math.floor(Math.random() * free.length)] ?? 0;
}
