"""Watch and WatchTables as blocking iterators: a table's snapshot and
change events, and every table with its count (mirrors
clients/typescript/src/watch.ts, tables-watch.ts and resuming.ts).

Back-pressure: grpcio asks the transport for the next message only when the
iterator is advanced, so messages the consumer has not taken wait in the
HTTP/2 stream's receive window, not in a Python queue. Once that window is
full the daemon stops sending, its own per-watcher queue (``--watch-queue``)
fills, and it ends the call with WATCHER_TOO_SLOW and ``resume_revision``;
everything before that revision is still delivered first. A slow consumer
therefore costs this process at most one window of memory.
"""
import random
import threading
from dataclasses import dataclass, field
from typing import List, Optional

import grpc

from sessionregistry.v1 import session_registry_pb2 as pb

from .errors import (HistoryChangedError, RevisionCompactedError, SessionRegistryError, WatcherLimitReachedError,
                     WatcherTooSlowError, from_rpc_error)

#: Codes after which a reconnect may succeed; anything else is raised even with auto_resume.
TRANSIENT = frozenset((grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.CANCELLED, grpc.StatusCode.INTERNAL,
                       grpc.StatusCode.UNKNOWN, grpc.StatusCode.DEADLINE_EXCEEDED, grpc.StatusCode.ABORTED))

#: Pause before a reconnect, in seconds: doubled from the first up to the
#: second, with "equal jitter" (half fixed, half random).
DEFAULT_BACKOFF = {"initial": 0.1, "max": 5.0}


@dataclass
class WatchItem:
    """One item: ``kind`` is "snapshot" (``sessions``, ``resync``) or
    "event" (``type``: "REGISTERED", "UPDATED", "REMOVED" or "EXPIRED", and
    ``session``, for REMOVED/EXPIRED its last state); ``revision`` is the
    table revision of the snapshot or change, ``table_uid`` the history it
    belongs to. A snapshot with ``resync`` replaces everything held before."""
    kind: str
    revision: int
    table_uid: str = ""
    sessions: List[pb.Session] = field(default_factory=list)
    resync: bool = False
    type: Optional[str] = None
    session: Optional[pb.Session] = None


def _recovery(err):
    # The position is gone from the history, or belongs to another one: only a new snapshot is the truth.
    if isinstance(err, (RevisionCompactedError, HistoryChangedError)):
        return "resync"
    if isinstance(err, WatcherTooSlowError):
        # Everything before resume_revision was delivered before the status,
        # so the consumer's own position is that revision: carry on from it.
        # Should it be compacted by then, the next call resyncs.
        return "retry"
    return "retry" if _transient(err) else "raise"


def _transient(err):
    """Whether a new call may succeed where this one failed, for a stream with no position to lose."""
    if err.code == grpc.StatusCode.RESOURCE_EXHAUSTED:
        # The watcher limit is worth waiting out (other watchers end); any
        # other exhaustion would fail the same way on every reconnect.
        return isinstance(err, WatcherLimitReachedError)
    return err.code in TRANSIENT


def _item(message, resync):
    kind = message.WhichOneof("kind")
    if kind == "snapshot":
        return WatchItem("snapshot", message.revision, message.table_uid, sessions=list(message.snapshot.sessions),
                         resync=resync)
    if kind == "event":
        if not message.event.HasField("session"):
            raise SessionRegistryError(grpc.StatusCode.INTERNAL, "watch event is missing session")
        name = pb.EventType.Name(message.event.type).replace("EVENT_TYPE_", "", 1)
        return WatchItem("event", message.revision, message.table_uid, type=name, session=message.event.session)
    return None  # a kind this SDK version does not know


def _backoff_options(backoff):
    o = dict(DEFAULT_BACKOFF)
    if backoff is not None:
        unknown = set(backoff) - set(o)
        if unknown:
            raise TypeError("unknown backoff options: %s" % sorted(unknown))
        o.update(backoff)
    for key, v in o.items():
        if isinstance(v, bool) or not isinstance(v, (int, float)) or not v > 0:
            raise ValueError("backoff[%r] must be a positive number of seconds; got %r" % (key, v))
    o["max"] = max(o["max"], o["initial"])
    return o


class _ResumingStream:
    """One server-streaming call at a time, and with ``auto_resume`` the next
    one opened after a backoff, so that a consumer iterates one feed across
    reconnects. Subclasses say how a call is opened (``_request``,
    ``_method``), what a message yields (``_accept``) and which failures are
    worth a new call (``_recover``). ``close()`` (from any thread) cancels
    the call and ends the iteration cleanly; so does closing the client.
    ``last_error`` is the last error auto_resume recovered from (None if
    none). Also a context manager."""

    def __init__(self, client, auto_resume, backoff):
        self._client = client
        self._auto_resume = auto_resume
        self._backoff = _backoff_options(backoff)
        self._stopped = threading.Event()
        self._call = None
        self._lock = threading.Lock()
        self.last_error = None
        self._gen = self._run()

    def __iter__(self):
        return self

    def __next__(self):
        return next(self._gen)

    def close(self):
        self._stopped.set()
        with self._lock:
            call = self._call
        if call is not None:
            call.cancel()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()
        return False

    def _open(self):
        if self._client._closed:
            raise SessionRegistryError(grpc.StatusCode.CANCELLED, "the client is closed")
        try:
            call = self._method()(self._request(), metadata=self._client._metadata)
        except ValueError as e:
            raise SessionRegistryError(grpc.StatusCode.CANCELLED, "the client is closed") from e
        with self._lock:
            self._call = call
        if self._stopped.is_set():
            call.cancel()
        return call

    def _run(self):
        attempt = 0
        while not self._stopped.is_set():
            try:
                call = self._open()
            except SessionRegistryError:
                if self._stopped.is_set():
                    return
                raise
            failure = None
            try:
                for message in call:
                    if self._stopped.is_set():
                        return
                    item = self._accept(message)
                    if item is None:
                        continue
                    attempt = 0
                    yield item
                    if self._stopped.is_set():
                        return
            except grpc.RpcError as e:
                if self._stopped.is_set():
                    return
                failure = from_rpc_error(e)
            finally:
                call.cancel()
                with self._lock:
                    self._call = None
            if not self._auto_resume:
                if failure is not None:
                    raise failure
                return  # the server ended the stream with OK
            if failure is not None:
                if not self._recover(failure):
                    raise failure
                self.last_error = failure
            step = min(self._backoff["max"], self._backoff["initial"] * 2 ** min(attempt, 30))
            attempt += 1
            self._stopped.wait(step / 2 + random.random() * step / 2)


class WatchStream(_ResumingStream):
    """Iterate it for :class:`WatchItem` s (blocking). ``last_revision`` is
    the revision of the last item yielded (0 before any) and ``table_uid``
    the history it belongs to (the ``table_uid`` passed, or "", before any):
    keep both to resume later. See :class:`_ResumingStream` for ``close()``,
    ``last_error`` and the context manager."""

    def __init__(self, client, table, start_revision, auto_resume, backoff=None, table_uid=""):
        self._table = table
        # Where the next call starts: the first start until an item is yielded, then last_revision + 1; 0 to resync.
        self._next_start = start_revision
        self._resync_pending = False
        self.table_uid = table_uid
        self.last_revision = 0
        super().__init__(client, auto_resume, backoff)

    def _method(self):
        return self._client._stub.Watch

    def _request(self):
        start = self._next_start
        return pb.WatchRequest(table=self._table, start_revision=start, table_uid=self.table_uid if start > 0 else "")

    def _accept(self, message):
        item = _item(message, self._resync_pending)
        if item is not None:
            self._resync_pending = False
            self._next_start = item.revision + 1
            self.last_revision = item.revision
            self.table_uid = item.table_uid
        return item

    def _recover(self, failure):
        action = _recovery(failure)
        if action == "resync":
            self._resync_pending, self._next_start = True, 0
        return action != "raise"


@dataclass
class TablesUpdate:
    """One item of a tables watch: ``tables``, every table now in name order;
    ``changed``, the tables this update created or changed (on a snapshot,
    all); ``deleted``, the names of the tables it deleted; ``snapshot``, True
    for the first item and (auto_resume) the first after a reconnect, which
    replaces everything held before."""
    tables: List[pb.Table]
    changed: List[pb.Table]
    deleted: List[str]
    snapshot: bool


class TablesWatchStream(_ResumingStream):
    """Iterate it for :class:`TablesUpdate` s (blocking): every table with its
    session count, kept current. With ``auto_resume`` a dropped call is
    opened again and its snapshot lists the tables gone meanwhile in
    ``deleted``. See :class:`_ResumingStream` for ``close()``, ``last_error``
    and the context manager."""

    def __init__(self, client, auto_resume, backoff=None):
        self._held = {}
        super().__init__(client, auto_resume, backoff)

    def _method(self):
        return self._client._stub.WatchTables

    def _request(self):
        return pb.WatchTablesRequest()

    def _accept(self, message):
        if message.snapshot:
            listed = {t.name for t in message.tables}
            deleted = [name for name in self._held if name not in listed]
            self._held = {}
        else:
            deleted = list(message.deleted_tables)
        for name in deleted:
            self._held.pop(name, None)
        for table in message.tables:
            self._held[table.name] = table
        tables = [self._held[name] for name in sorted(self._held)]
        return TablesUpdate(tables=tables, changed=list(message.tables), deleted=deleted, snapshot=message.snapshot)

    def _recover(self, failure):
        return _transient(failure)
