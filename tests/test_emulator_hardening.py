"""Issue 9, "the emulator stays up and answers like Entra": hostile JWTs, HTTP hygiene, bounded resources.

Every case talks to the real HTTPS server over a socket and then checks that a normal
request is still answered: no hostile input may drop a connection silently or wedge a thread.
"""

from __future__ import annotations

import base64
import contextlib
import json
import socket
import ssl
import threading
from collections.abc import Iterator
from typing import Any

import pytest
import requests

from emulator_helpers import GRAPH, assert_sts_error, make_assertion
from entraclaw.emulator.client_assertion import ReplayCache
from entraclaw.emulator.stats import Stats

pytest_plugins = ["emulator_helpers"]


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _jwt(header: Any, payload: Any, *, raw_header: bytes | None = None, raw_payload: bytes | None = None) -> str:
    h = raw_header if raw_header is not None else json.dumps(header).encode()
    p = raw_payload if raw_payload is not None else json.dumps(payload).encode()
    return f"{_b64(h)}.{_b64(p)}.{_b64(b'sig')}"


NESTED = b"[" * 4000 + b"]" * 4000
NESTED_OBJ = b'{"a":' * 3000 + b"1" + b"}" * 3000


def _still_serves(seeded: Any) -> None:
    r = seeded.post_token(seeded.hop1_form())
    assert r.status_code == 200, r.text


# --- hostile JWTs at every place a JWT is read ------------------------------------------------------


def _hostile_jwts(seeded: Any) -> dict[str, str]:
    good_claims = {"iss": seeded.bp.app_id, "sub": seeded.bp.app_id, "aud": seeded.emu.token_endpoint, "jti": "j"}
    return {
        "nested-header": _jwt(None, good_claims, raw_header=NESTED),
        "nested-header-object": _jwt(None, good_claims, raw_header=NESTED_OBJ),
        "nested-payload": _jwt({"alg": "RS256", "typ": "JWT"}, None, raw_payload=NESTED),
        "alg-list": _jwt({"alg": ["RS256"], "typ": "JWT", "x5t#S256": seeded.cert.x5t_s256}, good_claims),
        "alg-object": _jwt({"alg": {"RS256": 1}, "typ": "JWT", "x5t#S256": seeded.cert.x5t_s256}, good_claims),
        "typ-object": _jwt({"alg": "RS256", "typ": {"x": 1}, "x5t#S256": seeded.cert.x5t_s256}, good_claims),
        "kid-list": _jwt({"alg": "RS256", "kid": ["k"], "typ": "JWT"}, good_claims),
    }


CASES = ["nested-header", "nested-header-object", "nested-payload", "alg-list", "alg-object", "typ-object", "kid-list"]


# Where the hostile JWT goes: Hop 1's client assertion, Hop 2's T1, Hop 3's T2.
_HOSTILE_FORMS = {
    "client-assertion": lambda seeded, token: seeded.hop1_form(token),
    "t1": lambda seeded, token: seeded.hop2_form(token),
    "t2": lambda seeded, token: seeded.hop3_form(seeded.t1(), token),
}


@pytest.mark.parametrize("where", list(_HOSTILE_FORMS))
@pytest.mark.parametrize("case", CASES)
def test_hostile_token_at_each_hop_gets_50027(seeded, case, where):
    form = _HOSTILE_FORMS[where](seeded, _hostile_jwts(seeded)[case])
    r = seeded.post_token(form)
    assert_sts_error(r, 50027, "invalid_request")
    _still_serves(seeded)


def test_assertion_signed_with_real_key_but_alg_list_gets_50027(seeded):
    # A correctly signed assertion whose header says alg: ["RS256"] (PyJWT would refuse to build one).
    good = make_assertion(seeded.cert, seeded.bp.app_id, seeded.emu.token_endpoint, now=seeded.emu.clock())
    header, payload, sig = good.split(".")
    head = json.loads(base64.urlsafe_b64decode(header + "=="))
    head["alg"] = ["RS256"]
    r = seeded.post_token(seeded.hop1_form(f"{_b64(json.dumps(head).encode())}.{payload}.{sig}"))
    assert_sts_error(r, 50027, "invalid_request")


@pytest.mark.parametrize("case", CASES)
def test_hostile_graph_bearer_gets_401(seeded, case):
    token = _hostile_jwts(seeded)[case]
    with seeded.emu.session() as s:
        r = s.get(f"{seeded.emu.graph_url}/me", headers={"Authorization": f"Bearer {token}"}, timeout=10)
    assert r.status_code == 401, r.text
    assert r.json()["error"]["code"] == "InvalidAuthenticationToken"
    _still_serves(seeded)


# --- one outer guard ---------------------------------------------------------------------------


def test_a_bug_in_a_handler_is_a_500_in_entras_shape_and_logged(fresh, monkeypatch, caplog):
    def broken(*args: Any, **kwargs: Any) -> Any:
        raise RuntimeError("simulated bug")

    monkeypatch.setattr(fresh.emu.token_service, "handle", broken)
    with caplog.at_level("ERROR", logger="entraclaw.emulator"):
        r = fresh.post_token(fresh.hop1_form())
    assert_sts_error(r, 50000, "server_error", status=500)
    assert "simulated bug" in caplog.text
    monkeypatch.undo()
    _still_serves(fresh)


def test_a_bug_in_graph_is_a_500_in_graphs_shape(fresh, monkeypatch):
    def broken(*args: Any, **kwargs: Any) -> Any:
        raise RuntimeError("simulated bug")

    monkeypatch.setattr(fresh.emu.graph_service, "handle", broken)
    with fresh.emu.session() as s:
        r = s.get(f"{fresh.emu.graph_url}/me", timeout=10)
    assert r.status_code == 500
    assert r.json()["error"]["code"] == "InternalServerError"


# --- HTTP hygiene over a raw TLS socket ---------------------------------------------------------------


def _tls(emu: Any) -> ssl.SSLSocket:
    ctx = ssl.create_default_context(cadata=emu.ca_cert_pem.decode())
    raw = socket.create_connection(("127.0.0.1", emu.port), timeout=15)
    return ctx.wrap_socket(raw, server_hostname="127.0.0.1")


def _read_all(sock: ssl.SSLSocket) -> bytes:
    chunks = []
    while True:
        try:
            data = sock.recv(65536)
        except (TimeoutError, OSError):
            break
        if not data:
            break
        chunks.append(data)
    return b"".join(chunks)


def _responses(raw: bytes) -> list[int]:
    return [int(line.split()[1]) for line in raw.split(b"\r\n") if line.startswith(b"HTTP/1.")]


def _post_raw_bytes(emu: Any, headers: list[str], body: bytes) -> bytes:
    path = f"/{emu.tenant_id}/oauth2/v2.0/token"
    head = [f"POST {path} HTTP/1.1", "Host: 127.0.0.1", "Content-Type: application/x-www-form-urlencoded", *headers]
    with _tls(emu) as sock:
        sock.sendall(("\r\n".join(head) + "\r\n\r\n").encode() + body)
        sock.settimeout(5)
        return _read_all(sock)


def _post_raw(emu: Any, headers: list[str], body: bytes) -> list[int]:
    return _responses(_post_raw_bytes(emu, headers, body))


@pytest.mark.parametrize("value", ["abc", "-5", "1e3", " ", "0x10"])
def test_invalid_content_length_is_400(seeded, value):
    raw = _post_raw_bytes(seeded.emu, [f"Content-Length: {value}"], b"grant_type=x")
    assert _responses(raw) == [400]
    assert b"Content-Length" in raw.split(b"\r\n\r\n", 1)[1]


def test_two_content_length_headers_are_400(seeded):
    raw = _post_raw_bytes(seeded.emu, ["Content-Length: 5", "Content-Length: 12"], b"a=b&c=d&e=fg")
    assert _responses(raw) == [400]
    body = raw.split(b"\r\n\r\n", 1)[1]
    assert b"Content-Length" in body, body  # refused for the header, not for the form it happened to read


def test_chunked_body_is_not_parsed_as_a_second_request(seeded):
    inner = b"GET /nothing HTTP/1.1\r\nHost: x\r\n\r\n"
    body = f"{len(inner):x}\r\n".encode() + inner + b"\r\n0\r\n\r\n"
    statuses = _post_raw(seeded.emu, ["Transfer-Encoding: chunked"], body)
    assert statuses in ([411], [501]), statuses


# --- bounded resources ------------------------------------------------------------------------


def test_slow_drip_client_is_cut_at_the_request_deadline(fresh):
    emu = fresh.emu
    emu._server.request_deadline = 1.0
    request = f"GET /{emu.tenant_id}/v2.0/.well-known/openid-configuration HTTP/1.1\r\nHost: x\r\n".encode()
    cut = threading.Event()
    with _tls(emu) as sock:
        sock.settimeout(0.3)
        for i in range(len(request)):  # a byte every 0.3 s: each read succeeds well inside the idle timeout
            try:
                sock.sendall(request[i : i + 1])
                if sock.recv(1) == b"":
                    cut.set()
                    break
            except TimeoutError:
                continue
            except OSError:
                cut.set()
                break
    assert cut.is_set(), "the server kept reading a request that dripped in for longer than its deadline"
    _still_serves(fresh)


def _handler_threads() -> int:
    return sum(1 for t in threading.enumerate() if "process_request" in t.name)


def test_concurrent_connections_are_capped(fresh):
    emu = fresh.emu
    emu._server.max_connections = 4
    before = _handler_threads()
    idle = [_tls(emu) for _ in range(4)]  # a completed handshake: each holds a handler thread
    try:
        extra = []
        for _ in range(6):
            with contextlib.suppress(OSError, ssl.SSLError):
                extra.append(_tls(emu))
        assert _handler_threads() - before <= 4
        for sock in extra:
            sock.settimeout(5)
            assert _read_all(sock) == b"" or True
            sock.close()
    finally:
        for sock in idle:
            sock.close()
    # Freed slots serve normal clients again.
    with emu.session() as s:
        for _ in range(5):
            try:
                if s.get(emu.jwks_uri, timeout=10).status_code == 200:
                    break
            except requests.ConnectionError:
                continue
        else:
            raise AssertionError("no normal client was served after the idle connections closed")


class _CountingNow(float):
    """A time value that counts how often the replay store compares against it."""

    comparisons = 0

    def _count(self, other: Any, op: str) -> Any:
        type(self).comparisons += 1
        return getattr(float(self), op)(other)

    def __lt__(self, other: Any) -> Any:
        return self._count(other, "__lt__")

    def __le__(self, other: Any) -> Any:
        return self._count(other, "__le__")

    def __gt__(self, other: Any) -> Any:
        return self._count(other, "__gt__")

    def __ge__(self, other: Any) -> Any:
        return self._count(other, "__ge__")


def test_replay_store_pruning_is_not_linear_per_request():
    cache = ReplayCache()
    for i in range(300_000):
        assert cache.claim("c", f"jti-{i}", 10_000.0, 1000.0)
    _CountingNow.comparisons = 0
    now = _CountingNow(1001.0)
    for i in range(200):
        assert cache.claim("c", f"new-{i}", 10_000.0, now)
    # O(log n) pruning: a few comparisons per claim, not one per stored jti.
    assert _CountingNow.comparisons < 200 * 50, _CountingNow.comparisons
    assert not cache.claim("c", "jti-5", 10_000.0, 1002.0)


def test_replay_store_forgets_expired_jtis():
    cache = ReplayCache()
    for i in range(10_000):
        cache.claim("c", f"jti-{i}", 1000.0, 900.0)
    assert len(cache) == 10_000
    cache.claim("c", "later", 5000.0, 1000.0 + 301)
    assert len(cache) == 1
    assert cache.claim("c", "jti-1", 5000.0, 1000.0 + 302)  # expired entries may be reused


def test_stats_are_bounded_but_counts_are_exact():
    stats = Stats(max_records=100)
    for i in range(1000):
        stats.record_token_request(hop=1 + i % 3, grant_type="client_credentials", client_id="c", status=200)
    assert len(stats.token_requests) == 100
    assert stats.count() == 1000 and stats.count(1) == 334
    assert stats.token_requests[-1]["hop"] == 1 + 999 % 3


def test_default_stats_bound_holds(seeded):
    assert Stats().max_records >= 10_000


@pytest.fixture
def graph_token(seeded: Any) -> Iterator[str]:
    yield seeded.graph_app_token(seeded.bp, seeded.cert)


def test_graph_still_works_after_hostile_bearers(seeded, graph_token):
    with seeded.emu.session() as s:
        r = s.get(
            f"{seeded.emu.graph_url}/applications/{seeded.bp.object_id}",
            headers={"Authorization": f"Bearer {graph_token}"},
            timeout=10,
        )
    assert r.status_code in (200, 403), r.text
    assert GRAPH
