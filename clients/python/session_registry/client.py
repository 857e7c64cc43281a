"""A thin, synchronous client over the generated grpcio stub, mirroring the
TypeScript SDK (clients/typescript/src/client.ts): a per-call deadline,
default metadata, keyword arguments instead of full request messages, and
typed errors (every failure raises a SessionRegistryError, see errors.py).
The messages it returns are the generated types (``pb.Session``,
``pb.Table``), so the proto's comments document them.
"""
import random
import threading
import time
import uuid
import weakref

import grpc

from google.protobuf import duration_pb2, field_mask_pb2
from sessionregistry.v1 import session_registry_pb2 as pb
from sessionregistry.v1 import session_registry_pb2_grpc as rpc

from .errors import SessionRegistryError, from_rpc_error
from .lease import SessionLease
from .watch import TablesWatchStream, WatchStream

DEFAULT_TIMEOUT = 10.0

#: How register, update and remove retry on UNAVAILABLE (as the TypeScript
#: SDK): attempts in all, the first pause in seconds (doubled before each
#: next one, with "equal jitter"), the longest pause.
DEFAULT_RETRY = {"max_attempts": 5, "initial_backoff": 0.2, "max_backoff": 2.0}

#: Field paths of UpdateRequest.update_mask, as on the wire.
UPDATE_PATHS = ("name", "project_path", "metadata", "ttl")


def _duration(seconds):
    """Seconds (int or float) as a Duration; None or 0 means no ttl."""
    if seconds is None or seconds == 0:
        return None
    d = duration_pb2.Duration()
    d.FromNanoseconds(int(round(seconds * 1e9)))
    return d


def _required(response, field):
    """The daemon always fills ``field``; a response without it is a broken
    server, reported as INTERNAL rather than as an empty message."""
    if not response.HasField(field):
        raise SessionRegistryError(grpc.StatusCode.INTERNAL, "response is missing %s" % field)
    return getattr(response, field)


def _session(*, id="", name="", project_path="", metadata=None, ttl=None):
    s = pb.Session(id=id or "", name=name or "", project_path=project_path or "")
    if metadata:
        s.metadata.update(dict(metadata))
    d = _duration(ttl)
    if d is not None:
        s.ttl.CopyFrom(d)
    return s


class SessionRegistryClient:
    """A client of one daemon.

    Args:
        address: ``host:port`` of the daemon.
        credentials: ``grpc.ChannelCredentials``; default insecure (plaintext),
            as for a daemon on localhost.
        timeout: deadline of each call in seconds; default 10; 0 or None means none.
        metadata: dict sent with every call (e.g. ``{"authorization": "Bearer ..."}``).
        options: gRPC channel options, passed to grpcio as is.
        retry: how register, update and remove retry on UNAVAILABLE: a dict
            with ``max_attempts`` (5), ``initial_backoff`` (0.2 s) and
            ``max_backoff`` (2 s); ``True`` for those defaults; ``False``
            turns retries off. All attempts of a call share one request_id
            (the caller's or a uuid4) and the call's one ``timeout``.

    Use it as a context manager, or call ``close()``. One client may be
    shared by any number of threads.
    """

    def __init__(self, address, *, credentials=None, timeout=DEFAULT_TIMEOUT, metadata=None, options=None, retry=True):
        self._retry = _retry_options(retry)
        self._metadata = tuple((str(k).lower(), str(v)) for k, v in (metadata or {}).items())
        self._timeout = timeout if timeout else None
        if credentials is None:
            self._channel = grpc.insecure_channel(address, options=options)
        else:
            self._channel = grpc.secure_channel(address, credentials, options=options)
        self._stub = rpc.SessionRegistryStub(self._channel)
        self._closed = False
        # What close() must stop. Watches weakly: one the caller dropped
        # mid-iteration is cancelled when it is collected, not kept alive here.
        self._lock = threading.Lock()
        self._watches = weakref.WeakSet()
        self._leases = set()

    # -- tables -------------------------------------------------------------

    def create_table(self, table="", max_sessions=0):
        """Creates a table, or returns the existing one; returns ``(table, created)``."""
        res = self._unary(self._stub.CreateTable, pb.CreateTableRequest(table=table, max_sessions=max_sessions))
        return _required(res, "table"), res.created

    def get_table(self, table=""):
        """The table (default: ``default``) with its session count and revision."""
        return _required(self._unary(self._stub.GetTable, pb.GetTableRequest(table=table)), "table")

    def list_tables(self):
        """Every table, in name order, as a list."""
        return list(self._unary(self._stub.ListTables, pb.ListTablesRequest()).tables)

    def server_info(self):
        """The daemon's version, store kind and whether its store serves now
        (a ``pb.GetServerInfoResponse``). It reads no table, so it answers
        while the store (etcd) is unreachable."""
        return self._unary(self._stub.GetServerInfo, pb.GetServerInfoRequest())

    def delete_table(self, table, force=False):
        """Deletes a table; one that still holds sessions needs ``force``."""
        self._unary(self._stub.DeleteTable, pb.DeleteTableRequest(table=table, force=force))

    # -- sessions -----------------------------------------------------------

    def register(self, project_path, *, id="", name="", metadata=None, ttl=None, table="", request_id=None):
        """Registers a session and returns it as stored (normalized, id and
        times filled in). ``ttl`` is in seconds (None or 0: never expires).
        ``request_id`` is the idempotency key: a repeat with the same key
        returns the session the first call registered."""
        session = _session(id=id, name=name, project_path=project_path, metadata=metadata, ttl=ttl)
        req = pb.RegisterRequest(table=table, session=session, request_id=self._request_id(request_id))
        return _required(self._unary(self._stub.Register, req, retry=True), "session")

    def lookup(self, *, id=None, project_path=None, name=None, table=""):
        """Finds one session by exactly one of ``id``, ``project_path`` or ``name``."""
        given = {k: v for k, v in (("id", id), ("project_path", project_path), ("name", name)) if v is not None}
        if len(given) != 1:
            raise TypeError("lookup() takes exactly one of id, project_path or name; got %s"
                            % (sorted(given) or "none"))
        return _required(self._unary(self._stub.Lookup, pb.LookupRequest(table=table, **given)), "session")

    def list_page(self, table="", page_size=0, page_token=""):
        """One page of a table's sessions, oldest first: the ``pb.ListResponse``
        (``sessions``, ``next_page_token``, ``total_size``, ``revision``)."""
        req = pb.ListRequest(table=table, page_size=page_size, page_token=page_token)
        return self._unary(self._stub.List, req)

    def list(self, table="", page_size=0):
        """Every session of a table, as a generator that fetches pages as needed."""
        token = ""
        while True:
            page = self.list_page(table=table, page_size=page_size, page_token=token)
            yield from page.sessions
            token = page.next_page_token
            if not token:
                return

    def update(self, id, *, table="", name=None, project_path=None, metadata=None, ttl=...,
               update_mask=None, expected_revision=0, table_uid="", request_id=None):
        """Changes the given fields of a session and returns it.

        Without ``update_mask`` the mask names every field given: ``name``,
        ``project_path`` and ``metadata`` when not None, ``ttl`` when passed at
        all. So ``metadata={}`` clears the metadata, ``name=""`` derives the
        name again, and ``ttl=None`` (or 0) clears the ttl. With
        ``expected_revision`` the update applies only at that revision, else
        RevisionMismatchError. With ``table_uid`` (the session's own, read
        with its revision) it applies only while the table's history is that
        one, else TableUidMismatchError: an etag from another history (a
        restarted daemon, a table made again) never matches by chance.
        """
        ttl_given = ttl is not ...
        session = _session(id=id, name=name, project_path=project_path, metadata=metadata,
                           ttl=ttl if ttl_given else None)
        if update_mask is None:
            update_mask = [p for p, given in (("name", name is not None), ("project_path", project_path is not None),
                                              ("metadata", metadata is not None), ("ttl", ttl_given)) if given]
        req = pb.UpdateRequest(table=table, session=session,
                               update_mask=field_mask_pb2.FieldMask(paths=list(update_mask)),
                               expected_revision=expected_revision, table_uid=table_uid,
                               request_id=self._request_id(request_id))
        return _required(self._unary(self._stub.Update, req, retry=True), "session")

    def remove(self, id, *, table="", expected_revision=0, table_uid="", allow_missing=False, request_id=None):
        """Removes a session and returns it as it was; None if it was missing
        and ``allow_missing`` was set. ``expected_revision`` and ``table_uid``
        make it conditional, as in :meth:`update`."""
        req = pb.RemoveRequest(table=table, id=id, expected_revision=expected_revision, table_uid=table_uid,
                               allow_missing=allow_missing, request_id=self._request_id(request_id))
        res = self._unary(self._stub.Remove, req, retry=True)
        return res.session if res.HasField("session") else None

    def keep_alive(self, id, table=""):
        """Pushes a session's expire_time to now + its ttl and returns the
        session. One without ttl comes back unchanged; an expired one is
        SessionNotFoundError."""
        return _required(self._unary(self._stub.KeepAlive, pb.KeepAliveRequest(table=table, id=id)), "session")

    def register_with_keep_alive(self, project_path, *, ttl, interval=None, table="", on_lost=None,
                                 on_renewed=None, **register_kwargs):
        """Registers a session with ``ttl`` (seconds, >= 1) and keeps it alive
        with a keep-alive every ``interval`` seconds (default ttl/3) on a
        daemon thread. Returns a :class:`SessionLease`; use it as a context
        manager (leaving removes the session) or call ``close()``/``remove()``.
        ``on_lost(err)`` is called once, on the lease's thread, if the session
        is lost; ``on_renewed(session)`` after each keep-alive. Other keyword
        arguments go to :meth:`register`. Raises ValueError, before any call,
        for a bad ``ttl`` or ``interval``."""
        if isinstance(ttl, bool) or not isinstance(ttl, (int, float)) or ttl < 1:
            raise ValueError("ttl must be a number of seconds >= 1; got %r" % (ttl,))
        if interval is None:
            interval = ttl / 3.0
        if isinstance(interval, bool) or not isinstance(interval, (int, float)) or not 0 < interval < ttl:
            raise ValueError("interval must be > 0 and < ttl; got %r" % (interval,))
        session = self.register(project_path, ttl=ttl, table=table, **register_kwargs)
        lease = SessionLease(self, session, table=table, interval=interval, on_lost=on_lost,
                             on_renewed=on_renewed, on_stop=self._forget_lease)
        with self._lock:
            closed = self._closed
            if not closed:
                self._leases.add(lease)
        if closed:  # closed while registering: the lease must not outlive the client
            lease.close()
        return lease

    def watch(self, table="", start_revision=0, auto_resume=False, backoff=None, table_uid=""):
        """Watches a table: returns a :class:`WatchStream`, an iterator of
        :class:`WatchItem` — from ``start_revision`` 0 a snapshot first, then
        one event per change; from N > 0 every retained event with revision
        >= N, then live. The call has no deadline and carries the client's
        metadata; it starts on the first ``next()``.

        ``table_uid`` goes with ``start_revision`` N > 0: the history N belongs
        to (a position kept from an earlier stream's ``last_revision`` + 1 and
        ``table_uid``); from another history of the table the watch fails
        with TableUidMismatchError.

        With ``auto_resume`` it reconnects after transient failures
        (UNAVAILABLE and the like) and after WATCHER_TOO_SLOW from the last
        revision + 1 (with its table_uid), so nothing is missed or repeated;
        when the position is lost (REVISION_COMPACTED) or the table's history
        started over (TABLE_UID_MISMATCH, FUTURE_REVISION: a restarted
        daemon, a table made again, a wiped etcd) it resyncs with a fresh
        snapshot marked ``resync=True``, which replaces everything held
        before. Without it every error is raised from the iteration. ``backoff`` sets the pause between reconnects:
        ``{"initial": 0.1, "max": 5.0}`` seconds, doubling, with jitter.
        ``close()``, or closing the client, ends the iteration cleanly."""
        stream = WatchStream(self, table, start_revision, auto_resume, backoff, table_uid=table_uid)
        with self._lock:
            self._watches.add(stream)
        return stream

    def watch_tables(self, auto_resume=False, backoff=None):
        """Watches every table with its session count: returns a
        :class:`TablesWatchStream`, an iterator of :class:`TablesUpdate` — the
        first a snapshot of every table, each later one the whole list after a
        change, with the tables created or changed and the names of those
        deleted. A reader that falls behind gets fewer, coalesced updates and
        is never cut off. With ``auto_resume`` a dropped call reconnects
        (``backoff`` as for :meth:`watch`) and the next update is a new
        snapshot. ``close()``, or closing the client, ends it cleanly."""
        stream = TablesWatchStream(self, auto_resume, backoff)
        with self._lock:
            self._watches.add(stream)
        return stream

    # -- lifecycle ----------------------------------------------------------

    def close(self):
        """Closes the channel. Later calls raise SessionRegistryError
        (CANCELLED); open watches end (their loops finish without error) and
        leases stop renewing (their sessions expire after their ttl; no
        ``on_lost``). Idempotent."""
        with self._lock:
            if self._closed:
                return
            watches, leases = list(self._watches), list(self._leases)
            # Stopped before the client counts as closed, so that a watch
            # between two calls ends cleanly rather than with CANCELLED.
            for w in watches:
                w._stopped.set()
            self._closed = True
        for w in watches:
            w.close()
        for lease in leases:
            lease._halt()
        self._channel.close()  # also cancels a keep-alive in flight
        for lease in leases:
            lease._join()

    def _forget_lease(self, lease):
        with self._lock:
            self._leases.discard(lease)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()
        return False

    def _request_id(self, given):
        if given:
            return given
        return str(uuid.uuid4()) if self._retry is not None else ""

    def _unary(self, method, request, retry=False):
        """One call; with ``retry`` (and retries on), repeated on UNAVAILABLE
        until it succeeds, fails otherwise, runs out of attempts, or the next
        pause would pass the call's deadline (one for all attempts)."""
        r = self._retry if retry else None
        deadline = None if self._timeout is None else time.monotonic() + self._timeout
        attempt = 0
        while True:
            attempt += 1
            timeout = None if deadline is None else max(0.0, deadline - time.monotonic())
            try:
                return self._once(method, request, timeout)
            except SessionRegistryError as err:
                if (r is None or err.code != grpc.StatusCode.UNAVAILABLE or attempt >= r["max_attempts"]
                        or self._closed):
                    raise
                # Exponential, with "equal jitter": half the step fixed, half random.
                step = min(r["max_backoff"], r["initial_backoff"] * 2 ** (attempt - 1))
                pause = step / 2 + random.random() * step / 2
                if deadline is not None and time.monotonic() + pause >= deadline:
                    raise
                time.sleep(pause)

    def _once(self, method, request, timeout):
        if self._closed:
            raise SessionRegistryError(grpc.StatusCode.CANCELLED, "the client is closed")
        try:
            return method(request, timeout=timeout, metadata=self._metadata)
        except grpc.RpcError as e:
            raise from_rpc_error(e) from e
        except ValueError as e:  # grpcio: "Cannot invoke RPC on closed channel!"
            if self._closed or "closed channel" in str(e):
                raise SessionRegistryError(grpc.StatusCode.CANCELLED, "the client is closed") from e
            raise


def _retry_options(retry):
    if retry is False or retry is None:
        return None
    o = dict(DEFAULT_RETRY)
    if retry is not True:
        unknown = set(retry) - set(o)
        if unknown:
            raise TypeError("unknown retry options: %s" % sorted(unknown))
        o.update(retry)
    for key, low in (("max_attempts", 1), ("initial_backoff", 0), ("max_backoff", 0)):
        v = o[key]
        if (isinstance(v, bool) or not isinstance(v, (int, float)) or v < low
                or (key == "max_attempts" and not isinstance(v, int))):
            raise ValueError("retry[%r] must be a number >= %s; got %r" % (key, low, v))
    return o
