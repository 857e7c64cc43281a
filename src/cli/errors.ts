/**
 * How the CLI reports a failure: one exit code per error class (scripts branch
 * on them; the table is in --help) and a sentence for people, worded like the
 * reference design's TUI ("Maximum sessions reached (10/10 sessions open).
 * Close a session first."). The sentence is built from the ErrorInfo reason
 * and metadata, not by rewording the daemon's message, which stays available
 * under `details` in the JSON form.
 */
import { ErrorReason, SessionRegistryError, status, type RetryEvent } from "@session-registry/client";

import { UsageError } from "./args.js";
import { diagnoseTls, type TlsFiles } from "./diagnose.js";

export const ExitCode = {
  OK: 0,
  /** Anything unexpected, INTERNAL and UNKNOWN included. */
  INTERNAL: 1,
  /** Bad flags or arguments; nothing was sent. */
  USAGE: 2,
  NOT_FOUND: 3,
  /** ALREADY_EXISTS: duplicate id or project path, a table with other settings. */
  CONFLICT: 4,
  /** RESOURCE_EXHAUSTED: session, table or watcher limit. */
  LIMIT: 5,
  /** ABORTED or FAILED_PRECONDITION: revision mismatch, table not empty, compacted revision. */
  PRECONDITION: 6,
  /** INVALID_ARGUMENT from the daemon. */
  INVALID: 7,
  /** UNAVAILABLE or DEADLINE_EXCEEDED: unreachable (TLS mismatches included), store unavailable, shutting down, too slow. */
  UNAVAILABLE: 8,
  /** UNAUTHENTICATED or PERMISSION_DENIED. */
  AUTH: 9,
} as const;
export type ExitCode = (typeof ExitCode)[keyof typeof ExitCode];

/** The rows of the --help exit code table. */
export const EXIT_CODE_HELP: readonly [ExitCode, string][] = [
  [ExitCode.OK, "success"],
  [ExitCode.INTERNAL, "unexpected or internal error"],
  [ExitCode.USAGE, "usage error: unknown command, bad flag or value (nothing was sent)"],
  [ExitCode.NOT_FOUND, "not found: table or session"],
  [ExitCode.CONFLICT, "already exists: session id, project path already open, table with other settings"],
  [ExitCode.LIMIT, "limit reached: sessions, tables or watchers (RESOURCE_EXHAUSTED)"],
  [ExitCode.PRECONDITION, "revision mismatch (ABORTED) or failed precondition (e.g. table not empty)"],
  [ExitCode.INVALID, "invalid request, rejected by the daemon (INVALID_ARGUMENT)"],
  [
    ExitCode.UNAVAILABLE,
    "cannot reach the daemon (or a TLS mismatch), its store is unavailable, it is shutting down, or the deadline passed",
  ],
  [ExitCode.AUTH, "unauthenticated or permission denied"],
];

export interface CliFailure {
  exitCode: ExitCode;
  /** For people; may span lines (one per field violation). */
  message: string;
  /** The `error` object of the --json form. */
  json: {
    /** The gRPC status name, or USAGE / INTERNAL for failures of the CLI itself. */
    code: string;
    /** The ErrorInfo reason; "" when there was none. */
    reason: string;
    message: string;
    /** The daemon's own status message, when the failure came from a call. */
    details?: string;
    metadata: Record<string, string>;
    fieldViolations?: { field: string; description: string }[];
    exitCode: ExitCode;
  };
}

const EXIT_BY_STATUS = new Map<status, ExitCode>([
  [status.NOT_FOUND, ExitCode.NOT_FOUND],
  [status.ALREADY_EXISTS, ExitCode.CONFLICT],
  [status.RESOURCE_EXHAUSTED, ExitCode.LIMIT],
  [status.ABORTED, ExitCode.PRECONDITION],
  [status.FAILED_PRECONDITION, ExitCode.PRECONDITION],
  [status.OUT_OF_RANGE, ExitCode.PRECONDITION],
  [status.INVALID_ARGUMENT, ExitCode.INVALID],
  [status.UNAVAILABLE, ExitCode.UNAVAILABLE],
  [status.DEADLINE_EXCEEDED, ExitCode.UNAVAILABLE],
  [status.UNAUTHENTICATED, ExitCode.AUTH],
  [status.PERMISSION_DENIED, ExitCode.AUTH],
]);

/** The status's name; undefined for a code off the wire that grpc-js has no name for. */
function statusName(code: number): string | undefined {
  return status[code];
}

export interface FailureContext {
  /** The daemon's address (--addr). */
  addr: string;
  /** What diagnoseTls found wrong with the connection, if anything. */
  tlsHint?: string | undefined;
}

/**
 * describeFailure, after finding out (diagnoseTls) whether a call that could
 * not connect failed on a TLS mismatch, which grpc-js reports in words of
 * OpenSSL's or in none.
 */
export async function explainFailure(err: unknown, addr: string, tls: TlsFiles | undefined): Promise<CliFailure> {
  if (!isConnectionFailure(err)) return describeFailure(err, { addr });
  return describeFailure(err, { addr, tlsHint: await diagnoseTls(addr, tls) });
}

/** Turns anything a command threw into an exit code and a message. */
export function describeFailure(err: unknown, context: FailureContext): CliFailure {
  if (err instanceof UsageError) {
    return failure(ExitCode.USAGE, err.message, { code: "USAGE", reason: "" });
  }
  if (err instanceof SessionRegistryError) {
    const exitCode = EXIT_BY_STATUS.get(err.code) ?? ExitCode.INTERNAL;
    const transport = err.reason === "" && isGrpcJsText(err.details);
    return failure(exitCode, registryMessage(err, context), {
      code: statusName(err.code) ?? String(err.code),
      reason: err.reason,
      // grpc-js's own text (an OpenSSL dump, say) is no one's to read; the message says it in words.
      ...(transport ? {} : { details: err.details }),
      metadata: { ...err.metadata },
      ...(err.fieldViolations.length > 0 ? { fieldViolations: err.fieldViolations.map((v) => ({ ...v })) } : {}),
    });
  }
  const text = err instanceof Error ? err.message : String(err);
  return failure(ExitCode.INTERNAL, `Unexpected error: ${text}`, { code: "INTERNAL", reason: "" });
}

function failure(
  exitCode: ExitCode,
  message: string,
  json: Omit<CliFailure["json"], "message" | "exitCode" | "metadata"> & { metadata?: Record<string, string> },
): CliFailure {
  const { code, reason, ...rest } = json;
  return { exitCode, message, json: { code, reason, message, ...rest, metadata: json.metadata ?? {}, exitCode } };
}

/** The sentence for one daemon error; falls back to the daemon's message for reasons it does not know. */
function registryMessage(err: SessionRegistryError, context: FailureContext): string {
  const { addr } = context;
  const md = err.metadata;
  // The default table goes unnamed, as in the TUI; any other is named.
  const named = md.table !== undefined && md.table !== "default";
  const inTable = named ? ` in table ${md.table}` : "";
  switch (err.reason) {
    case ErrorReason.SESSION_LIMIT_REACHED:
      return `Maximum sessions reached (${md.current}/${md.max} sessions open${inTable}). Close a session first.`;
    case ErrorReason.TABLE_LIMIT_REACHED:
      return `Maximum tables reached (${md.current}/${md.max} tables). Delete a table first.`;
    case ErrorReason.WATCHER_LIMIT_REACHED:
      return `Maximum watchers reached (${md.current}/${md.max} watches open on the daemon). Try again later.`;
    case ErrorReason.PROJECT_ALREADY_OPEN:
      return `Project ${md.project_path} is already open in session ${md.session_id}${named ? ` of table ${md.table}` : ""}.`;
    case ErrorReason.SESSION_EXISTS:
      return `Session ${md.session_id} already exists${inTable}.`;
    case ErrorReason.SESSION_NOT_FOUND:
      if (md.session_id !== undefined) return `Session ${md.session_id} not found${inTable}.`;
      if (md.project_path !== undefined) return `No session has project ${md.project_path} open${inTable}.`;
      if (md.name !== undefined) return `No session is named ${md.name}${inTable}.`;
      return `Session not found${inTable}.`;
    case ErrorReason.TABLE_NOT_FOUND:
      return `Table ${md.table} not found.`;
    case ErrorReason.TABLE_EXISTS:
      return `Table ${md.table} already exists with max sessions ${md.max_sessions}.`;
    case ErrorReason.TABLE_NOT_EMPTY:
      return `Table ${md.table} still has ${md.session_count} session(s). Remove them first, or pass --force.`;
    case ErrorReason.REVISION_MISMATCH:
      return `Session ${md.session_id} changed (now at revision ${md.current_revision}); re-read it and retry.`;
    case ErrorReason.REVISION_COMPACTED:
      return `That revision is no longer kept; the oldest revision to watch from is ${md.compact_revision}.`;
    case ErrorReason.WATCHER_TOO_SLOW:
      return `The watch fell too far behind; resume with --from ${md.resume_revision}.`;
    case ErrorReason.SHUTTING_DOWN:
      return `The registry at ${addr} is shutting down; try again once it is back.`;
    case ErrorReason.STORE_UNAVAILABLE:
      return storeMessage(err, addr);
    case ErrorReason.INVALID_ARGUMENT:
      if (err.fieldViolations.length === 0) return `Invalid request: ${err.details}`;
      return ["Invalid request:", ...err.fieldViolations.map((v) => `  ${v.field}: ${v.description}`)].join("\n");
    default:
      break;
  }
  switch (err.code) {
    case status.UNAVAILABLE:
      if (context.tlsHint !== undefined) return `Cannot reach the registry at ${addr}: ${context.tlsHint}.`;
      if (!isGrpcJsText(err.details)) return `The registry at ${addr} is unavailable: ${err.details}`;
      return `Cannot reach the registry at ${addr}: ${connectionProblem(err.details)}.`;
    case status.DEADLINE_EXCEEDED:
      if (context.tlsHint !== undefined) return `Cannot reach the registry at ${addr}: ${context.tlsHint}.`;
      if (!isGrpcJsText(err.details)) return `The registry at ${addr} gave up on the call: ${err.details}`;
      return `No answer from the registry at ${addr} before the deadline (--timeout); is it running there, and not overloaded?`;
    case status.UNAUTHENTICATED:
      // The daemon's hint after ";" names the header; a CLI user passes a flag instead.
      return `Not authenticated: ${withoutPeriod(err.details.split(";")[0] ?? "")}. Pass a token with --token or SESSION_REGISTRY_TOKEN.`;
    case status.PERMISSION_DENIED:
      return `Permission denied: ${withoutPeriod(err.details.replace(/^permission denied:\s*/i, ""))}.`;
    case status.INVALID_ARGUMENT:
      return `Invalid request: ${err.details}`;
    case status.UNIMPLEMENTED:
      return `The server at ${addr} does not serve this call: it is not a session registry, or an older version of it.`;
    case status.INTERNAL:
      // grpc-js's own INTERNAL (a broken stream, a message it could not parse) carries no reason; the daemon's does.
      if (err.reason === "" && isGrpcJsText(err.details)) return `The connection to the registry at ${addr} broke during the call.`;
      return `The registry failed with an internal error: ${err.details}`;
    default:
      if (err.reason === "" && isGrpcJsText(err.details))
        return `The call to the registry at ${addr} failed (${statusName(err.code) ?? err.code}).`;
      return `${statusName(err.code) ?? `Error ${err.code}`}: ${err.details}`;
  }
}

function withoutPeriod(text: string): string {
  return text.endsWith(".") ? text.slice(0, -1) : text;
}

/**
 * The registry answered, but its store (etcd) could not serve the call. The
 * daemon words it "the session store is unavailable: etcd at URL is
 * unreachable (connection refused)", with `store` and `endpoints` in the
 * metadata; here the place goes up front, once.
 */
function storeMessage(err: SessionRegistryError, addr: string): string {
  const { store, endpoints } = err.metadata;
  const where = store !== undefined && endpoints !== undefined ? `${store} at ${endpoints.split(",").join(", ")}` : undefined;
  const detail = withoutPeriod(err.details.replace(/^the session store is unavailable: /, ""));
  const why = where !== undefined && detail.startsWith(`${where} `) ? `${store} ${detail.slice(where.length + 1)}` : detail;
  const subject = where === undefined ? "The registry's store" : `The registry's store (${where})`;
  return `${subject} is unavailable: ${why}. The registry at ${addr} is up; try again once ${store ?? "the store"} is back.`;
}

/** The stderr note before the SDK retries a write: what failed, and which attempt comes next. Bounded: one per attempt. */
export function retryNote(event: RetryEvent): string {
  const { error } = event;
  const why =
    error.reason === ErrorReason.STORE_UNAVAILABLE
      ? "the registry's store is unavailable"
      : error.reason === ErrorReason.SHUTTING_DOWN
        ? "the registry is shutting down"
        : error.reason === "" && isGrpcJsText(error.details)
          ? "cannot reach the registry"
          : "the registry is unavailable";
  const seconds = (event.delayMs / 1000).toFixed(1);
  return `session-registry: ${event.method} failed (${why}); retrying in ${seconds} s (attempt ${event.attempt + 1} of ${event.maxAttempts})...\n`;
}

/** A call that never reached a daemon able to answer it: no reason, and grpc-js's words for a transport failure. */
function isConnectionFailure(err: unknown): err is SessionRegistryError {
  return (
    err instanceof SessionRegistryError &&
    err.reason === "" &&
    (err.code === status.UNAVAILABLE || err.code === status.DEADLINE_EXCEEDED) &&
    isGrpcJsText(err.details) &&
    // These say it all already; a probe would only find them again.
    !/ECONNREFUSED|Name resolution failed|ENOTFOUND|EAI_AGAIN/.test(err.details)
  );
}

/** Whether a status message is grpc-js's (or Node's, or OpenSSL's, through it) rather than a server's. */
function isGrpcJsText(details: string): boolean {
  return /No connection established|Failed to connect|Connection dropped|Name resolution failed|Last error|SSL routines|:error:[0-9A-F]+:|\bE(CONN[A-Z]+|HOSTUNREACH|NETUNREACH|TIMEDOUT|NOTFOUND|AI_AGAIN|PIPE)\b|Deadline exceeded|Received RST_STREAM|Stream refused|GOAWAY|Call cancelled|certificate|altnames|Response message parsing error|Protocol error/i.test(
    details,
  );
}

/**
 * What went wrong with the connection, from grpc-js's message ("No
 * connection established. Last error: Error: connect ECONNREFUSED
 * 127.0.0.1:1. Resolution note: "), in words and with what to do.
 */
function connectionProblem(details: string): string {
  if (/ECONNREFUSED/.test(details))
    return "nothing listens there (connection refused); is the daemon running (session-registry serve)? Else check --addr";
  if (/Name resolution failed|ENOTFOUND|EAI_AGAIN/.test(details)) return "its host name does not resolve; check --addr";
  if (/EHOSTUNREACH|ENETUNREACH/.test(details)) return "no route to its host; check --addr";
  if (/ETIMEDOUT/.test(details)) return "connecting timed out; check --addr and the network";
  if (/SSL routines|:error:[0-9A-F]+:|certificate|altnames|handshake/i.test(details)) {
    return "the TLS handshake failed; check --tls, --tls-ca, --tls-cert and --tls-key against the daemon's TLS flags";
  }
  if (/ECONNRESET|EPIPE|Connection dropped|GOAWAY|RST_STREAM/i.test(details)) return "the connection was closed";
  return "the connection failed";
}
