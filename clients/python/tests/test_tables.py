"""Tables: create (idempotent), get, list, delete, and the limits on them."""
import json
import pathlib

import grpc
import pytest

from conftest import unique
from session_registry import (
    InvalidArgumentError,
    SessionRegistryClient,
    TableExistsError,
    TableLimitReachedError,
    TableNotEmptyError,
    TableNotFoundError,
    pb,
)


def test_the_default_table_exists_with_the_daemons_limit(client):
    t = client.get_table()
    assert (t.name, t.max_sessions) == ("default", 10)
    assert client.get_table("default") == t


def test_create_returns_the_table_with_its_limit_an_empty_count_and_a_create_time(client):
    name = unique()
    t, created = client.create_table(name, max_sessions=3)
    try:
        assert created is True
        assert isinstance(t, pb.Table)
        assert (t.name, t.max_sessions, t.session_count) == (name, 3, 0)
        assert t.HasField("create_time")
        assert client.get_table(name) == t
    finally:
        client.delete_table(name)


def test_create_is_idempotent_with_the_same_limit_or_max_sessions_0(client, new_table):
    name = new_table(max_sessions=4)
    again, created = client.create_table(name, max_sessions=4)
    assert created is False and again.max_sessions == 4
    again, created = client.create_table(name)  # 0: whatever limit it has
    assert created is False and again.max_sessions == 4


def test_max_sessions_0_gives_the_daemons_default_limit(client):
    name = unique()
    t, created = client.create_table(name)
    try:
        assert created and t.max_sessions == 10
    finally:
        client.delete_table(name)


def test_create_with_a_different_limit_is_table_exists(client, new_table):
    name = new_table(max_sessions=3)
    with pytest.raises(TableExistsError) as e:
        client.create_table(name, max_sessions=4)
    assert e.value.code == grpc.StatusCode.ALREADY_EXISTS
    assert e.value.metadata == {"table": name, "max_sessions": "3"}


def test_list_tables_in_byte_order_with_limits_and_counts(client, new_table):
    suffix = unique("")
    names = ["b" + suffix, "B" + suffix, "a" + suffix]
    for i, n in enumerate(names):
        client.create_table(n, max_sessions=i + 1)
    try:
        client.register("/counted", table=names[0])
        listed = [t for t in client.list_tables() if t.name in names]
        assert [t.name for t in listed] == sorted(names)  # uppercase first: byte order
        assert {t.name: (t.max_sessions, t.session_count) for t in listed} == {
            names[0]: (1, 1), names[1]: (2, 0), names[2]: (3, 0)}
        all_names = [t.name for t in client.list_tables()]
        assert all_names == sorted(all_names, key=lambda n: n.encode())
    finally:
        for n in names:
            client.delete_table(n, force=True)


def test_an_unknown_table_is_table_not_found_for_every_call(client):
    name = unique("nope")
    calls = [
        lambda: client.get_table(name),
        lambda: client.delete_table(name),
        lambda: client.register("/x", table=name),
        lambda: client.lookup(id="x", table=name),
        lambda: client.list_page(table=name),
        lambda: client.update("x", table=name, name="y"),
        lambda: client.remove("x", table=name),
        lambda: client.keep_alive("x", table=name),
        lambda: next(client.watch(table=name)),
    ]
    for call in calls:
        with pytest.raises(TableNotFoundError) as e:
            call()
        assert e.value.code == grpc.StatusCode.NOT_FOUND
        assert e.value.metadata == {"table": name}


def test_delete_refuses_a_table_with_sessions_unless_forced(client):
    name = unique()
    client.create_table(name, max_sessions=5)
    s = client.register("/held", table=name)
    with pytest.raises(TableNotEmptyError) as e:
        client.delete_table(name)
    assert e.value.code == grpc.StatusCode.FAILED_PRECONDITION
    assert e.value.metadata == {"table": name, "session_count": "1"}
    assert client.lookup(id=s.id, table=name) == s  # nothing was deleted
    client.delete_table(name, force=True)
    with pytest.raises(TableNotFoundError):
        client.get_table(name)
    # Created again, it starts empty: the sessions went with it.
    t, created = client.create_table(name, max_sessions=5)
    assert created and t.session_count == 0
    client.register("/held", table=name)
    client.delete_table(name, force=True)


def test_table_names_are_validated(client):
    for bad in ("-starts-with-dash", "has/slash", "x" * 64):
        with pytest.raises(InvalidArgumentError) as e:
            client.create_table(bad)
        assert [f for f, _ in e.value.field_violations] == ["table"]
    with pytest.raises(InvalidArgumentError) as e:
        client.create_table("a/b", max_sessions=2_000_000)
    assert sorted(f for f, _ in e.value.field_violations) == ["max_sessions", "table"]


def test_the_table_limit_is_table_limit_reached_with_current_and_max(tiny):
    with SessionRegistryClient(tiny.address, timeout=5.0) as c:
        assert c.create_table("second")[1] is True  # `default` is the first of 2
        try:
            with pytest.raises(TableLimitReachedError) as e:
                c.create_table("third")
            assert e.value.code == grpc.StatusCode.RESOURCE_EXHAUSTED
            assert (e.value.current, e.value.max) == (2, 2)
            assert c.create_table("second")[1] is False  # an existing table is no new table
        finally:
            c.delete_table("second")
        assert c.create_table("third")[1] is True
        c.delete_table("third")


def test_server_info_names_the_daemons_version_and_its_store(client, request):
    store = request.node.callspec.params["store"]
    version = json.loads((pathlib.Path(__file__).parents[3] / "package.json").read_text())["version"]
    info = client.server_info()
    assert isinstance(info, pb.GetServerInfoResponse)
    assert (info.version, info.store, info.store_available) == (version, store, True)
