"""Watch: the snapshot, events in revision order, replay from a revision,
compaction, resync, and resuming across a real network fault."""
import threading
from concurrent.futures import ThreadPoolExecutor

import grpc
import pytest

from conftest import FAST_RECONNECT, WAIT, unique
from session_registry import (
    ERROR_DOMAIN,
    InvalidArgumentError,
    RevisionCompactedError,
    SessionRegistryClient,
    SessionRegistryError,
    TableNotFoundError,
    pb,
)
from tcp_proxy import FaultProxy


def kinds(items):
    return [(i.kind, i.type, i.session.id if i.session else None) for i in items]


def test_from_0_a_snapshot_then_every_event_in_revision_order(client, table, record):
    a = client.register("/a", id="a", table=table)
    b = client.register("/b", id="b", table=table)
    w = record(client.watch(table=table))
    w.until(lambda r: r.items, "the snapshot")
    snap = w.items[0]
    assert (snap.kind, snap.revision, snap.resync) == ("snapshot", b.revision, False)
    assert snap.sessions == [a, b]
    c = client.register("/c", id="c", table=table)
    a2 = client.update("a", table=table, name="renamed")
    client.remove("b", table=table)
    removed_at = client.get_table(table).revision
    w.until(lambda r: len(r.events) >= 3, "three events")
    assert len(w.snapshots) == 1
    assert [(e.type, e.session, e.revision) for e in w.events] == [
        ("REGISTERED", c, c.revision),
        ("UPDATED", a2, a2.revision),
        ("REMOVED", b, removed_at),  # a removed session comes in its last state
    ]
    assert w.stream.last_revision == removed_at


def test_from_n_the_retained_events_without_a_snapshot_then_live(client, table, record):
    client.register("/s1", id="s1", table=table)
    s2 = client.register("/s2", id="s2", table=table)
    s3 = client.update("s1", table=table, metadata={"k": "v"})
    w = record(client.watch(table=table, start_revision=s2.revision))
    w.until(lambda r: len(r.events) >= 2, "the replay")
    s4 = client.register("/s4", id="s4", table=table)
    w.until(lambda r: len(r.events) >= 3, "the live event")
    assert w.snapshots == []
    assert [e.revision for e in w.events] == [s2.revision, s3.revision, s4.revision]


def test_list_then_watch_from_its_revision_plus_1_continues_exactly(client, table, record):
    client.register("/x", id="x", table=table)
    client.register("/y", id="y", table=table)
    page = client.list_page(table=table)
    z = client.register("/z", id="z", table=table)
    w = record(client.watch(table=table, start_revision=page.revision + 1))
    w.until(lambda r: r.events, "the event after the page")
    y2 = client.update("y", table=table, name="why")
    w.until(lambda r: len(r.events) >= 2, "the live event")
    assert [(e.session.id, e.revision) for e in w.events] == [("z", z.revision), ("y", y2.revision)]


def test_every_write_reaches_every_watcher_once_in_order_under_concurrent_writes(daemon, client, new_table, record):
    table = new_table(max_sessions=1000)
    watchers = [record(client.watch(table=table)) for _ in range(3)]
    for w in watchers:
        w.until(lambda r: r.items, "the snapshot")
    writers = [SessionRegistryClient(daemon, timeout=10.0, options=[("grpc.use_local_subchannel_pool", 1)])
               for _ in range(4)]

    def life(i):  # register, then update or remove: 2 writes each
        c = writers[i % len(writers)]
        s = c.register("/c/%d" % i, id="c%d" % i, table=table)
        if i % 2:
            return [s.revision, c.update(s.id, table=table, metadata={"n": str(i)}).revision]
        c.remove(s.id, table=table)
        return [s.revision]

    try:
        with ThreadPoolExecutor(max_workers=8) as pool:
            known = [r for revs in pool.map(life, range(80)) for r in revs]
    finally:
        for c in writers:
            c.close()
    last = client.get_table(table).revision
    for w in watchers:
        w.until(lambda r: len(r.events) >= 160, "160 events")
    seen = [e.revision for e in watchers[0].events]
    assert len(seen) == 160 and seen == sorted(set(seen)) and seen[-1] == last
    assert set(known) <= set(seen)
    for w in watchers[1:]:
        assert [e.revision for e in w.events] == seen
    first_type = {}
    for e in watchers[0].events:
        first_type.setdefault(e.session.id, e.type)
    assert set(first_type.values()) == {"REGISTERED"}  # each session's events in its own order


def test_deleting_the_table_ends_its_watches_with_table_not_found(client, record):
    name = unique()
    client.create_table(name)
    client.register("/held", table=name)
    w1 = record(client.watch(table=name))
    w2 = record(client.watch(table=name, start_revision=1, auto_resume=True))  # not transient: raised
    w1.until(lambda r: r.items, "the snapshot")
    w2.until(lambda r: r.items, "the replay")
    client.delete_table(name, force=True)
    for w in (w1, w2):
        err = w.ending()
        assert isinstance(err, TableNotFoundError) and err.code == grpc.StatusCode.NOT_FOUND


def test_an_unknown_or_invalid_table(client):
    with pytest.raises(TableNotFoundError):
        next(client.watch(table=unique("nope")))
    with pytest.raises(InvalidArgumentError) as e:
        next(client.watch(table="-bad-"))
    assert [f for f, _ in e.value.field_violations] == ["table"]


def history(c, table):
    """108 writes in a new table on a daemon that keeps 100 events; their revisions."""
    c.create_table(table)
    s = c.register("/h", id="h", table=table)
    return [s.revision] + [c.update("h", table=table, metadata={"n": str(i)}).revision for i in range(107)]


def test_a_start_older_than_the_history_is_revision_compacted(bounded, record):
    with bounded.client() as c:
        table = unique()
        written = history(c, table)
        with pytest.raises(RevisionCompactedError) as e:
            next(c.watch(table=table, start_revision=written[0]))
        err = e.value
        assert err.code == grpc.StatusCode.OUT_OF_RANGE
        assert (err.reason, err.domain, err.metadata["table"]) == ("REVISION_COMPACTED", ERROR_DOMAIN, table)
        # The 100 newest events are kept: the oldest start served is just after the 8th write.
        assert written[7] < err.compact_revision <= written[8]
        w = record(c.watch(table=table, start_revision=err.compact_revision))
        w.until(lambda r: len(r.events) >= 100, "the retained events")
        assert [x.revision for x in w.events] == written[8:]
        c.delete_table(table, force=True)


def test_auto_resume_resyncs_with_a_snapshot_after_revision_compacted(bounded, record):
    with bounded.client() as c:
        table = unique()
        history(c, table)
        w = record(c.watch(table=table, start_revision=1, auto_resume=True, backoff={"initial": 0.01}))
        w.until(lambda r: r.items, "the resync snapshot")
        snap = w.items[0]
        assert (snap.kind, snap.resync) == ("snapshot", True)
        assert snap.sessions == [c.lookup(id="h", table=table)]
        assert isinstance(w.stream.last_error, RevisionCompactedError)
        s = c.register("/next", table=table)
        w.until(lambda r: r.events, "the live event")
        assert [(e.type, e.revision) for e in w.events] == [("REGISTERED", s.revision)]
        c.delete_table(table, force=True)


def test_auto_resume_continues_after_a_real_connection_loss(daemon, client, table, record):
    """The proxy passes the watch's first 3 messages (the snapshot and 2
    events, or more in one frame) and holds the rest back; once the client
    has delivered every message that passed, the test cuts the TCP
    connection. The stream reconnects through the proxy from its last
    revision + 1."""
    before = client.register("/before", id="before", table=table)
    with FaultProxy(daemon, ("messages", 3)) as proxy:
        with SessionRegistryClient(proxy.address, options=FAST_RECONNECT) as c:
            starts = []
            real_watch = c._stub.Watch

            def spy(request, **kwargs):  # records the start revisions; injects nothing
                starts.append(request.start_revision)
                return real_watch(request, **kwargs)
            c._stub.Watch = spy
            w = record(c.watch(table=table, auto_resume=True, backoff={"initial": 0.01}))
            w.until(lambda r: r.items, "the snapshot")
            made = [client.register("/e%d" % i, id="e%d" % i, table=table) for i in range(3)]
            assert proxy.holding.wait(WAIT)
            w.until(lambda r: len(r.items) >= proxy.passed, "the messages the proxy passed")
            delivered_before_cut = list(w.items)
            proxy.cut()
            made += [client.register("/e%d" % i, id="e%d" % i, table=table) for i in range(3, 6)]
            w.until(lambda r: len(r.events) >= 6, "every event")
            assert [(i.kind, i.revision) for i in w.items] == (
                [("snapshot", before.revision)] + [("event", s.revision) for s in made])
            assert not w.items[0].resync and len(w.snapshots) == 1
            assert proxy.cuts == 1 and proxy.connections >= 2
            assert isinstance(w.stream.last_error, SessionRegistryError)
            assert w.stream.last_error.code == grpc.StatusCode.UNAVAILABLE
            # Every later call started right after the last item the first one delivered.
            assert len(delivered_before_cut) == proxy.passed >= 3
            assert starts[0] == 0 and len(starts) >= 2
            assert set(starts[1:]) == {delivered_before_cut[-1].revision + 1}


def test_without_auto_resume_a_connection_loss_is_raised(daemon, table, client):
    with FaultProxy(daemon, ("messages", 1)) as proxy:
        with SessionRegistryClient(proxy.address, options=FAST_RECONNECT) as c:
            w = c.watch(table=table)
            assert next(w).kind == "snapshot"
            assert proxy.holding.wait(WAIT) and proxy.passed == 1
            client.register("/after", table=table)  # its event is held back: never delivered
            proxy.cut()
            with pytest.raises(SessionRegistryError) as e:
                next(w)
            assert e.value.code == grpc.StatusCode.UNAVAILABLE and e.value.reason == ""
            assert proxy.cuts == 1


def test_close_from_another_thread_and_closing_the_client_end_the_iteration_cleanly(daemon, client, table, record):
    w = client.watch(table=table)
    assert next(w).kind == "snapshot"
    threading.Timer(0.2, w.close).start()
    assert list(w) == []  # no error
    c = SessionRegistryClient(daemon)
    r1 = record(c.watch(table=table))
    r2 = record(c.watch(table=table, auto_resume=True))
    r1.until(lambda r: r.items, "the snapshot")
    r2.until(lambda r: r.items, "the snapshot")
    c.close()
    assert r1.ending() is None and r2.ending() is None
    with pytest.raises(SessionRegistryError) as e:  # a watch on a closed client
        next(c.watch(table=table))
    assert e.value.code == grpc.StatusCode.CANCELLED


# -- auto_resume's decisions, with failures injected at the stub ---------------------

class _Unavailable(grpc.RpcError):
    def code(self):
        return grpc.StatusCode.UNAVAILABLE

    def details(self):
        return "connection lost (injected)"

    def trailing_metadata(self):
        return ()


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


def test_auto_resume_reconnects_from_the_next_revision_and_resyncs_after_compaction(client, table, daemon):
    with SessionRegistryClient(daemon, timeout=5.0) as c:
        c._stub = broken = _BrokenWatchStub(c._stub, [_Unavailable(), _CompactedError()], after=2)
        a = client.register("/tmp/py-resume-a", table=table)
        with c.watch(table=table, auto_resume=True, backoff={"initial": 0.01}) as w:
            snap = next(w)
            b = client.register("/tmp/py-resume-b", table=table)
            e1 = next(w)  # the 2nd message; then UNAVAILABLE -> reconnect from e1.revision + 1
            client.remove(a.id, table=table)
            e2 = next(w)
            client.register("/tmp/py-resume-c", table=table)
            e3 = next(w)  # the 2nd message of the 2nd call; then REVISION_COMPACTED
            resync = next(w)
        assert (snap.kind, snap.resync) == ("snapshot", False)
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


def test_backoff_options_are_checked(client):
    with pytest.raises(ValueError):
        client.watch(backoff={"initial": 0})
    with pytest.raises(TypeError):
        client.watch(backoff={"start": 1})


def test_a_watch_item_decodes_every_event_type():
    from session_registry.watch import _item
    for value, name in ((1, "REGISTERED"), (2, "UPDATED"), (3, "REMOVED"), (4, "EXPIRED")):
        m = pb.WatchResponse(revision=7, event=pb.WatchEvent(type=value, session=pb.Session(id="x")))
        item = _item(m, False)
        assert (item.kind, item.type, item.revision, item.session.id) == ("event", name, 7, "x")
    assert _item(pb.WatchResponse(revision=1), False) is None  # an unknown kind is skipped
    with pytest.raises(SessionRegistryError) as e:
        _item(pb.WatchResponse(revision=2, event=pb.WatchEvent(type=1)), False)
    assert e.value.code == grpc.StatusCode.INTERNAL
