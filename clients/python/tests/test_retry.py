"""Retries of register, update and remove with one request_id.

The first tests break a real connection: a TCP proxy between the client and
the daemon lets the first call reach the daemon, which applies it and
answers, and cuts the connection before the answer reaches the client (see
tcp_proxy.py). The client sees UNAVAILABLE and retries on a new connection
with the same request_id; the daemon must answer with the first result. The
proxy's decision counts HTTP/2 frames, not time, and the client reconnects
at once (FAST_RECONNECT), so the tests are deterministic.

The last tests inject UNAVAILABLE at the stub, to pin down the policy:
attempts, the shared request_id, retry=False and the deadline."""
import grpc
import pytest

from conftest import FAST_RECONNECT
from session_registry import (ProjectAlreadyOpenError, SessionNotFoundError, SessionRegistryClient,
                              SessionRegistryError, pb)
from tcp_proxy import FaultProxy

RESPONSES = {"Register": pb.RegisterResponse, "Update": pb.UpdateResponse, "Remove": pb.RemoveResponse}


class _Spy:
    """Wraps the real stub and records each request of ``method``; injects nothing."""

    def __init__(self, stub, method):
        self._stub, self._method, self.requests = stub, method, []

    def __getattr__(self, name):
        real = getattr(self._stub, name)
        if name != self._method:
            return real

        def call(request, **kwargs):
            self.requests.append(request)
            return real(request, **kwargs)
        return call


def through_a_lost_response(daemon, method, call):
    """Runs ``call(client)`` through a proxy that cuts the first response
    to ``method``; returns (result, the response the daemon sent and the
    client never saw, the requests the client sent)."""
    with FaultProxy(daemon, "response") as proxy:
        with SessionRegistryClient(proxy.address, timeout=10.0, options=FAST_RECONNECT,
                                   retry={"initial_backoff": 0.02}) as c:
            c._stub = spy = _Spy(c._stub, method)
            result = call(c)
        assert proxy.cuts == 1 and proxy.connections >= 2
        [dropped] = proxy.dropped
    return result, RESPONSES[method].FromString(dropped), spy.requests


def test_a_register_whose_response_was_lost_returns_the_same_session_on_retry(daemon, client, table):
    s, lost, requests = through_a_lost_response(daemon, "Register", lambda c: c.register("/lost/reply", table=table))
    # The first attempt registered (the daemon answered with this session);
    # the retry got that very session: no duplicate, no PROJECT_ALREADY_OPEN.
    assert lost.session == s
    assert len(requests) >= 2 and requests[0].request_id and all(r == requests[0] for r in requests)
    assert list(client.list(table=table)) == [s]
    assert client.get_table(table).revision == s.revision  # one write only


def test_a_conditional_update_whose_response_was_lost_is_not_a_revision_mismatch_on_retry(daemon, client, table):
    s = client.register("/lost/update", table=table)
    u, lost, requests = through_a_lost_response(
        daemon, "Update", lambda c: c.update(s.id, table=table, name="renamed", expected_revision=s.revision))
    assert lost.session == u and u.name == "renamed"
    assert len(requests) >= 2 and all(r == requests[0] for r in requests)
    assert client.lookup(id=s.id, table=table) == u
    assert client.get_table(table).revision == u.revision


def test_a_remove_whose_response_was_lost_returns_the_removed_session_on_retry(daemon, client, table):
    s = client.register("/lost/remove", table=table)
    removed, lost, requests = through_a_lost_response(daemon, "Remove", lambda c: c.remove(s.id, table=table))
    assert removed == lost.session == s
    assert len(requests) >= 2 and all(r == requests[0] for r in requests)
    with pytest.raises(SessionNotFoundError):
        client.lookup(id=s.id, table=table)


def test_without_retries_the_lost_response_is_unavailable_and_a_plain_repeat_conflicts(daemon, client, table):
    with FaultProxy(daemon, "response") as proxy:
        with SessionRegistryClient(proxy.address, timeout=10.0, options=FAST_RECONNECT, retry=False) as c:
            with pytest.raises(SessionRegistryError) as e:
                c.register("/lost/no-retry", table=table)
            assert e.value.code == grpc.StatusCode.UNAVAILABLE
    # It did register: the very reason to retry with a request_id.
    with pytest.raises(ProjectAlreadyOpenError):
        client.register("/lost/no-retry", table=table)
    assert pb.RegisterResponse.FromString(proxy.dropped[0]).session == client.lookup(
        project_path="/lost/no-retry", table=table)


# -- the policy, with UNAVAILABLE injected at the stub ----------------------------

class _Unavailable(grpc.RpcError):
    def code(self):
        return grpc.StatusCode.UNAVAILABLE

    def details(self):
        return "connection refused (injected)"

    def trailing_metadata(self):
        return ()


class _FlakyStub:
    """Wraps the real stub: the first ``fail`` calls of each method raise
    UNAVAILABLE before reaching the daemon; every request is recorded."""

    def __init__(self, stub, fail):
        self._stub, self.fail, self.requests = stub, fail, []

    def __getattr__(self, name):
        real = getattr(self._stub, name)

        def call(request, **kwargs):
            self.requests.append((name, request))
            if sum(1 for n, _ in self.requests if n == name) <= self.fail:
                raise _Unavailable()
            return real(request, **kwargs)
        return call


def test_register_update_remove_retry_with_one_request_id(client, table, daemon):
    with SessionRegistryClient(daemon, timeout=8.0, retry={"initial_backoff": 0.02}) as c:
        c._stub = flaky = _FlakyStub(c._stub, fail=2)
        s = c.register("/tmp/py-retry", table=table)
        s = c.update(s.id, table=table, metadata={"k": "v"})
        c.remove(s.id, table=table)
    for method in ("Register", "Update", "Remove"):
        ids = [r.request_id for n, r in flaky.requests if n == method]
        assert len(ids) == 3 and ids[0] and len(set(ids)) == 1
    assert list(client.list(table=table)) == []
    with SessionRegistryClient(daemon, timeout=8.0, retry={"initial_backoff": 0.02}) as c:
        c._stub = flaky = _FlakyStub(c._stub, fail=2)
        s = c.register("/tmp/py-retry2", table=table, request_id="mine")
        assert [r.request_id for _, r in flaky.requests] == ["mine"] * 3
        assert [x.id for x in client.list(table=table)] == [s.id]
        c._stub = flaky = _FlakyStub(c._stub._stub, fail=10)
        with pytest.raises(SessionRegistryError) as e:
            c.remove(s.id, table=table)
        assert e.value.code == grpc.StatusCode.UNAVAILABLE and len(flaky.requests) == 5  # max_attempts


def test_reads_are_not_retried(daemon):
    with SessionRegistryClient(daemon, retry={"initial_backoff": 0.02}) as c:
        c._stub = flaky = _FlakyStub(c._stub, fail=1)
        with pytest.raises(SessionRegistryError):
            c.get_table()
        assert len(flaky.requests) == 1


def test_retry_false_sends_no_request_id_and_the_deadline_bounds_all_attempts(daemon, table):
    with SessionRegistryClient(daemon, retry=False) as c:
        c._stub = flaky = _FlakyStub(c._stub, fail=1)
        with pytest.raises(SessionRegistryError) as e:
            c.register("/tmp/py-no-retry", table=table)
        assert e.value.code == grpc.StatusCode.UNAVAILABLE
        assert [r.request_id for _, r in flaky.requests] == [""]
    # Pauses of at least 0.1, 0.2, 0.4 and 0.8 s cannot fit 5 attempts into 0.5 s.
    with SessionRegistryClient(daemon, timeout=0.5) as c:
        c._stub = flaky = _FlakyStub(c._stub, fail=10)
        with pytest.raises(SessionRegistryError):
            c.register("/tmp/py-deadline", table=table)
        assert 1 <= len(flaky.requests) < 5
    with SessionRegistryClient("127.0.0.1:1", timeout=1.0) as c:  # a dead port
        with pytest.raises(SessionRegistryError) as e:
            c.register("/tmp/py-dead", table=table)
        assert e.value.code in (grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.DEADLINE_EXCEEDED)


def test_retry_options_are_checked():
    with pytest.raises(ValueError):
        SessionRegistryClient("127.0.0.1:1", retry={"max_attempts": 0})
    with pytest.raises(ValueError):
        SessionRegistryClient("127.0.0.1:1", retry={"initial_backoff": -1})
    with pytest.raises(TypeError):
        SessionRegistryClient("127.0.0.1:1", retry={"attempts": 3})
