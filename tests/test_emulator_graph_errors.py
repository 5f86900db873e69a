"""Malformed requests on every Graph family get Graph's 4xx error body, never a 500 or a dropped connection."""

from __future__ import annotations

import pytest

from emulator_helpers import admin_token, graph_call
from entraclaw.emulator import Emulator

pytest_plugins = ["emulator_helpers"]

PATHS = [
    "/applications",
    "/applications/microsoft.graph.agentIdentityBlueprint",
    "/servicePrincipals",
    "/servicePrincipals/microsoft.graph.agentIdentity",
    "/servicePrincipals/microsoft.graph.agentIdentityBlueprintPrincipal",
    "/users",
    "/users/microsoft.graph.agentUser",
    "/oauth2PermissionGrants",
]
BODIES = [
    {"@odata.type": 5},
    {"displayName": 7, "sponsors@odata.bind": "x"},
    {"appId": ["a"]},
    {"agentIdentityBlueprintId": 3, "displayName": "x"},
    {"accountEnabled": "no", "displayName": 1, "mailNickname": [], "userPrincipalName": 5, "identityParentId": {}},
    {"clientId": 1, "consentType": [], "principalId": 3, "resourceId": None, "scope": 4},
    {"sponsors@odata.bind": [1, 2], "displayName": "a"},
]


@pytest.fixture(scope="module")
def admin():
    with Emulator() as emu:
        yield emu, admin_token(emu)


@pytest.mark.parametrize("path", PATHS)
def test_malformed_bodies_are_refused_with_graph_errors(admin, path):
    emu, token = admin
    for body in BODIES:
        r = graph_call(emu, "POST", path, token, json=body)
        assert 400 <= r.status_code < 500, (path, body, r.text)
        assert set(r.json()["error"]) == {"code", "message", "innerError"}
    r = graph_call(emu, "POST", path, token, data=b"[1,", headers={"Content-Type": "application/json"})
    assert r.status_code == 400 and r.json()["error"]["code"] == "BadRequest"


def test_unknown_segment_and_method(admin):
    emu, token = admin
    r = graph_call(emu, "GET", "/nothingHere", token)
    assert r.status_code == 400 and r.json()["error"]["code"] == "BadRequest"
    r = graph_call(emu, "PUT", "/applications", token, json={})
    assert r.status_code in (400, 405, 501)
