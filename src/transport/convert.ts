/**
 * Core model -> generated messages. Requests need no conversion: the decoded
 * request objects already satisfy the Registry's input shapes.
 */
import type { Session as CoreSession, Table as CoreTable } from "../core/model.js";
import type { Session, Table } from "../gen/sessionregistry/v1/session_registry.js";

export function toProtoTable(table: CoreTable): Table {
  return {
    name: table.name,
    maxSessions: table.maxSessions,
    sessionCount: table.sessionCount,
    createTime: table.createTime,
    revision: BigInt(table.revision),
    tableUid: table.tableUid,
  };
}

/** `createRevision` is an ordering detail of the store and stays off the wire. */
export function toProtoSession(session: CoreSession): Session {
  return {
    id: session.id,
    name: session.name,
    projectPath: session.projectPath,
    // The encoder only iterates the map; the cast drops `readonly`, nothing writes to it.
    metadata: session.metadata as Map<string, string>,
    createTime: session.createTime,
    updateTime: session.updateTime,
    revision: BigInt(session.revision),
    ttl: session.ttl === undefined ? undefined : { seconds: BigInt(session.ttl.seconds), nanos: session.ttl.nanos },
    expireTime: session.expireTime,
    tableUid: session.tableUid,
  };
}
