"""Python client of session-registry (see ../README.md).

The stubs in ``gen/`` are protoc's Python output, which imports its
dependencies absolutely (``from sessionregistry.v1 import ...``,
``from google.rpc import ...``), so ``gen/`` itself must be on ``sys.path``
before they are imported. This package puts it there on import; callers then
``from session_registry import SessionRegistryClient`` and need no path setup.
"""
import os as _os
import sys as _sys

_GEN = _os.path.join(_os.path.dirname(_os.path.abspath(__file__)), "gen")
if _GEN not in _sys.path:
    _sys.path.insert(0, _GEN)

from .errors import (  # noqa: E402
    ERROR_DOMAIN,
    ErrorReason,
    FutureRevisionError,
    HistoryChangedError,
    InvalidArgumentError,
    PermissionDeniedError,
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
    TableUidMismatchError,
    UnauthenticatedError,
    WatcherLimitReachedError,
    MemoryBudgetReachedError,
    StoreUnavailableError,
    WatcherTooSlowError,
    from_rpc_error,
)
from .client import SessionRegistryClient  # noqa: E402
from .lease import SessionLease  # noqa: E402
from .watch import TablesUpdate, TablesWatchStream, WatchItem, WatchStream  # noqa: E402
from sessionregistry.v1 import session_registry_pb2 as pb  # noqa: E402

__all__ = [
    "ERROR_DOMAIN",
    "ErrorReason",
    "FutureRevisionError",
    "HistoryChangedError",
    "InvalidArgumentError",
    "PermissionDeniedError",
    "ProjectAlreadyOpenError",
    "RevisionCompactedError",
    "RevisionMismatchError",
    "SessionExistsError",
    "SessionLimitReachedError",
    "SessionLease",
    "SessionNotFoundError",
    "SessionRegistryClient",
    "SessionRegistryError",
    "TableExistsError",
    "TableLimitReachedError",
    "TableNotEmptyError",
    "TableNotFoundError",
    "TableUidMismatchError",
    "UnauthenticatedError",
    "WatchItem",
    "TablesUpdate",
    "TablesWatchStream",
    "WatchStream",
    "WatcherLimitReachedError",
    "MemoryBudgetReachedError",
    "StoreUnavailableError",
    "WatcherTooSlowError",
    "from_rpc_error",
    "pb",
]
