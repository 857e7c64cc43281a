/**
 * Typed errors of the SDK. The daemon puts a google.rpc.Status in the
 * `grpc-status-details-bin` trailer of every failure, carrying one ErrorInfo
 * whose `reason` names the failure (see the table at the top of the proto).
 * fromServiceError turns a grpc-js ServiceError into the subclass for that
 * reason, so callers can write `err instanceof SessionLimitReachedError` and
 * read `err.max` instead of parsing messages.
 */
import { type ServiceError, status } from "@grpc/grpc-js";
import { BadRequest, ErrorInfo } from "./gen/google/rpc/error_details.js";
import { Status } from "./gen/google/rpc/status.js";

/** The trailer that carries the encoded google.rpc.Status. */
const STATUS_DETAILS_KEY = "grpc-status-details-bin";

/** The ErrorInfo domain of every error the registry reports. */
export const ERROR_DOMAIN = "sessionregistry.v1";

/** ErrorInfo reasons the registry reports; part of the wire contract. */
export const ErrorReason = {
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
  STORE_UNAVAILABLE: "STORE_UNAVAILABLE",
  UNAUTHENTICATED: "UNAUTHENTICATED",
  PERMISSION_DENIED: "PERMISSION_DENIED",
  INTERNAL: "INTERNAL",
} as const;
export type ErrorReason = (typeof ErrorReason)[keyof typeof ErrorReason];

/** One bad field of a request; `field` is the proto's snake_case path, e.g. `session.project_path`. */
export interface FieldViolation {
  field: string;
  description: string;
}

/** Everything an error is built from; fromServiceError fills it from the status and its details. */
export interface SessionRegistryErrorInit {
  code: status;
  /** The gRPC status message. */
  details: string;
  /** ErrorInfo.reason; "" when the failure carried no ErrorInfo (e.g. a transport error). */
  reason?: string;
  domain?: string;
  metadata?: Record<string, string>;
  fieldViolations?: FieldViolation[];
  cause?: ServiceError;
}

/** The status's name; undefined for a code off the wire that grpc-js has no name for. */
function statusName(code: number): string | undefined {
  return status[code];
}

/**
 * Base class of every error the client rejects with. Transport failures
 * (UNAVAILABLE, DEADLINE_EXCEEDED, ...) and unknown reasons are instances of
 * this class itself, with the gRPC code and an empty (or the unknown) reason.
 */
export class SessionRegistryError extends Error {
  override name: string = "SessionRegistryError";
  /** The gRPC status code (`status.NOT_FOUND`, ...). */
  readonly code: status;
  /** ErrorInfo.reason, e.g. `SESSION_LIMIT_REACHED`; "" if the server sent none. */
  readonly reason: string;
  /** ErrorInfo.domain; `sessionregistry.v1` for errors from the daemon. */
  readonly domain: string;
  /** ErrorInfo.metadata (e.g. `table`, `session_id`); the subclasses expose the useful keys typed. */
  readonly metadata: Readonly<Record<string, string>>;
  /** The gRPC status message, meant for humans. */
  readonly details: string;
  /** From google.rpc.BadRequest; empty unless the request was invalid. */
  readonly fieldViolations: readonly FieldViolation[];
  /** The grpc-js error this one was made from. */
  override readonly cause: ServiceError | undefined;

  constructor(init: SessionRegistryErrorInit) {
    super(`${statusName(init.code) ?? `code ${init.code}`}: ${init.details}`);
    this.code = init.code;
    this.details = init.details;
    this.reason = init.reason ?? "";
    this.domain = init.domain ?? "";
    this.metadata = init.metadata ?? {};
    this.fieldViolations = init.fieldViolations ?? [];
    this.cause = init.cause;
  }
}

/** INVALID_ARGUMENT: the request broke a rule; `fieldViolations` names each bad field. */
export class InvalidArgumentError extends SessionRegistryError {
  override name = "InvalidArgumentError";
}

/** NOT_FOUND: the table does not exist. */
export class TableNotFoundError extends SessionRegistryError {
  override name = "TableNotFoundError";
  readonly table: string;
  constructor(init: SessionRegistryErrorInit) {
    super(init);
    this.table = this.metadata.table ?? "";
  }
}

/** ALREADY_EXISTS: the table exists with a different `max_sessions`. */
export class TableExistsError extends SessionRegistryError {
  override name = "TableExistsError";
  readonly table: string;
  /** The existing table's limit. */
  readonly maxSessions: number;
  constructor(init: SessionRegistryErrorInit) {
    super(init);
    this.table = this.metadata.table ?? "";
    this.maxSessions = toNumber(this.metadata.max_sessions);
  }
}

/** FAILED_PRECONDITION: the table still holds sessions and `force` was not set. */
export class TableNotEmptyError extends SessionRegistryError {
  override name = "TableNotEmptyError";
  readonly table: string;
  readonly sessionCount: number;
  constructor(init: SessionRegistryErrorInit) {
    super(init);
    this.table = this.metadata.table ?? "";
    this.sessionCount = toNumber(this.metadata.session_count);
  }
}

/** RESOURCE_EXHAUSTED: the daemon holds as many tables as it allows. */
export class TableLimitReachedError extends SessionRegistryError {
  override name = "TableLimitReachedError";
  readonly current: number;
  readonly max: number;
  constructor(init: SessionRegistryErrorInit) {
    super(init);
    this.current = toNumber(this.metadata.current);
    this.max = toNumber(this.metadata.max);
  }
}

/** UNAUTHENTICATED: no token, or one the daemon does not know; see `--auth-tokens`. */
export class UnauthenticatedError extends SessionRegistryError {
  override name = "UnauthenticatedError";
}

/** PERMISSION_DENIED: the token's role or tables do not cover this call. */
export class PermissionDeniedError extends SessionRegistryError {
  override name = "PermissionDeniedError";
  /** The RPC refused, e.g. "Register". */
  readonly method: string;
  /** The token's role: read, write or admin. */
  readonly role: string;
  /** The table refused; empty when the role was refused (checked before the request, which names the table, is read) or the call names none. */
  readonly table: string;
  constructor(init: SessionRegistryErrorInit) {
    super(init);
    this.method = this.metadata.method ?? "";
    this.role = this.metadata.role ?? "";
    this.table = this.metadata.table ?? "";
  }
}

/**
 * NOT_FOUND: no session matches the id (or lookup key). Exactly one of
 * `sessionId`, `projectPath` and `sessionName` is set: the key looked for.
 */
export class SessionNotFoundError extends SessionRegistryError {
  override name = "SessionNotFoundError";
  readonly table: string;
  readonly sessionId: string;
  readonly projectPath: string;
  /** The session name looked up (`name` is the error's class name, as on every Error). */
  readonly sessionName: string;
  constructor(init: SessionRegistryErrorInit) {
    super(init);
    this.table = this.metadata.table ?? "";
    this.sessionId = this.metadata.session_id ?? "";
    this.projectPath = this.metadata.project_path ?? "";
    this.sessionName = this.metadata.name ?? "";
  }
}

/** ALREADY_EXISTS: a session with this id is already in the table. */
export class SessionExistsError extends SessionRegistryError {
  override name = "SessionExistsError";
  readonly table: string;
  readonly sessionId: string;
  constructor(init: SessionRegistryErrorInit) {
    super(init);
    this.table = this.metadata.table ?? "";
    this.sessionId = this.metadata.session_id ?? "";
  }
}

/** RESOURCE_EXHAUSTED: the table holds `max` sessions already. */
export class SessionLimitReachedError extends SessionRegistryError {
  override name = "SessionLimitReachedError";
  /** The full table. */
  readonly table: string;
  readonly current: number;
  readonly max: number;
  constructor(init: SessionRegistryErrorInit) {
    super(init);
    this.table = this.metadata.table ?? "";
    this.current = toNumber(this.metadata.current);
    this.max = toNumber(this.metadata.max);
  }
}

/** ALREADY_EXISTS: another session (`sessionId`) holds this project path. */
export class ProjectAlreadyOpenError extends SessionRegistryError {
  override name = "ProjectAlreadyOpenError";
  readonly table: string;
  /** The session that holds the path. */
  readonly sessionId: string;
  readonly projectPath: string;
  constructor(init: SessionRegistryErrorInit) {
    super(init);
    this.table = this.metadata.table ?? "";
    this.sessionId = this.metadata.session_id ?? "";
    this.projectPath = this.metadata.project_path ?? "";
  }
}

/** ABORTED: `expectedRevision` did not match; re-read the session and retry. */
export class RevisionMismatchError extends SessionRegistryError {
  override name = "RevisionMismatchError";
  readonly table: string;
  readonly sessionId: string;
  /** The session's revision now. */
  readonly currentRevision: number;
  constructor(init: SessionRegistryErrorInit) {
    super(init);
    this.table = this.metadata.table ?? "";
    this.sessionId = this.metadata.session_id ?? "";
    this.currentRevision = toNumber(this.metadata.current_revision);
  }
}

/** OUT_OF_RANGE: the watch start is older than the retained history. */
export class RevisionCompactedError extends SessionRegistryError {
  override name = "RevisionCompactedError";
  readonly table: string;
  /** The oldest start revision still served. */
  readonly compactRevision: number;
  constructor(init: SessionRegistryErrorInit) {
    super(init);
    this.table = this.metadata.table ?? "";
    this.compactRevision = toNumber(this.metadata.compact_revision);
  }
}

/**
 * The position sent belongs to another history of the table than the one it
 * has now (the daemon restarted with the memory store, the table was made
 * again, or the etcd data was wiped): read the table again (watch from 0,
 * list from the first page). `tableUid` and `currentRevision` are the
 * table's now.
 */
export abstract class HistoryChangedError extends SessionRegistryError {
  readonly table: string;
  /** The table's history now. */
  readonly tableUid: string;
  /** The table's revision now. */
  readonly currentRevision: number;
  constructor(init: SessionRegistryErrorInit) {
    super(init);
    this.table = this.metadata.table ?? "";
    this.tableUid = this.metadata.table_uid ?? "";
    this.currentRevision = toNumber(this.metadata.current_revision);
  }
}

/** ABORTED: a watch start, an etag (Update, Remove) or a page token sent with a `tableUid` of another history. */
export class TableUidMismatchError extends HistoryChangedError {
  override name = "TableUidMismatchError";
}

/** OUT_OF_RANGE: a watch start (sent without `tableUid`) past the table's revision + 1: from another history. */
export class FutureRevisionError extends HistoryChangedError {
  override name = "FutureRevisionError";
}

/** RESOURCE_EXHAUSTED: the watcher fell too far behind; watch again from `resumeRevision`. */
export class WatcherTooSlowError extends SessionRegistryError {
  override name = "WatcherTooSlowError";
  readonly table: string;
  readonly resumeRevision: number;
  constructor(init: SessionRegistryErrorInit) {
    super(init);
    this.table = this.metadata.table ?? "";
    this.resumeRevision = toNumber(this.metadata.resume_revision);
  }
}

/** RESOURCE_EXHAUSTED: the daemon has as many watches open as it allows; retry later. */
export class WatcherLimitReachedError extends SessionRegistryError {
  override name = "WatcherLimitReachedError";
  readonly current: number;
  readonly max: number;
  constructor(init: SessionRegistryErrorInit) {
    super(init);
    this.current = toNumber(this.metadata.current);
    this.max = toNumber(this.metadata.max);
  }
}

/**
 * RESOURCE_EXHAUSTED: the daemon's sessions fill their share of its memory
 * budget; the write changed nothing. Reads still work; retry once sessions are removed.
 */
export class MemoryBudgetReachedError extends SessionRegistryError {
  override name = "MemoryBudgetReachedError";
  readonly usedBytes: number;
  readonly budgetBytes: number;
  constructor(init: SessionRegistryErrorInit) {
    super(init);
    this.usedBytes = toNumber(this.metadata.used_bytes);
    this.budgetBytes = toNumber(this.metadata.budget_bytes);
  }
}

/**
 * UNAVAILABLE: the daemon is up, but its store (etcd) cannot serve now; a
 * write may or may not have been applied (retry with the same requestId).
 */
export class StoreUnavailableError extends SessionRegistryError {
  override name = "StoreUnavailableError";
  /** The store's kind, e.g. "etcd". */
  readonly store: string;
  /** The store's endpoints, comma-separated (etcd's client URLs). */
  readonly endpoints: string;
  constructor(init: SessionRegistryErrorInit) {
    super(init);
    this.store = this.metadata.store ?? "";
    this.endpoints = this.metadata.endpoints ?? "";
  }
}

type ErrorClass = new (init: SessionRegistryErrorInit) => SessionRegistryError;

// A Map rather than an object literal, so that a reason like "constructor"
// cannot pick up a prototype property.
const classByReason = new Map<string, ErrorClass>([
  [ErrorReason.INVALID_ARGUMENT, InvalidArgumentError],
  [ErrorReason.TABLE_NOT_FOUND, TableNotFoundError],
  [ErrorReason.TABLE_EXISTS, TableExistsError],
  [ErrorReason.TABLE_NOT_EMPTY, TableNotEmptyError],
  [ErrorReason.TABLE_LIMIT_REACHED, TableLimitReachedError],
  [ErrorReason.SESSION_NOT_FOUND, SessionNotFoundError],
  [ErrorReason.SESSION_EXISTS, SessionExistsError],
  [ErrorReason.SESSION_LIMIT_REACHED, SessionLimitReachedError],
  [ErrorReason.PROJECT_ALREADY_OPEN, ProjectAlreadyOpenError],
  [ErrorReason.REVISION_MISMATCH, RevisionMismatchError],
  [ErrorReason.REVISION_COMPACTED, RevisionCompactedError],
  [ErrorReason.TABLE_UID_MISMATCH, TableUidMismatchError],
  [ErrorReason.FUTURE_REVISION, FutureRevisionError],
  [ErrorReason.WATCHER_TOO_SLOW, WatcherTooSlowError],
  [ErrorReason.WATCHER_LIMIT_REACHED, WatcherLimitReachedError],
  [ErrorReason.MEMORY_BUDGET_REACHED, MemoryBudgetReachedError],
  [ErrorReason.STORE_UNAVAILABLE, StoreUnavailableError],
  [ErrorReason.UNAUTHENTICATED, UnauthenticatedError],
  [ErrorReason.PERMISSION_DENIED, PermissionDeniedError],
]);

/**
 * Converts a grpc-js error into a SessionRegistryError (or the subclass its
 * ErrorInfo reason names). Never throws: a missing or undecodable trailer
 * gives the base class with the gRPC code.
 */
export function fromServiceError(err: ServiceError): SessionRegistryError {
  // Checked at run time: what a caller passes as a ServiceError need not be one.
  const message: unknown = err.message;
  const init: SessionRegistryErrorInit = {
    code: typeof err.code === "number" ? err.code : status.UNKNOWN,
    details: typeof err.details === "string" ? err.details : String(message),
    cause: err,
    ...decodeStatusDetails(err),
  };
  const ErrorClass = classByReason.get(init.reason ?? "") ?? SessionRegistryError;
  return new ErrorClass(init);
}

type DecodedDetails = Pick<SessionRegistryErrorInit, "reason" | "domain" | "metadata" | "fieldViolations">;

// All or nothing: trailers that fail to decode anywhere are ignored entirely,
// so a corrupt BadRequest cannot yield a half-filled typed error.
function decodeStatusDetails(err: ServiceError): DecodedDetails {
  try {
    // An error without metadata throws here, and so gives {} like any undecodable trailer.
    const raw: unknown = err.metadata.get(STATUS_DETAILS_KEY)[0];
    if (!(raw instanceof Uint8Array)) return {};
    const decoded: DecodedDetails = {};
    for (const any of Status.decode(raw).details) {
      if (any.typeUrl.endsWith("/google.rpc.ErrorInfo") && decoded.reason === undefined) {
        const info = ErrorInfo.decode(any.value);
        decoded.reason = info.reason;
        decoded.domain = info.domain;
        decoded.metadata = Object.fromEntries(info.metadata);
      } else if (any.typeUrl.endsWith("/google.rpc.BadRequest")) {
        const badRequest = BadRequest.decode(any.value);
        decoded.fieldViolations = [
          ...(decoded.fieldViolations ?? []),
          ...badRequest.fieldViolations.map((v) => ({ field: v.field, description: v.description })),
        ];
      }
    }
    return decoded;
  } catch {
    return {};
  }
}

/** Metadata values are decimal strings; a missing or malformed one is NaN rather than a misleading 0. */
function toNumber(value: string | undefined): number {
  return value === undefined || value.trim() === "" ? Number.NaN : Number(value);
}
