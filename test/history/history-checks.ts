/**
 * Raw-stub checks shared by the history tests: how the daemon answers a
 * position from a history the table no longer has.
 */
import { expect } from "chai";
import { status, type ServiceError } from "@grpc/grpc-js";

import { RecordedWatch } from "../helpers/watch.js";
import { rawError, wireDetails, type RawRegistry } from "../helpers/raw.js";
import { newSession } from "./watchers.js";

/** The ErrorInfo of a failed raw call, after checking its code and reason. */
export function expectReason(err: ServiceError | undefined, code: status, reason: string): Record<string, string> {
  expect(err, `expected ${reason}`).to.not.equal(undefined);
  expect(err!.code, err!.details).to.equal(code);
  const info = wireDetails(err!.metadata).errorInfos[0];
  expect(info?.reason, err!.details).to.equal(reason);
  return Object.fromEntries(info!.metadata);
}

/** A raw Watch from `startRevision` of history `tableUid`: how it ended (it must end at once). */
export async function rawWatchError(
  raw: RawRegistry,
  table: string,
  startRevision: number,
  tableUid: string,
): Promise<ServiceError | undefined> {
  const w = new RecordedWatch(raw.client, table, startRevision, tableUid);
  try {
    return await w.ending();
  } finally {
    w.cancel();
  }
}

/**
 * A position (`revision` of history `oldUid`) the table no longer has:
 * resuming with its uid is TABLE_UID_MISMATCH, naming the table's uid and
 * revision now; Update and Remove with it are refused the same way.
 */
export async function expectOldHistoryRefused(
  raw: RawRegistry,
  table: string,
  old: { revision: number; tableUid: string },
  sessionId: string,
): Promise<void> {
  const now = (await raw.getTable({ table })).table!;
  expect(now.tableUid).to.not.equal(old.tableUid);
  const watchMd = expectReason(await rawWatchError(raw, table, old.revision + 1, old.tableUid), status.ABORTED, "TABLE_UID_MISMATCH");
  expect(watchMd).to.deep.equal({ table, table_uid: now.tableUid, current_revision: String(now.revision) });

  const session = { ...newSession(""), id: sessionId, name: "renamed" };
  const update = await rawError(
    raw.update({ requestId: "", table, session, updateMask: ["name"], expectedRevision: 0, tableUid: old.tableUid }),
  );
  expect(expectReason(update, status.ABORTED, "TABLE_UID_MISMATCH").table_uid).to.equal(now.tableUid);
  const remove = await rawError(
    raw.remove({ requestId: "", table, id: sessionId, expectedRevision: 0, allowMissing: true, tableUid: old.tableUid }),
  );
  expect(expectReason(remove, status.ABORTED, "TABLE_UID_MISMATCH").table_uid).to.equal(now.tableUid);
}
