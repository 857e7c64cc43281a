/**
 * Turns failures into gRPC statuses. A RegistryError keeps its code and
 * message and travels with a google.rpc.Status in the
 * `grpc-status-details-bin` trailer (ErrorInfo, plus BadRequest when fields
 * were bad). Anything else is a bug: the client gets a generic INTERNAL and
 * the stack goes to the log, never onto the wire.
 *
 * It also says how each call's outcome is logged (logRejection) and counted
 * (RpcRecorder), so that unary calls and Watch report alike.
 */
import { Metadata, status, type ServiceError } from "@grpc/grpc-js";

import { ERROR_DOMAIN, Reason, RegistryError, type ErrorCode, type FieldViolation } from "../core/errors.js";
import type { Logger } from "../core/logger.js";
import { Any } from "../gen/google/protobuf/any.js";
import { BadRequest, ErrorInfo } from "../gen/google/rpc/error_details.js";
import { Status } from "../gen/google/rpc/status.js";

/** The trailer gRPC's richer error model uses; clients in every language read it. */
export const STATUS_DETAILS_KEY = "grpc-status-details-bin";

export const ERROR_INFO_TYPE_URL = "type.googleapis.com/google.rpc.ErrorInfo";
export const BAD_REQUEST_TYPE_URL = "type.googleapis.com/google.rpc.BadRequest";

/** The message of every unexpected failure; the real one may hold paths or payload bits. */
export const INTERNAL_MESSAGE = "internal error";

/**
 * Core code names to grpc-js numbers (Connect numbers its codes the same). Spelled out rather than looked up by
 * name so that a code added to the core without a mapping fails to compile.
 */
export const GRPC_CODE: Readonly<Record<ErrorCode, status>> = {
  INVALID_ARGUMENT: status.INVALID_ARGUMENT,
  NOT_FOUND: status.NOT_FOUND,
  ALREADY_EXISTS: status.ALREADY_EXISTS,
  RESOURCE_EXHAUSTED: status.RESOURCE_EXHAUSTED,
  FAILED_PRECONDITION: status.FAILED_PRECONDITION,
  ABORTED: status.ABORTED,
  OUT_OF_RANGE: status.OUT_OF_RANGE,
  UNAVAILABLE: status.UNAVAILABLE,
  INTERNAL: status.INTERNAL,
  UNAUTHENTICATED: status.UNAUTHENTICATED,
  PERMISSION_DENIED: status.PERMISSION_DENIED,
};

/** What a status error says; the input of statusError. */
export interface StatusSpec {
  code: status;
  /** The ErrorInfo reason (UPPER_SNAKE_CASE). */
  reason: string;
  message: string;
  metadata?: Readonly<Record<string, string>>;
  fieldViolations?: readonly FieldViolation[];
}

/**
 * Builds a grpc-js ServiceError whose trailer carries the google.rpc.Status
 * equivalent of `spec`: same code and message, exactly one ErrorInfo, and a
 * BadRequest when there are field violations.
 */
export function statusError(spec: StatusSpec): ServiceError {
  const details: Any[] = [
    {
      typeUrl: ERROR_INFO_TYPE_URL,
      value: Buffer.from(
        ErrorInfo.encode({
          reason: spec.reason,
          domain: ERROR_DOMAIN,
          metadata: new Map(Object.entries(spec.metadata ?? {})),
        }).finish(),
      ),
    },
  ];
  const violations = spec.fieldViolations ?? [];
  if (violations.length > 0) {
    details.push({
      typeUrl: BAD_REQUEST_TYPE_URL,
      value: Buffer.from(
        BadRequest.encode({
          fieldViolations: violations.map((v) => ({
            field: v.field,
            description: v.description,
            reason: "",
            localizedMessage: undefined,
          })),
        }).finish(),
      ),
    });
  }

  const metadata = new Metadata();
  metadata.set(STATUS_DETAILS_KEY, Buffer.from(Status.encode({ code: spec.code, message: spec.message, details }).finish()));

  const error = new Error(spec.message) as ServiceError;
  error.code = spec.code;
  error.details = spec.message;
  error.metadata = metadata;
  return error;
}

/**
 * What a failed call answers, whatever the wire. RegistryErrors pass through
 * (a RegistryError with code INTERNAL is deliberate and keeps its message);
 * anything else becomes INTERNAL "internal error" and is logged at error
 * with its stack. `fields` (e.g. the method) are added to that log line.
 */
export function statusSpecOf(err: unknown, log: Logger, fields: Record<string, unknown> = {}): StatusSpec {
  if (err instanceof RegistryError) {
    return {
      code: GRPC_CODE[err.code],
      reason: err.reason,
      message: err.message,
      metadata: err.metadata,
      fieldViolations: err.fieldViolations,
    };
  }
  log.error({ ...fields, err }, "unexpected error");
  return { code: status.INTERNAL, reason: Reason.INTERNAL, message: INTERNAL_MESSAGE };
}

/** The gRPC status for a failed call (see statusSpecOf). */
export function toServiceError(err: unknown, log: Logger, fields: Record<string, unknown> = {}): ServiceError {
  return statusError(statusSpecOf(err, log, fields));
}

/** The status code and ErrorInfo reason a failure reaches the client with. */
export function outcomeOf(err: unknown): { code: status; reason: string } {
  return err instanceof RegistryError
    ? { code: GRPC_CODE[err.code], reason: err.reason }
    : { code: status.INTERNAL, reason: Reason.INTERNAL };
}

/** The failures about who is calling, rather than what they asked. */
export function isAuthError(err: RegistryError): boolean {
  return err.code === "UNAUTHENTICATED" || err.code === "PERMISSION_DENIED";
}

/**
 * Logs a call the registry refused: at info, as refusing is its job; at warn
 * when the caller's credentials were refused, which may be an attack or a
 * misconfigured client (with the role, never the token). `fields` are ids
 * only (method, table, session id, peer), never payloads.
 */
export function logRejection(log: Logger, fields: Record<string, unknown>, err: RegistryError): void {
  if (isAuthError(err)) {
    const role = err.metadata.role;
    log.warn({ ...fields, code: err.code, reason: err.reason, ...(role !== undefined ? { role } : {}) }, "rpc rejected");
  } else {
    log.info({ ...fields, code: err.code, reason: err.reason }, "rpc rejected");
  }
}

/** Hears how every call ended; the daemon's metrics implement it. Must be cheap and must not throw. */
export interface RpcRecorder {
  /**
   * A call ended with `code`; `reason` is the ErrorInfo reason of an error
   * status (undefined for OK and for calls the client ended). `startedAt` is
   * performance.now() when a unary call began; undefined for Watch, whose
   * length says how long the client watched, not how fast the daemon was.
   */
  rpcEnded(method: string, code: status, reason: string | undefined, startedAt: number | undefined): void;
}
