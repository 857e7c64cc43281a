/**
 * Writes to a registered session in etcd: Update, Remove and KeepAlive.
 * Each reads the session, checks it (revision, new path), then commits one
 * Txn with compares on the session's mod revision (Update and Remove also
 * on the table's meta, the new path's hash being free, and the request_id's
 * `req` key being absent, requests.ts); a lost race re-reads.
 *
 * KeepAlive renews the lease and puts the session's `x` key (its expire
 * time, so that every daemon reads the same one): an etcd revision, but no
 * session revision, no table revision and no event.
 */
import type { IKeyValue, IRequestOp, ITxnResponse } from "etcd3";

import { projectAlreadyOpen, revisionMismatch, sessionNotFound, tableNotFound } from "../../core/errors.js";
import { checkSameHistory } from "../../core/history.js";
import type { Session, SessionPatch } from "../../core/model.js";
import type { WriteConditions } from "../../core/store.js";
import { expiresAt, updatedSession } from "../../core/update.js";
import { isLeaseNotFound } from "./client.js";
import { decodeSession, encodeSession, parseSession } from "./codec.js";
import type { EtcdKv } from "./kv.js";
import type { Leases } from "./leases.js";
import { createdAt, del, delPrefix, first, get, getPrefix, kvs, modifiedAt, put, sessionKvs, valueIs } from "./ops.js";
import { recordedResult, requestRecord, type RequestLeases } from "./requests.js";
import { historyOf, type Tables } from "./tables.js";

export class SessionWrites {
  constructor(
    private readonly kv: EtcdKv,
    private readonly tables: Tables,
    private readonly leases: Leases,
    private readonly requestLeases: RequestLeases,
  ) {}

  async update(tableName: string, id: string, patch: SessionPatch, conditions: WriteConditions): Promise<Session> {
    const { expectedRevision, requestId } = conditions;
    const k = this.kv.keys;
    // A request_id: its `req` key is read with the session (a present one answers), compared absent and put by the Txn.
    const reqKey = requestId === undefined ? undefined : k.request(tableName, "update", requestId);
    for (let attempt = 0; attempt < this.kv.maxAttempts; attempt++) {
      const newPath = patch.projectPath === undefined ? [] : [get(k.path(tableName, patch.projectPath))];
      const read = await this.readForWrite(tableName, id, reqKey, conditions, newPath);
      if (read.recorded !== undefined) return read.recorded;
      const { res, meta, tableUid, data, expiry } = read;
      if (data === undefined) throw sessionNotFound(tableName, { field: "id", value: id });
      const prev = decodeSession(id, data, tableUid, expiry?.value.toString("utf8"));
      const reqLease = reqKey === undefined ? undefined : await this.requestLeases.lease();
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
      else if (patch.ttl !== undefined) lease = await this.leases.grant(patch.ttl);
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
        txn = await this.kv.txn(compare, success);
      } catch (err) {
        // A lease ran out between the read and the write: read again (the session may have expired).
        if (isLeaseNotFound(err)) {
          if (leaseChanged && lease !== "0") this.leases.revoke(lease);
          this.requestLeases.lost();
          continue;
        }
        // Unknown outcome: the session may be on the new lease now, so neither lease is revoked.
        throw err;
      }
      if (!txn.succeeded) {
        if (leaseChanged && lease !== "0") this.leases.revoke(lease);
        continue;
      }
      if (leaseChanged && oldLease !== "0") this.leases.revoke(oldLease);
      return { ...next, revision: Number(txn.header.revision) };
    }
    throw this.kv.contention("Update");
  }

  async remove(tableName: string, id: string, conditions: WriteConditions & { allowMissing: boolean }): Promise<Session | undefined> {
    const { expectedRevision, allowMissing, requestId } = conditions;
    const k = this.kv.keys;
    // A request_id: as in update(). A Remove that finds nothing writes nothing, so records nothing.
    const reqKey = requestId === undefined ? undefined : k.request(tableName, "remove", requestId);
    for (let attempt = 0; attempt < this.kv.maxAttempts; attempt++) {
      const read = await this.readForWrite(tableName, id, reqKey, conditions);
      if (read.recorded !== undefined) return read.recorded;
      const { meta, tableUid, data, expiry } = read;
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
        success.push(put(reqKey, record, await this.requestLeases.lease()));
      }
      let txn: ITxnResponse;
      try {
        txn = await this.kv.txn(compare, success);
      } catch (err) {
        // The request_id lease is gone (nothing else here has a lease): take a new one and read again.
        if (reqKey !== undefined && isLeaseNotFound(err)) {
          this.requestLeases.lost();
          continue;
        }
        throw err;
      }
      if (!txn.succeeded) continue;
      if (data.lease !== "0") this.leases.revoke(data.lease);
      return prev;
    }
    throw this.kv.contention("Remove");
  }

  async keepAlive(tableName: string, id: string): Promise<Session> {
    const k = this.kv.keys;
    const notFound = () => sessionNotFound(tableName, { field: "id", value: id });
    for (let attempt = 0; attempt < this.kv.maxAttempts; attempt++) {
      const res = await this.kv.read([get(k.tableMeta(tableName)), getPrefix(k.session(tableName, id))]);
      const tableUid = this.tables.uidFrom(tableName, first(res, 0));
      const { data, expiry } = sessionKvs(kvs(res, 1));
      if (data === undefined) throw notFound();
      const prev = decodeSession(id, data, tableUid, expiry?.value.toString("utf8"));
      if (prev.ttl === undefined || data.lease === "0") return prev;
      // The clock before the renewal: etcd's deadline is at least this + ttl.
      const now = Date.now();
      const left = await this.leases.renew(data.lease);
      if (left <= 0) throw notFound();
      const expireTime = expiresAt(prev.ttl, now);
      let txn: ITxnResponse;
      try {
        // Only `x` moves: no new revision of the session, no `rev`, no event.
        txn = await this.kv.txn(
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
    throw this.kv.contention("KeepAlive");
  }

  /**
   * The read an Update or Remove starts with, in one round trip: the table
   * (TABLE_NOT_FOUND, or TABLE_UID_MISMATCH when the caller's position is
   * from another history), the request_id's record, the session's keys, and
   * `more` (responses from 4 on).
   */
  private async readForWrite(
    tableName: string,
    id: string,
    reqKey: string | undefined,
    conditions: WriteConditions,
    more: IRequestOp[] = [],
  ): Promise<WriteRead> {
    const k = this.kv.keys;
    const res = await this.kv.read([
      get(k.rev(tableName)),
      getPrefix(k.session(tableName, id)),
      // Without a request_id, a stand-in that keeps the indexes fixed.
      get(reqKey ?? k.rev(tableName), { keys_only: reqKey === undefined }),
      get(k.tableMeta(tableName)),
      ...more,
    ]);
    const meta = first(res, 3);
    const history = historyOf(meta, first(res, 0));
    if (meta === undefined || history === undefined) throw tableNotFound(tableName);
    checkSameHistory(tableName, conditions.tableUid, history);
    const tableUid = history.tableUid;
    const record = reqKey === undefined ? undefined : first(res, 2);
    const { data, expiry } = sessionKvs(kvs(res, 1));
    return { res, meta, tableUid, recorded: record === undefined ? undefined : recordedResult(record, tableUid), data, expiry };
  }
}

/** What an Update or Remove reads before it decides anything. */
interface WriteRead {
  res: ITxnResponse;
  meta: IKeyValue;
  tableUid: string;
  /** The first write's result, when the request_id has been seen. */
  recorded: Session | undefined;
  data: IKeyValue | undefined;
  expiry: IKeyValue | undefined;
}
