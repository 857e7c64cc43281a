"""The Python SDK against the real daemon, started once per module as a
subprocess (``node --import tsx src/daemon/main.ts``) on a free loopback
port; each test works in a fresh table of its own."""
import os
import re
import signal
import subprocess
import uuid

import grpc
import pytest

from session_registry import (
    ERROR_DOMAIN,
    RevisionCompactedError,
    InvalidArgumentError,
    ProjectAlreadyOpenError,
    RevisionMismatchError,
    SessionExistsError,
    SessionLimitReachedError,
    SessionNotFoundError,
    SessionRegistryClient,
    SessionRegistryError,
    TableNotEmptyError,
    TableNotFoundError,
    from_rpc_error,
    pb,
)

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", "..", ".."))
LISTENING = re.compile(r"listening on (\S+:\d+)")


@pytest.fixture(scope="module")
def daemon():
    proc = subprocess.Popen(
        ["node", "--conditions=source", "--import", "tsx", "src/daemon/main.ts",
         "--listen", "127.0.0.1:0", "--log-level", "silent"],
        cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )
    try:
        line = proc.stdout.readline()  # the daemon's one stdout line; "" if it died
        match = LISTENING.search(line)
        if match is None:
            proc.kill()
            _, err = proc.communicate(timeout=10)
            pytest.fail("the daemon did not start: %r %s" % (line, err))
        yield match.group(1)
    finally:
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        proc.stdout.close()
        proc.stderr.close()


@pytest.fixture
def client(daemon):
    with SessionRegistryClient(daemon, timeout=5.0) as c:
        yield c


@pytest.fixture
def table(client):
    name = "py-" + uuid.uuid4().hex[:12]
    client.create_table(name, max_sessions=10)
    yield name
    try:
        client.delete_table(name, force=True)
    except TableNotFoundError:
        pass


def test_create_get_list_delete_table(client):
    name = "py-" + uuid.uuid4().hex[:12]
    t, created = client.create_table(name, max_sessions=3)
    assert created is True
    assert isinstance(t, pb.Table)
    assert (t.name, t.max_sessions, t.session_count) == (name, 3, 0)
    again, created = client.create_table(name, max_sessions=3)
    assert created is False and again.name == name
    assert client.get_table(name).max_sessions == 3
    assert name in [x.name for x in client.list_tables()]
    client.register("/srv/py/t", table=name)
    with pytest.raises(TableNotEmptyError) as e:
        client.delete_table(name)
    assert e.value.code == grpc.StatusCode.FAILED_PRECONDITION
    client.delete_table(name, force=True)
    with pytest.raises(TableNotFoundError) as e:
        client.get_table(name)
    assert e.value.code == grpc.StatusCode.NOT_FOUND
    assert e.value.reason == "TABLE_NOT_FOUND"
    assert e.value.domain == "sessionregistry.v1"


def test_register_normalizes_and_derives_the_name(client, table):
    s = client.register("/home/py//app/./", metadata={"editor": "vim"}, ttl=30, table=table)
    assert isinstance(s, pb.Session)
    assert s.project_path == "/home/py/app"
    assert s.name == "app"
    assert s.id != "" and s.revision > 0
    assert dict(s.metadata) == {"editor": "vim"}
    assert s.ttl.ToNanoseconds() == 30 * 10**9
    assert s.HasField("expire_time")
    named = client.register("/home/py/other", id="my-id", name="Other", table=table)
    assert (named.id, named.name) == ("my-id", "Other")
    assert client.get_table(table).session_count == 2


def test_session_limit(client):
    name = "py-" + uuid.uuid4().hex[:12]
    client.create_table(name, max_sessions=1)
    try:
        client.register("/srv/one", table=name)
        with pytest.raises(SessionLimitReachedError) as e:
            client.register("/srv/two", table=name)
        assert e.value.code == grpc.StatusCode.RESOURCE_EXHAUSTED
        assert (e.value.current, e.value.max) == (1, 1)
        assert e.value.metadata["table"] == name
        assert isinstance(e.value, SessionRegistryError)
    finally:
        client.delete_table(name, force=True)


def test_duplicate_path_and_id(client, table):
    first = client.register("/srv/dup", table=table)
    with pytest.raises(ProjectAlreadyOpenError) as e:
        client.register("/srv/dup/", table=table)
    assert e.value.code == grpc.StatusCode.ALREADY_EXISTS
    assert e.value.session_id == first.id
    assert e.value.project_path == "/srv/dup"
    client.register("/srv/a", id="same", table=table)
    with pytest.raises(SessionExistsError) as e:
        client.register("/srv/b", id="same", table=table)
    assert e.value.code == grpc.StatusCode.ALREADY_EXISTS
    assert e.value.session_id == "same"


def test_lookups(client, table):
    s = client.register("/srv/look/here", table=table)
    assert client.lookup(id=s.id, table=table).id == s.id
    assert client.lookup(project_path="/srv/look/here/", table=table).id == s.id
    assert client.lookup(name="here", table=table).id == s.id
    for key in ({"id": "nope"}, {"project_path": "/srv/nope"}, {"name": "nope"}):
        with pytest.raises(SessionNotFoundError) as e:
            client.lookup(table=table, **key)
        assert e.value.code == grpc.StatusCode.NOT_FOUND
    with pytest.raises(TypeError):
        client.lookup(table=table)
    with pytest.raises(TypeError):
        client.lookup(id=s.id, name="here", table=table)


def test_list_pages(client, table):
    ids = [client.register("/srv/page/%d" % i, table=table).id for i in range(5)]
    first = client.list_page(table=table, page_size=2)
    assert len(first.sessions) == 2 and first.next_page_token != ""
    assert first.total_size == 5
    listed = client.list(table=table, page_size=2)
    assert not isinstance(listed, list)  # a generator, fetching lazily
    assert [s.id for s in listed] == ids  # oldest first, across 3 pages
    assert [s.id for s in client.list(table=table)] == ids


def test_update_mask_and_revision(client, table):
    s = client.register("/srv/upd", name="before", metadata={"a": "1"}, ttl=60, table=table)
    u = client.update(s.id, table=table, name="after", expected_revision=s.revision)
    assert u.name == "after" and dict(u.metadata) == {"a": "1"} and u.revision > s.revision
    assert u.ttl.ToNanoseconds() == 60 * 10**9
    # metadata={} and ttl=None are in the implied mask, so they clear
    c = client.update(s.id, table=table, metadata={}, ttl=None)
    assert dict(c.metadata) == {} and not c.HasField("ttl") and c.name == "after"
    # an explicit mask: name is named but left empty, so it is derived again
    d = client.update(s.id, table=table, project_path="/srv/moved", update_mask=["name", "project_path"])
    assert (d.name, d.project_path) == ("moved", "/srv/moved")
    with pytest.raises(RevisionMismatchError) as e:
        client.update(s.id, table=table, name="stale", expected_revision=s.revision)
    assert e.value.code == grpc.StatusCode.ABORTED
    assert e.value.current_revision == d.revision


def test_remove(client, table):
    s = client.register("/srv/rm", table=table)
    with pytest.raises(RevisionMismatchError):
        client.remove(s.id, table=table, expected_revision=s.revision + 100)
    removed = client.remove(s.id, table=table, expected_revision=s.revision)
    assert removed.id == s.id
    with pytest.raises(SessionNotFoundError):
        client.remove(s.id, table=table)
    assert client.remove(s.id, table=table, allow_missing=True) is None
    assert client.get_table(table).session_count == 0


def test_invalid_argument_names_the_field(client, table):
    with pytest.raises(InvalidArgumentError) as e:
        client.register("relative/path", table=table)
    assert e.value.code == grpc.StatusCode.INVALID_ARGUMENT
    assert e.value.reason == "INVALID_ARGUMENT"
    assert [f for f, _ in e.value.field_violations] == ["session.project_path"]
    assert all(desc for _, desc in e.value.field_violations)


def test_request_id_makes_register_idempotent(client, table):
    key = "req-" + uuid.uuid4().hex
    first = client.register("/srv/idem", table=table, request_id=key)
    again = client.register("/srv/idem", table=table, request_id=key)
    assert again.id == first.id and again.revision == first.revision
    assert client.get_table(table).session_count == 1


def test_keep_alive(client, table):
    s = client.register("/srv/ka", ttl=30, table=table)
    k = client.keep_alive(s.id, table=table)
    assert k.id == s.id
    assert k.expire_time.ToNanoseconds() >= s.expire_time.ToNanoseconds()
    with pytest.raises(SessionNotFoundError):
        client.keep_alive("missing", table=table)


def test_closed_client_and_transport_errors(daemon):
    c = SessionRegistryClient(daemon)
    c.close()
    with pytest.raises(SessionRegistryError) as e:
        c.get_table()
    assert e.value.code == grpc.StatusCode.CANCELLED
    with SessionRegistryClient("127.0.0.1:1", timeout=2.0) as dead:
        with pytest.raises(SessionRegistryError) as e:
            dead.list_tables()
    assert type(e.value) is SessionRegistryError and e.value.reason == ""
    assert e.value.code in (grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.DEADLINE_EXCEEDED)


class _FakeRpcError(grpc.RpcError):
    def __init__(self, trailer):
        self._trailer = trailer

    def code(self):
        return grpc.StatusCode.INTERNAL

    def details(self):
        return "boom"

    def trailing_metadata(self):
        return (("grpc-status-details-bin", self._trailer),)


def test_from_rpc_error_never_raises_on_garbage():
    for trailer in (b"\xff\xfe garbage", b"", "not bytes", None):
        err = from_rpc_error(_FakeRpcError(trailer))
        assert type(err) is SessionRegistryError
        assert (err.code, err.details, err.reason, err.metadata, err.field_violations) == (
            grpc.StatusCode.INTERNAL, "boom", "", {}, [])
    bare = from_rpc_error(grpc.RpcError())
    assert type(bare) is SessionRegistryError and bare.code == grpc.StatusCode.UNKNOWN



class _Unavailable(grpc.RpcError):
    def code(self):
        return grpc.StatusCode.UNAVAILABLE

    def details(self):
        return "connection refused (injected)"

    def trailing_metadata(self):
        return ()


class _FlakyStub:
    """Wraps the real stub: the first ``fail`` calls of each method raise
    UNAVAILABLE before reaching the daemon; every request is recorded."""

    def __init__(self, stub, fail):
        self._stub, self.fail, self.requests = stub, fail, []

    def __getattr__(self, name):
        real = getattr(self._stub, name)

        def call(request, **kwargs):
            self.requests.append((name, request))
            if sum(1 for n, _ in self.requests if n == name) <= self.fail:
                raise _Unavailable()
            return real(request, **kwargs)
        return call


def test_register_update_remove_retry_with_one_request_id(client, table, daemon):
    with SessionRegistryClient(daemon, timeout=8.0, retry={"initial_backoff": 0.02}) as c:
        c._stub = flaky = _FlakyStub(c._stub, fail=2)
        s = c.register("/tmp/py-retry", table=table)
        s = c.update(s.id, table=table, metadata={"k": "v"})
        c.remove(s.id, table=table)
    for method in ("Register", "Update", "Remove"):
        ids = [r.request_id for n, r in flaky.requests if n == method]
        assert len(ids) == 3 and ids[0] and len(set(ids)) == 1
    assert list(client.list(table=table)) == []
    with SessionRegistryClient(daemon, timeout=8.0, retry={"initial_backoff": 0.02}) as c:
        c._stub = flaky = _FlakyStub(c._stub, fail=2)
        s = c.register("/tmp/py-retry2", table=table, request_id="mine")
        assert [r.request_id for _, r in flaky.requests] == ["mine"] * 3
        assert [x.id for x in client.list(table=table)] == [s.id]
        c._stub = flaky = _FlakyStub(c._stub._stub, fail=10)
        with pytest.raises(SessionRegistryError) as e:
            c.remove(s.id, table=table)
        assert e.value.code == grpc.StatusCode.UNAVAILABLE and len(flaky.requests) == 5


def test_retry_false_and_the_deadline(daemon):
    with SessionRegistryClient(daemon, retry=False) as c:
        c._stub = flaky = _FlakyStub(c._stub, fail=1)
        with pytest.raises(SessionRegistryError) as e:
            c.register("/tmp/py-no-retry")
        assert e.value.code == grpc.StatusCode.UNAVAILABLE
        assert [r.request_id for _, r in flaky.requests] == [""]
    with SessionRegistryClient(daemon, timeout=0.5) as c:  # pauses 0.1-0.2, 0.2-0.4, 0.4-0.8 s
        c._stub = flaky = _FlakyStub(c._stub, fail=10)
        import time
        t0 = time.monotonic()
        with pytest.raises(SessionRegistryError):
            c.register("/tmp/py-deadline")
        assert time.monotonic() - t0 < 0.6 and 2 <= len(flaky.requests) < 5
    # A dead port: UNAVAILABLE retried, then raised within the timeout.
    with SessionRegistryClient("127.0.0.1:1", timeout=1.0) as c:
        with pytest.raises(SessionRegistryError) as e:
            c.register("/tmp/py-dead")
        assert e.value.code in (grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.DEADLINE_EXCEEDED)


def test_retry_options_are_checked():
    with pytest.raises(ValueError):
        SessionRegistryClient("127.0.0.1:1", retry={"max_attempts": 0})
    with pytest.raises(TypeError):
        SessionRegistryClient("127.0.0.1:1", retry={"attempts": 3})


def test_lease_keeps_the_session_alive_and_removes_it(client, table):
    import time
    with client.register_with_keep_alive("/tmp/py-lease", ttl=1, table=table, metadata={"a": "b"}) as lease:
        first = lease.session
        assert first.ttl.seconds == 1 and first.metadata["a"] == "b"
        deadline = time.monotonic() + 5
        while lease.renewals < 3 and time.monotonic() < deadline:
            time.sleep(0.05)
        time.sleep(max(0.0, 2.2 - (time.monotonic() - (deadline - 5))))
        assert lease.renewals >= 3 and lease.lost is None
        assert client.lookup(id=first.id, table=table).id == first.id  # alive past 2 s with ttl 1 s
        assert lease.session.expire_time.ToNanoseconds() > first.expire_time.ToNanoseconds()
    assert lease.closed
    with pytest.raises(SessionNotFoundError):
        client.lookup(id=first.id, table=table)


def test_lease_lost_when_someone_removes_it(client, table):
    import threading
    called = threading.Event()
    seen = []
    lease = client.register_with_keep_alive("/tmp/py-lease-lost", ttl=1, table=table,
                                            on_lost=lambda e: (seen.append(e), called.set()))
    try:
        client.remove(lease.id, table=table)
        assert called.wait(3)
        assert isinstance(lease.lost, SessionNotFoundError) and seen == [lease.lost]
        assert lease.closed
    finally:
        lease.close()


def test_lease_close_stops_renewing_and_ttl_is_checked(client, table):
    import time
    lease = client.register_with_keep_alive("/tmp/py-lease-close", ttl=1, interval=0.2, table=table)
    lease.close()
    n = lease.renewals
    time.sleep(0.5)
    assert lease.renewals == n and lease.lost is None
    client.lookup(id=lease.id, table=table)  # still there until its ttl runs out
    with pytest.raises(ValueError):
        client.register_with_keep_alive("/tmp/x", ttl=0.5, table=table)
    with pytest.raises(ValueError):
        client.register_with_keep_alive("/tmp/x", ttl=1, interval=2, table=table)


def test_watch_snapshot_then_events(client, table):
    before = client.register("/tmp/py-watch-a", table=table)
    with client.watch(table=table) as w:
        snap = next(w)
        assert snap.kind == "snapshot" and not snap.resync
        assert [s.id for s in snap.sessions] == [before.id]
        s = client.register("/tmp/py-watch-b", table=table)
        client.update(s.id, table=table, metadata={"k": "v"})
        client.remove(s.id, table=table)
        events = [next(w) for _ in range(3)]
    assert [e.kind for e in events] == ["event"] * 3
    assert [e.type for e in events] == ["REGISTERED", "UPDATED", "REMOVED"]
    assert all(e.session.id == s.id for e in events)
    assert events[1].session.metadata["k"] == "v"
    revs = [snap.revision] + [e.revision for e in events]
    assert revs == sorted(revs) and len(set(revs)) == 4 and w.last_revision == revs[-1]
    # From revision N: the events from N on, no snapshot.
    with client.watch(table=table, start_revision=events[2].revision) as w2:
        item = next(w2)
    assert item.kind == "event" and item.type == "REMOVED" and item.revision == events[2].revision


def test_watch_close_from_another_thread_ends_the_iteration(client, table):
    import threading
    w = client.watch(table=table)
    assert next(w).kind == "snapshot"
    threading.Timer(0.3, w.close).start()
    assert list(w) == []


def test_watch_errors_without_and_with_auto_resume(client, table):
    with pytest.raises(TableNotFoundError):
        next(client.watch(table="py-no-such-" + uuid.uuid4().hex[:8]))
    with pytest.raises(TableNotFoundError):  # not transient: raised even with auto_resume
        next(client.watch(table="py-no-such-" + uuid.uuid4().hex[:8], auto_resume=True))


class _CompactedError(grpc.RpcError):
    def code(self):
        return grpc.StatusCode.OUT_OF_RANGE

    def details(self):
        return "compacted (injected)"

    def trailing_metadata(self):
        from google.rpc import error_details_pb2, status_pb2
        info = error_details_pb2.ErrorInfo(reason="REVISION_COMPACTED", domain=ERROR_DOMAIN)
        st = status_pb2.Status(code=11, message="compacted (injected)")
        st.details.add().Pack(info)
        return (("grpc-status-details-bin", st.SerializeToString()),)


class _BrokenWatchStub:
    """The real stub, but the first Watch calls end with the given errors
    after ``after`` messages; records each call's start_revision."""

    def __init__(self, stub, errors, after):
        self._stub, self.errors, self.after, self.starts = stub, list(errors), after, []

    def __getattr__(self, name):
        return getattr(self._stub, name)

    def Watch(self, request, **kwargs):
        self.starts.append(request.start_revision)
        call = self._stub.Watch(request, **kwargs)
        if not self.errors:
            return call
        err = self.errors.pop(0)

        class Broken:
            def __iter__(inner):
                if self.after:
                    for i, m in enumerate(call, 1):
                        yield m
                        if i == self.after:
                            break
                raise err

            def cancel(inner):
                call.cancel()
        return Broken()


def test_watch_auto_resume_reconnects_and_resyncs(client, table, daemon):
    with SessionRegistryClient(daemon, timeout=5.0) as c:
        c._stub = broken = _BrokenWatchStub(c._stub, [_Unavailable(), _CompactedError()], after=2)
        a = client.register("/tmp/py-resume-a", table=table)
        with c.watch(table=table, auto_resume=True) as w:
            snap = next(w)
            assert snap.kind == "snapshot" and not snap.resync
            b = client.register("/tmp/py-resume-b", table=table)
            e1 = next(w)  # the 2nd message; then UNAVAILABLE -> reconnect from e1.revision + 1
            client.remove(a.id, table=table)
            e2 = next(w)  # the 2nd call's messages, then REVISION_COMPACTED
            client.register("/tmp/py-resume-c", table=table)
            e3 = next(w)
            resync = next(w)  # REVISION_COMPACTED -> start 0 again, resync=True
        assert (e1.type, e1.session.id) == ("REGISTERED", b.id)
        assert (e2.type, e2.session.id) == ("REMOVED", a.id)
        assert e3.type == "REGISTERED"
        assert resync.kind == "snapshot" and resync.resync
        assert sorted(s.project_path for s in resync.sessions) == ["/tmp/py-resume-b", "/tmp/py-resume-c"]
        assert broken.starts == [0, e1.revision + 1, 0]
    with SessionRegistryClient(daemon, timeout=5.0) as c:
        c._stub = _BrokenWatchStub(c._stub, [_CompactedError()], after=1)
        with pytest.raises(RevisionCompactedError):
            list(c.watch(table=table))
