"""Bearer tokens with roles (``--auth-tokens``): the SDK sends the token as
default metadata on every call, watches and lease keep-alives included, and
refusals come back as typed errors."""
import grpc
import pytest

from conftest import Daemon, Recorder, eventually
from session_registry import (
    InvalidArgumentError,
    PermissionDeniedError,
    SessionRegistryClient,
    UnauthenticatedError,
)

ADMIN = "admin-token-3f9a6c1d2e7b4a58"
WRITE = "write-token-8b2e4d7f1a9c3e60"
READ = "read-token-5c7e9a1b3d2f4e68"
TOKENS = """\
# ROLE  TOKEN  [TABLE ...]
admin   %s
write   %s   default py-auth-a   # only these two tables
read    %s
""" % (ADMIN, WRITE, READ)


@pytest.fixture(scope="module")
def secured(tmp_path_factory):
    path = tmp_path_factory.mktemp("auth") / "tokens"
    path.write_text(TOKENS)
    path.chmod(0o600)
    d = Daemon("--auth-tokens", str(path))
    with as_(d, ADMIN) as admin:
        admin.create_table("py-auth-a", max_sessions=5)
        admin.create_table("py-auth-b", max_sessions=5)
    yield d
    d.stop()


def as_(d, token, scheme="Bearer"):
    metadata = {} if token is None else {"authorization": "%s %s" % (scheme, token)}
    return SessionRegistryClient(d.address, timeout=5.0, metadata=metadata, retry=False)


def test_a_call_without_a_token_or_with_an_unknown_one_is_unauthenticated(secured):
    for token in (None, "not-a-configured-token-000000"):
        with as_(secured, token) as c:
            with pytest.raises(UnauthenticatedError) as e:
                c.get_table()
            assert e.value.code == grpc.StatusCode.UNAUTHENTICATED
            assert e.value.reason == "UNAUTHENTICATED"
            with pytest.raises(UnauthenticatedError):
                next(c.watch())
            with pytest.raises(UnauthenticatedError):
                c.register("/x")


def test_the_read_role_reads_but_may_not_write(secured):
    with as_(secured, WRITE) as writer:
        s = writer.register("/auth/read", table="py-auth-a")
    try:
        with as_(secured, READ) as c:
            assert c.lookup(id=s.id, table="py-auth-a") == s
            assert [x.id for x in c.list(table="py-auth-a")] == [s.id]
            w = Recorder(c.watch(table="py-auth-a"))
            try:
                w.until(lambda r: r.items, "the snapshot")
            finally:
                w.close()
            with pytest.raises(PermissionDeniedError) as e:
                c.register("/auth/denied", table="py-auth-a")
            err = e.value
            assert err.code == grpc.StatusCode.PERMISSION_DENIED
            # A role too low is refused at the headers, before the request names its table.
            assert (err.method, err.role, err.table) == ("Register", "read", "")
            # The role is checked before the request is validated.
            with pytest.raises(PermissionDeniedError):
                c.register("not/absolute", table="py-auth-a")
    finally:
        with as_(secured, ADMIN) as admin:
            admin.remove(s.id, table="py-auth-a")


def test_the_write_role_is_held_to_its_tables_and_may_not_manage_tables(secured):
    with as_(secured, WRITE, scheme="bearer") as c:  # the scheme in any case
        lease = c.register_with_keep_alive("/auth/lease", ttl=1, interval=0.2, table="py-auth-a")
        try:
            # The lease's keep-alives carry the token too, so they succeed.
            eventually(lambda: lease.renewals >= 2 or lease.lost, "two renewals")
            assert lease.lost is None
        finally:
            lease.remove()
        with pytest.raises(PermissionDeniedError) as e:
            c.register("/auth/other", table="py-auth-b")
        assert (e.value.method, e.value.role, e.value.table) == ("Register", "write", "py-auth-b")
        with pytest.raises(PermissionDeniedError) as e:
            c.create_table("py-auth-c")
        assert (e.value.method, e.value.role) == ("CreateTable", "write")
        # ListTables is allowed, and lists only the token's tables.
        assert [t.name for t in c.list_tables()] == ["default", "py-auth-a"]


def test_the_admin_role_may_do_everything(secured):
    with as_(secured, ADMIN) as c:
        t, created = c.create_table("py-auth-admin", max_sessions=2)
        assert created
        s = c.register("/auth/admin", table=t.name)
        c.delete_table(t.name, force=True)
        assert {"default", "py-auth-a", "py-auth-b"} <= {x.name for x in c.list_tables()}
        assert s.project_path == "/auth/admin"
        with pytest.raises(InvalidArgumentError):  # authorized, then validated
            c.register("not/absolute")
