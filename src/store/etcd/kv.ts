/**
 * The etcd connection as every room of the etcd store uses it: the client,
 * the key layout, where etcd is (for errors that say so), and the two calls
 * they all make, a linearizable read and a Txn, each one round trip with
 * etcd's failures turned into registry errors.
 *
 * Failures. etcd being unreachable, slow (each call has a deadline,
 * requestTimeoutMs) or leaderless is UNAVAILABLE with reason
 * STORE_UNAVAILABLE (client.ts). Such a write may have committed anyway:
 * etcd3's automatic retries are off, so that no retry of a committed Txn
 * reports the caller's own write as a conflict; retrying is the caller's
 * (a request_id is what makes a retried write safe, requests.ts).
 *
 * Every write is one Txn whose compares carry the checks the contract
 * names, in a bounded loop (maxAttempts, default 20; then UNAVAILABLE) that
 * re-reads and retries only when a compare failed for a reason that is no
 * error of the caller's.
 */
import type { Etcd3, ICompare, IRequestOp, ITxnResponse } from "etcd3";

import type { RegistryError } from "../../core/errors.js";
import { DEFAULT_REQUEST_TIMEOUT_MS, createClient, EtcdErrors, type EtcdConnectionOptions } from "./client.js";
import type { Keys } from "./keys.js";
import { RevisionProbe } from "./revision-probe.js";

export interface EtcdKvOptions extends EtcdConnectionOptions {
  /** Attempts of one optimistic write before UNAVAILABLE (default 20). */
  maxAttempts?: number;
}

/**
 * The calls a store has made to etcd, by kind, each one round trip: what a
 * test counts per operation. Reads, Txns and lease calls of the store's
 * operations (not the watches, nor the probes of history.ts and health).
 */
export interface EtcdCalls {
  /** Linearizable reads: a Txn of ranges only. */
  reads: number;
  /** Txns that write when their compares hold. */
  txns: number;
  leaseGrants: number;
  leaseRevokes: number;
  leaseKeepAlives: number;
  /** Linearizable reads of etcd's revision alone: what a batch of reads from the read cache waits for (read-cache.ts). */
  probes: number;
  /** Puts of the fence key, that bring the read cache's watch up to a probe's revision (read-cache.ts). */
  fences: number;
}

export class EtcdKv {
  readonly client: Etcd3;
  readonly calls: EtcdCalls = { reads: 0, txns: 0, leaseGrants: 0, leaseRevokes: 0, leaseKeepAlives: 0, probes: 0, fences: 0 };
  /** Where etcd is, and what its failures mean in words. */
  readonly errors: EtcdErrors;
  readonly maxAttempts: number;
  readonly requestTimeoutMs: number;
  /** The revision probe's own connection; none with etcd credentials, whose token etcd3 keeps (probes then go through etcd3). */
  private readonly probe: RevisionProbe | undefined;

  constructor(
    readonly keys: Keys,
    options: EtcdKvOptions,
  ) {
    this.client = createClient(options);
    this.errors = new EtcdErrors(options.endpoints);
    this.maxAttempts = options.maxAttempts ?? 20;
    this.requestTimeoutMs = options.requestTimeoutMs ?? DEFAULT_REQUEST_TIMEOUT_MS;
    this.probe =
      options.auth === undefined
        ? new RevisionProbe({ endpoints: options.endpoints, timeoutMs: this.requestTimeoutMs, tls: options.tls }, keys.tablesEpoch)
        : undefined;
  }

  /** A linearizable read of several ranges in one round trip, at one revision. */
  read(ops: IRequestOp[]): Promise<ITxnResponse> {
    this.calls.reads++;
    return this.send([], ops, []);
  }

  /** etcd's current revision, read linearizably (one key, count only: the header is the answer). */
  async revision(): Promise<number> {
    this.calls.probes++;
    try {
      if (this.probe !== undefined) return await this.probe.revision();
      const res = await this.client.kv.range({ key: Buffer.from(this.keys.tablesEpoch, "utf8"), count_only: true });
      return Number(res.header.revision);
    } catch (err) {
      throw this.errors.toStoreError(err);
    }
  }

  /** Puts the fence key: a new etcd revision under the prefix, which every watch of the prefix hears of. */
  async fence(): Promise<void> {
    this.calls.fences++;
    try {
      await this.client.kv.put({ key: Buffer.from(this.keys.fence, "utf8"), value: Buffer.alloc(0) });
    } catch (err) {
      throw this.errors.toStoreError(err);
    }
  }

  txn(compare: ICompare[], success: IRequestOp[], failure: IRequestOp[] = []): Promise<ITxnResponse> {
    this.calls.txns++;
    return this.send(compare, success, failure);
  }

  private async send(compare: ICompare[], success: IRequestOp[], failure: IRequestOp[]): Promise<ITxnResponse> {
    try {
      return await this.client.kv.txn({ compare, success, failure });
    } catch (err) {
      throw this.errors.toStoreError(err);
    }
  }

  /** Closes the connections to etcd; calls made after fail as etcd being closed does. */
  close(): void {
    this.probe?.close();
    this.client.close();
  }

  /** The error of a write whose every attempt lost a race to other writes. */
  contention(method: string): RegistryError {
    return this.errors.unavailableBecause(`${method} gave up after ${this.maxAttempts} attempts lost to concurrent writes; retry`);
  }
}
