import assert from "node:assert/strict";
import { Metadata, type ServiceError, status } from "@grpc/grpc-js";
import {
  ERROR_DOMAIN,
  fromServiceError,
  InvalidArgumentError,
  ProjectAlreadyOpenError,
  RevisionCompactedError,
  RevisionMismatchError,
  SessionExistsError,
  SessionLimitReachedError,
  SessionNotFoundError,
  SessionRegistryError,
  TableExistsError,
  TableLimitReachedError,
  TableNotEmptyError,
  TableNotFoundError,
  WatcherLimitReachedError,
  UnauthenticatedError,
  PermissionDeniedError,
  WatcherTooSlowError,
} from "../src/index.js";
import type { Any } from "../src/gen/google/protobuf/any.js";
import { BadRequest, ErrorInfo } from "../src/gen/google/rpc/error_details.js";
import { Status } from "../src/gen/google/rpc/status.js";

const DETAILS_KEY = "grpc-status-details-bin";

function errorInfo(reason: string, metadata: Record<string, string> = {}): Any {
  const value = ErrorInfo.encode({ reason, domain: ERROR_DOMAIN, metadata: new Map(Object.entries(metadata)) }).finish();
  return { typeUrl: "type.googleapis.com/google.rpc.ErrorInfo", value: Buffer.from(value) };
}

function badRequest(violations: { field: string; description: string }[]): Any {
  const value = BadRequest.encode({
    fieldViolations: violations.map((v) => ({ ...v, reason: "", localizedMessage: undefined })),
  }).finish();
  return { typeUrl: "type.googleapis.com/google.rpc.BadRequest", value: Buffer.from(value) };
}

/** A ServiceError as grpc-js hands it to a unary callback; `trailer` is the raw details trailer, if any. */
function serviceError(code: status, details: string, trailer?: Buffer): ServiceError {
  const metadata = new Metadata();
  if (trailer !== undefined) metadata.set(DETAILS_KEY, trailer);
  return Object.assign(new Error(`${code} ${status[code]}: ${details}`), { code, details, metadata });
}

/** A ServiceError whose trailer is a google.rpc.Status with the given details, as the daemon sends it. */
function registryError(code: status, details: string, ...anys: Any[]): ServiceError {
  return serviceError(code, details, Buffer.from(Status.encode({ code, message: details, details: anys }).finish()));
}

describe("fromServiceError", () => {
  describe("typed reasons", () => {
    it("maps INVALID_ARGUMENT to InvalidArgumentError with its field violations", () => {
      const violations = [
        { field: "session.project_path", description: "must be an absolute path" },
        { field: "session.name", description: "at most 50 code points" },
      ];
      const cause = registryError(status.INVALID_ARGUMENT, "invalid request", errorInfo("INVALID_ARGUMENT"), badRequest(violations));
      const err = fromServiceError(cause);
      assert.ok(err instanceof InvalidArgumentError);
      assert.ok(err instanceof SessionRegistryError);
      assert.ok(err instanceof Error);
      assert.equal(err.name, "InvalidArgumentError");
      assert.equal(err.code, status.INVALID_ARGUMENT);
      assert.equal(err.reason, "INVALID_ARGUMENT");
      assert.equal(err.domain, ERROR_DOMAIN);
      assert.equal(err.details, "invalid request");
      assert.deepEqual(err.fieldViolations, violations);
      assert.equal(err.cause, cause);
      assert.equal(err.message, "INVALID_ARGUMENT: invalid request");
    });

    it("maps TABLE_NOT_FOUND to TableNotFoundError with its metadata", () => {
      const err = fromServiceError(registryError(status.NOT_FOUND, 'table "t" not found', errorInfo("TABLE_NOT_FOUND", { table: "t" })));
      assert.ok(err instanceof TableNotFoundError);
      assert.equal(err.name, "TableNotFoundError");
      assert.equal(err.code, status.NOT_FOUND);
      assert.deepEqual(err.metadata, { table: "t" });
      assert.deepEqual(err.fieldViolations, []);
    });

    it("maps TABLE_EXISTS to TableExistsError", () => {
      const err = fromServiceError(
        registryError(status.ALREADY_EXISTS, "exists", errorInfo("TABLE_EXISTS", { table: "t", max_sessions: "5" })),
      );
      assert.ok(err instanceof TableExistsError);
      assert.equal(err.name, "TableExistsError");
      assert.equal(err.metadata.max_sessions, "5");
    });

    it("maps TABLE_NOT_EMPTY to TableNotEmptyError", () => {
      const err = fromServiceError(
        registryError(status.FAILED_PRECONDITION, "not empty", errorInfo("TABLE_NOT_EMPTY", { table: "t", session_count: "2" })),
      );
      assert.ok(err instanceof TableNotEmptyError);
      assert.equal(err.name, "TableNotEmptyError");
      assert.equal(err.code, status.FAILED_PRECONDITION);
    });

    it("maps TABLE_LIMIT_REACHED to TableLimitReachedError with current and max", () => {
      const err = fromServiceError(
        registryError(status.RESOURCE_EXHAUSTED, "too many tables", errorInfo("TABLE_LIMIT_REACHED", { current: "100", max: "100" })),
      );
      assert.ok(err instanceof TableLimitReachedError);
      assert.equal(err.name, "TableLimitReachedError");
      assert.equal(err.current, 100);
      assert.equal(err.max, 100);
    });

    it("maps SESSION_NOT_FOUND to SessionNotFoundError", () => {
      const err = fromServiceError(
        registryError(status.NOT_FOUND, "no session", errorInfo("SESSION_NOT_FOUND", { table: "default", session_id: "s1" })),
      );
      assert.ok(err instanceof SessionNotFoundError);
      assert.equal(err.name, "SessionNotFoundError");
      assert.equal(err.metadata.session_id, "s1");
    });

    it("maps SESSION_EXISTS to SessionExistsError with sessionId", () => {
      const err = fromServiceError(
        registryError(status.ALREADY_EXISTS, "exists", errorInfo("SESSION_EXISTS", { table: "default", session_id: "s1" })),
      );
      assert.ok(err instanceof SessionExistsError);
      assert.equal(err.name, "SessionExistsError");
      assert.equal(err.sessionId, "s1");
    });

    it("maps SESSION_LIMIT_REACHED to SessionLimitReachedError with its table and numeric current and max", () => {
      const err = fromServiceError(
        registryError(
          status.RESOURCE_EXHAUSTED,
          'maximum sessions reached (10/10 sessions open in table "default")',
          errorInfo("SESSION_LIMIT_REACHED", { table: "default", current: "10", max: "10" }),
        ),
      );
      assert.ok(err instanceof SessionLimitReachedError);
      assert.equal(err.name, "SessionLimitReachedError");
      assert.equal(err.code, status.RESOURCE_EXHAUSTED);
      assert.equal(err.table, "default");
      assert.equal(err.current, 10);
      assert.equal(err.max, 10);
      assert.equal(err.details, 'maximum sessions reached (10/10 sessions open in table "default")');
    });

    it("maps PROJECT_ALREADY_OPEN to ProjectAlreadyOpenError with the holder and the path", () => {
      const err = fromServiceError(
        registryError(
          status.ALREADY_EXISTS,
          "already open",
          errorInfo("PROJECT_ALREADY_OPEN", { table: "default", session_id: "holder", project_path: "/a/b" }),
        ),
      );
      assert.ok(err instanceof ProjectAlreadyOpenError);
      assert.equal(err.name, "ProjectAlreadyOpenError");
      assert.equal(err.sessionId, "holder");
      assert.equal(err.projectPath, "/a/b");
    });

    it("maps REVISION_MISMATCH to RevisionMismatchError with currentRevision", () => {
      const err = fromServiceError(
        registryError(
          status.ABORTED,
          "mismatch",
          errorInfo("REVISION_MISMATCH", { table: "default", session_id: "s1", current_revision: "42" }),
        ),
      );
      assert.ok(err instanceof RevisionMismatchError);
      assert.equal(err.name, "RevisionMismatchError");
      assert.equal(err.code, status.ABORTED);
      assert.equal(err.currentRevision, 42);
    });

    it("maps REVISION_COMPACTED to RevisionCompactedError with compactRevision", () => {
      const err = fromServiceError(
        registryError(status.OUT_OF_RANGE, "compacted", errorInfo("REVISION_COMPACTED", { table: "default", compact_revision: "7" })),
      );
      assert.ok(err instanceof RevisionCompactedError);
      assert.equal(err.name, "RevisionCompactedError");
      assert.equal(err.compactRevision, 7);
    });

    it("maps WATCHER_TOO_SLOW to WatcherTooSlowError with resumeRevision", () => {
      const err = fromServiceError(
        registryError(status.RESOURCE_EXHAUSTED, "too slow", errorInfo("WATCHER_TOO_SLOW", { table: "default", resume_revision: "9" })),
      );
      assert.ok(err instanceof WatcherTooSlowError);
      assert.equal(err.name, "WatcherTooSlowError");
      assert.equal(err.resumeRevision, 9);
    });

    it("maps WATCHER_LIMIT_REACHED to WatcherLimitReachedError with current and max", () => {
      const err = fromServiceError(
        registryError(status.RESOURCE_EXHAUSTED, "too many watches", errorInfo("WATCHER_LIMIT_REACHED", { current: "3", max: "3" })),
      );
      assert.ok(err instanceof WatcherLimitReachedError);
      assert.equal(err.name, "WatcherLimitReachedError");
      assert.equal(err.current, 3);
      assert.equal(err.max, 3);
    });

    it("maps UNAUTHENTICATED to UnauthenticatedError", () => {
      const err = fromServiceError(registryError(status.UNAUTHENTICATED, "no token", errorInfo("UNAUTHENTICATED", {})));
      assert.ok(err instanceof UnauthenticatedError);
      assert.equal(err.name, "UnauthenticatedError");
      assert.equal(err.code, status.UNAUTHENTICATED);
    });

    it("maps PERMISSION_DENIED to PermissionDeniedError with method, role and table", () => {
      const err = fromServiceError(
        registryError(status.PERMISSION_DENIED, "denied", errorInfo("PERMISSION_DENIED", { method: "Register", role: "read", table: "t" })),
      );
      assert.ok(err instanceof PermissionDeniedError);
      assert.deepEqual([err.method, err.role, err.table], ["Register", "read", "t"]);
    });

    it("gives NaN, not 0, for a numeric field missing from the metadata", () => {
      const err = fromServiceError(registryError(status.RESOURCE_EXHAUSTED, "full", errorInfo("SESSION_LIMIT_REACHED", { max: "3" })));
      assert.ok(err instanceof SessionLimitReachedError);
      assert.ok(Number.isNaN(err.current));
      assert.equal(err.max, 3);
    });

    it("puts the subclass name in the stack trace", () => {
      const err = fromServiceError(registryError(status.NOT_FOUND, "gone", errorInfo("SESSION_NOT_FOUND")));
      assert.match(err.stack ?? "", /^SessionNotFoundError: NOT_FOUND: gone/);
    });
  });

  describe("fallback to the base class", () => {
    function assertBase(err: SessionRegistryError, code: status, reason = ""): void {
      assert.equal(err.constructor, SessionRegistryError);
      assert.equal(err.name, "SessionRegistryError");
      assert.equal(err.code, code);
      assert.equal(err.reason, reason);
    }

    it("keeps the code when there is no trailer (a transport error)", () => {
      const cause = serviceError(status.UNAVAILABLE, "No connection established");
      const err = fromServiceError(cause);
      assertBase(err, status.UNAVAILABLE);
      assert.equal(err.details, "No connection established");
      assert.deepEqual(err.metadata, {});
      assert.deepEqual(err.fieldViolations, []);
      assert.equal(err.cause, cause);
    });

    it("keeps the code of DEADLINE_EXCEEDED", () => {
      assertBase(fromServiceError(serviceError(status.DEADLINE_EXCEEDED, "Deadline exceeded")), status.DEADLINE_EXCEEDED);
    });

    it("ignores a trailer of garbage bytes", () => {
      const garbage = [Buffer.from([0xff, 0xff, 0xff, 0xff, 0xff]), Buffer.from("not a protobuf at all"), Buffer.from([0x1a, 0x7f, 0x0a])];
      for (const trailer of garbage) {
        assertBase(fromServiceError(serviceError(status.INTERNAL, "boom", trailer)), status.INTERNAL);
      }
    });

    it("ignores an ErrorInfo whose bytes are garbage", () => {
      const broken: Any = { typeUrl: "type.googleapis.com/google.rpc.ErrorInfo", value: Buffer.from([0x0a, 0xff, 0x01]) };
      assertBase(fromServiceError(registryError(status.NOT_FOUND, "x", broken)), status.NOT_FOUND);
    });

    it("ignores a Status with no ErrorInfo", () => {
      assertBase(fromServiceError(registryError(status.NOT_FOUND, "x")), status.NOT_FOUND);
    });

    it("keeps an unknown reason on the base class", () => {
      const err = fromServiceError(registryError(status.PERMISSION_DENIED, "no", errorInfo("SOMETHING_NEW", { a: "b" })));
      assertBase(err, status.PERMISSION_DENIED, "SOMETHING_NEW");
      assert.deepEqual(err.metadata, { a: "b" });
    });

    it("keeps INTERNAL on the base class with its reason", () => {
      assertBase(fromServiceError(registryError(status.INTERNAL, "internal error", errorInfo("INTERNAL"))), status.INTERNAL, "INTERNAL");
    });

    it("does not treat a prototype property name as a reason", () => {
      assertBase(fromServiceError(registryError(status.UNKNOWN, "x", errorInfo("constructor"))), status.UNKNOWN, "constructor");
    });
  });
});
