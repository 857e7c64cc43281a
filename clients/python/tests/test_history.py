"""A table's history (table_uid): every revision comes with the history it
belongs to, and a position from another history of the table (here: the
table deleted and made again) is refused rather than taken for one of this
history; watch() with auto_resume resyncs instead."""
import pytest

from session_registry import TableUidMismatchError


def _remake(client, table):
    """Registers two sessions, deletes and re-creates the table; returns the last old session."""
    client.register("/old/1", table=table)
    last = client.register("/old/2", table=table)
    client.delete_table(table, force=True)
    client.create_table(table)
    return last


def test_every_revision_handed_out_names_the_table_uid(client, table):
    uid = client.get_table(table).table_uid
    s = client.register("/uid/1", table=table)
    page = client.list_page(table=table)
    assert uid and s.table_uid == uid and page.table_uid == uid and page.sessions[0].table_uid == uid
    assert client.lookup(id=s.id, table=table).table_uid == uid
    with client.watch(table=table) as w:
        item = next(w)
        assert item.table_uid == uid and w.table_uid == uid


def test_update_and_remove_with_the_old_table_uid_are_refused(client, table):
    old = _remake(client, table)
    s = client.register("/new/1", table=table)
    for call in (lambda: client.update(s.id, table=table, name="x", expected_revision=s.revision,
                                       table_uid=old.table_uid),
                 lambda: client.remove(s.id, table=table, expected_revision=s.revision, table_uid=old.table_uid)):
        with pytest.raises(TableUidMismatchError) as e:
            call()
        assert e.value.table_uid == s.table_uid and e.value.current_revision == s.revision
    # With the right one they go through.
    assert client.update(s.id, table=table, name="x", expected_revision=s.revision, table_uid=s.table_uid).name == "x"


def test_a_watch_resumed_from_the_old_table_raises_or_resyncs(client, table):
    old = _remake(client, table)
    new = client.register("/new/1", table=table)
    with client.watch(table=table, start_revision=old.revision + 1, table_uid=old.table_uid) as w:
        with pytest.raises(TableUidMismatchError):
            next(w)
    with client.watch(table=table, start_revision=old.revision + 1, table_uid=old.table_uid, auto_resume=True,
                      backoff={"initial": 0.01, "max": 0.05}) as w:
        item = next(w)
        assert item.kind == "snapshot" and item.resync
        assert [s.project_path for s in item.sessions] == ["/new/1"] and item.table_uid == new.table_uid
        assert isinstance(w.last_error, TableUidMismatchError)
