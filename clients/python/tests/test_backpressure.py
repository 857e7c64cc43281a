"""Back-pressure of watch(): a consumer that stops advancing the iterator
makes the daemon, not this process, hold the backlog, until the daemon ends
the watcher with WATCHER_TOO_SLOW. That it ends it at all proves the client
stopped reading: a client that buffered without bound would drain the
stream and never be too slow.

The daemon (``bounded``) lets a watcher fall 4 live messages behind and keeps
100 events per table. The watching client turns grpcio's BDP probing off, so
its HTTP/2 receive window stays at the fixed 64 KiB and the amounts written
here (about 1 MiB and more, in events of 4-16 KiB, the most metadata a session may carry) exceed everything the path can
hold many times over."""
import grpc

from conftest import unique
from session_registry import RevisionCompactedError, WatcherTooSlowError

NO_BDP = [("grpc.http2.bdp_probe", 0)]


def big_update(c, table, id, n, keys):
    """An Update whose event is ``keys`` x 4 KB of metadata; returns its revision."""
    return c.update(id, table=table, metadata={"k%d" % j: "%06d" % n + "x" * 4000 for j in range(keys)}).revision


def stalled_watch(bounded, writer, auto_resume, writes, keys):
    """Opens a watch, takes the snapshot, then writes ``writes`` big updates
    without advancing it; returns (watching client, stream, table, revisions)."""
    table = unique()
    writer.create_table(table)
    s = writer.register("/bp", id="bp", table=table)
    c = bounded.client(options=NO_BDP)
    w = c.watch(table=table, auto_resume=auto_resume, backoff={"initial": 0.01})
    snap = next(w)
    assert snap.kind == "snapshot" and snap.sessions == [s]
    return c, w, table, [big_update(writer, table, "bp", i, keys) for i in range(writes)]


def test_a_stalled_consumer_is_ended_as_too_slow_after_everything_before_the_resume_revision(bounded, record):
    with bounded.client() as writer:
        c, w, table, written = stalled_watch(bounded, writer, auto_resume=False, writes=60, keys=4)
        try:
            r = record(w)
            err = r.ending()
            assert isinstance(err, WatcherTooSlowError), err
            assert err.code == grpc.StatusCode.RESOURCE_EXHAUSTED
            assert err.metadata["table"] == table
            got = [e.revision for e in r.events]
            # Everything before the resume revision arrived, in order, with no gap.
            assert 0 < len(got) < len(written) and got == written[:len(got)]
            assert err.resume_revision == written[len(got)]
        finally:
            c.close()
            writer.delete_table(table, force=True)


def test_auto_resume_carries_on_from_the_resume_revision_without_loss_or_duplicates(bounded, record):
    with bounded.client() as writer:
        c, w, table, written = stalled_watch(bounded, writer, auto_resume=True, writes=60, keys=4)
        try:
            r = record(w)
            r.until(lambda x: x.events and x.events[-1].revision == written[-1], "the last write")
            assert [e.revision for e in r.events] == written
            assert len(r.snapshots) == 0  # the first snapshot was taken before; no resync
            assert isinstance(w.last_error, WatcherTooSlowError)
            more = big_update(writer, table, "bp", 60, 1)
            r.until(lambda x: x.events[-1].revision == more, "a live event after the resume")
        finally:
            c.close()
            writer.delete_table(table, force=True)


def test_auto_resume_resyncs_when_the_resume_revision_is_compacted_meanwhile(bounded, record):
    with bounded.client() as writer:
        c, w, table, written = stalled_watch(bounded, writer, auto_resume=True, writes=250, keys=4)
        try:
            r = record(w)
            r.until(lambda x: x.snapshots, "the resync snapshot")
            events, snap = r.items[:-1], r.items[-1]
            assert [e.revision for e in events] == written[:len(events)]  # the prefix it got
            assert snap.resync and snap.revision == written[-1]
            assert snap.sessions == [writer.lookup(id="bp", table=table)]
            assert isinstance(w.last_error, RevisionCompactedError)  # after WATCHER_TOO_SLOW
        finally:
            c.close()
            writer.delete_table(table, force=True)
