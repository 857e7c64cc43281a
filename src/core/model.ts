/**
 * The registry's domain model, free of any transport or generated type. Names
 * follow the proto (a Session is a Session everywhere); times are Dates,
 * revisions are numbers (they stay far below 2^53).
 */

/** A span of time as in google.protobuf.Duration. */
export interface Duration {
  seconds: number;
  nanos: number;
}

/** A table and its counters, as the store reports it. */
export interface Table {
  name: string;
  maxSessions: number;
  sessionCount: number;
  createTime: Date;
  /** Bumped by every change to a session in the table. */
  revision: number;
  /** The identity of the history `revision` belongs to; new whenever the table's revisions start over. */
  tableUid: string;
}

/** A stored session. Stores hand out immutable snapshots: never mutate one. */
export interface Session {
  readonly id: string;
  readonly name: string;
  /** Normalized (see normalizeProjectPath). */
  readonly projectPath: string;
  readonly metadata: ReadonlyMap<string, string>;
  readonly createTime: Date;
  readonly updateTime: Date;
  /** The table revision at which the session was last written: its etag. */
  readonly revision: number;
  /** The table revision at which the session was registered; orders sessions by creation. */
  readonly createRevision: number;
  /** Undefined: never expires. */
  readonly ttl: Duration | undefined;
  /** Set exactly when ttl is set. */
  readonly expireTime: Date | undefined;
  /** The table history `revision` belongs to (Table.tableUid). */
  readonly tableUid: string;
}

/** A validated, normalized session to insert. */
export interface NewSession {
  id: string;
  name: string;
  projectPath: string;
  metadata: ReadonlyMap<string, string>;
  ttl: Duration | undefined;
}

/**
 * How long a store remembers a Register's request_id (at least): a retry with
 * the same request_id within it returns the first result (see the proto's
 * RegisterRequest.request_id).
 */
export const REQUEST_ID_RETENTION_MS = 10 * 60 * 1000;

/** The metadata of every session that has none; never mutated (it is a ReadonlyMap to everyone). */
export const EMPTY_METADATA: ReadonlyMap<string, string> = new Map();

/**
 * The session a store stores for a Register: the validated input, stamped
 * with the write's time and revision (which is also its creation revision),
 * expiring at `expireAt` (epoch ms) when it has a ttl: expiresAt(ttl, now)
 * (update.ts), which the etcd store also stores before it knows the revision.
 */
export function newSession(input: NewSession, revision: number, now: number, expireAt: number | undefined, tableUid: string): Session {
  // Snapshots are never mutated, so a fresh session's two equal times can be
  // one Date, and every session without metadata can share one empty Map: a
  // Date and an empty Map cost ~110 and ~200 bytes of heap, per session.
  const created = new Date(now);
  return {
    id: input.id,
    name: input.name,
    projectPath: input.projectPath,
    metadata: input.metadata.size === 0 ? EMPTY_METADATA : input.metadata,
    createTime: created,
    updateTime: created,
    revision,
    createRevision: revision,
    ttl: input.ttl,
    expireTime: expireAt === undefined ? undefined : new Date(expireAt),
    tableUid,
  };
}

/**
 * A validated change to a session; a field left undefined stays as it is.
 * `ttl: null` clears the ttl. `name: null` derives the name again from the
 * session's resulting project path (updatedSession in update.ts applies it).
 */
export interface SessionPatch {
  name?: string | null;
  projectPath?: string;
  metadata?: ReadonlyMap<string, string>;
  ttl?: Duration | null;
}

/** What Lookup searches by. Values are already normalized. */
export type LookupKey = { by: "id"; value: string } | { by: "projectPath"; value: string } | { by: "name"; value: string };

/** One page of a table's sessions, oldest first. */
export interface SessionPage {
  sessions: Session[];
  /** Opaque to callers; pass back as `after` for the next page. Undefined on the last page. */
  nextCursor: string | undefined;
  totalSize: number;
  /** The table revision the page was read at. */
  revision: number;
  /** The history `revision` belongs to. */
  tableUid: string;
}

/** What happened to a session; names as in the proto's EventType, without the prefix. */
export type EventType = "REGISTERED" | "UPDATED" | "REMOVED" | "EXPIRED";

/** One change to one session, at one table revision. */
export interface WatchEvent {
  type: EventType;
  /** The table revision of this change. */
  revision: number;
  /** The session after the change; for REMOVED and EXPIRED, its last state. */
  session: Session;
}
