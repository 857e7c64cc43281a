"""A registered session kept alive by periodic KeepAlive calls, like an etcd
lease (mirrors clients/typescript/src/lease.ts). Renewal runs on a daemon
thread, so a lease never keeps the process alive; when the process exits the
session simply expires after its ttl."""
import threading
import time

import grpc

from .errors import SessionNotFoundError, SessionRegistryError

#: Codes worth another keep-alive: the daemon may be back before the session expires.
TRANSIENT = (grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.DEADLINE_EXCEEDED, grpc.StatusCode.RESOURCE_EXHAUSTED)


def _expire_seconds(session):
    """The session's expire_time as a time.time() value; None if it has none."""
    if not session.HasField("expire_time"):
        return None
    return session.expire_time.ToNanoseconds() / 1e9


class SessionLease:
    """Keeps one session alive.

    Attributes:
        session: the latest session (``pb.Session``) the daemon returned.
        lost: None, or the error that ended the lease (a SessionNotFoundError
            when someone removed the session or it expired; any non-transient
            error; the last transient one once the expire_time had passed).
        renewals: how many keep-alives succeeded.

    ``close()`` stops renewing (the session then expires after its ttl);
    ``remove()`` stops and removes the session (``allow_missing``). As a
    context manager, leaving the block removes it.
    """

    def __init__(self, client, session, *, table, interval, on_lost=None):
        self._client = client
        self._table = table
        self._interval = interval
        self._on_lost = on_lost
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
    def closed(self):
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
                self.session = s
                self.renewals += 1
            wait = self._interval

    def _lose(self, err):
        with self._lock:
            if self.lost is not None or self._stop.is_set():
                return
            self.lost = err
            self._stop.set()
        if self._on_lost is not None:
            try:
                self._on_lost(err)
            except Exception:  # a callback's bug must not kill anything else
                pass

    def close(self):
        """Stops renewing; the session stays until its ttl runs out."""
        self._stop.set()
        if self._thread is not threading.current_thread():
            self._thread.join(timeout=self._interval + 1)

    def remove(self):
        """Stops renewing and removes the session (missing is fine); returns it or None."""
        self.close()
        return self._client.remove(self.session.id, table=self._table, allow_missing=True)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.remove()
        return False
