"""Error details: what crosses the wire (google.rpc.Status in the
grpc-status-details-bin trailer, one ErrorInfo, a BadRequest for invalid
arguments), decoded with the raw stubs as any gRPC client would, and the
typed exceptions the SDK makes of them."""
import signal

import grpc
import pytest

from conftest import Daemon, Recorder, unique
from google.protobuf import field_mask_pb2
from google.rpc import error_details_pb2, status_pb2
from session_registry import (
    ERROR_DOMAIN,
    ErrorReason,
    InvalidArgumentError,
    ProjectAlreadyOpenError,
    RevisionMismatchError,
    SessionExistsError,
    SessionLimitReachedError,
    SessionNotFoundError,
    SessionRegistryClient,
    SessionRegistryError,
    TableExistsError,
    TableNotEmptyError,
    TableNotFoundError,
    WatcherLimitReachedError,
    from_rpc_error,
    pb,
)
from sessionregistry.v1 import session_registry_pb2_grpc as rpc


@pytest.fixture
def raw(daemon):
    with grpc.insecure_channel(daemon) as channel:
        yield rpc.SessionRegistryStub(channel)


def wire(err):
    """Decodes the trailer by hand and checks what every error must carry;
    returns (ErrorInfo, field violations)."""
    trailer = dict(err.trailing_metadata())["grpc-status-details-bin"]
    status = status_pb2.Status.FromString(trailer)
    assert status.code == err.code().value[0]
    assert status.message == err.details()
    infos, violations = [], []
    for any_ in status.details:
        if any_.Is(error_details_pb2.ErrorInfo.DESCRIPTOR):
            info = error_details_pb2.ErrorInfo()
            any_.Unpack(info)
            infos.append(info)
        elif any_.Is(error_details_pb2.BadRequest.DESCRIPTOR):
            bad = error_details_pb2.BadRequest()
            any_.Unpack(bad)
            violations += [(v.field, v.description) for v in bad.field_violations]
        else:
            pytest.fail("unexpected detail %s" % any_.type_url)
    assert len(infos) == 1 and infos[0].domain == ERROR_DOMAIN
    assert bool(violations) == (err.code() == grpc.StatusCode.INVALID_ARGUMENT)
    return infos[0], violations


def fail(call):
    with pytest.raises(grpc.RpcError) as e:
        call()
    return e.value


def seeded(raw, max_sessions=2):
    """A table with sessions s1 (/p/s1) and s2 (/p/s2); returns (table, s1)."""
    table = unique()
    raw.CreateTable(pb.CreateTableRequest(table=table, max_sessions=max_sessions))
    s1 = raw.Register(pb.RegisterRequest(table=table, session=pb.Session(id="s1", project_path="/p/s1"))).session
    raw.Register(pb.RegisterRequest(table=table, session=pb.Session(id="s2", project_path="/p/s2")))
    return table, s1


def cases(raw):
    """(call, code, reason, class, expected ErrorInfo metadata or None) for every reason one daemon can show."""
    table, s1 = seeded(raw)
    missing = unique("missing")
    return [
        (lambda: raw.Register(pb.RegisterRequest(table=table, session=pb.Session(project_path="not/absolute"))),
         grpc.StatusCode.INVALID_ARGUMENT, "INVALID_ARGUMENT", InvalidArgumentError, {}),
        (lambda: raw.GetTable(pb.GetTableRequest(table=missing)),
         grpc.StatusCode.NOT_FOUND, "TABLE_NOT_FOUND", TableNotFoundError, {"table": missing}),
        (lambda: raw.CreateTable(pb.CreateTableRequest(table=table, max_sessions=3)),
         grpc.StatusCode.ALREADY_EXISTS, "TABLE_EXISTS", TableExistsError, {"table": table, "max_sessions": "2"}),
        (lambda: raw.DeleteTable(pb.DeleteTableRequest(table=table)),
         grpc.StatusCode.FAILED_PRECONDITION, "TABLE_NOT_EMPTY", TableNotEmptyError,
         {"table": table, "session_count": "2"}),
        (lambda: raw.Lookup(pb.LookupRequest(table=table, id="ghost")),
         grpc.StatusCode.NOT_FOUND, "SESSION_NOT_FOUND", SessionNotFoundError, {"table": table, "session_id": "ghost"}),
        (lambda: raw.Register(pb.RegisterRequest(table=table, session=pb.Session(id="s1", project_path="/x"))),
         grpc.StatusCode.RESOURCE_EXHAUSTED, "SESSION_LIMIT_REACHED", SessionLimitReachedError,
         {"table": table, "current": "2", "max": "2"}),
        (lambda: raw.Remove(pb.RemoveRequest(table=table, id="s1", expected_revision=s1.revision + 1000)),
         grpc.StatusCode.ABORTED, "REVISION_MISMATCH", RevisionMismatchError,
         {"table": table, "session_id": "s1", "current_revision": str(s1.revision)}),
        (lambda: raw.Update(pb.UpdateRequest(table=table, session=pb.Session(id="s2", project_path="/p/s1/"),
                                             update_mask=field_mask_pb2.FieldMask(paths=["project_path"]))),
         grpc.StatusCode.ALREADY_EXISTS, "PROJECT_ALREADY_OPEN", ProjectAlreadyOpenError,
         {"table": table, "session_id": "s1", "project_path": "/p/s1"}),
    ]


def test_every_error_carries_one_error_info_and_maps_to_its_class(raw):
    for call, code, reason, cls, metadata in cases(raw):
        err = fail(call)
        assert err.code() == code, reason
        info, _ = wire(err)
        assert info.reason == reason
        assert dict(info.metadata) == metadata
        typed = from_rpc_error(err)
        assert type(typed) is cls
        assert (typed.code, typed.reason, typed.domain, typed.metadata) == (code, reason, ERROR_DOMAIN, metadata)
        assert typed.details == err.details() and typed.cause is err
        assert str(typed) == "%s: %s" % (code.name, err.details())
        assert getattr(ErrorReason, reason) == reason


def test_session_exists_carries_the_id(raw):
    table, _ = seeded(raw, max_sessions=5)
    err = fail(lambda: raw.Register(pb.RegisterRequest(table=table, session=pb.Session(id="s1", project_path="/o"))))
    info, _ = wire(err)
    assert (info.reason, dict(info.metadata)) == ("SESSION_EXISTS", {"table": table, "session_id": "s1"})
    typed = from_rpc_error(err)
    assert isinstance(typed, SessionExistsError) and typed.session_id == "s1"


def test_invalid_argument_has_a_bad_request_naming_every_bad_field(raw, client):
    err = fail(lambda: raw.Register(pb.RegisterRequest(
        table="-bad", session=pb.Session(id="a b", name="bad\nname", project_path="relative"))))
    _, violations = wire(err)
    assert sorted(f for f, _ in violations) == ["session.id", "session.name", "session.project_path", "table"]
    assert all(description for _, description in violations)
    typed = from_rpc_error(err)
    assert isinstance(typed, InvalidArgumentError) and sorted(typed.field_violations) == sorted(violations)
    # A Lookup without a key, which the SDK never sends.
    err = fail(lambda: raw.Lookup(pb.LookupRequest(table="default")))
    info, violations = wire(err)
    assert info.reason == "INVALID_ARGUMENT" and violations


def test_the_table_and_watcher_limits(tiny):
    with SessionRegistryClient(tiny.address, timeout=5.0) as c:
        first = Recorder(c.watch())
        try:
            first.until(lambda r: r.items, "the snapshot")
            with pytest.raises(WatcherLimitReachedError) as e:
                next(c.watch())
            assert e.value.code == grpc.StatusCode.RESOURCE_EXHAUSTED
            assert (e.value.current, e.value.max) == (1, 1)
            # auto_resume waits the limit out: it gets in once the first watch ends.
            waiting = Recorder(c.watch(auto_resume=True, backoff={"initial": 0.02, "max": 0.1}))
            try:
                first.close()
                waiting.until(lambda r: r.items, "the second watch's snapshot")
                assert isinstance(waiting.stream.last_error, WatcherLimitReachedError)
            finally:
                waiting.close()
        finally:
            first.close()


def test_shutting_down_ends_watches_with_unavailable_and_later_calls_fail():
    d = Daemon()
    try:
        c = SessionRegistryClient(d.address, timeout=5.0, retry=False)
        w = Recorder(c.watch())
        w.until(lambda r: r.items, "the snapshot")
        d.proc.send_signal(signal.SIGTERM)
        err = w.ending()
        assert isinstance(err, SessionRegistryError)
        assert (err.code, err.reason) == (grpc.StatusCode.UNAVAILABLE, "SHUTTING_DOWN")
        assert d.proc.wait(timeout=15) == 0
        with pytest.raises(SessionRegistryError) as e:
            c.get_table()
        assert e.value.code == grpc.StatusCode.UNAVAILABLE and type(e.value) is SessionRegistryError
        c.close()
    finally:
        d.stop()


def test_a_closed_client_and_a_dead_port(daemon):
    c = SessionRegistryClient(daemon)
    c.close()
    c.close()  # idempotent
    with pytest.raises(SessionRegistryError) as e:
        c.get_table()
    assert e.value.code == grpc.StatusCode.CANCELLED
    with SessionRegistryClient("127.0.0.1:1", timeout=2.0, retry=False) as dead:
        with pytest.raises(SessionRegistryError) as e:
            dead.list_tables()
    assert type(e.value) is SessionRegistryError and e.value.reason == ""
    assert e.value.code in (grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.DEADLINE_EXCEEDED)


class _FakeRpcError(grpc.RpcError):
    def __init__(self, trailer, code=grpc.StatusCode.INTERNAL):
        self._trailer, self._code = trailer, code

    def code(self):
        return self._code

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


def test_from_rpc_error_keeps_an_unknown_reason_on_the_base_class():
    info = error_details_pb2.ErrorInfo(reason="SOMETHING_NEW", domain=ERROR_DOMAIN, metadata={"k": "v"})
    st = status_pb2.Status(code=9, message="boom")
    st.details.add().Pack(info)
    err = from_rpc_error(_FakeRpcError(st.SerializeToString(), grpc.StatusCode.FAILED_PRECONDITION))
    assert type(err) is SessionRegistryError
    assert (err.reason, err.metadata) == ("SOMETHING_NEW", {"k": "v"})


@pytest.fixture(scope="module")
def roomy(store):
    """A daemon that takes requests of up to 4 MiB, far past the default
    --max-receive-message-size: whatever an operator allows, errors stay small."""
    d = Daemon(*store(), "--max-receive-message-size", str(4 * 1024 * 1024))
    with grpc.insecure_channel(d.address) as channel:
        yield rpc.SessionRegistryStub(channel)
    d.stop()


def test_the_worst_requests_get_invalid_argument_within_default_metadata_limits(roomy, table):
    """A request that breaks rules thousands of times, with long non-ASCII
    text, still gets the daemon's INVALID_ARGUMENT, details and all, on a
    channel with grpcio's default limits: its error does not echo every
    violation, so its trailers stay far under the 8 KiB metadata limit (an
    error that did would reach the client only as grpcio's own
    "received ... metadata size exceeds limit")."""
    emoji = "\U0001F600"
    metadata = {"%s\n%d" % (emoji * 40, i): emoji * 1000 + "\0" for i in range(64)}
    worst = [
        lambda: roomy.Update(pb.UpdateRequest(
            table=table, session=pb.Session(id="s", name="n"),
            update_mask=field_mask_pb2.FieldMask(paths=["no.such.field.%d" % i for i in range(40_000)]))),
        lambda: roomy.Update(pb.UpdateRequest(
            table=table, session=pb.Session(id="s", name="n"),
            update_mask=field_mask_pb2.FieldMask(paths=[emoji * 20_000] * 8))),
        lambda: roomy.Register(pb.RegisterRequest(
            table=table + " " + emoji * 1000, request_id=emoji * 1000,
            session=pb.Session(id=emoji * 1000, name="\n" + emoji * 1000, project_path=emoji * 1000 + "/..",
                               metadata=metadata))),
    ]
    for call in worst:
        err = fail(call)
        assert err.code() == grpc.StatusCode.INVALID_ARGUMENT, err.details()
        info, violations = wire(err)
        assert info.reason == "INVALID_ARGUMENT"
        assert 1 <= len(violations) <= 11
        trailer = dict(err.trailing_metadata())["grpc-status-details-bin"]
        assert len(trailer) + len(err.details().encode()) < 4096
