// Typed errors of the client. The daemon puts a google.rpc.Status in the
// grpc-status-details-bin trailer of every failure, carrying one ErrorInfo
// whose reason names the failure (see the table at the top of the proto).
// FromError turns a gRPC error into the type for that reason, so callers
// write errors.As(err, &limit) and read limit.Max instead of parsing text.

package sessionregistry

import (
	"errors"
	"strconv"

	"google.golang.org/genproto/googleapis/rpc/errdetails"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

// ErrorDomain is the ErrorInfo domain of every error the registry reports.
const ErrorDomain = "sessionregistry.v1"

// The ErrorInfo reasons the registry reports; part of the wire contract.
const (
	ReasonInvalidArgument     = "INVALID_ARGUMENT"
	ReasonTableNotFound       = "TABLE_NOT_FOUND"
	ReasonTableExists         = "TABLE_EXISTS"
	ReasonTableNotEmpty       = "TABLE_NOT_EMPTY"
	ReasonTableLimitReached   = "TABLE_LIMIT_REACHED"
	ReasonSessionNotFound     = "SESSION_NOT_FOUND"
	ReasonSessionExists       = "SESSION_EXISTS"
	ReasonSessionLimitReached = "SESSION_LIMIT_REACHED"
	ReasonProjectAlreadyOpen  = "PROJECT_ALREADY_OPEN"
	ReasonRevisionMismatch    = "REVISION_MISMATCH"
	ReasonRevisionCompacted   = "REVISION_COMPACTED"
	ReasonTableUIDMismatch    = "TABLE_UID_MISMATCH"
	ReasonFutureRevision      = "FUTURE_REVISION"
	ReasonWatcherTooSlow      = "WATCHER_TOO_SLOW"
	ReasonWatcherLimitReached = "WATCHER_LIMIT_REACHED"
	ReasonMemoryBudgetReached = "MEMORY_BUDGET_REACHED"
	ReasonShuttingDown        = "SHUTTING_DOWN"
	ReasonStoreUnavailable    = "STORE_UNAVAILABLE"
	ReasonUnauthenticated     = "UNAUTHENTICATED"
	ReasonPermissionDenied    = "PERMISSION_DENIED"
	ReasonInternal            = "INTERNAL"
)

// Reasons returns every ErrorInfo reason the registry reports (a new slice).
func Reasons() []string {
	return []string{
		ReasonInvalidArgument, ReasonTableNotFound, ReasonTableExists, ReasonTableNotEmpty,
		ReasonTableLimitReached, ReasonSessionNotFound, ReasonSessionExists, ReasonSessionLimitReached,
		ReasonProjectAlreadyOpen, ReasonRevisionMismatch, ReasonRevisionCompacted, ReasonTableUIDMismatch,
		ReasonFutureRevision, ReasonWatcherTooSlow, ReasonWatcherLimitReached, ReasonMemoryBudgetReached,
		ReasonShuttingDown, ReasonStoreUnavailable, ReasonUnauthenticated, ReasonPermissionDenied,
		ReasonInternal,
	}
}

// FieldViolation is one bad field of a request; Field is the proto's
// snake_case path, e.g. "session.project_path".
type FieldViolation struct {
	Field       string
	Description string
}

// Error is every error the client returns for a failed call, and the base
// of the typed ones: errors.As(err, &e) with e an *Error works for all of
// them. Transport failures (UNAVAILABLE, DEADLINE_EXCEEDED, ...) and
// unknown reasons are an *Error itself, with the gRPC code and an empty
// (or the unknown) reason. status.Code(err) reads its code too.
type Error struct {
	// Code is the gRPC status code.
	Code codes.Code
	// Message is the gRPC status message, meant for humans.
	Message string
	// Reason is ErrorInfo.reason, e.g. "SESSION_LIMIT_REACHED"; "" if the server sent none.
	Reason string
	// Domain is ErrorInfo.domain; ErrorDomain for errors from the daemon.
	Domain string
	// Metadata is ErrorInfo.metadata (e.g. "table", "session_id"); never nil.
	// The typed errors expose the useful keys as fields.
	Metadata map[string]string
	// FieldViolations come from google.rpc.BadRequest; empty unless the request was invalid.
	FieldViolations []FieldViolation

	cause error
}

// Error reads "CODE_NAME: message", as the other SDKs print their errors.
func (e *Error) Error() string {
	return codeName(e.Code) + ": " + e.Message
}

// Unwrap returns the gRPC error this one was made from, if any.
func (e *Error) Unwrap() error { return e.cause }

// GRPCStatus makes status.FromError and status.Code see the call's status.
func (e *Error) GRPCStatus() *status.Status {
	if e.cause != nil {
		if s, ok := status.FromError(e.cause); ok {
			return s
		}
	}
	return status.New(e.Code, e.Message)
}

// base is *Error under another name, so that the typed errors embed it
// (its fields and methods promoted) without a field named Error, which
// would hide the Error method.
type base = Error

// InvalidArgumentError is INVALID_ARGUMENT: the request broke a rule;
// FieldViolations names each bad field. Like every typed error it embeds
// *Error: Code, Message, Reason, Metadata and the rest read through it.
type InvalidArgumentError struct{ *base }

// TableNotFoundError is NOT_FOUND: the table does not exist.
type TableNotFoundError struct {
	*base
	Table string
}

// TableExistsError is ALREADY_EXISTS: the table exists with a different limit, MaxSessions.
type TableExistsError struct {
	*base
	Table       string
	MaxSessions int64
}

// TableNotEmptyError is FAILED_PRECONDITION: the table still holds sessions and force was not set.
type TableNotEmptyError struct {
	*base
	Table        string
	SessionCount int64
}

// TableLimitReachedError is RESOURCE_EXHAUSTED: the daemon holds as many tables as it allows.
type TableLimitReachedError struct {
	*base
	Current, Max int64
}

// UnauthenticatedError is UNAUTHENTICATED: no token, or one the daemon does not know.
type UnauthenticatedError struct{ *base }

// PermissionDeniedError is PERMISSION_DENIED: the token's role or tables do not cover this call.
type PermissionDeniedError struct {
	*base
	// Method is the RPC refused, e.g. "Register".
	Method string
	// Role is the token's role: read, write or admin.
	Role string
	// Table is the table refused; empty when the role was refused or the call names none.
	Table string
}

// SessionNotFoundError is NOT_FOUND: no session matches the id (or lookup
// key). Exactly one of SessionID, ProjectPath and SessionName is set: the
// key looked for.
type SessionNotFoundError struct {
	*base
	Table       string
	SessionID   string
	ProjectPath string
	SessionName string
}

// SessionExistsError is ALREADY_EXISTS: a session with this id is already in the table.
type SessionExistsError struct {
	*base
	Table     string
	SessionID string
}

// SessionLimitReachedError is RESOURCE_EXHAUSTED: the table holds Max sessions already.
type SessionLimitReachedError struct {
	*base
	Table        string
	Current, Max int64
}

// ProjectAlreadyOpenError is ALREADY_EXISTS: another session (SessionID) holds this project path.
type ProjectAlreadyOpenError struct {
	*base
	Table       string
	SessionID   string
	ProjectPath string
}

// RevisionMismatchError is ABORTED: ExpectedRevision did not match; re-read the session and retry.
type RevisionMismatchError struct {
	*base
	Table     string
	SessionID string
	// CurrentRevision is the session's revision now.
	CurrentRevision int64
}

// RevisionCompactedError is OUT_OF_RANGE: the watch start is older than the retained history.
type RevisionCompactedError struct {
	*base
	Table string
	// CompactRevision is the oldest start revision still served.
	CompactRevision int64
}

// HistoryChangedError is the base of TableUIDMismatchError and
// FutureRevisionError: the position sent belongs to another history of the
// table than the one it has now (the daemon restarted with the memory
// store, the table was made again, or the etcd data was wiped). Read the
// table again (watch from 0, list from the first page). TableUID and
// CurrentRevision are the table's now.
type HistoryChangedError struct {
	*base
	Table           string
	TableUID        string
	CurrentRevision int64
}

// TableUIDMismatchError is ABORTED: a watch start, an etag (Update,
// Remove) or a page token sent with a table_uid of another history.
type TableUIDMismatchError struct{ *HistoryChangedError }

// FutureRevisionError is OUT_OF_RANGE: a watch start (sent without a
// table_uid) past the table's revision + 1, so from another history.
type FutureRevisionError struct{ *HistoryChangedError }

// WatcherTooSlowError is RESOURCE_EXHAUSTED: the watcher fell too far
// behind; watch again from ResumeRevision.
type WatcherTooSlowError struct {
	*base
	Table          string
	ResumeRevision int64
}

// WatcherLimitReachedError is RESOURCE_EXHAUSTED: the daemon has as many
// watches open as it allows; retry later.
type WatcherLimitReachedError struct {
	*base
	Current, Max int64
}

// MemoryBudgetReachedError is RESOURCE_EXHAUSTED: the daemon's sessions fill
// their share of its memory budget; the write changed nothing.
type MemoryBudgetReachedError struct {
	*base
	UsedBytes, BudgetBytes int64
}

// StoreUnavailableError is UNAVAILABLE: the daemon is up, but its store
// (etcd) cannot serve now; a write may or may not have been applied (retry
// with the same request id).
type StoreUnavailableError struct {
	*base
	// Store is the store's kind, e.g. "etcd".
	Store string
	// Endpoints are the store's endpoints, comma-separated.
	Endpoints string
}

// Each typed error unwraps to its *Error (a TableUIDMismatchError and a
// FutureRevisionError to their *HistoryChangedError first), so errors.As
// finds every level.
func (e *InvalidArgumentError) Unwrap() error     { return e.base }
func (e *TableNotFoundError) Unwrap() error       { return e.base }
func (e *TableExistsError) Unwrap() error         { return e.base }
func (e *TableNotEmptyError) Unwrap() error       { return e.base }
func (e *TableLimitReachedError) Unwrap() error   { return e.base }
func (e *UnauthenticatedError) Unwrap() error     { return e.base }
func (e *PermissionDeniedError) Unwrap() error    { return e.base }
func (e *SessionNotFoundError) Unwrap() error     { return e.base }
func (e *SessionExistsError) Unwrap() error       { return e.base }
func (e *SessionLimitReachedError) Unwrap() error { return e.base }
func (e *ProjectAlreadyOpenError) Unwrap() error  { return e.base }
func (e *RevisionMismatchError) Unwrap() error    { return e.base }
func (e *RevisionCompactedError) Unwrap() error   { return e.base }
func (e *HistoryChangedError) Unwrap() error      { return e.base }
func (e *TableUIDMismatchError) Unwrap() error    { return e.HistoryChangedError }
func (e *FutureRevisionError) Unwrap() error      { return e.HistoryChangedError }
func (e *WatcherTooSlowError) Unwrap() error      { return e.base }
func (e *WatcherLimitReachedError) Unwrap() error { return e.base }
func (e *MemoryBudgetReachedError) Unwrap() error { return e.base }
func (e *StoreUnavailableError) Unwrap() error    { return e.base }

// typed makes the error type of each reason the other SDKs type too;
// SHUTTING_DOWN and INTERNAL stay an *Error.
var typed = map[string]func(e *Error) error{
	ReasonInvalidArgument: func(e *Error) error { return &InvalidArgumentError{e} },
	ReasonTableNotFound:   func(e *Error) error { return &TableNotFoundError{e, e.Metadata["table"]} },
	ReasonTableExists: func(e *Error) error {
		return &TableExistsError{e, e.Metadata["table"], e.number("max_sessions")}
	},
	ReasonTableNotEmpty: func(e *Error) error {
		return &TableNotEmptyError{e, e.Metadata["table"], e.number("session_count")}
	},
	ReasonTableLimitReached: func(e *Error) error {
		return &TableLimitReachedError{e, e.number("current"), e.number("max")}
	},
	ReasonUnauthenticated: func(e *Error) error { return &UnauthenticatedError{e} },
	ReasonPermissionDenied: func(e *Error) error {
		return &PermissionDeniedError{e, e.Metadata["method"], e.Metadata["role"], e.Metadata["table"]}
	},
	ReasonSessionNotFound: func(e *Error) error {
		return &SessionNotFoundError{e, e.Metadata["table"], e.Metadata["session_id"], e.Metadata["project_path"], e.Metadata["name"]}
	},
	ReasonSessionExists: func(e *Error) error {
		return &SessionExistsError{e, e.Metadata["table"], e.Metadata["session_id"]}
	},
	ReasonSessionLimitReached: func(e *Error) error {
		return &SessionLimitReachedError{e, e.Metadata["table"], e.number("current"), e.number("max")}
	},
	ReasonProjectAlreadyOpen: func(e *Error) error {
		return &ProjectAlreadyOpenError{e, e.Metadata["table"], e.Metadata["session_id"], e.Metadata["project_path"]}
	},
	ReasonRevisionMismatch: func(e *Error) error {
		return &RevisionMismatchError{e, e.Metadata["table"], e.Metadata["session_id"], e.number("current_revision")}
	},
	ReasonRevisionCompacted: func(e *Error) error {
		return &RevisionCompactedError{e, e.Metadata["table"], e.number("compact_revision")}
	},
	ReasonTableUIDMismatch: func(e *Error) error { return &TableUIDMismatchError{historyChanged(e)} },
	ReasonFutureRevision:   func(e *Error) error { return &FutureRevisionError{historyChanged(e)} },
	ReasonWatcherTooSlow: func(e *Error) error {
		return &WatcherTooSlowError{e, e.Metadata["table"], e.number("resume_revision")}
	},
	ReasonWatcherLimitReached: func(e *Error) error {
		return &WatcherLimitReachedError{e, e.number("current"), e.number("max")}
	},
	ReasonMemoryBudgetReached: func(e *Error) error {
		return &MemoryBudgetReachedError{e, e.number("used_bytes"), e.number("budget_bytes")}
	},
	ReasonStoreUnavailable: func(e *Error) error {
		return &StoreUnavailableError{e, e.Metadata["store"], e.Metadata["endpoints"]}
	},
}

func historyChanged(e *Error) *HistoryChangedError {
	return &HistoryChangedError{e, e.Metadata["table"], e.Metadata["table_uid"], e.number("current_revision")}
}

// number reads a metadata value, a decimal string. A missing or malformed
// one is -1 rather than a misleading 0 (the daemon always sends them).
func (e *Error) number(key string) int64 {
	n, err := strconv.ParseInt(e.Metadata[key], 10, 64)
	if err != nil {
		return -1
	}
	return n
}

// FromError converts an error of a gRPC call into an *Error, or the typed
// error its ErrorInfo reason names. It returns nil for nil and an error
// that already is one as it is. Never panics: a missing or undecodable
// trailer gives an *Error with the gRPC code, and an error that carries no
// gRPC status gives code Unknown.
func FromError(err error) error {
	if err == nil {
		return nil
	}
	var done *Error
	if errors.As(err, &done) {
		return err
	}
	e := &Error{Code: codes.Unknown, Message: err.Error(), Metadata: map[string]string{}, cause: err}
	if s, ok := status.FromError(err); ok {
		e.Code, e.Message = s.Code(), s.Message()
		decodeDetails(e, s)
	}
	if wrap, ok := typed[e.Reason]; ok {
		return wrap(e)
	}
	return e
}

// decodeDetails fills the reason, domain, metadata and field violations.
// All or nothing: details that fail to decode anywhere are ignored
// entirely, so a corrupt BadRequest cannot yield a half-filled typed error.
func decodeDetails(e *Error, s *status.Status) {
	var info *errdetails.ErrorInfo
	var violations []FieldViolation
	for _, d := range s.Details() {
		switch d := d.(type) {
		case error: // a detail status.Details could not decode
			return
		case *errdetails.ErrorInfo:
			if info == nil {
				info = d
			}
		case *errdetails.BadRequest:
			for _, v := range d.GetFieldViolations() {
				violations = append(violations, FieldViolation{v.GetField(), v.GetDescription()})
			}
		}
	}
	if info != nil {
		e.Reason, e.Domain = info.GetReason(), info.GetDomain()
		for k, v := range info.GetMetadata() {
			e.Metadata[k] = v
		}
	}
	e.FieldViolations = violations
}

// codeNames are the canonical names of the gRPC codes, as the other SDKs print them.
var codeNames = [...]string{
	"OK", "CANCELLED", "UNKNOWN", "INVALID_ARGUMENT", "DEADLINE_EXCEEDED", "NOT_FOUND",
	"ALREADY_EXISTS", "PERMISSION_DENIED", "RESOURCE_EXHAUSTED", "FAILED_PRECONDITION",
	"ABORTED", "OUT_OF_RANGE", "UNIMPLEMENTED", "INTERNAL", "UNAVAILABLE", "DATA_LOSS",
	"UNAUTHENTICATED",
}

func codeName(c codes.Code) string {
	if int(c) < len(codeNames) {
		return codeNames[c]
	}
	return "code " + strconv.Itoa(int(c))
}

// closedError is what calls on a closed client return, as gRPC's own
// "client connection is closing" would, but typed.
func closedError() *Error {
	return &Error{Code: codes.Canceled, Message: "the client is closed", Metadata: map[string]string{}}
}
