"""Sanitizing rules of conformance transcripts (pure functions)."""

from __future__ import annotations

import base64
import json

from entraclaw.conformance.transcript import Entry, Transcript, compare, error_code, json_shape, path_shape, query_shape


def _jwt(claims: dict[str, object]) -> str:
    def part(d: dict[str, object]) -> str:
        return base64.urlsafe_b64encode(json.dumps(d).encode()).rstrip(b"=").decode()

    return f"{part({'alg': 'RS256'})}.{part(claims)}.c2ln"


def test_path_shape() -> None:
    app = "/v1.0/applications/0a1b2c3d-0000-4000-8000-00000000abcd/addKey"
    assert path_shape(app) == "/v1.0/applications/{id}/addKey"
    assert path_shape("/v1.0/users/agent%40contoso.com") == "/v1.0/users/{upn}"
    cast = "/beta/servicePrincipals/microsoft.graph.agentIdentity"
    assert path_shape(cast) == cast
    assert path_shape("/contoso.onmicrosoft.com/oauth2/v2.0/token") == "/{name}/oauth2/v2.0/token"
    assert path_shape("/v1.0/applications(appId='abc')") == "/v1.0/applications(appId={value})"


def test_query_shape_drops_values() -> None:
    shaped = query_shape("$filter=appId eq '00000003-0000-0000-c000-000000000000'&$select=id,appId&foo=bar")
    assert shaped == ["$filter=appId eq {value}", "$select=id,appId", "foo"]


def test_json_shape_reduces_jwts_to_claim_names_and_values_to_types() -> None:
    body = {"access_token": _jwt({"aud": "x", "scp": "User.Read"}), "expires_in": 3599, "ok": True, "n": None,
            "value": [{"id": "a"}, {"id": "b"}, {"id": "c", "x": 1.5}]}
    assert json_shape(body) == {
        "access_token": {"jwt": ["aud", "scp"]},
        "expires_in": "int",
        "n": "null",
        "ok": "bool",
        "value": [{"id": "str"}, {"id": "str", "x": "number"}],
    }


def test_error_code_per_endpoint() -> None:
    denied = {"error": {"code": "Authorization_RequestDenied", "message": "m"}}
    assert error_code(403, denied) == "Authorization_RequestDenied"
    assert error_code(400, {"error": "invalid_grant", "error_codes": [700211]}) == "AADSTS700211"
    assert error_code(400, {"error": "invalid_grant", "error_description": "AADSTS50013: x"}) == "AADSTS50013"
    assert error_code(400, {"error": "invalid_request"}) == "invalid_request"
    assert error_code(200, {"error": "x"}) is None


def test_documentation_transcripts_compare_as_subsets() -> None:
    produced = Transcript("full", "emulator", [
        Entry("a", "GET", "/v1.0/x", status=200, shape={"id": "str", "extra": "int"}),
        Entry("b", "POST", "/v1.0/y", form=["grant_type=client_credentials", "scope"], status=400, error="E1"),
    ])
    doc = Transcript("full", "documentation", [Entry("b", "POST", "/v1.0/y", form=["scope"], status=400, error="E1",
                                                     source="a page")])
    assert compare(doc, produced) == []
    exact = Transcript("full", "emulator", [Entry("a", "GET", "/v1.0/x", status=200, shape={"id": "str"})])
    assert compare(exact, produced) != []
    doc_wrong = Transcript("full", "documentation", [Entry("b", "POST", "/v1.0/y", status=400, error="E2", source="p")])
    assert compare(doc_wrong, produced) == ["b: error 'E2' != 'E1'"]


def test_a_grant_id_is_a_placeholder_even_when_it_happens_to_look_like_a_word() -> None:
    """oauth2PermissionGrant ids are 44 base64url characters; about one in ten has neither '-' nor '_'
    and starts with a lowercase letter, which the vocabulary pattern took for a Graph word (the
    emulator-full replay then failed now and then)."""
    from entraclaw.conformance.transcript import path_shape

    wordlike = "abCdEfGhIjKlMnOpQrStUvWxYz0123456789abcdEFGH"
    assert len(wordlike) == 44
    assert path_shape(f"/v1.0/oauth2PermissionGrants/{wordlike}") == "/v1.0/oauth2PermissionGrants/{name}"
    assert path_shape("/v1.0/delegatedPermissionClassifications") == "/v1.0/delegatedPermissionClassifications"
