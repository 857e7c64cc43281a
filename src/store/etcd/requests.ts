/**
 * Request records: how the etcd store remembers a write's request_id. A
 * Register, Update or Remove with a request_id also compares that the
 * table's `req/<method>/<request_id>` key is absent and puts it, holding the
 * write's result, in the write's own Txn. Register's else-branch reads it,
 * Update and Remove read it with the session; a present one returns the
 * first write's result (right after the table check). The keys go with
 * their table, and live on one shared lease of at least the retention
 * window (RequestLeases).
 */
import type { IKeyValue } from "etcd3";

import { REQUEST_ID_RETENTION_MS, type Session } from "../../core/model.js";
import { decodeSession } from "./codec.js";
import type { Leases } from "./leases.js";

/** How long one retention lease takes new request_id keys (it lives the retention window plus this). */
const REQUEST_LEASE_REUSE_MS = 60_000;

/**
 * The lease of the `req` keys. One lease serves every such write for
 * REQUEST_LEASE_REUSE_MS and lives that much longer than the retention
 * window, so that each key lives at least REQUEST_ID_RETENTION_MS (and at
 * most that plus the reuse period).
 */
export class RequestLeases {
  private current: { id: Promise<string>; until: number } | undefined;

  constructor(private readonly leases: Leases) {}

  /** The lease a `req` key put now goes on. */
  lease(): Promise<string> {
    const now = Date.now();
    if (this.current === undefined || now >= this.current.until) {
      const seconds = Math.ceil((REQUEST_ID_RETENTION_MS + REQUEST_LEASE_REUSE_MS) / 1000);
      const id = this.leases.grant({ seconds, nanos: 0 });
      const entry = { id, until: now + REQUEST_LEASE_REUSE_MS };
      this.current = entry;
      id.catch(() => {
        if (this.current === entry) this.current = undefined;
      });
    }
    return this.current.id;
  }

  /** etcd no longer knows the lease (a Txn said so): the next write takes a new one. */
  lost(): void {
    this.current = undefined;
  }
}

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

export function requestRecord(r: RequestRecord): string {
  return JSON.stringify(r);
}

/** The result a `req` key recorded; `tableUid` is the table's now (a table's `req` keys go with it). */
export function recordedResult(kv: IKeyValue, tableUid: string): Session {
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
