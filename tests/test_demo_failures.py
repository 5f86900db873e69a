"""The demo's failure paths: typed errors for odd Graph answers, and no key left behind when it stops half-way."""

from __future__ import annotations

import pytest

from cng_helpers import standin_fixture  # noqa: F401 - pytest fixture "standin"
from credential_helpers import JWT_PREFIX_RE
from entraclaw import cng, demo
from entraclaw.demo import DemoTrace, call_graph, run_demo
from entraclaw.emulator import Emulator
from entraclaw.errors import GraphRequestError


def test_graph_answer_that_is_not_json_is_a_typed_error_without_the_body():
    with Emulator() as emu:
        # "malformed" answers 200 with a body cut mid-token.
        emu.faults.inject("malformed", path="/v1.0/me")
        url = f"{emu.graph_url}/me"
        with pytest.raises(GraphRequestError) as info:
            call_graph(emu.session(), "GET", url, "not-a-token", what="GET /me")
    err = info.value
    assert err.http_status == 200 and err.code == "invalid_response"
    assert url in err.message and "Fix:" in str(err)
    assert not JWT_PREFIX_RE.search(str(err)) and not JWT_PREFIX_RE.search(repr(err))


def test_graph_error_body_that_is_a_json_list_is_still_a_graph_error(monkeypatch):
    import requests

    response = requests.Response()
    response.status_code = 502
    response._content = b"[1, 2]"
    err = demo._graph_error(response, "GET /me", "https://graph.example/v1.0/me")
    assert isinstance(err, GraphRequestError) and err.http_status == 502 and err.code is None


@pytest.mark.standin
def test_cng_key_is_removed_when_provisioning_fails(standin, monkeypatch):
    from entraclaw.provisioning.graph import GraphClient

    def failing_patch(self, object_id, credentials):
        raise GraphRequestError(
            "Graph PATCH failed (test).", remedy="none", http_status=503, code=None, request_id=None, url=object_id
        )

    monkeypatch.setattr(GraphClient, "patch_key_credentials", failing_patch)
    trace = DemoTrace()
    with pytest.raises(GraphRequestError):
        run_demo(trace, use_cng=True)
    # The key was really made on the CNG path before the failure...
    key_step = next(s for s in trace.steps if s["title"].startswith("Blueprint key"))
    assert key_step["storage"].startswith("CNG")
    # ...and is gone from the store afterwards.
    assert not [c for c in cng.list_certificates() if "entraclaw-blueprint-" in c.subject]
