"""find_user's Graph calls: users by id, UPN (guests' #EXT# UPNs) and $filter on mail / UPN with
User.ReadBasic.All, and the home tenant of another domain through OpenID discovery
(https://learn.microsoft.com/graph/api/user-get, user-list)."""

from __future__ import annotations

from collections.abc import Iterator
from urllib.parse import quote

import pytest

from emulator_helpers import Seeded, agent_user_token, assert_graph_error, graph_call, seed
from entraclaw.emulator import Emulator

pytest_plugins = ["emulator_helpers"]


@pytest.fixture
def world() -> Iterator[tuple[Seeded, str]]:
    with Emulator() as emu:
        s = seed(emu)
        emu.people  # noqa: B018
        yield s, agent_user_token(s, ("User.ReadBasic.All",))


def test_user_by_id_upn_and_guest_upn(world):
    s, token = world
    people = s.emu.people
    got = graph_call(s.emu, "GET", f"/users/{people.colleague.upn}", token).json()
    assert got["id"] == people.colleague.object_id and got["mail"] == people.colleague.mail
    assert got["@odata.context"].endswith("$metadata#users/$entity")
    assert "userType" not in got  # not in Graph's default property set
    guest_path = f"/users/{quote(people.guest.upn, safe='@')}"
    assert "%23EXT%23" in guest_path
    guest = graph_call(s.emu, "GET", guest_path, token, params={"$select": "id,userType,mail,userPrincipalName"})
    assert guest.json() | {} == {
        "@odata.context": guest.json()["@odata.context"],
        "id": people.guest.object_id,
        "userType": "Guest",
        "mail": "alex.wilber@fabrikam.example",
        "userPrincipalName": people.guest.upn,
    }
    assert "#EXT#@" in guest.json()["userPrincipalName"]
    assert_graph_error(
        graph_call(s.emu, "GET", "/users/nobody@nowhere.example", token), 404, "Request_ResourceNotFound"
    )


def test_filter_by_mail_and_upn(world):
    s, token = world
    people = s.emu.people
    by_mail = graph_call(s.emu, "GET", "/users", token, params={"$filter": f"mail eq '{people.guest.mail}'"})
    assert [u["id"] for u in by_mail.json()["value"]] == [people.guest.object_id]
    by_upn = graph_call(s.emu, "GET", "/users", token, params={"$filter": f"userPrincipalName eq '{people.guest.upn}'"})
    assert [u["id"] for u in by_upn.json()["value"]] == [people.guest.object_id]
    none = graph_call(s.emu, "GET", "/users", token, params={"$filter": "mail eq 'jordan.miller@fabrikam.example'"})
    assert none.json()["value"] == []


def test_read_needs_user_read_basic_all_but_self_needs_user_read(world):
    s, _token = world
    weak = agent_user_token(s, ("User.Read",), second=True)
    err = assert_graph_error(
        graph_call(s.emu, "GET", f"/users/{s.emu.people.colleague.upn}", weak), 403, "Authorization_RequestDenied"
    )
    assert "User.ReadBasic.All" in err["message"]
    assert_graph_error(graph_call(s.emu, "GET", "/users", weak), 403, "Authorization_RequestDenied")
    assert graph_call(s.emu, "GET", f"/users/{s.au2.object_id}", weak).status_code == 200


def test_openid_discovery_names_the_home_tenant_of_a_domain(world):
    s, _token = world
    people = s.emu.people
    with s.emu.session() as session:
        doc = session.get(f"{s.emu.base_url}/fabrikam.example/v2.0/.well-known/openid-configuration", timeout=10)
        assert doc.status_code == 200
        issuer = doc.json()["issuer"]
        assert issuer == f"{s.emu.base_url}/{people.external_tenant.tenant_id}/v2.0"
        own = session.get(
            f"{s.emu.base_url}/{s.emu.tenant.default_domain}/v2.0/.well-known/openid-configuration", timeout=10
        )
        assert own.json()["issuer"] == s.emu.issuer
        unknown = session.get(f"{s.emu.base_url}/nowhere.example/v2.0/.well-known/openid-configuration", timeout=10)
        assert unknown.status_code == 400 and unknown.json()["error_codes"] == [90002]
