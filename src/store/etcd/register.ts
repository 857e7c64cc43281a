/**
 * Register in etcd, where the session limit is made exact: a session can
 * only exist holding one of its table's `max_sessions` slot keys.
 *
 * One Txn compares that the table is the same incarnation (its meta's
 * value), that the chosen slot, the id and the path hash are all free (and
 * the request_id's `req` key, when there is one, requests.ts). On failure
 * the same Txn's else-branch reads the table, its taken slots, the id and
 * the path, and the contract's order is decided on that one snapshot:
 * table, limit, duplicate id, duplicate path; only a lost race for a slot
 * retries, with a slot seen free. The slot tried first is one the store
 * believes free (slots.ts), so that the common case is that one Txn.
 */
import type { ITxnResponse } from "etcd3";

import { projectAlreadyOpen, sessionExists, sessionLimitReached, tableNotFound } from "../../core/errors.js";
import { newSession, type NewSession, type Session } from "../../core/model.js";
import { expiresAt } from "../../core/update.js";
import { isLeaseNotFound } from "./client.js";
import { encodeSession } from "./codec.js";
import type { EtcdKv } from "./kv.js";
import type { Leases } from "./leases.js";
import type { SlotHints } from "./slots.js";
import { createdAt, first, get, getPrefix, kvs, put, valueIs } from "./ops.js";
import { recordedResult, requestRecord, type RequestLeases } from "./requests.js";
import type { Tables } from "./tables.js";

export class Registrar {
  constructor(
    private readonly kv: EtcdKv,
    private readonly tables: Tables,
    private readonly leases: Leases,
    private readonly requestLeases: RequestLeases,
    private readonly slots: SlotHints,
  ) {}

  async register(tableName: string, input: NewSession, requestId?: string): Promise<Session> {
    const k = this.kv.keys;
    let info = await this.tables.info(tableName);
    // A request_id is remembered by a `req` key put in the Register's own Txn (which compares that
    // it is absent), on a shared lease of at least the retention window: see RequestLeases.
    const reqKey = requestId === undefined ? undefined : k.request(tableName, "register", requestId);
    const now = Date.now();
    const expireTime = expiresAt(input.ttl, now);
    let lease: string | undefined;
    // Whether the lease may hold a committed session: after a Txn that failed with an unknown
    // outcome it may, so it is left to expire on its own rather than revoked.
    let maybeUsed = false;
    let slot = this.slots.pick(tableName, info.tableUid, info.maxSessions);
    try {
      for (let attempt = 0; attempt < this.kv.maxAttempts; attempt++) {
        // Both leases at once: a ttl and a request_id wait for one round trip before the Txn, not two.
        const granting = input.ttl !== undefined && lease === undefined ? this.leases.grant(input.ttl) : undefined;
        const reqLeasing = reqKey === undefined ? undefined : this.requestLeases.lease();
        if (granting !== undefined) lease = await granting;
        const reqLease = await reqLeasing;
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
          txn = await this.kv.txn(
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
            this.requestLeases.lost();
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
        const current = this.tables.infoFrom(tableName, first(txn, 0), first(txn, 1));
        if (current === undefined) throw tableNotFound(tableName);
        if (current.tableUid !== info.tableUid) {
          // Deleted and created again since we cached it: start over on the new one.
          info = current;
          slot = this.slots.pick(tableName, info.tableUid, info.maxSessions);
          continue;
        }
        const taken = new Set(kvs(txn, 2).map((kv) => Number(kv.key.toString("utf8").slice(k.slots(tableName).length))));
        // Whatever the answer, the slot picked for this Register is only taken if the read says so.
        this.slots.learn(tableName, info.tableUid, info.maxSessions, taken, Number(txn.header.revision));
        // A repeated request_id: the first Register's result, before any other check.
        const original = first(txn, 5);
        if (reqKey !== undefined && original !== undefined) return recordedResult(original, info.tableUid);
        if (taken.size >= info.maxSessions) throw sessionLimitReached(tableName, taken.size, info.maxSessions);
        if (kvs(txn, 3).length > 0) throw sessionExists(tableName, input.id);
        const holder = first(txn, 4);
        if (holder !== undefined) throw projectAlreadyOpen(tableName, input.projectPath, holder.value.toString("utf8"));
        // Only the slot was taken (a concurrent Register won it): try one seen free.
        slot = this.slots.pick(tableName, info.tableUid, info.maxSessions);
      }
      throw this.kv.contention("Register");
    } finally {
      if (!maybeUsed && lease !== undefined) this.leases.revoke(lease);
    }
  }
}
