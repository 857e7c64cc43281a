"""Shared fixtures: the real daemon as a subprocess, clients, fresh tables,
and a watch recorder.

clients/python goes on sys.path, so the tests import the package from the
tree (there is no install step: no PyPI, no pip). One daemon with the
default flags serves the whole session; modules that need other flags
(auth, small watch queues, ...) start their own with ``Daemon(...)``. Every
test works in tables of its own, so tests do not see each other's sessions.

The daemons of the ``daemon``, ``bounded`` and ``tiny`` fixtures run on each
store in turn (the ``store`` fixture): the memory store, and the etcd store
on a real etcd (``/usr/bin/etcd`` on loopback with a temporary data dir), so
every test that uses one of them runs twice, ``[memory]`` and ``[etcd]``.
"""
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
import uuid

import pytest

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from session_registry import SessionRegistryClient, SessionRegistryError, TableNotFoundError  # noqa: E402

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", "..", ".."))
LISTENING = re.compile(r"listening on (\S+:\d+)")

#: Generous bound for anything the daemon does on its own (expiry, events):
#: tests wait for the condition, never for a fixed time, and assert no durations.
WAIT = 15.0

#: Channel options for clients whose connection a test breaks on purpose:
#: reconnect at once rather than after grpcio's default backoff (1 s and up).
#: Not grpc.min_reconnect_backoff_ms: grpcio takes it as the connect timeout
#: (0.1 s at least), and a handshake through the proxy on a busy machine can
#: take longer; the client then gives up on the proxy's first connection, the
#: one a FaultProxy breaks, and its calls go over a second, unbroken one.
FAST_RECONNECT = [
    ("grpc.initial_reconnect_backoff_ms", 10),
    ("grpc.max_reconnect_backoff_ms", 100),
]


class Daemon:
    """``node src/daemon/main.ts --listen 127.0.0.1:0 --http-listen off`` with
    extra ``flags`` (no HTTP listener: its default port would collide between
    the suite's daemons); ``address`` is where it listens. ``stop()`` sends
    SIGTERM and waits."""

    def __init__(self, *flags):
        self.proc = subprocess.Popen(
            ["node", "--conditions=source", "--import", "tsx", "src/daemon/main.ts",
             "--listen", "127.0.0.1:0", "--http-listen", "off", "--log-level", "silent", *flags],
            cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        )
        line = self.proc.stdout.readline()  # the daemon's one stdout line; "" if it died
        match = LISTENING.search(line)
        if match is None:
            self.proc.kill()
            _, err = self.proc.communicate(timeout=10)
            pytest.fail("the daemon did not start: %r %s" % (line, err))
        self.address = match.group(1)

    def client(self, **kwargs):
        kwargs.setdefault("timeout", 5.0)
        return SessionRegistryClient(self.address, **kwargs)

    def stop(self):
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.proc.stdout.close()
        self.proc.stderr.close()


class Etcd:
    """A single-member etcd on loopback: free client and peer ports, a
    temporary data dir, its log in a file there (not in the test output).
    Start-up waits, bounded, until /health says it serves."""

    BIN = os.environ.get("ETCD_BIN", "/usr/bin/etcd")

    def __init__(self):
        self.root = tempfile.mkdtemp(prefix="sr-py-etcd-")
        client, peer = free_port(), free_port()
        self.endpoint = "http://127.0.0.1:%d" % client
        peer_url = "http://127.0.0.1:%d" % peer
        name = unique("sr-py-etcd")
        with open(os.path.join(self.root, "etcd.log"), "w") as log:
            self.proc = subprocess.Popen(
                [self.BIN, "--name", name, "--data-dir", os.path.join(self.root, "data"),
                 "--listen-client-urls", self.endpoint, "--advertise-client-urls", self.endpoint,
                 "--listen-peer-urls", peer_url, "--initial-advertise-peer-urls", peer_url,
                 "--initial-cluster", "%s=%s" % (name, peer_url), "--initial-cluster-state", "new",
                 "--initial-cluster-token", name],
                stdout=log, stderr=subprocess.STDOUT,
            )
        deadline = time.monotonic() + WAIT
        while not self._healthy():
            if self.proc.poll() is not None or time.monotonic() > deadline:
                with open(os.path.join(self.root, "etcd.log")) as log:
                    tail = log.read()[-2000:]
                self.stop()
                pytest.fail("etcd did not start; the end of its log:\n%s" % tail)
            time.sleep(0.05)

    def _healthy(self):
        try:
            with urllib.request.urlopen(self.endpoint + "/health", timeout=1) as res:
                return b'"health":"true"' in res.read()
        except OSError:
            return False

    def stop(self):
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=5)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        shutil.rmtree(self.root, ignore_errors=True)


def free_port():
    """A port free right now on 127.0.0.1."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def unique(prefix="py"):
    return "%s-%s" % (prefix, uuid.uuid4().hex[:12])


def eventually(check, what, timeout=WAIT):
    """Polls ``check()`` until it is truthy and returns its value; fails after ``timeout``."""
    deadline = time.monotonic() + timeout
    while True:
        value = check()
        if value:
            return value
        if time.monotonic() > deadline:
            pytest.fail("timed out after %s s waiting for %s" % (timeout, what))
        time.sleep(0.02)


class Recorder:
    """Iterates a WatchStream on a thread of its own and records what it
    yields, so that a test can wait for a condition with a bound instead of
    blocking in ``next()`` forever. ``error`` is what ended the iteration."""

    def __init__(self, stream):
        self.stream = stream
        self.items = []
        self.error = None
        self.ended = False
        self._cond = threading.Condition()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self):
        try:
            for item in self.stream:
                with self._cond:
                    self.items.append(item)
                    self._cond.notify_all()
        except SessionRegistryError as err:
            self.error = err
        finally:
            with self._cond:
                self.ended = True
                self._cond.notify_all()

    @property
    def events(self):
        with self._cond:
            return [i for i in self.items if i.kind == "event"]

    @property
    def snapshots(self):
        with self._cond:
            return [i for i in self.items if i.kind == "snapshot"]

    def until(self, predicate, what, timeout=WAIT):
        """Waits until ``predicate(self)`` holds; fails on timeout, or if the stream ends first."""
        deadline = time.monotonic() + timeout
        with self._cond:
            while not predicate(self):
                if self.ended:
                    pytest.fail("the watch ended (%r) before %s" % (self.error, what))
                left = deadline - time.monotonic()
                if left <= 0:
                    pytest.fail("timed out after %s s waiting for %s; got %d items" % (timeout, what, len(self.items)))
                self._cond.wait(left)

    def ending(self, timeout=WAIT):
        """Waits for the iteration to end and returns its error (None if it ended cleanly)."""
        with self._cond:
            if not self._cond.wait_for(lambda: self.ended, timeout):
                pytest.fail("timed out after %s s waiting for the watch to end" % timeout)
        return self.error

    def close(self):
        self.stream.close()
        self._thread.join(timeout=5)


@pytest.fixture(scope="session")
def etcd():
    e = Etcd()
    yield e
    e.stop()


@pytest.fixture(scope="session", params=["memory", "etcd"])
def store(request):
    """Makes the daemon flags of one store; each etcd daemon gets a key
    prefix of its own, so that daemons share no tables (nor the table limit)."""
    if request.param == "memory":
        return lambda: []
    endpoint = request.getfixturevalue("etcd").endpoint
    return lambda: ["--store", "etcd", "--etcd-endpoints", endpoint, "--etcd-prefix", "/%s/" % unique("sr-py")]


@pytest.fixture(scope="session")
def daemon(store):
    d = Daemon(*store())
    yield d.address
    d.stop()


@pytest.fixture(scope="session")
def bounded(store):
    """A daemon with small watch bounds: a watcher may fall 4 live messages
    behind (``--watch-queue``), and each table keeps 100 events for replay
    (``--watch-history``)."""
    d = Daemon(*store(), "--watch-queue", "4", "--watch-history", "100")
    yield d
    d.stop()


@pytest.fixture(scope="session")
def tiny(store):
    """A daemon with tiny limits: 2 tables (``default`` is one) and 1 open watch."""
    d = Daemon(*store(), "--max-tables", "2", "--max-watchers", "1")
    yield d
    d.stop()


@pytest.fixture
def client(daemon):
    with SessionRegistryClient(daemon, timeout=5.0) as c:
        yield c


@pytest.fixture
def new_table(client):
    """Makes fresh tables (``new_table(max_sessions=10)``) and deletes them after the test."""
    made = []

    def make(max_sessions=10, on=None):
        name = unique()
        (on or client).create_table(name, max_sessions=max_sessions)
        made.append(name)
        return name

    yield make
    for name in made:
        try:
            client.delete_table(name, force=True)
        except TableNotFoundError:
            pass


@pytest.fixture
def table(new_table):
    return new_table()


@pytest.fixture
def record():
    """``record(stream)`` starts a Recorder; every one is closed after the test."""
    recorders = []

    def start(stream):
        r = Recorder(stream)
        recorders.append(r)
        return r

    yield start
    for r in recorders:
        r.close()
