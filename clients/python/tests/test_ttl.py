"""ttl, expiry, KeepAlive and the keep-alive lease. Sessions here live 1 s
(the shortest ttl the daemon allows); tests wait for the EXPIRED event with
a generous bound and never assert how long anything took."""
import threading
import time

import grpc
import pytest

from conftest import WAIT, eventually
from session_registry import (
    SessionLimitReachedError,
    SessionNotFoundError,
    SessionRegistryClient,
)


def expired(recorder):
    return [e for e in recorder.events if e.type == "EXPIRED"]


def test_expire_time_is_create_time_plus_ttl_and_keep_alive_pushes_it_without_a_revision_or_event(
        client, table, record):
    s = client.register("/t", id="t", ttl=60, table=table)
    assert s.ttl.ToNanoseconds() == 60 * 10**9
    assert s.expire_time.ToNanoseconds() == s.create_time.ToNanoseconds() + 60 * 10**9
    w = record(client.watch(table=table, start_revision=s.revision + 1))
    eventually(lambda: time.time_ns() > s.create_time.ToNanoseconds() + 2_000_000, "the clock to move past create_time")
    kept = client.keep_alive("t", table=table)
    assert kept.expire_time.ToNanoseconds() > s.expire_time.ToNanoseconds()
    assert (kept.revision, kept.update_time) == (s.revision, s.update_time)
    assert client.get_table(table).revision == s.revision
    marker = client.register("/m", table=table)
    w.until(lambda r: r.events, "the marker's event")
    assert [e.revision for e in w.events] == [marker.revision]  # the keep-alive sent none
    assert client.lookup(id="t", table=table).expire_time == kept.expire_time


def test_keep_alive_of_a_session_without_ttl_or_an_unknown_one(client, table):
    s = client.register("/n", table=table)
    assert client.keep_alive(s.id, table=table) == s
    with pytest.raises(SessionNotFoundError) as e:
        client.keep_alive("ghost", table=table)
    assert e.value.code == grpc.StatusCode.NOT_FOUND


def test_a_session_not_kept_alive_expires_with_one_expired_event_freeing_its_slot_and_path(
        client, new_table, record):
    table = new_table(max_sessions=1)
    w = record(client.watch(table=table))
    w.until(lambda r: r.items, "the snapshot")
    s = client.register("/e", id="e", ttl=1, table=table)
    with pytest.raises(SessionLimitReachedError):
        client.register("/other", table=table)
    # Nobody calls the daemon: it must expire the session on its own.
    w.until(lambda r: expired(r), "the EXPIRED event")
    [event] = expired(w)
    assert event.session == s and event.revision > s.revision
    with pytest.raises(SessionNotFoundError):
        client.keep_alive("e", table=table)
    with pytest.raises(SessionNotFoundError):
        client.lookup(project_path="/e", table=table)
    assert client.get_table(table).session_count == 0
    again = client.register("/e", id="e", table=table)  # slot, id and path are free
    assert again.project_path == "/e" and len(expired(w)) == 1


def test_update_sets_and_clears_the_ttl_and_expiry_follows_it(client, table, record):
    client.register("/u", id="u", table=table)
    with_ttl = client.update("u", table=table, ttl=3600)
    assert with_ttl.expire_time.ToNanoseconds() == with_ttl.update_time.ToNanoseconds() + 3600 * 10**9
    cleared = client.update("u", table=table, ttl=None)
    assert not cleared.HasField("ttl") and not cleared.HasField("expire_time")
    # One session's ttl shortened to 1 s, another's cleared: only the first expires.
    client.register("/short", id="short", ttl=3600, table=table)
    client.register("/keep", id="keep", ttl=1, table=table)
    client.update("keep", table=table, ttl=None)
    w = record(client.watch(table=table))
    shortened = client.update("short", table=table, ttl=1)
    assert shortened.ttl.seconds == 1
    w.until(lambda r: expired(r), "the shortened session to expire")
    assert [e.session.id for e in expired(w)] == ["short"]
    assert not client.lookup(id="keep", table=table).HasField("ttl")


def test_a_lease_keeps_the_session_past_its_ttl_and_removes_it_on_exit(client, table):
    renewed = []
    with client.register_with_keep_alive("/lease", ttl=1, interval=0.15, table=table, metadata={"a": "b"},
                                         on_renewed=renewed.append) as lease:
        first = lease.session
        assert first.ttl.seconds == 1 and first.metadata["a"] == "b"
        # Wait, by the same clock the daemon uses, until the first expire_time has passed.
        eventually(lambda: time.time_ns() > first.expire_time.ToNanoseconds() + 500_000_000 and lease.renewals >= 2,
                   "the first expire_time to pass with renewals")
        assert client.lookup(id=first.id, table=table).id == first.id
        assert lease.lost is None and not lease.closed
        assert lease.session.expire_time.ToNanoseconds() > first.expire_time.ToNanoseconds()
        assert len(renewed) >= 2 and renewed[-1].id == first.id
    assert lease.closed and lease.wait(0) is True
    with pytest.raises(SessionNotFoundError):
        client.lookup(id=first.id, table=table)


def test_a_lease_is_lost_when_someone_removes_the_session(client, table):
    called = threading.Event()
    seen = []
    lease = client.register_with_keep_alive("/lease-lost", ttl=1, interval=0.1, table=table,
                                            on_lost=lambda e: (seen.append(e), called.set()))
    try:
        client.remove(lease.id, table=table)
        assert called.wait(WAIT)
        assert isinstance(lease.lost, SessionNotFoundError) and seen == [lease.lost]
        assert lease.closed
        with pytest.raises(SessionNotFoundError):
            lease.wait(WAIT)
    finally:
        lease.close()


def test_closing_the_lease_or_the_client_stops_renewing_without_on_lost(daemon, client, table, record):
    w = record(client.watch(table=table))
    w.until(lambda r: r.items, "the snapshot")
    lost = []
    closed_lease = client.register_with_keep_alive("/closed-lease", ttl=1, interval=0.2, table=table,
                                                   on_lost=lost.append)
    other = SessionRegistryClient(daemon, timeout=5.0)
    orphan = other.register_with_keep_alive("/closed-client", ttl=1, interval=0.2, table=table,
                                            on_lost=lost.append)
    closed_lease.close()
    other.close()
    assert closed_lease.closed and orphan.closed
    assert closed_lease.wait(0) is True and orphan.wait(0) is True
    # Not renewed any more, both expire.
    w.until(lambda r: len(expired(r)) >= 2, "both sessions to expire")
    assert sorted(e.session.id for e in expired(w)) == sorted([closed_lease.id, orphan.id])
    assert lost == [] and closed_lease.lost is None and orphan.lost is None


def test_lease_arguments_are_checked_before_any_call(client, table):
    for kwargs in ({"ttl": 0.5}, {"ttl": 1, "interval": 2}, {"ttl": 1, "interval": 0}, {"ttl": True}):
        with pytest.raises(ValueError):
            client.register_with_keep_alive("/x", table=table, **kwargs)
    assert client.get_table(table).session_count == 0
