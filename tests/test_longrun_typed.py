"""Issue 9, "every failure typed": hostile token and discovery answers over real sockets, hostile cache files.

Each case is answered by the emulator's ``respond`` fault (a real HTTPS answer with
exactly the status, headers and body given), so the bytes travel through requests,
MSAL and entraclaw exactly as a broken or hostile server's would.
"""

from __future__ import annotations

import json
import logging
import pickle
import re
from collections.abc import Iterator
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from credential_helpers import FAST_RETRY, GRAPH_SCOPE, force_plaintext_cache, seed
from entraclaw.auth.persisted_cache import PersistedTokenStore
from entraclaw.auth.token_errors import unavailable_error
from entraclaw.emulator import Emulator
from entraclaw.errors import EntraclawError, KeystoreError, TokenEndpointUnavailableError, TokenExchangeError

# A compact JWS anywhere in a text: three base64url runs joined by dots (the header of a
# real token starts "eyJ"; a hostile one need not).
THREE_SEGMENTS = re.compile(r"[A-Za-z0-9_-]{8,}\.[A-Za-z0-9_-]{8,}\.[A-Za-z0-9_-]{8,}")
JWT_PREFIX = re.compile(r"eyJ[A-Za-z0-9_-]{6,}")
FAKE_JWT = "eyJhbGciOiJSUzI1NiJ9.eyJzdWIiOiJzZWNyZXQtdXNlciJ9.c2lnbmF0dXJlLXNlY3JldA"
DISCOVERY = "/v2.0/.well-known/openid-configuration"
TOKEN = "/oauth2/v2.0/token"


def _no_sleep(_: float) -> None:
    return None


@pytest.fixture(scope="module")
def world() -> Iterator[Any]:
    with Emulator() as emu:
        yield seed(emu)


@pytest.fixture(autouse=True)
def _clear_faults(world: Any) -> Iterator[None]:
    world.emu.faults.clear()
    yield
    world.emu.faults.clear()


def _chain(exc: BaseException) -> Iterator[BaseException]:
    seen: set[int] = set()
    todo: list[BaseException | None] = [exc]
    while todo:
        item = todo.pop()
        if item is None or id(item) in seen:
            continue
        seen.add(id(item))
        yield item
        todo.extend([item.__cause__, item.__context__])


def assert_clean_error(exc: BaseException) -> None:
    """Only entraclaw errors, and nothing JWT-shaped anywhere a caller or a log could see."""
    assert isinstance(exc, EntraclawError), f"{type(exc).__name__} escaped: {exc!r}"
    for item in _chain(exc):
        texts = [str(item), repr(item), json.dumps(getattr(item, "context", {}), default=repr)]
        texts.extend(repr(v) for v in vars(item).values())
        try:
            texts.append(pickle.dumps(item).decode("latin-1"))
        except Exception as pickle_error:  # a field that cannot pickle is a finding too
            raise AssertionError(f"{type(item).__name__} does not pickle: {pickle_error!r}") from None
        for text in texts:
            assert not THREE_SEGMENTS.search(text), f"JWT-shaped text in {type(item).__name__}: {text[:300]}"
            assert not JWT_PREFIX.search(text), f"JWT prefix in {type(item).__name__}: {text[:300]}"


def _get_error(world: Any, **overrides: Any) -> EntraclawError:
    cred = world.credential(sleep=_no_sleep, **overrides)
    try:
        cred.get_token(GRAPH_SCOPE)
    except BaseException as exc:
        assert_clean_error(exc)
        assert isinstance(exc, EntraclawError)
        return exc
    raise AssertionError("get_token succeeded against a hostile answer")


def _respond(world: Any, body: bytes, *, status: int = 200, path: str = TOKEN, skip: int = 0, count: int = 10) -> None:
    world.emu.faults.inject("respond", status=status, body=body, path=path, skip=skip, count=count)


# --- 200 token responses that are not token responses -----------------------------------------------

NESTED = b"[" * 100_000 + b"]" * 100_000


@pytest.mark.parametrize(
    "body",
    [
        b"null",
        b'"just a string"',
        b"42",
        NESTED,
        b'{"access_token": "' + FAKE_JWT.encode() + b'", "expires_in": NaN, "token_type": "Bearer"}',
        b'{"access_token": "' + FAKE_JWT.encode() + b'", "expires_in": 1e400, "token_type": "Bearer"}',
        b'{"access_token": "' + FAKE_JWT.encode() + b'", "expires_in": -5, "token_type": "Bearer"}',
        b'{"access_token": "' + FAKE_JWT.encode() + b'", "expires_in": "soon", "token_type": "Bearer"}',
        b'{"access_token": "' + FAKE_JWT.encode() + b'", "expires_in": [3600], "token_type": "Bearer"}',
        b'{"access_token": "' + FAKE_JWT.encode() + b'", "expires_in": 3600, "refresh_in": "x"}',
        b'{"access_token": "not-a-jws-at-all", "expires_in": 3600, "token_type": "Bearer"}',
        b'{"access_token": {"nested": "object"}, "expires_in": 3600, "token_type": "Bearer"}',
    ],
    ids=[
        "null",
        "string",
        "number",
        "nested-arrays",
        "expires-nan",
        "expires-1e400",
        "expires-negative",
        "expires-text",
        "expires-list",
        "refresh-in-text",
        "token-not-jws",
        "token-object",
    ],
)
@pytest.mark.parametrize("hop", [1, 2, 3])
def test_hostile_200_token_response_is_typed(world, body, hop):
    before = len(world.emu.stats.token_requests)
    _respond(world, body, skip=hop - 1)
    exc = _get_error(world)
    assert isinstance(exc, TokenExchangeError)
    assert exc.hop == hop
    # A bad token is never sent on: the request log stops at the faulted hop.
    hops = [r["hop"] for r in world.emu.stats.token_requests[before:]]
    assert max((h or 0) for h in hops) <= hop, hops


# --- the OpenID discovery document ------------------------------------------------------------------


@pytest.mark.parametrize(
    "status, body",
    [(503, b'{"error": "temporarily_unavailable"}'), (429, b"{}"), (200, b"{not json"), (200, NESTED), (200, b"[]")],
    ids=["503", "429", "malformed", "nested", "not-object"],
)
def test_discovery_failures_are_retried_then_typed(world, status, body):
    _respond(world, body, status=status, path=DISCOVERY, count=50)
    exc = _get_error(world)
    assert isinstance(exc, TokenExchangeError)
    served = 50 - world.emu.faults.pending
    assert served == FAST_RETRY.max_attempts, f"discovery fetched {served} times"


def test_discovery_transient_failure_recovers(world):
    _respond(world, b"oops", status=503, path=DISCOVERY, count=1)
    cred = world.credential(sleep=_no_sleep)
    assert cred.get_token(GRAPH_SCOPE).token


def test_discovery_dropped_connection_is_retried_then_network_error(world):
    world.emu.faults.inject("drop", path=DISCOVERY, count=50)
    exc = _get_error(world)
    assert type(exc).__name__ == "NetworkError"


def test_discovery_404_error_keeps_no_body_in_hidden_context(world):
    _respond(world, json.dumps({"error": FAKE_JWT}).encode(), status=404, path=DISCOVERY, count=50)
    exc = _get_error(world)
    assert exc.__context__ is None or not any(FAKE_JWT[:20] in str(e) for e in _chain(exc))


# --- TokenEndpointUnavailableError shape check -------------------------------------------------------


def test_unavailable_error_fields_are_shape_checked():
    body = {"error": FAKE_JWT, "correlation_id": FAKE_JWT, "trace_id": "x" * 80, "error_codes": [90033]}
    err = unavailable_error(hop=2, client_id="c", http_status=503, attempts=3, retry_after=None, body=body)
    assert err.error == "server_error" and err.correlation_id is None and err.trace_id is None
    assert_clean_error(err)


@pytest.mark.parametrize("status", [503, 429])
def test_unavailable_over_sockets_has_no_token_in_fields(world, status):
    body = json.dumps({"error": FAKE_JWT, "correlation_id": FAKE_JWT, "trace_id": FAKE_JWT}).encode()
    _respond(world, body, status=status, count=50)
    exc = _get_error(world)
    assert isinstance(exc, TokenEndpointUnavailableError)


# --- the persisted cache file ------------------------------------------------------------------------


def test_deeply_nested_cache_file_is_ignored_with_warning_and_rewritten(world, tmp_path, caplog, monkeypatch):
    # The hostile text is written straight into the file: that needs the plaintext store even where
    # a Secret Service would encrypt it (CI runs one).
    force_plaintext_cache(monkeypatch)
    path = tmp_path / "cache.bin"
    store = PersistedTokenStore(path, allow_plaintext=True)
    path.write_text("[" * 100_000 + "]" * 100_000)
    with caplog.at_level(logging.WARNING, logger="entraclaw"):
        token = world.credential(cache=store).get_token(GRAPH_SCOPE)
    assert token.token
    assert "corrupt" in caplog.text and str(path) in caplog.text
    assert json.loads(path.read_text())["version"] == 1


def test_corrupt_cache_file_is_rewritten_by_the_first_reader(tmp_path, caplog, monkeypatch):
    force_plaintext_cache(monkeypatch)
    path = tmp_path / "cache.bin"
    store = PersistedTokenStore(path, allow_plaintext=True)
    path.write_text("[" * 100_000 + "]" * 100_000)
    with caplog.at_level(logging.WARNING, logger="entraclaw"):
        assert store.load() == {}
    assert json.loads(path.read_text()) == {"version": 1, "entries": {}}
    assert store.load() == {}


def test_cache_path_that_is_a_directory_is_a_keystore_error(tmp_path):
    path = tmp_path / "cache.bin"
    path.mkdir()
    with pytest.raises(KeystoreError) as info:
        PersistedTokenStore(path, allow_plaintext=True)
    assert str(path) in str(info.value) and info.value.remedy


# --- property: arbitrary answers -------------------------------------------------------------------

_json_leaf = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(),
    st.floats(allow_nan=True, allow_infinity=True),
    st.text(max_size=30),
    st.just(FAKE_JWT),
    st.just("AADSTS50027: " + FAKE_JWT),
)
_json = st.recursive(
    _json_leaf,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=12), inner, max_size=4),
    max_leaves=12,
)
_token_like = st.fixed_dictionaries(
    {},
    optional={
        "access_token": st.one_of(st.just(FAKE_JWT), _json_leaf),
        "expires_in": _json_leaf,
        "token_type": _json_leaf,
        "refresh_in": _json_leaf,
        "error": _json_leaf,
        "error_description": _json_leaf,
        "error_codes": _json,
        "correlation_id": _json_leaf,
        "trace_id": _json_leaf,
    },
)


def _encode(value: Any) -> bytes:
    return json.dumps(value, allow_nan=True).encode()


_bodies = st.one_of(
    _json.map(_encode),
    _token_like.map(_encode),
    st.binary(max_size=64),
    st.just(FAKE_JWT.encode()),
    st.integers(1, 3000).map(lambda n: b"[" * n + b"]" * n),
)
_header_value = st.text(alphabet=st.characters(min_codepoint=32, max_codepoint=126), max_size=20)
_headers = st.dictionaries(
    st.sampled_from(["Retry-After", "Content-Type", "x-ms-request-id", "WWW-Authenticate", "X-Other"]),
    st.one_of(_header_value, st.just(FAKE_JWT), st.just("0"), st.just("Wed, 21 Oct 2015 07:28:00 GMT")),
)


@settings(max_examples=300, deadline=None, suppress_health_check=list(HealthCheck))
@given(
    status=st.sampled_from([200, 201, 204, 301, 400, 401, 403, 404, 408, 429, 500, 502, 503, 504]),
    headers=_headers,
    body=_bodies,
    where=st.sampled_from(["discovery", "hop1", "hop2", "hop3"]),
)
def test_property_arbitrary_answers_give_only_typed_clean_errors(world, status, headers, body, where):
    world.emu.faults.clear()
    path = DISCOVERY if where == "discovery" else TOKEN
    skip = {"discovery": 0, "hop1": 0, "hop2": 1, "hop3": 2}[where]
    world.emu.faults.inject(
        "respond",
        status=status,
        headers={k: v for k, v in headers.items() if k != "Content-Type"},
        body=body,
        path=path,
        skip=skip,
        count=50,
    )
    cred = world.credential(sleep=_no_sleep)
    try:
        token = cred.get_token(GRAPH_SCOPE)
    except BaseException as exc:
        assert_clean_error(exc)
    else:  # only a well-formed answer can succeed, and then the token is a real JWS
        assert token.token.count(".") == 2
    finally:
        world.emu.faults.clear()
