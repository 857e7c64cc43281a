"""Sessions: register (normalization, names, uniqueness, the limit, under
concurrency), lookup, list and its pages, update with masks and revisions,
remove, and request_ids."""
import re
from concurrent.futures import ThreadPoolExecutor

import grpc
import pytest

from conftest import unique
from session_registry import (
    InvalidArgumentError,
    ProjectAlreadyOpenError,
    RevisionMismatchError,
    SessionExistsError,
    SessionLimitReachedError,
    SessionNotFoundError,
    SessionRegistryClient,
    SessionRegistryError,
    TableNotFoundError,
    pb,
)

UUID4 = re.compile(r"^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$")


def fill(client, table, n, prefix="s"):
    """Registers s1..sn at /p/s1../p/sn, in order; returns them as registered."""
    return [client.register("/p/%s%d" % (prefix, i), id="%s%d" % (prefix, i), table=table) for i in range(1, n + 1)]


def ids(sessions):
    return [s.id for s in sessions]


def fields(err):
    return sorted(f for f, _ in err.field_violations)


def channels(daemon, n):
    """Clients with a connection each, so that calls really travel side by side."""
    return [SessionRegistryClient(daemon, timeout=10.0, options=[("grpc.use_local_subchannel_pool", 1)])
            for _ in range(n)]


def run_all(calls, workers=16):
    """Runs the calls on threads at once; returns (results, errors) in call order."""
    def attempt(call):
        try:
            return call(), None
        except SessionRegistryError as err:
            return None, err
    with ThreadPoolExecutor(max_workers=workers) as pool:
        outcomes = list(pool.map(attempt, calls))
    return [r for r, _ in outcomes if r is not None], [e for _, e in outcomes if e is not None]


# -- register ---------------------------------------------------------------

def test_register_returns_the_session_as_stored(client, table):
    s = client.register("/home/py//app/./", metadata={"editor": "vim"}, ttl=30, table=table)
    assert isinstance(s, pb.Session)
    assert UUID4.match(s.id)
    assert (s.project_path, s.name, dict(s.metadata)) == ("/home/py/app", "app", {"editor": "vim"})
    assert s.create_time == s.update_time
    assert s.revision == client.get_table(table).revision
    assert s.ttl.ToNanoseconds() == 30 * 10**9
    assert s.expire_time.ToNanoseconds() == s.create_time.ToNanoseconds() + 30 * 10**9
    # Stored exactly as returned.
    assert client.lookup(id=s.id, table=table) == s
    assert list(client.list(table=table)) == [s]


def test_register_keeps_an_explicit_id_and_name_and_makes_a_new_uuid_each_time(client, table):
    named = client.register("/srv/named", id="my-id", name="My Project", table=table)
    assert (named.id, named.name) == ("my-id", "My Project")
    a = client.register("/srv/a", table=table)
    b = client.register("/srv/b", table=table)
    assert UUID4.match(a.id) and UUID4.match(b.id) and a.id != b.id


@pytest.mark.parametrize("path,name", [
    ("/", "/"),
    ("/home/me/src/app/", "app"),
    ("/x/" + "é" * 60, "é" * 50),  # cut to 50 code points
])
def test_register_derives_the_name_from_the_last_segment(client, table, path, name):
    assert client.register(path, table=table).name == name


def test_register_normalizes_the_path_and_treats_spellings_as_one_project(client, table):
    s = client.register("/a//b/./c/", table=table)
    assert (s.project_path, s.name) == ("/a/b/c", "c")
    for spelling in ("/a/b/c", "/a/b/c/", "//a/b//c", "/a/./b/c"):
        with pytest.raises(ProjectAlreadyOpenError) as e:
            client.register(spelling, table=table)
        assert e.value.code == grpc.StatusCode.ALREADY_EXISTS
        assert (e.value.session_id, e.value.project_path) == (s.id, "/a/b/c")
        assert client.lookup(project_path=spelling, table=table) == s
    # Segments that only contain dots are names, not parent references.
    for odd in ("/a/..hidden", "/a/b..c", "/a/...", "/..a"):
        assert client.register(odd, table=table).project_path == odd


@pytest.mark.parametrize("path", ["", "rel/x", "./x", "~/x", "/a/../b", "/a/..", "/..", "/a\x00b",
                                  "/" + "a" * 4096])
def test_register_refuses_a_bad_path_naming_the_field(client, table, path):
    with pytest.raises(InvalidArgumentError) as e:
        client.register(path, table=table)
    assert e.value.code == grpc.StatusCode.INVALID_ARGUMENT
    assert fields(e.value) == ["session.project_path"]
    assert all(description for _, description in e.value.field_violations)


def test_register_names_every_bad_field_at_once(client):
    with pytest.raises(InvalidArgumentError) as e:
        client.register("relative", id="a b", name="bad\nname", metadata={"": "v"}, ttl=0.5, table="-bad")
    assert fields(e.value) == ["session.id", "session.metadata", "session.name", "session.project_path",
                               "session.ttl", "table"]


def test_register_refuses_a_duplicate_id_and_a_duplicate_path_and_keeps_the_first(client, table):
    first = client.register("/srv/dup", id="one", table=table)
    with pytest.raises(SessionExistsError) as e:
        client.register("/srv/other", id="one", table=table)
    assert e.value.code == grpc.StatusCode.ALREADY_EXISTS
    assert e.value.session_id == "one"
    assert e.value.metadata == {"table": table, "session_id": "one"}
    with pytest.raises(ProjectAlreadyOpenError) as e:
        client.register("/srv/dup/", id="two", table=table)
    assert e.value.session_id == "one" and e.value.project_path == "/srv/dup"
    assert list(client.list(table=table)) == [first]


def test_one_id_and_one_path_may_be_registered_in_two_tables(client, new_table):
    t1, t2 = new_table(), new_table()
    a = client.register("/shared", id="same", table=t1)
    b = client.register("/shared", id="same", table=t2)
    assert (a.id, a.project_path) == (b.id, b.project_path)


def test_the_limit_admits_exactly_max_sessions_and_a_removal_frees_a_slot(client, new_table):
    table = new_table(max_sessions=3)
    made = fill(client, table, 3)
    with pytest.raises(SessionLimitReachedError) as e:
        client.register("/p/s4", table=table)
    assert e.value.code == grpc.StatusCode.RESOURCE_EXHAUSTED
    assert (e.value.current, e.value.max) == (3, 3)
    assert e.value.metadata == {"table": table, "current": "3", "max": "3"}
    client.remove(made[0].id, table=table)
    client.register("/p/s4", table=table)
    assert client.get_table(table).session_count == 3


def test_register_checks_in_order_invalid_table_limit_id_path(client, new_table):
    table = new_table(max_sessions=1)
    client.register("/p/s1", id="s1", table=table)
    with pytest.raises(InvalidArgumentError):  # invalid input before an unknown table
        client.register("rel", table="py-no-such-table")
    with pytest.raises(SessionLimitReachedError):  # the limit before a duplicate id and path
        client.register("/p/s1", id="s1", table=table)
    roomy = new_table(max_sessions=5)
    client.register("/p/s1", id="s1", table=roomy)
    with pytest.raises(SessionExistsError):  # a duplicate id before a duplicate path
        client.register("/p/s1", id="s1", table=roomy)


def test_exactly_max_of_many_concurrent_registers_succeed(daemon, client, new_table):
    table = new_table(max_sessions=10)
    cs = channels(daemon, 4)
    try:
        won, lost = run_all([lambda i=i: cs[i % 4].register("/race/%d" % i, id="c%d" % i, table=table)
                             for i in range(200)])
    finally:
        for c in cs:
            c.close()
    assert len(won) == 10 and len(lost) == 190
    for err in lost:
        assert isinstance(err, SessionLimitReachedError), err
        assert (err.current, err.max) == (10, 10)
    listed = list(client.list(table=table))
    assert sorted(ids(listed)) == sorted(ids(won))
    assert client.get_table(table).session_count == 10


def test_one_path_and_one_id_go_to_exactly_one_of_many_concurrent_registers(daemon, client, new_table):
    table = new_table(max_sessions=1000)
    cs = channels(daemon, 4)
    try:
        won, lost = run_all([lambda i=i: cs[i % 4].register("/contested", id="p%d" % i, table=table)
                             for i in range(60)])
        assert len(won) == 1 and len(lost) == 59
        for err in lost:
            assert isinstance(err, ProjectAlreadyOpenError) and err.session_id == won[0].id
        won, lost = run_all([lambda i=i: cs[i % 4].register("/same-id/%d" % i, id="the-id", table=table)
                             for i in range(60)])
        assert len(won) == 1 and len(lost) == 59
        for err in lost:
            assert isinstance(err, SessionExistsError) and err.session_id == "the-id"
    finally:
        for c in cs:
            c.close()
    assert client.get_table(table).session_count == 2


def test_exactly_one_of_many_concurrent_updates_at_one_revision_wins(daemon, client, table):
    s = client.register("/cas", id="cas", table=table)
    cs = channels(daemon, 4)
    try:
        won, lost = run_all([lambda i=i: cs[i % 4].update("cas", table=table, name="n%d" % i,
                                                          expected_revision=s.revision)
                             for i in range(40)])
    finally:
        for c in cs:
            c.close()
    assert len(won) == 1
    assert all(isinstance(err, RevisionMismatchError) for err in lost)
    assert client.lookup(id="cas", table=table) == won[0]


# -- request_id ---------------------------------------------------------------

def test_a_repeated_request_id_returns_the_first_result(client, table):
    first = client.register("/idem", table=table, request_id="req-1")
    again = client.register("/idem", table=table, request_id="req-1")
    assert again == first
    client.remove(first.id, table=table)
    assert client.register("/idem", table=table, request_id="req-1") == first  # even after removal
    assert client.get_table(table).session_count == 0
    u = client.register("/upd", table=table)
    u1 = client.update(u.id, table=table, name="x", expected_revision=u.revision, request_id="req-u")
    assert client.update(u.id, table=table, name="x", expected_revision=u.revision, request_id="req-u") == u1
    r1 = client.remove(u.id, table=table, request_id="req-r")
    assert client.remove(u.id, table=table, request_id="req-r") == r1


def test_concurrent_registers_with_one_request_id_register_once(daemon, client, table):
    cs = channels(daemon, 4)
    try:
        won, lost = run_all([lambda i=i: cs[i % 4].register("/once", table=table, request_id="only-once")
                             for i in range(40)])
    finally:
        for c in cs:
            c.close()
    assert lost == [] and len(won) == 40
    assert len({s.id for s in won}) == 1
    assert client.get_table(table).session_count == 1


def test_a_malformed_request_id_is_invalid_argument(client, table):
    for call in (lambda: client.register("/r", table=table, request_id="has space"),
                 lambda: client.update("x", table=table, name="n", request_id="x" * 129),
                 lambda: client.remove("x", table=table, request_id="bad/slash")):
        with pytest.raises(InvalidArgumentError) as e:
            call()
        assert fields(e.value) == ["request_id"]


# -- lookup -------------------------------------------------------------------

def test_lookup_by_id_path_and_name(client, table):
    fill(client, table, 3)
    s = client.register("/srv/look/here", table=table)
    assert client.lookup(id=s.id, table=table) == s
    assert client.lookup(project_path="/srv//look/./here/", table=table) == s
    assert client.lookup(name="here", table=table) == s


def test_lookup_misses_are_session_not_found_with_the_key(client, table):
    fill(client, table, 1)
    # The ErrorInfo carries the key asked for: session_id for an id, else the key's own name.
    for key, meta in (({"id": "ghost"}, {"session_id": "ghost"}),
                      ({"project_path": "/p"}, {"project_path": "/p"}),  # a prefix of /p/s1 is no match
                      ({"project_path": "/p/s1/x"}, {"project_path": "/p/s1/x"}),
                      ({"project_path": "/P/S1"}, {"project_path": "/P/S1"}),
                      ({"name": "s"}, {"name": "s"}),
                      ({"name": "S1"}, {"name": "S1"}),
                      ({"name": "s1 "}, {"name": "s1 "})):
        with pytest.raises(SessionNotFoundError) as e:
            client.lookup(table=table, **key)
        assert e.value.code == grpc.StatusCode.NOT_FOUND
        assert e.value.metadata == {"table": table, **meta}


def test_lookup_by_name_returns_the_oldest_then_the_next_oldest(client, table):
    a = client.register("/one/dup", table=table)
    b = client.register("/two/dup", table=table)
    assert client.lookup(name="dup", table=table).id == a.id
    client.remove(a.id, table=table)
    assert client.lookup(name="dup", table=table).id == b.id
    client.update(b.id, table=table, name="renamed")
    with pytest.raises(SessionNotFoundError):
        client.lookup(name="dup", table=table)


def test_lookup_takes_exactly_one_key(client, table):
    with pytest.raises(TypeError):
        client.lookup(table=table)
    with pytest.raises(TypeError):
        client.lookup(id="a", name="b", table=table)
    # The daemon refuses a keyless request too (the SDK never sends one).
    with pytest.raises(grpc.RpcError) as e:
        client._stub.Lookup(pb.LookupRequest(table=table), timeout=5)
    assert e.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    for key in ({"project_path": "rel/x"}, {"id": "a b"}):
        with pytest.raises(InvalidArgumentError):
            client.lookup(table=table, **key)


# -- list and pages -------------------------------------------------------------

def test_list_an_empty_table(client, table):
    page = client.list_page(table=table)
    assert (list(page.sessions), page.next_page_token, page.total_size) == ([], "", 0)
    assert list(client.list(table=table)) == []


def test_list_oldest_first_as_stored_now_with_the_revision_read_at(client, table):
    s1, s2, s3 = fill(client, table, 3)
    s1b = client.update(s1.id, table=table, name="renamed", metadata={"k": "v"})
    page = client.list_page(table=table)
    assert list(page.sessions) == [s1b, s2, s3]
    assert (page.next_page_token, page.total_size) == ("", 3)
    assert page.revision == client.get_table(table).revision == s1b.revision


def test_pages_of_two_through_five_sessions(client, table):
    made = fill(client, table, 5)
    p1 = client.list_page(table=table, page_size=2)
    p2 = client.list_page(table=table, page_size=2, page_token=p1.next_page_token)
    p3 = client.list_page(table=table, page_size=2, page_token=p2.next_page_token)
    assert [ids(p.sessions) for p in (p1, p2, p3)] == [["s1", "s2"], ["s3", "s4"], ["s5"]]
    assert p1.next_page_token and p2.next_page_token and p3.next_page_token == ""
    assert {p.total_size for p in (p1, p2, p3)} == {5}
    assert list(p1.sessions) + list(p2.sessions) + list(p3.sessions) == made
    listed = client.list(table=table, page_size=2)
    assert not isinstance(listed, list)  # a generator, fetching pages as needed
    assert list(listed) == made


def test_pages_neither_skip_nor_repeat_across_removals_and_inserts(client, table):
    fill(client, table, 5)
    p1 = client.list_page(table=table, page_size=2)
    client.remove("s1", table=table)  # on the page already read
    client.remove("s2", table=table)  # the last one the token points after
    client.register("/late", id="late", table=table)
    rest, token = [], p1.next_page_token
    while token:
        page = client.list_page(table=table, page_size=2, page_token=token)
        rest += ids(page.sessions)
        token = page.next_page_token
    assert rest == ["s3", "s4", "s5", "late"]


@pytest.mark.parametrize("token", ["garbage", "AAAA", "x" * 300])
def test_an_invalid_page_token_is_invalid_argument(client, table, token):
    fill(client, table, 1)
    with pytest.raises(InvalidArgumentError) as e:
        client.list_page(table=table, page_size=10, page_token=token)
    assert fields(e.value) == ["page_token"]


def test_page_size_bounds(daemon, client, new_table):
    table = new_table(max_sessions=1100)
    cs = channels(daemon, 4)
    try:
        made, failed = run_all([lambda i=i: cs[i % 4].register("/big/%d" % i, table=table) for i in range(1100)])
    finally:
        for c in cs:
            c.close()
    assert failed == [] and len(made) == 1100
    with pytest.raises(InvalidArgumentError) as e:
        client.list_page(table=table, page_size=-1)
    assert fields(e.value) == ["page_size"]
    default = client.list_page(table=table)  # 0 means 100
    assert len(default.sessions) == 100 and default.next_page_token and default.total_size == 1100
    for size in (1000, 5000):  # capped to 1000
        first = client.list_page(table=table, page_size=size)
        rest = client.list_page(table=table, page_size=size, page_token=first.next_page_token)
        assert (len(first.sessions), len(rest.sessions), rest.next_page_token) == (1000, 100, "")
        assert set(ids(first.sessions) + ids(rest.sessions)) == set(ids(made))


# -- update ----------------------------------------------------------------------

def test_update_with_an_implied_mask_changes_only_the_fields_given(client, table):
    s = client.register("/upd", name="before", metadata={"a": "1"}, ttl=60, table=table)
    u = client.update(s.id, table=table, name="after")
    assert (u.name, u.project_path, dict(u.metadata), u.ttl) == ("after", "/upd", {"a": "1"}, s.ttl)
    assert u.create_time == s.create_time
    assert u.update_time.ToNanoseconds() >= s.update_time.ToNanoseconds()
    assert u.revision > s.revision and u.revision == client.get_table(table).revision
    m = client.update(s.id, table=table, metadata={"b": "2"})  # replaced as a whole
    assert dict(m.metadata) == {"b": "2"} and m.name == "after"
    c = client.update(s.id, table=table, metadata={}, ttl=None)  # given, so named: cleared
    assert dict(c.metadata) == {} and not c.HasField("ttl") and not c.HasField("expire_time")
    t = client.update(s.id, table=table, ttl=120)
    assert t.ttl.seconds == 120
    assert t.expire_time.ToNanoseconds() == t.update_time.ToNanoseconds() + 120 * 10**9


def test_update_paths_keep_the_name_free_the_old_path_and_stay_unique(client, table):
    s = client.register("/old/place", name="kept", table=table)
    other = client.register("/taken", table=table)
    moved = client.update(s.id, table=table, project_path="/new//place/")
    assert (moved.project_path, moved.name) == ("/new/place", "kept")
    assert client.register("/old/place", table=table).project_path == "/old/place"  # freed
    with pytest.raises(ProjectAlreadyOpenError) as e:
        client.update(s.id, table=table, project_path="/taken/")
    assert e.value.session_id == other.id
    assert client.lookup(id=s.id, table=table) == moved  # nothing changed
    same = client.update(s.id, table=table, project_path="/new/place/.")  # its own path, respelled
    assert same.project_path == "/new/place"
    with pytest.raises(InvalidArgumentError) as e:
        client.update(s.id, table=table, project_path="/a/../b")
    assert fields(e.value) == ["session.project_path"]


def test_update_with_an_explicit_mask(client, table):
    s = client.register("/srv/mask", name="named", metadata={"k": "v"}, table=table)
    # Only the masked field changes, whatever else is set.
    u = client.update(s.id, table=table, name="ignored", metadata={"x": "y"}, update_mask=["metadata"])
    assert (u.name, dict(u.metadata)) == ("named", {"x": "y"})
    # A masked field left empty: name is derived again, metadata cleared.
    d = client.update(s.id, table=table, project_path="/srv/moved", update_mask=["name", "project_path", "metadata"])
    assert (d.name, d.project_path, dict(d.metadata)) == ("moved", "/srv/moved", {})


@pytest.mark.parametrize("path", ["id", "create_time", "revision", "bogus"])
def test_update_refuses_a_mask_naming_another_field(client, table, path):
    s = client.register("/srv/bad-mask", table=table)
    with pytest.raises(InvalidArgumentError) as e:
        client.update(s.id, table=table, name="x", update_mask=[path])
    assert fields(e.value) == ["update_mask"]


def test_update_refuses_an_update_that_names_nothing(client, table):
    s = client.register("/srv/nothing", table=table)
    with pytest.raises(InvalidArgumentError) as e:
        client.update(s.id, table=table)
    assert "update_mask" in fields(e.value)


def test_update_at_the_wrong_revision_is_revision_mismatch_and_changes_nothing(client, table):
    s = client.register("/srv/rev", table=table)
    u = client.update(s.id, table=table, name="one", expected_revision=s.revision)
    with pytest.raises(RevisionMismatchError) as e:
        client.update(s.id, table=table, name="stale", expected_revision=s.revision)
    assert e.value.code == grpc.StatusCode.ABORTED
    assert e.value.current_revision == u.revision
    assert e.value.metadata == {"table": table, "session_id": s.id, "current_revision": str(u.revision)}
    assert client.lookup(id=s.id, table=table) == u


def test_update_of_an_unknown_session_is_session_not_found(client, table):
    with pytest.raises(SessionNotFoundError) as e:
        client.update("ghost", table=table, name="x")
    assert e.value.metadata == {"table": table, "session_id": "ghost"}


# -- remove ------------------------------------------------------------------------

def test_remove_returns_the_session_as_it_was_and_frees_slot_path_and_id(client, new_table):
    table = new_table(max_sessions=2)
    s1, s2 = fill(client, table, 2)
    removed = client.remove(s1.id, table=table)
    assert removed == s1
    assert list(client.list(table=table)) == [s2]
    again = client.register(s1.project_path, id=s1.id, table=table)  # slot, id and path free
    assert again.revision > s1.revision


def test_remove_of_an_unknown_session(client, table):
    with pytest.raises(SessionNotFoundError) as e:
        client.remove("ghost", table=table)
    assert e.value.metadata == {"table": table, "session_id": "ghost"}
    assert client.remove("ghost", table=table, allow_missing=True) is None


def test_remove_at_the_wrong_revision_keeps_the_session(client, table):
    s = client.register("/srv/rm", table=table)
    with pytest.raises(RevisionMismatchError) as e:
        client.remove(s.id, table=table, expected_revision=s.revision + 1000)
    assert e.value.current_revision == s.revision
    assert client.lookup(id=s.id, table=table) == s
    assert client.remove(s.id, table=table, expected_revision=s.revision) == s
    assert client.get_table(table).session_count == 0


def test_the_default_table_is_used_when_none_is_named(client):
    s = client.register("/py/default/" + unique())
    try:
        assert client.lookup(id=s.id, table="default") == s
        assert client.lookup(id=s.id) == s
    finally:
        client.remove(s.id, allow_missing=True)
    with pytest.raises(TableNotFoundError):
        client.register("/x", table="py-missing-table")
