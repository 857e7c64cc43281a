"""Typed errors of the SDK, as in the TypeScript SDK's errors.ts.

The daemon puts a google.rpc.Status in the ``grpc-status-details-bin``
trailer of every failure, carrying one ErrorInfo whose ``reason`` names the
failure (see the table at the top of the proto). ``from_rpc_error`` turns a
``grpc.RpcError`` into the subclass for that reason, so callers can write
``except SessionLimitReachedError as e: e.max`` instead of parsing messages.
"""

import grpc

from google.rpc import error_details_pb2, status_pb2

#: The trailer that carries the encoded google.rpc.Status.
STATUS_DETAILS_KEY = "grpc-status-details-bin"

#: The ErrorInfo domain of every error the registry reports.
ERROR_DOMAIN = "sessionregistry.v1"


class ErrorReason:
    """The ErrorInfo reasons the registry reports; part of the wire contract."""
    INVALID_ARGUMENT = "INVALID_ARGUMENT"
    TABLE_NOT_FOUND = "TABLE_NOT_FOUND"
    TABLE_EXISTS = "TABLE_EXISTS"
    TABLE_NOT_EMPTY = "TABLE_NOT_EMPTY"
    TABLE_LIMIT_REACHED = "TABLE_LIMIT_REACHED"
    SESSION_NOT_FOUND = "SESSION_NOT_FOUND"
    SESSION_EXISTS = "SESSION_EXISTS"
    SESSION_LIMIT_REACHED = "SESSION_LIMIT_REACHED"
    PROJECT_ALREADY_OPEN = "PROJECT_ALREADY_OPEN"
    REVISION_MISMATCH = "REVISION_MISMATCH"
    REVISION_COMPACTED = "REVISION_COMPACTED"
    TABLE_UID_MISMATCH = "TABLE_UID_MISMATCH"
    FUTURE_REVISION = "FUTURE_REVISION"
    WATCHER_TOO_SLOW = "WATCHER_TOO_SLOW"
    WATCHER_LIMIT_REACHED = "WATCHER_LIMIT_REACHED"
    MEMORY_BUDGET_REACHED = "MEMORY_BUDGET_REACHED"
    SHUTTING_DOWN = "SHUTTING_DOWN"
    STORE_UNAVAILABLE = "STORE_UNAVAILABLE"
    UNAUTHENTICATED = "UNAUTHENTICATED"
    PERMISSION_DENIED = "PERMISSION_DENIED"
    INTERNAL = "INTERNAL"


def _to_int(value):
    """Metadata values are decimal strings; a missing or malformed one is None, not a misleading 0."""
    try:
        return int(value)
    except (TypeError, ValueError):
        return None


class SessionRegistryError(Exception):
    """Base class of every error the client raises.

    Transport failures (UNAVAILABLE, DEADLINE_EXCEEDED, ...) and unknown
    reasons are instances of this class itself, with the gRPC code and an
    empty (or the unknown) reason.

    Attributes:
        code: the ``grpc.StatusCode``.
        reason: ErrorInfo.reason, e.g. ``SESSION_LIMIT_REACHED``; "" if none.
        domain: ErrorInfo.domain; ``sessionregistry.v1`` for the daemon's errors.
        metadata: ErrorInfo.metadata as a dict (e.g. ``table``, ``session_id``).
        details: the gRPC status message, meant for humans.
        field_violations: ``(field, description)`` pairs from google.rpc.BadRequest.
        cause: the ``grpc.RpcError`` this error was made from, if any.
    """

    def __init__(self, code, details, *, reason="", domain="", metadata=None, field_violations=None, cause=None):
        self.code = code
        self.cause = cause
        self.details = details
        self.reason = reason
        self.domain = domain
        self.metadata = dict(metadata or {})
        self.field_violations = list(field_violations or [])
        name = code.name if isinstance(code, grpc.StatusCode) else "code %s" % (code,)
        super().__init__("%s: %s" % (name, details))


class InvalidArgumentError(SessionRegistryError):
    """INVALID_ARGUMENT: the request broke a rule; ``field_violations`` names each bad field."""


class TableNotFoundError(SessionRegistryError):
    """NOT_FOUND: the table does not exist."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.table = self.metadata.get("table", "")


class TableExistsError(SessionRegistryError):
    """ALREADY_EXISTS: the table exists with a different ``max_sessions`` (the existing one's)."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.table = self.metadata.get("table", "")
        self.max_sessions = _to_int(self.metadata.get("max_sessions"))


class TableNotEmptyError(SessionRegistryError):
    """FAILED_PRECONDITION: the table still holds sessions and ``force`` was not set."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.table = self.metadata.get("table", "")
        self.session_count = _to_int(self.metadata.get("session_count"))


class TableLimitReachedError(SessionRegistryError):
    """RESOURCE_EXHAUSTED: the daemon holds as many tables as it allows."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.current = _to_int(self.metadata.get("current"))
        self.max = _to_int(self.metadata.get("max"))


class UnauthenticatedError(SessionRegistryError):
    """UNAUTHENTICATED: no token, or one the daemon does not know."""


class PermissionDeniedError(SessionRegistryError):
    """PERMISSION_DENIED: the token's role or tables do not cover this call."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.method = self.metadata.get("method", "")
        self.role = self.metadata.get("role", "")
        self.table = self.metadata.get("table", "")


class SessionNotFoundError(SessionRegistryError):
    """NOT_FOUND: no session matches the id (or lookup key). Exactly one of
    ``session_id``, ``project_path`` and ``session_name`` is set: the key looked for."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.table = self.metadata.get("table", "")
        self.session_id = self.metadata.get("session_id", "")
        self.project_path = self.metadata.get("project_path", "")
        self.session_name = self.metadata.get("name", "")


class SessionExistsError(SessionRegistryError):
    """ALREADY_EXISTS: a session with this id is already in the table."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.table = self.metadata.get("table", "")
        self.session_id = self.metadata.get("session_id", "")


class SessionLimitReachedError(SessionRegistryError):
    """RESOURCE_EXHAUSTED: the table holds ``max`` sessions already."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.table = self.metadata.get("table", "")
        self.current = _to_int(self.metadata.get("current"))
        self.max = _to_int(self.metadata.get("max"))


class ProjectAlreadyOpenError(SessionRegistryError):
    """ALREADY_EXISTS: another session (``session_id``) holds this project path."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.table = self.metadata.get("table", "")
        self.session_id = self.metadata.get("session_id", "")
        self.project_path = self.metadata.get("project_path", "")


class RevisionMismatchError(SessionRegistryError):
    """ABORTED: ``expected_revision`` did not match; re-read the session and retry."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.table = self.metadata.get("table", "")
        self.session_id = self.metadata.get("session_id", "")
        self.current_revision = _to_int(self.metadata.get("current_revision"))


class RevisionCompactedError(SessionRegistryError):
    """OUT_OF_RANGE: the watch start is older than the retained history."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.table = self.metadata.get("table", "")
        self.compact_revision = _to_int(self.metadata.get("compact_revision"))


class HistoryChangedError(SessionRegistryError):
    """The position sent belongs to another history of the table than the one
    it has now (the daemon restarted with the memory store, the table was
    made again, or the etcd data was wiped): read the table again (watch
    from 0, list from the first page). ``table_uid`` and
    ``current_revision`` are the table's now."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.table = self.metadata.get("table", "")
        self.table_uid = self.metadata.get("table_uid", "")
        self.current_revision = _to_int(self.metadata.get("current_revision"))


class TableUidMismatchError(HistoryChangedError):
    """ABORTED: a watch start, an etag (update, remove) or a page token sent with a ``table_uid`` of another history."""


class FutureRevisionError(HistoryChangedError):
    """OUT_OF_RANGE: a watch start (sent without ``table_uid``) past the table's revision + 1: from another history."""


class WatcherTooSlowError(SessionRegistryError):
    """RESOURCE_EXHAUSTED: the watcher fell too far behind; watch again from ``resume_revision``."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.table = self.metadata.get("table", "")
        self.resume_revision = _to_int(self.metadata.get("resume_revision"))


class WatcherLimitReachedError(SessionRegistryError):
    """RESOURCE_EXHAUSTED: the daemon has as many watches open as it allows; retry later."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.current = _to_int(self.metadata.get("current"))
        self.max = _to_int(self.metadata.get("max"))


class MemoryBudgetReachedError(SessionRegistryError):
    """RESOURCE_EXHAUSTED: the daemon's sessions fill their share of its memory budget; the write changed nothing."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.used_bytes = _to_int(self.metadata.get("used_bytes"))
        self.budget_bytes = _to_int(self.metadata.get("budget_bytes"))


class StoreUnavailableError(SessionRegistryError):
    """UNAVAILABLE: the daemon is up, but its store (etcd) cannot serve now; a
    write may or may not have been applied (retry with the same request_id)."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.store = self.metadata.get("store", "")
        self.endpoints = self.metadata.get("endpoints", "")


_CLASS_BY_REASON = {
    "INVALID_ARGUMENT": InvalidArgumentError,
    "TABLE_NOT_FOUND": TableNotFoundError,
    "TABLE_EXISTS": TableExistsError,
    "TABLE_NOT_EMPTY": TableNotEmptyError,
    "TABLE_LIMIT_REACHED": TableLimitReachedError,
    "SESSION_NOT_FOUND": SessionNotFoundError,
    "SESSION_EXISTS": SessionExistsError,
    "SESSION_LIMIT_REACHED": SessionLimitReachedError,
    "PROJECT_ALREADY_OPEN": ProjectAlreadyOpenError,
    "REVISION_MISMATCH": RevisionMismatchError,
    "REVISION_COMPACTED": RevisionCompactedError,
    "TABLE_UID_MISMATCH": TableUidMismatchError,
    "FUTURE_REVISION": FutureRevisionError,
    "WATCHER_TOO_SLOW": WatcherTooSlowError,
    "WATCHER_LIMIT_REACHED": WatcherLimitReachedError,
    "MEMORY_BUDGET_REACHED": MemoryBudgetReachedError,
    "STORE_UNAVAILABLE": StoreUnavailableError,
    "UNAUTHENTICATED": UnauthenticatedError,
    "PERMISSION_DENIED": PermissionDeniedError,
}


def _call(obj, name, default=None):
    try:
        fn = getattr(obj, name, None)
        return fn() if callable(fn) else default
    except Exception:  # a half-built RpcError must not break error handling
        return default


def _decode_status_details(err):
    """All or nothing: a trailer that fails to decode anywhere is ignored entirely."""
    try:
        raw = None
        for key, value in _call(err, "trailing_metadata") or ():
            if key == STATUS_DETAILS_KEY:
                raw = value
                break
        if not isinstance(raw, (bytes, bytearray)):
            return {}
        decoded = {}
        violations = []
        for any_ in status_pb2.Status.FromString(bytes(raw)).details:
            if any_.Is(error_details_pb2.ErrorInfo.DESCRIPTOR) and "reason" not in decoded:
                info = error_details_pb2.ErrorInfo()
                if not any_.Unpack(info):
                    return {}
                decoded.update(reason=info.reason, domain=info.domain, metadata=dict(info.metadata))
            elif any_.Is(error_details_pb2.BadRequest.DESCRIPTOR):
                bad = error_details_pb2.BadRequest()
                if not any_.Unpack(bad):
                    return {}
                violations.extend((v.field, v.description) for v in bad.field_violations)
        if violations:
            decoded["field_violations"] = violations
        return decoded
    except Exception:
        return {}


def from_rpc_error(err):
    """Converts a ``grpc.RpcError`` into a SessionRegistryError (or the subclass
    its ErrorInfo reason names). Never raises: a missing or undecodable trailer
    gives the base class with the gRPC code."""
    code = _call(err, "code")
    if not isinstance(code, grpc.StatusCode):
        code = grpc.StatusCode.UNKNOWN
    details = _call(err, "details")
    if not isinstance(details, str):
        details = str(err)
    decoded = _decode_status_details(err)
    cls = _CLASS_BY_REASON.get(decoded.get("reason", ""), SessionRegistryError)
    return cls(code, details, cause=err, **decoded)
