/**
 * Builders for the etcd requests the store sends (ranges, puts, deletes,
 * compares, as Txn operations) and accessors for their responses.
 */
import type { ICompare, IKeyValue, IPutRequest, IRangeRequest, IRangeResponse, IRequestOp, IResponseOp, ITxnResponse } from "etcd3";
import { CompareResult, CompareTarget } from "etcd3";

import { prefixEnd } from "./keys.js";

/** Txns hold at most this many operations (etcd's --max-txn-ops defaults to 128). */
export const MAX_TXN_OPS = 120;

export const utf8 = (s: string): Buffer => Buffer.from(s, "utf8");

export function get(key: string, extra: Partial<IRangeRequest> = {}): IRequestOp {
  return { request_range: { key: utf8(key), ...extra } };
}

export function getPrefix(prefix: string, extra: Partial<IRangeRequest> = {}): IRequestOp {
  return { request_range: { key: utf8(prefix), range_end: prefixEnd(prefix), ...extra } };
}

/** A put; `lease` "0" or undefined: no lease (a put detaches a key from its former lease). */
export function put(key: string, value: string, lease?: string): IRequestOp {
  const req: IPutRequest = { key: utf8(key), value: utf8(value) };
  if (lease !== undefined && lease !== "0") req.lease = lease;
  return { request_put: req };
}

export function del(key: string): IRequestOp {
  return { request_delete_range: { key: utf8(key) } };
}

export function delPrefix(prefix: string): IRequestOp {
  return { request_delete_range: { key: utf8(prefix), range_end: prefixEnd(prefix) } };
}

/** The key's create revision is `rev` (0: the key does not exist). */
export function createdAt(key: string, rev: string | number): ICompare {
  return { key: utf8(key), target: CompareTarget.Create, result: CompareResult.Equal, create_revision: rev };
}

export function modifiedAt(key: string, rev: string | number): ICompare {
  return { key: utf8(key), target: CompareTarget.Mod, result: CompareResult.Equal, mod_revision: rev };
}

/** The key exists with exactly this value. */
export function valueIs(key: string, value: Buffer): ICompare {
  return { key: utf8(key), target: CompareTarget.Value, result: CompareResult.Equal, value };
}

/** The key's create revision is < `rev` (a missing key's is 0). */
export function createdBefore(key: string, rev: string | number): ICompare {
  return { key: utf8(key), target: CompareTarget.Create, result: CompareResult.Less, create_revision: rev };
}

/** The key's create revision is > `rev` (with 0: the key exists). */
export function createdAfter(key: string, rev: string | number): ICompare {
  return { key: utf8(key), target: CompareTarget.Create, result: CompareResult.Greater, create_revision: rev };
}

/** The key's mod revision is < `rev`. */
export function modifiedBefore(key: string, rev: string | number): ICompare {
  return { key: utf8(key), target: CompareTarget.Mod, result: CompareResult.Less, mod_revision: rev };
}

/**
 * The range result of the Txn's op `i`. etcd3's types give every arm of the
 * response's oneof; only the arm of the op's own kind is set.
 */
function rangeOf(res: ITxnResponse, i: number): Partial<IRangeResponse> | undefined {
  const op: Partial<IResponseOp> | undefined = res.responses[i];
  return op?.response_range;
}

export function kvs(res: ITxnResponse, i: number): IKeyValue[] {
  return rangeOf(res, i)?.kvs ?? [];
}

export function first(res: ITxnResponse, i: number): IKeyValue | undefined {
  return kvs(res, i)[0];
}

export function count(res: ITxnResponse, i: number): number {
  return Number(rangeOf(res, i)?.count ?? 0);
}

/** The data and expiry keys of one session, as a Range over `s/<id>/` returns them. */
export interface SessionKvs {
  data: IKeyValue | undefined;
  expiry: IKeyValue | undefined;
}

export function sessionKvs(list: readonly IKeyValue[]): SessionKvs {
  const out: SessionKvs = { data: undefined, expiry: undefined };
  for (const kv of list) {
    const key = kv.key.toString("utf8");
    if (key.endsWith("/d")) out.data = kv;
    else if (key.endsWith("/x")) out.expiry = kv;
  }
  return out;
}
