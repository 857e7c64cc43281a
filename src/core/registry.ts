/**
 * Registry semantics on top of a Store: request validation and normalization,
 * defaults (table `default`, server-made ids, derived names, page sizes), page
 * tokens. The transport calls these methods with the decoded request objects
 * (the generated request types satisfy these input shapes) and maps the
 * RegistryErrors they throw to gRPC statuses.
 *
 * Validation always runs first, before any store access, so that the check
 * order of the contract (validation, then table, then limit, ...) holds.
 */
import { randomUUID } from "node:crypto";
import { EMPTY_METADATA, type LookupKey, type NewSession, type Session, type SessionPatch, type Table } from "./model.js";
import type { Store, TablesSink, WatchSink, WatchSubscription } from "./store.js";
import { quote, tableUidMismatch, watcherLimitReached } from "./errors.js";
import {
  LIMITS,
  Violations,
  checkMaxSessions,
  checkMetadata,
  checkName,
  checkPageSize,
  checkProjectPath,
  checkRequestId,
  checkRevision,
  checkSessionId,
  checkTableName,
  checkTableUid,
  checkTtl,
  deriveName,
  type WireDuration,
  type WireInt,
} from "./validation.js";
import { decodePageToken, encodePageToken } from "./page-token.js";

/** A session as a client sends it; output-only fields are ignored. */
export interface SessionInput {
  id: string;
  name: string;
  projectPath: string;
  metadata: ReadonlyMap<string, string>;
  ttl: WireDuration | undefined;
}

export type LookupKeyInput = { $case: "id"; value: string } | { $case: "projectPath"; value: string } | { $case: "name"; value: string };

export interface ListResult {
  sessions: Session[];
  /** Empty on the last page. */
  nextPageToken: string;
  totalSize: number;
  revision: number;
  tableUid: string;
}

export const DEFAULT_TABLE = "default";

/** The table a request means: its `table` field, where empty means `default`. */
export function resolveTable(table: string): string {
  return table === "" ? DEFAULT_TABLE : table;
}

/** The fields an update mask may name (snake_case, as on the wire). */
export const UPDATABLE_FIELDS = ["name", "project_path", "metadata", "ttl"] as const;
type UpdatableField = (typeof UPDATABLE_FIELDS)[number];

/** Resolves and checks the `table` field every request has. */
function tableName(v: Violations, table: string): string {
  const name = resolveTable(table);
  checkTableName(v, "table", name);
  return name;
}

export interface RegistryOptions {
  /** The most watches open at once on this daemon (default 10,000). */
  maxWatchers?: number;
}

export class Registry {
  readonly maxWatchers: number;
  private watchers = 0;

  constructor(
    readonly store: Store,
    options: RegistryOptions = {},
  ) {
    this.maxWatchers = options.maxWatchers ?? 10_000;
  }

  /** Watches open now; back to 0 once every stream has ended. */
  get activeWatchers(): number {
    return this.watchers;
  }

  createTable(input: { table: string; maxSessions: number }): Promise<{ table: Table; created: boolean }> {
    const v = new Violations();
    const table = tableName(v, input.table);
    checkMaxSessions(v, "max_sessions", input.maxSessions);
    v.throwIfAny();
    return this.store.createTable(table, input.maxSessions === 0 ? undefined : input.maxSessions);
  }

  getTable(input: { table: string }): Promise<Table> {
    const v = new Violations();
    const table = tableName(v, input.table);
    v.throwIfAny();
    return this.store.getTable(table);
  }

  listTables(): Promise<Table[]> {
    return this.store.listTables();
  }

  deleteTable(input: { table: string; force: boolean }): Promise<void> {
    const v = new Violations();
    const table = tableName(v, input.table);
    v.throwIfAny();
    return this.store.deleteTable(table, input.force);
  }

  /**
   * `requestId` (optional, "" or absent: none) is the idempotency key of the
   * proto's RegisterRequest.request_id, handed to the store.
   */
  register(input: { table: string; session: SessionInput | undefined; requestId?: string }): Promise<Session> {
    const v = new Violations();
    const table = tableName(v, input.table);
    const requestId = input.requestId ?? "";
    checkRequestId(v, "request_id", requestId);
    const s = input.session;
    if (s === undefined) return v.fail("session", "is required");
    const id = s.id === "" ? randomUUID() : s.id;
    checkSessionId(v, "session.id", id);
    const projectPath = checkProjectPath(v, "session.project_path", s.projectPath);
    if (s.name !== "") checkName(v, "session.name", s.name);
    checkMetadata(v, "session.metadata", s.metadata);
    const ttl = checkTtl(v, "session.ttl", s.ttl);
    v.throwIfAny();
    const session: NewSession = {
      id,
      name: s.name !== "" ? s.name : deriveName(projectPath!),
      projectPath: projectPath!,
      metadata: new Map(s.metadata),
      ttl,
    };
    return this.store.register(table, session, requestId === "" ? undefined : requestId);
  }

  lookup(input: { table: string; key: LookupKeyInput | undefined }): Promise<Session> {
    const v = new Violations();
    const table = tableName(v, input.table);
    const key = input.key;
    let lookupKey: LookupKey | undefined;
    if (key === undefined) {
      v.add("key", "one of id, project_path or name is required");
    } else if (key.$case === "id") {
      checkSessionId(v, "id", key.value);
      lookupKey = { by: "id", value: key.value };
    } else if (key.$case === "projectPath") {
      const path = checkProjectPath(v, "project_path", key.value);
      if (path !== undefined) lookupKey = { by: "projectPath", value: path };
    } else {
      checkName(v, "name", key.value);
      lookupKey = { by: "name", value: key.value };
    }
    v.throwIfAny();
    return this.store.lookup(table, lookupKey!);
  }

  async list(input: { table: string; pageSize: number; pageToken: string }): Promise<ListResult> {
    const v = new Violations();
    const table = tableName(v, input.table);
    const pageSize = checkPageSize(v, "page_size", input.pageSize);
    const token = input.pageToken === "" ? undefined : decodePageToken(input.pageToken, table);
    if (input.pageToken !== "" && token === undefined) {
      v.add("page_token", "is not a page token of this table's List; pass next_page_token unchanged");
    }
    v.throwIfAny();
    const page = await this.store.list(table, token?.cursor, pageSize);
    // The cursor is a position in the history it came from; in another one it would skip or repeat sessions.
    if (token?.tableUid !== undefined && token.tableUid !== page.tableUid) throw tableUidMismatch(table, token.tableUid, page);
    return {
      sessions: page.sessions,
      nextPageToken: page.nextCursor === undefined ? "" : encodePageToken(table, page.tableUid, page.nextCursor),
      totalSize: page.totalSize,
      revision: page.revision,
      tableUid: page.tableUid,
    };
  }

  update(input: {
    table: string;
    session: SessionInput | undefined;
    updateMask: string[] | undefined;
    expectedRevision: WireInt;
    requestId?: string;
    tableUid?: string;
  }): Promise<Session> {
    const v = new Violations();
    const table = tableName(v, input.table);
    const requestId = input.requestId ?? "";
    checkRequestId(v, "request_id", requestId);
    const tableUid = input.tableUid ?? "";
    checkTableUid(v, "table_uid", tableUid);
    const s = input.session;
    if (s === undefined) return v.fail("session", "is required");
    checkSessionId(v, "session.id", s.id);
    const fields = updateFields(v, input.updateMask ?? [], s);
    const patch: SessionPatch = {};
    if (fields.has("project_path")) {
      const projectPath = checkProjectPath(v, "session.project_path", s.projectPath);
      if (projectPath !== undefined) patch.projectPath = projectPath;
    }
    if (fields.has("name")) {
      if (s.name === "") {
        patch.name = null;
      } else {
        checkName(v, "session.name", s.name);
        patch.name = s.name;
      }
    }
    if (fields.has("metadata")) {
      checkMetadata(v, "session.metadata", s.metadata);
      patch.metadata = s.metadata.size === 0 ? EMPTY_METADATA : new Map(s.metadata);
    }
    if (fields.has("ttl")) patch.ttl = checkTtl(v, "session.ttl", s.ttl) ?? null;
    const expectedRevision = checkRevision(v, "expected_revision", input.expectedRevision);
    v.throwIfAny();
    return this.store.update(table, s.id, patch, {
      expectedRevision,
      tableUid: tableUid === "" ? undefined : tableUid,
      requestId: requestId === "" ? undefined : requestId,
    });
  }

  remove(input: {
    table: string;
    id: string;
    expectedRevision: WireInt;
    allowMissing: boolean;
    requestId?: string;
    tableUid?: string;
  }): Promise<Session | undefined> {
    const v = new Violations();
    const table = tableName(v, input.table);
    checkSessionId(v, "id", input.id);
    const expectedRevision = checkRevision(v, "expected_revision", input.expectedRevision);
    const requestId = input.requestId ?? "";
    checkRequestId(v, "request_id", requestId);
    const tableUid = input.tableUid ?? "";
    checkTableUid(v, "table_uid", tableUid);
    v.throwIfAny();
    return this.store.remove(table, input.id, {
      expectedRevision,
      allowMissing: input.allowMissing,
      tableUid: tableUid === "" ? undefined : tableUid,
      requestId: requestId === "" ? undefined : requestId,
    });
  }

  keepAlive(input: { table: string; id: string }): Promise<Session> {
    const v = new Violations();
    const table = tableName(v, input.table);
    checkSessionId(v, "id", input.id);
    v.throwIfAny();
    return this.store.keepAlive(table, input.id);
  }

  /**
   * Starts a watch, within the daemon's watcher limit. The slot is held until
   * the returned subscription is cancelled or the store ends the watch,
   * whichever comes first; either way it is released exactly once.
   */
  async watch(input: { table: string; startRevision: WireInt; tableUid?: string }, sink: WatchSink): Promise<WatchSubscription> {
    const v = new Violations();
    const table = tableName(v, input.table);
    const startRevision = checkRevision(v, "start_revision", input.startRevision);
    const tableUid = input.tableUid ?? "";
    checkTableUid(v, "table_uid", tableUid);
    v.throwIfAny();
    // A snapshot is good in any history: the table_uid matters only to a resume.
    const from = { startRevision, tableUid: startRevision === 0 || tableUid === "" ? undefined : tableUid };
    return this.holdingSlot((release) =>
      this.store.watch(table, from, {
        snapshot: (sessions, revision, uid) => sink.snapshot(sessions, revision, uid),
        event: (event) => sink.event(event),
        end: (error) => {
          release();
          sink.end(error);
        },
      }),
    );
  }

  /** Starts a tables watch (see TablesSink), within the same watcher limit as `watch`, held the same way. */
  watchTables(sink: TablesSink): Promise<WatchSubscription> {
    return this.holdingSlot((release) =>
      this.store.watchTables({
        snapshot: (tables) => sink.snapshot(tables),
        changed: (table) => sink.changed(table),
        deleted: (name) => sink.deleted(name),
        end: (error) => {
          release();
          sink.end(error);
        },
      }),
    );
  }

  /** Takes a watcher slot (or refuses WATCHER_LIMIT_REACHED) for the subscription `start` makes; `release` gives it back, once. */
  private async holdingSlot(start: (release: () => void) => Promise<WatchSubscription>): Promise<WatchSubscription> {
    if (this.watchers >= this.maxWatchers) throw watcherLimitReached(this.watchers, this.maxWatchers);
    this.watchers++;
    let held = true;
    const release = () => {
      if (held) {
        held = false;
        this.watchers--;
      }
    };
    try {
      const subscription = await start(release);
      return {
        cancel: () => {
          release();
          subscription.cancel();
        },
      };
    } catch (err) {
      release();
      throw err;
    }
  }
}

/**
 * The fields an Update changes: those named by the mask, or, with an empty
 * mask, every mutable field populated in the request.
 */
function updateFields(v: Violations, mask: readonly string[], s: SessionInput): Set<UpdatableField> {
  const fields = new Set<UpdatableField>();
  if (mask.length > LIMITS.updateMaskMaxPaths) {
    // Refused before any path is read, so a huge mask costs no per-path work (nor an error per path).
    v.add(
      "update_mask",
      `must name at most ${LIMITS.updateMaskMaxPaths} paths (updatable fields are ${UPDATABLE_FIELDS.join(", ")}), got ${mask.length}`,
    );
    return fields;
  }
  if (mask.length > 0) {
    for (const path of mask) {
      if ((UPDATABLE_FIELDS as readonly string[]).includes(path)) {
        fields.add(path as UpdatableField);
      } else {
        v.add("update_mask", `cannot update ${quote(path)}; updatable fields are ${UPDATABLE_FIELDS.join(", ")}`);
      }
    }
    return fields;
  }
  if (s.name !== "") fields.add("name");
  if (s.projectPath !== "") fields.add("project_path");
  if (s.metadata.size > 0) fields.add("metadata");
  if (s.ttl !== undefined) fields.add("ttl");
  if (fields.size === 0) {
    v.add("update_mask", `nothing to update: name a field in update_mask or set one of ${UPDATABLE_FIELDS.join(", ")}`);
  }
  return fields;
}
