/**
 * etcd leases as the store uses them: granted for a session's ttl (every key
 * of the session sits on it, keys.ts), renewed by KeepAlive, revoked when
 * nothing uses one any more.
 *
 * A ttl is an etcd lease, and that is where the etcd store's expiry differs
 * from the memory store's. A lease's TTL is whole seconds, rounded up, and
 * at least etcd's minimum (about 1.5 x election timeout: 2 s with the
 * default 1 s election timeout); etcd revokes expired leases on a ~500 ms
 * tick. So a session expires no earlier than its expire_time (computed from
 * the clock before the lease was granted or renewed) but may outlive it by
 * up to the rounding plus that tick; until then reads still show it.
 */
import type { Etcd3 } from "etcd3";

import type { Duration } from "../../core/model.js";
import { ttlMillis } from "../../core/validation.js";
import type { EtcdKv } from "./kv.js";

/** The TTL, in etcd's whole seconds, of a lease for `ttl`. */
function leaseSeconds(ttl: Duration): number {
  return Math.max(1, Math.ceil(ttlMillis(ttl) / 1000));
}

export class Leases {
  constructor(private readonly kv: EtcdKv) {}

  async grant(ttl: Duration): Promise<string> {
    this.kv.calls.leaseGrants++;
    try {
      const res = await this.kv.client.leaseClient.leaseGrant({ TTL: leaseSeconds(ttl) });
      return res.ID;
    } catch (err) {
      throw this.kv.errors.toStoreError(err);
    }
  }

  /** Releases a lease nobody uses any more; best effort (it expires on its own otherwise). */
  revoke(lease: string): void {
    this.kv.calls.leaseRevokes++;
    this.kv.client.leaseClient.leaseRevoke({ ID: lease }).catch(() => undefined);
  }

  /** One keep-alive of a lease; its remaining TTL in seconds (<= 0: the lease is gone). */
  async renew(lease: string): Promise<number> {
    const { errors, requestTimeoutMs } = this.kv;
    let stream: Awaited<ReturnType<Etcd3["leaseClient"]["leaseKeepAlive"]>>;
    this.kv.calls.leaseKeepAlives++;
    try {
      stream = await this.kv.client.leaseClient.leaseKeepAlive();
    } catch (err) {
      throw errors.toStoreError(err);
    }
    return new Promise<number>((resolve, reject) => {
      const timer = setTimeout(() => {
        stream.end();
        reject(errors.unavailable(`did not answer a lease keep-alive within ${requestTimeoutMs} ms`));
      }, requestTimeoutMs);
      stream.on("data", (res: { TTL: string }) => {
        clearTimeout(timer);
        stream.end();
        resolve(Number(res.TTL));
      });
      stream.on("error", (err: unknown) => {
        clearTimeout(timer);
        reject(errors.toStoreError(err));
      });
      stream.write({ ID: lease });
    });
  }
}
