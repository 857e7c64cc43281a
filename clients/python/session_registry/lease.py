"""A registered session kept alive by periodic KeepAlive calls, like an etcd
lease (mirrors clients/typescript/src/lease.ts). Renewal runs on a daemon
thread, so a lease never keeps the process alive; when the process exits the
session simply expires after its ttl."""
import threading
import time

import grpc

from .errors import SessionNotFoundError, SessionRegistryError

#: Failures that a later keep-alive may get past (as in the TypeScript SDK);
#: anything else means the session cannot be kept.
TRANSIENT = frozenset((grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.DEADLINE_EXCEEDED, grpc.StatusCode.CANCELLED,
                       grpc.StatusCode.INTERNAL, grpc.StatusCode.UNKNOWN, grpc.StatusCode.RESOURCE_EXHAUSTED,
                       grpc.StatusCode.ABORTED))


def _expire_seconds(session):
    """The session's expire_time as a time.time() value; None if it has none."""
    if not session.HasField("expire_time"):
        return None
    return session.expire_time.ToNanoseconds() / 1e9


def _callback(fn, arg):
    if fn is None:
        return
    try:
        fn(arg)
    except Exception:  # a callback's bug must not stop the lease or reach the caller
        pass


class SessionLease:
    """Keeps one session alive.

    Attributes:
        session: the latest session (``pb.Session``) the daemon returned.
        lost: None, or the error that ended the lease (a SessionNotFoundError
            when someone removed the session or it expired; any non-transient
            error; the last transient one once the expire_time had passed).
        renewals: how many keep-alives succeeded.

    ``close()`` stops renewing (the session then expires after its ttl);
    ``remove()`` stops and removes the session (``allow_missing``); ``wait()``
    blocks until the lease stops. As a context manager, leaving the block
    removes the session. Closing the client closes its leases (no ``lost``).
    """

    def __init__(self, client, session, *, table, interval, on_lost=None, on_renewed=None, on_stop=None):
        self._client = client
        self._table = table
        self._interval = interval
        self._on_lost = on_lost
        self._on_renewed = on_renewed
        self._on_stop = on_stop
        self._stop = threading.Event()
        self._lock = threading.Lock()
        self.session = session
        self.lost = None
        self.renewals = 0
        self._thread = threading.Thread(target=self._run, name="session-lease-%s" % session.id, daemon=True)
        self._thread.start()

    @property
    def id(self):
        return self.session.id

    @property
    def table(self):
        return self._table

    @property
    def closed(self):
        """True once the lease stopped: closed, removed, or lost."""
        return self._stop.is_set()

    def _run(self):
        wait = self._interval
        while not self._stop.wait(wait):
            try:
                s = self._client.keep_alive(self.session.id, table=self._table)
            except SessionRegistryError as err:
                if self._stop.is_set():
                    return
                expire = _expire_seconds(self.session)
                transient = err.code in TRANSIENT and not isinstance(err, SessionNotFoundError)
                if transient and (expire is None or time.time() < expire):
                    wait = min(self._interval, 0.2 + 0.1 * self._interval)  # try again soon
                    continue
                self._lose(err)
                return
            with self._lock:
                if self._stop.is_set():
                    return
                self.session = s
                self.renewals += 1
            _callback(self._on_renewed, s)
            wait = self._interval

    def _lose(self, err):
        with self._lock:
            if self._stop.is_set():
                return
            self.lost = err
            self._stop.set()
        _callback(self._on_stop, self)
        _callback(self._on_lost, err)

    def _halt(self):
        """Stops renewing without waiting for the thread; returns whether this call stopped it."""
        with self._lock:
            if self._stop.is_set():
                return False
            self._stop.set()
        _callback(self._on_stop, self)
        return True

    def _join(self):
        if self._thread is not threading.current_thread():
            self._thread.join(timeout=self._interval + 1)

    def close(self):
        """Stops renewing; the session stays until its ttl runs out. Idempotent."""
        self._halt()
        self._join()

    def remove(self):
        """Stops renewing and removes the session (missing is fine); returns it or None."""
        self.close()
        return self._client.remove(self.session.id, table=self._table, allow_missing=True)

    def wait(self, timeout=None):
        """Blocks until the lease stops. Returns True once it was closed or
        removed, False if ``timeout`` (seconds) passed first; raises the error
        if the session was lost."""
        if not self._stop.wait(timeout):
            return False
        if self.lost is not None:
            raise self.lost
        return True

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.remove()
        return False
