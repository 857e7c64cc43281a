"""watch_tables(): a snapshot of every table, then the whole list after each
change with what it changed; typed errors; the watcher limit waited out
with auto_resume; and after a daemon restart a new snapshot that lists the
tables gone meanwhile as deleted."""
from conftest import Daemon, Recorder, free_port, unique
from session_registry import TablesUpdate, WatcherLimitReachedError


def counts(update):
    return {t.name: t.session_count for t in update.tables}


def test_a_snapshot_then_each_change_as_the_whole_list_with_what_changed(client, new_table, record):
    name = new_table(max_sessions=3)
    r = record(client.watch_tables())
    r.until(lambda x: len(x.items) >= 1, "the snapshot")
    first = r.items[0]
    assert isinstance(first, TablesUpdate)
    assert first.snapshot is True and first.deleted == []
    assert counts(first)[name] == 0
    assert [t.name for t in first.tables] == sorted(t.name for t in first.tables)

    client.register(project_path="/tw/a", table=name)
    r.until(lambda x: counts(x.items[-1]).get(name) == 1, "the registration")
    changed = r.items[-1]
    assert changed.snapshot is False
    assert name in [t.name for t in changed.changed]

    client.delete_table(name, force=True)
    r.until(lambda x: name not in counts(x.items[-1]), "the deletion")
    assert name in r.items[-1].deleted


def test_raises_the_watcher_limit_and_waits_it_out_with_auto_resume(tiny):
    with tiny.client() as c:
        holder = Recorder(c.watch_tables())
        holder.until(lambda x: len(x.items) >= 1, "the holder's snapshot")
        try:
            refused = Recorder(c.watch_tables())
            refused.until(lambda x: x.ended, "the refusal")
            assert isinstance(refused.error, WatcherLimitReachedError)
            waiting = Recorder(c.watch_tables(auto_resume=True, backoff={"initial": 0.02, "max": 0.05}))
        finally:
            holder.close()
        waiting.until(lambda x: len(x.items) >= 1, "a snapshot once the slot is free")
        assert waiting.items[0].snapshot is True
        waiting.close()


def test_after_a_restart_a_new_snapshot_lists_what_went_as_deleted():
    port = free_port()
    first = Daemon("--listen", "127.0.0.1:%d" % port)
    second = None
    try:
        with first.client() as c:
            gone = unique()
            c.create_table(gone)
            r = Recorder(c.watch_tables(auto_resume=True, backoff={"initial": 0.02, "max": 0.2}))
            try:
                r.until(lambda x: len(x.items) >= 1 and gone in counts(x.items[0]), "the snapshot")
                first.stop()
                second = Daemon("--listen", "127.0.0.1:%d" % port)
                r.until(lambda x: len(x.items) >= 2, "the snapshot after the restart")
                again = r.items[1]
                assert again.snapshot is True
                assert again.deleted == [gone]
                assert [t.name for t in again.tables] == ["default"]
            finally:
                r.close()
    finally:
        first.stop()
        if second is not None:
            second.stop()
