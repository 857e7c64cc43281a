/**
 * Turns etcd watch events into the registry's change feed. One etcd revision
 * is one registry write, and etcd delivers a revision's events together, so
 * each revision is read as a whole:
 *
 * - a PUT of `s/<id>/d` is REGISTERED when the key was created at that
 *   revision, UPDATED otherwise;
 * - a DELETE of `s/<id>/d` is REMOVED when the same revision put the table's
 *   `rev` key (every write through the store does), EXPIRED otherwise: etcd
 *   revoked the session's lease, which touches nothing but the lease's keys.
 *   The session comes in its last state (prev_kv), with the expire time of
 *   its `x` key, deleted in the same revision;
 * - a DELETE of `rev` is the table's deletion: its watches end.
 *
 * Everything else (indexes, slots, keep-alives moving `x`) is no event.
 */
import type { IEvent, IKeyValue } from "etcd3";

import type { WatchEvent } from "../../core/model.js";
import { decodeSession } from "./codec.js";
import type { Keys } from "./keys.js";

export type Change = { kind: "event"; table: string; event: WatchEvent } | { kind: "tableDeleted"; table: string };

/** Whether the event deletes its key (etcd3's proto loader names it "DELETE", its types "Delete"). */
export function isDelete(ev: IEvent): boolean {
  return ev.type.toLowerCase() === "delete";
}

/**
 * The event's previous key-value. etcd3's types say it is always there; etcd
 * sends none when history was compacted under a reconnecting watch, and the
 * proto loader then gives null.
 */
function prevKv(ev: IEvent): IKeyValue | undefined {
  const wire: { prev_kv?: IKeyValue | null } = ev;
  return wire.prev_kv ?? undefined;
}

interface Located {
  ev: IEvent;
  table: string;
  key: ReturnType<Keys["classify"]>;
}

/**
 * The changes in `events` (ordered by revision, as etcd sends them), their
 * sessions stamped with `tableUid`. With `onlyTable`, keys are those of that
 * table; otherwise of any table.
 */
export function toChanges(keys: Keys, events: readonly IEvent[], tableUid: string, onlyTable?: string): Change[] {
  const out: Change[] = [];
  let i = 0;
  while (i < events.length) {
    const revision = events[i]!.kv.mod_revision;
    let j = i;
    while (j < events.length && events[j]!.kv.mod_revision === revision) j++;
    mapRevision(keys, events.slice(i, j), tableUid, onlyTable, out);
    i = j;
  }
  return out;
}

function mapRevision(keys: Keys, group: readonly IEvent[], tableUid: string, onlyTable: string | undefined, out: Change[]): void {
  const located: Located[] = [];
  const wrote = new Set<string>();
  const deleted = new Set<string>();
  const lastExpiry = new Map<string, string>();
  for (const ev of group) {
    const key = ev.kv.key.toString("utf8");
    const table = onlyTable ?? keys.tableOf(key);
    if (table === undefined) continue;
    const k = keys.classify(keys.table(table), key);
    if (k.kind === "rev") {
      if (isDelete(ev)) deleted.add(table);
      else wrote.add(table);
    } else if (k.kind === "expiry" && isDelete(ev)) {
      const prev = prevKv(ev);
      if (prev !== undefined) lastExpiry.set(`${table}/${k.id}`, prev.value.toString("utf8"));
    }
    located.push({ ev, table, key: k });
  }
  for (const table of deleted) out.push({ kind: "tableDeleted", table });
  for (const { ev, table, key } of located) {
    if (key.kind !== "data" || deleted.has(table)) continue;
    const revision = Number(ev.kv.mod_revision);
    if (!isDelete(ev)) {
      const type = ev.kv.create_revision === ev.kv.mod_revision ? "REGISTERED" : "UPDATED";
      out.push({ kind: "event", table, event: { type, revision, session: decodeSession(key.id, ev.kv, tableUid) } });
      continue;
    }
    const prev = prevKv(ev);
    // Without prev_kv (history compacted under a reconnecting watch) the last state is gone; nothing to report.
    if (prev === undefined) continue;
    const session = decodeSession(key.id, prev, tableUid, lastExpiry.get(`${table}/${key.id}`));
    out.push({ kind: "event", table, event: { type: wrote.has(table) ? "REMOVED" : "EXPIRED", revision, session } });
  }
}
