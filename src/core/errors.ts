/**
 * The registry's intended failures. Every failure the registry means to report
 * is a RegistryError with a canonical code, a reason (the ErrorInfo reason on
 * the wire) and string metadata. The transport maps it to a gRPC status plus a
 * google.rpc.Status; anything that is not a RegistryError is an unexpected
 * failure and reaches clients as a generic INTERNAL.
 *
 * This module has no grpc import: codes are the canonical names, which the
 * transport turns into numbers.
 */

/** Canonical status codes the core uses (names as in google.rpc.Code). */
export type ErrorCode =
  | "INVALID_ARGUMENT"
  | "NOT_FOUND"
  | "ALREADY_EXISTS"
  | "RESOURCE_EXHAUSTED"
  | "FAILED_PRECONDITION"
  | "ABORTED"
  | "OUT_OF_RANGE"
  | "UNAVAILABLE"
  | "INTERNAL"
  | "UNAUTHENTICATED"
  | "PERMISSION_DENIED";

/** ErrorInfo reasons; part of the wire contract, never rename. */
export const Reason = {
  INVALID_ARGUMENT: "INVALID_ARGUMENT",
  TABLE_NOT_FOUND: "TABLE_NOT_FOUND",
  TABLE_EXISTS: "TABLE_EXISTS",
  TABLE_NOT_EMPTY: "TABLE_NOT_EMPTY",
  TABLE_LIMIT_REACHED: "TABLE_LIMIT_REACHED",
  SESSION_NOT_FOUND: "SESSION_NOT_FOUND",
  SESSION_EXISTS: "SESSION_EXISTS",
  SESSION_LIMIT_REACHED: "SESSION_LIMIT_REACHED",
  PROJECT_ALREADY_OPEN: "PROJECT_ALREADY_OPEN",
  REVISION_MISMATCH: "REVISION_MISMATCH",
  REVISION_COMPACTED: "REVISION_COMPACTED",
  TABLE_UID_MISMATCH: "TABLE_UID_MISMATCH",
  FUTURE_REVISION: "FUTURE_REVISION",
  WATCHER_TOO_SLOW: "WATCHER_TOO_SLOW",
  WATCHER_LIMIT_REACHED: "WATCHER_LIMIT_REACHED",
  MEMORY_BUDGET_REACHED: "MEMORY_BUDGET_REACHED",
  SHUTTING_DOWN: "SHUTTING_DOWN",
  INTERNAL: "INTERNAL",
  UNAUTHENTICATED: "UNAUTHENTICATED",
  PERMISSION_DENIED: "PERMISSION_DENIED",
  STORE_UNAVAILABLE: "STORE_UNAVAILABLE",
} as const;
export type Reason = (typeof Reason)[keyof typeof Reason];

/** The ErrorInfo domain of every error the registry reports. */
export const ERROR_DOMAIN = "sessionregistry.v1";

/** One bad field of a request; `field` is the proto's snake_case path, e.g. `session.project_path`. */
export interface FieldViolation {
  field: string;
  description: string;
}

export class RegistryError extends Error {
  override readonly name = "RegistryError";
  constructor(
    readonly code: ErrorCode,
    readonly reason: Reason,
    message: string,
    readonly metadata: Readonly<Record<string, string>> = {},
    readonly fieldViolations: readonly FieldViolation[] = [],
  ) {
    super(message);
  }
}

// Constructors: one per reason, so that each rule's wording and metadata live in one place.

/**
 * How much of a request's wrongness one error reports. A request can break
 * rules many times over (40,000 bad update_mask paths, 64 bad metadata
 * entries); echoing each would make the error far larger than the request
 * and overflow clients' 8 KiB metadata limit (grpc-message and
 * grpc-status-details-bin are trailers). With these bounds an error's
 * trailers stay under 4 KiB whatever the request.
 */
export const ERROR_REPORT = {
  /** Field violations listed in the BadRequest; one more entry counts the rest. */
  maxViolations: 10,
  /** UTF-8 bytes of the listed violations' fields and descriptions together. */
  maxViolationBytes: 1024,
  /** UTF-8 bytes of one description; longer ones are cut with "…". */
  maxDescriptionBytes: 256,
  /** UTF-8 bytes of an INVALID_ARGUMENT message's list of violations. */
  maxMessageBytes: 512,
  /** Code points of a client-sent value quoted in a message. */
  maxQuotedCodePoints: 40,
} as const;

/** Quotes a client-sent value for an error message, cut to a few dozen code points so a huge payload is not echoed. */
export function quote(s: string): string {
  // Array.from splits into code points, the unit the limit counts (not grapheme clusters).
  const cut = Array.from(s.slice(0, 2 * ERROR_REPORT.maxQuotedCodePoints))
    .slice(0, ERROR_REPORT.maxQuotedCodePoints)
    .join("");
  return JSON.stringify(cut.length < s.length ? `${cut}…` : cut);
}

/** Cuts `s` to at most `maxBytes` UTF-8 bytes, on a code point boundary, marking a cut with "…". */
export function cutToBytes(s: string, maxBytes: number): string {
  if (Buffer.byteLength(s, "utf8") <= maxBytes) return s;
  let out = "";
  let bytes = 3; // the "…"
  for (const c of s) {
    bytes += Buffer.byteLength(c, "utf8");
    if (bytes > maxBytes) break;
    out += c;
  }
  return `${out}…`;
}

/**
 * One INVALID_ARGUMENT for every violation of a request, within ERROR_REPORT:
 * the BadRequest lists the first ones that fit and then one entry, on the
 * first field left out, saying how many more there are; the message lists
 * those that fit its own budget and counts the rest.
 */
export function invalidArgument(violations: readonly FieldViolation[]): RegistryError {
  const listed: FieldViolation[] = [];
  let bytes = 0;
  for (const v of violations) {
    if (listed.length === ERROR_REPORT.maxViolations) break;
    const description = cutToBytes(v.description, ERROR_REPORT.maxDescriptionBytes);
    bytes += Buffer.byteLength(v.field, "utf8") + Buffer.byteLength(description, "utf8");
    // The first violation is always listed: it is at most a field and one cut description.
    if (listed.length > 0 && bytes > ERROR_REPORT.maxViolationBytes) break;
    listed.push({ field: v.field, description });
  }
  const left = violations.length - listed.length;
  if (left > 0) {
    listed.push({
      field: violations[listed.length]!.field,
      description: `and ${left} more violation(s), starting with this field, not listed`,
    });
  }

  const parts: string[] = [];
  let messageBytes = 0;
  for (const v of listed.slice(0, left > 0 ? -1 : undefined)) {
    const part = `${v.field}: ${v.description}`;
    messageBytes += Buffer.byteLength(part, "utf8") + 2;
    if (parts.length > 0 && messageBytes > ERROR_REPORT.maxMessageBytes) break;
    parts.push(cutToBytes(part, ERROR_REPORT.maxMessageBytes));
  }
  const unlisted = violations.length - parts.length;
  const more = unlisted > 0 ? `; and ${unlisted} more` : "";
  return new RegistryError("INVALID_ARGUMENT", Reason.INVALID_ARGUMENT, `invalid request: ${parts.join("; ")}${more}`, {}, listed);
}

/** A request whose bytes are not a valid message of its type: no field can be named. */
export function malformedRequest(messageType: string, detail: string): RegistryError {
  const message = `malformed request: not a valid ${messageType}: ${cutToBytes(detail, ERROR_REPORT.maxDescriptionBytes)}`;
  return new RegistryError("INVALID_ARGUMENT", Reason.INVALID_ARGUMENT, message);
}

export function tableNotFound(table: string): RegistryError {
  return new RegistryError("NOT_FOUND", Reason.TABLE_NOT_FOUND, `table "${table}" not found`, { table });
}

export function tableExists(table: string, maxSessions: number): RegistryError {
  return new RegistryError("ALREADY_EXISTS", Reason.TABLE_EXISTS, `table "${table}" already exists with max_sessions ${maxSessions}`, {
    table,
    max_sessions: String(maxSessions),
  });
}

export function tableNotEmpty(table: string, sessionCount: number): RegistryError {
  return new RegistryError(
    "FAILED_PRECONDITION",
    Reason.TABLE_NOT_EMPTY,
    `table "${table}" still has ${sessionCount} session(s); remove them or set force`,
    { table, session_count: String(sessionCount) },
  );
}

export function tableLimitReached(current: number, max: number): RegistryError {
  return new RegistryError("RESOURCE_EXHAUSTED", Reason.TABLE_LIMIT_REACHED, `maximum tables reached (${current}/${max} tables)`, {
    current: String(current),
    max: String(max),
  });
}

export function sessionNotFound(table: string, key: { field: "id" | "project_path" | "name"; value: string }): RegistryError {
  const metadata: Record<string, string> = { table };
  metadata[key.field === "id" ? "session_id" : key.field] = key.value;
  return new RegistryError(
    "NOT_FOUND",
    Reason.SESSION_NOT_FOUND,
    `no session with ${key.field} ${quote(key.value)} in table "${table}"`,
    metadata,
  );
}

export function sessionExists(table: string, id: string): RegistryError {
  return new RegistryError("ALREADY_EXISTS", Reason.SESSION_EXISTS, `session "${id}" already exists in table "${table}"`, {
    table,
    session_id: id,
  });
}

export function sessionLimitReached(table: string, current: number, max: number): RegistryError {
  return new RegistryError(
    "RESOURCE_EXHAUSTED",
    Reason.SESSION_LIMIT_REACHED,
    `maximum sessions reached (${current}/${max} sessions open in table "${table}")`,
    { table, current: String(current), max: String(max) },
  );
}

export function projectAlreadyOpen(table: string, projectPath: string, holderId: string): RegistryError {
  return new RegistryError(
    "ALREADY_EXISTS",
    Reason.PROJECT_ALREADY_OPEN,
    `project ${quote(projectPath)} is already open in session "${holderId}"`,
    { table, session_id: holderId, project_path: projectPath },
  );
}

export function revisionMismatch(table: string, id: string, expected: number, current: number): RegistryError {
  return new RegistryError("ABORTED", Reason.REVISION_MISMATCH, `session "${id}" is at revision ${current}, not the expected ${expected}`, {
    table,
    session_id: id,
    current_revision: String(current),
  });
}

export function revisionCompacted(table: string, requested: number, compactRevision: number): RegistryError {
  return new RegistryError(
    "OUT_OF_RANGE",
    Reason.REVISION_COMPACTED,
    `revision ${requested} of table "${table}" has been compacted; the oldest start revision served is ${compactRevision}`,
    { table, compact_revision: String(compactRevision) },
  );
}

/**
 * A position (a revision, an etag, a page token) from another history of the
 * table: the daemon restarted (memory store), the table was deleted and made
 * again, or the etcd data was wiped. Its revisions mean nothing here.
 */
export function tableUidMismatch(table: string, given: string, current: { tableUid: string; revision: number }): RegistryError {
  return new RegistryError(
    "ABORTED",
    Reason.TABLE_UID_MISMATCH,
    `table "${table}" has a new history since table_uid ${JSON.stringify(given)} ` +
      `(restarted daemon, table made again, or store wiped); it is now table_uid ${JSON.stringify(current.tableUid)} ` +
      `at revision ${current.revision}: read the table again (Watch from 0, List from the first page)`,
    { table, table_uid: current.tableUid, current_revision: String(current.revision) },
  );
}

/** A start revision no watcher of this history can have reached: it belongs to another one. */
export function futureRevision(table: string, requested: number, current: { tableUid: string; revision: number }): RegistryError {
  return new RegistryError(
    "OUT_OF_RANGE",
    Reason.FUTURE_REVISION,
    `start_revision ${requested} is past table "${table}"'s current revision ${current.revision}, ` +
      `so it belongs to another history of the table (restarted daemon, table made again, or store wiped): watch again from 0`,
    { table, table_uid: current.tableUid, current_revision: String(current.revision) },
  );
}

export function watcherTooSlow(table: string, resumeRevision: number): RegistryError {
  return new RegistryError(
    "RESOURCE_EXHAUSTED",
    Reason.WATCHER_TOO_SLOW,
    `watcher fell too far behind on table "${table}"; resume from revision ${resumeRevision}`,
    { table, resume_revision: String(resumeRevision) },
  );
}

export function watcherLimitReached(current: number, max: number): RegistryError {
  return new RegistryError(
    "RESOURCE_EXHAUSTED",
    Reason.WATCHER_LIMIT_REACHED,
    `maximum watchers reached (${current}/${max} watches open on this daemon)`,
    { current: String(current), max: String(max) },
  );
}

/** A write that would take the daemon's sessions past their share of --memory-budget. */
export function memoryBudgetReached(usedBytes: number, budgetBytes: number): RegistryError {
  const mib = (n: number) => (n / (1024 * 1024)).toFixed(1);
  return new RegistryError(
    "RESOURCE_EXHAUSTED",
    Reason.MEMORY_BUDGET_REACHED,
    `the daemon's memory budget for sessions is full (${mib(usedBytes)} of ${mib(budgetBytes)} MiB); remove sessions or raise --memory-budget`,
    { used_bytes: String(Math.round(usedBytes)), budget_bytes: String(Math.round(budgetBytes)) },
  );
}

/** Ends watches when the daemon or its store goes away; clients reconnect (elsewhere). */
export function shuttingDown(): RegistryError {
  return new RegistryError("UNAVAILABLE", Reason.SHUTTING_DOWN, "the daemon is shutting down; reconnect", {});
}

/**
 * No usable credentials: no `authorization: Bearer <token>` metadata, or a
 * token the daemon does not know. `problem` says which, never echoing the token.
 */
export function unauthenticated(problem: string): RegistryError {
  const message = `${problem}; send metadata "authorization: Bearer <token>"`;
  return new RegistryError("UNAUTHENTICATED", Reason.UNAUTHENTICATED, message, {});
}

/** A known token whose role or tables do not cover the call. `table` is empty when the call names none (ListTables). */
export function permissionDenied(method: string, role: string, table: string, why: string): RegistryError {
  return new RegistryError("PERMISSION_DENIED", Reason.PERMISSION_DENIED, `permission denied: ${why}`, { method, role, table });
}

/** Which store an error is about, for STORE_UNAVAILABLE's metadata: its kind and where it is. */
export interface StoreLocation {
  /** As --store names it, e.g. `etcd`. */
  store: string;
  /** The URLs the daemon was given, without any user info. */
  endpoints: readonly string[];
}

/** STORE_UNAVAILABLE, keeping its `detail` apart for the daemon's own health reports. */
export class StoreUnavailableError extends RegistryError {
  constructor(
    /** Why, in words, e.g. `etcd at http://127.0.0.1:2379 is unreachable (connection refused)`. */
    readonly detail: string,
    where: StoreLocation | undefined,
  ) {
    super(
      "UNAVAILABLE",
      Reason.STORE_UNAVAILABLE,
      `the session store is unavailable: ${detail}`,
      where === undefined ? {} : { store: where.store, endpoints: where.endpoints.join(",") },
    );
  }
}

/**
 * The store's backend (etcd) cannot serve the call right now: unreachable,
 * timed out, or without a leader. The outcome of a write that fails this way
 * may be unknown; clients retry, with backoff. `where` becomes the ErrorInfo
 * metadata `store` and `endpoints` (comma-separated), so that a client can
 * say which store failed rather than blame the daemon it reached.
 */
export function storeUnavailable(detail: string, where?: StoreLocation): RegistryError {
  return new StoreUnavailableError(detail, where);
}
