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
