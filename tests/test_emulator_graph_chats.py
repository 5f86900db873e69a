"""Teams chats over HTTPS as the Agent User: create (1:1, group, federated), list, members, messages, paging,
permissions by scp, 404/403 shapes and throttling (https://learn.microsoft.com/graph/api/chat-post and siblings)."""

from __future__ import annotations

import datetime as _dt

from emulator_helpers import (
    GRAPH,
    Seeded,
    agent_user_token,
    assert_graph_error,
    graph_call,
)
from entraclaw.emulator.workspace import AutoReply

pytest_plugins = ["emulator_helpers"]


def _member(user: str, role: str = "owner", tenant: str | None = None) -> dict:
    body = {
        "@odata.type": "#microsoft.graph.aadUserConversationMember",
        "roles": [role],
        "user@odata.bind": f"{GRAPH}/v1.0/users('{user}')",
    }
    if tenant:
        body["tenantId"] = tenant
    return body


def _one_on_one(s: Seeded, token: str, other: str) -> dict:
    body = {"chatType": "oneOnOne", "members": [_member(s.au.object_id), _member(other)]}
    r = graph_call(s.emu, "POST", "/chats", token, json=body)
    assert r.status_code == 201, r.text
    return dict(r.json())


def test_one_on_one_chat_is_created_once_and_listed(world):
    s, token = world
    megan = s.emu.people.colleague
    chat = _one_on_one(s, token, megan.object_id)
    assert chat["@odata.context"].endswith("$metadata#chats/$entity")
    assert chat["chatType"] == "oneOnOne" and chat["topic"] is None
    assert chat["id"].startswith("19:") and chat["id"].endswith("@unq.gbl.spaces")
    assert chat["tenantId"] == s.emu.tenant_id
    _dt.datetime.fromisoformat(chat["createdDateTime"].replace("Z", "+00:00"))
    # chat-post: "If a one-on-one chat already exists, this operation returns the existing chat"
    again = _one_on_one(s, token, megan.upn)
    assert again["id"] == chat["id"]
    listed = graph_call(s.emu, "GET", "/me/chats", token, params={"$expand": "members"}).json()
    assert [c["id"] for c in listed["value"]] == [chat["id"]]
    assert {m["userId"] for m in listed["value"][0]["members"]} == {s.au.object_id, megan.object_id}
    got = graph_call(s.emu, "GET", f"/chats/{chat['id']}", token)
    assert got.status_code == 200 and got.json()["id"] == chat["id"]
    assert graph_call(s.emu, "GET", f"/users/{s.au.object_id}/chats", token).json()["value"][0]["id"] == chat["id"]


def test_group_chat_with_guest_and_federated_member(world):
    s, token = world
    people = s.emu.people
    body = {
        "chatType": "group",
        "topic": "Launch",
        "members": [
            _member(s.au.object_id),
            _member(people.colleague.upn),
            _member(people.guest.object_id, "guest"),
            _member(people.external_user.upn, "owner", people.external_tenant.tenant_id),
        ],
    }
    r = graph_call(s.emu, "POST", "/chats", token, json=body)
    assert r.status_code == 201, r.text
    chat = r.json()
    assert chat["chatType"] == "group" and chat["topic"] == "Launch" and chat["id"].endswith("@thread.v2")
    members = graph_call(s.emu, "GET", f"/chats/{chat['id']}/members", token).json()["value"]
    by_user = {m["userId"]: m for m in members}
    assert by_user[people.guest.object_id]["roles"] == ["guest"]
    fed = by_user[people.external_user.object_id]
    assert fed["tenantId"] == people.external_tenant.tenant_id and fed["email"] == people.external_user.mail
    assert fed["@odata.type"] == "#microsoft.graph.aadUserConversationMember"
    # chat-post: in-tenant guests must be 'guest', users of another tenant 'owner'.
    body["members"][2] = _member(people.guest.object_id, "owner")
    assert_graph_error(graph_call(s.emu, "POST", "/chats", token, json=body), 400, "BadRequest")


def test_create_refusals(world):
    s, token = world
    megan = s.emu.people.colleague
    cases = [
        {"chatType": "oneOnOne", "topic": "x", "members": [_member(s.au.object_id), _member(megan.object_id)]},
        {"chatType": "oneOnOne", "members": [_member(s.au.object_id)]},
        {"chatType": "channel", "members": [_member(s.au.object_id), _member(megan.object_id)]},
        {"chatType": "oneOnOne", "members": [_member(s.au.object_id), _member("nobody@nowhere.example")]},
        # The caller must be among the members.
        {"chatType": "oneOnOne", "members": [_member(megan.object_id), _member(s.emu.people.second_colleague.upn)]},
    ]
    for body in cases:
        assert_graph_error(graph_call(s.emu, "POST", "/chats", token, json=body), 400, "BadRequest")


def test_messages_text_html_mentions_and_paging(world):
    s, token = world
    megan = s.emu.people.colleague
    chat = _one_on_one(s, token, megan.object_id)
    url = f"/chats/{chat['id']}/messages"
    r = graph_call(s.emu, "POST", url, token, json={"body": {"content": "hello"}})
    assert r.status_code == 201, r.text
    msg = r.json()
    assert msg["body"] == {"contentType": "text", "content": "hello"}
    assert msg["from"]["user"]["id"] == s.au.object_id and msg["from"]["user"]["userIdentityType"] == "aadUser"
    assert msg["chatId"] == chat["id"] and msg["messageType"] == "message"
    html = {
        "body": {"contentType": "html", "content": f'Hi <at id="0">{megan.display_name}</at>'},
        "mentions": [
            {
                "id": 0,
                "mentionText": megan.display_name,
                "mentioned": {
                    "user": {"id": megan.object_id, "displayName": megan.display_name, "userIdentityType": "aadUser"}
                },
            }
        ],
    }
    r = graph_call(s.emu, "POST", url, token, json=html)
    assert r.status_code == 201, r.text
    assert r.json()["mentions"][0]["mentioned"]["user"]["id"] == megan.object_id
    bad = dict(html, body={"contentType": "html", "content": "no tag"})
    assert_graph_error(graph_call(s.emu, "POST", url, token, json=bad), 400, "BadRequest")
    for i in range(5):
        s.emu.advance_clock(1)
        assert graph_call(s.emu, "POST", url, token, json={"body": {"content": f"n{i}"}}).status_code == 201
    seen, link, pages = [], url, 0
    params = {"$top": "3"}
    while link:
        page = graph_call(s.emu, "GET", link, token, params=params).json()
        params = None
        seen += [m["body"]["content"] for m in page["value"]]
        link = page.get("@odata.nextLink")
        pages += 1
    assert pages == 3
    # chat-list-messages: newest first (lastModifiedDateTime desc by default).
    assert seen[:5] == ["n4", "n3", "n2", "n1", "n0"] and len(seen) == 7
    assert_graph_error(graph_call(s.emu, "GET", url, token, params={"$top": "51"}), 400, "BadRequest")
    assert_graph_error(
        graph_call(s.emu, "GET", url, token, params={"$orderby": "createdDateTime asc"}), 400, "BadRequest"
    )


def test_filter_on_last_modified_needs_matching_orderby(world):
    s, token = world
    chat = _one_on_one(s, token, s.emu.people.colleague.object_id)
    url = f"/chats/{chat['id']}/messages"
    graph_call(s.emu, "POST", url, token, json={"body": {"content": "old"}})
    s.emu.advance_clock(60)
    since = _dt.datetime.fromtimestamp(s.emu.clock() - 1, _dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.000Z")
    graph_call(s.emu, "POST", url, token, json={"body": {"content": "new"}})
    f = f"lastModifiedDateTime gt {since}"
    got = graph_call(s.emu, "GET", url, token, params={"$orderby": "lastModifiedDateTime desc", "$filter": f})
    assert [m["body"]["content"] for m in got.json()["value"]] == ["new"]
    # chat-list-messages: without $orderby on the same property "the $filter query option is ignored".
    got = graph_call(s.emu, "GET", url, token, params={"$orderby": "createdDateTime desc", "$filter": f})
    assert [m["body"]["content"] for m in got.json()["value"]] == ["new", "old"]
    assert_graph_error(
        graph_call(s.emu, "GET", url, token, params={"$filter": "createdDateTime gt 2020-01-01T00:00:00Z"}),
        400,
        "BadRequest",
    )


def test_members_add_to_group_and_refuse_on_one_on_one(world):
    s, token = world
    people = s.emu.people
    body = {"chatType": "group", "members": [_member(s.au.object_id), _member(people.colleague.object_id)]}
    group = graph_call(s.emu, "POST", "/chats", token, json=body).json()
    r = graph_call(s.emu, "POST", f"/chats/{group['id']}/members", token, json=_member(people.second_colleague.upn))
    assert r.status_code == 201, r.text
    assert r.headers["Location"].startswith(f"/chats('{group['id']}')/members('")
    members = graph_call(s.emu, "GET", f"/chats/{group['id']}/members", token).json()["value"]
    assert people.second_colleague.object_id in {m["userId"] for m in members}
    one = _one_on_one(s, token, people.colleague.object_id)
    r = graph_call(s.emu, "POST", f"/chats/{one['id']}/members", token, json=_member(people.second_colleague.upn))
    assert_graph_error(r, 400, "BadRequest")


def test_missing_scope_is_teams_403(world):
    s, token = world
    chat = _one_on_one(s, token, s.emu.people.colleague.object_id)
    weak = agent_user_token(s, ("User.Read",), second=True)
    for method, path, body in [
        ("POST", "/chats", {"chatType": "oneOnOne", "members": []}),
        ("GET", "/me/chats", None),
        ("GET", f"/chats/{chat['id']}/messages", None),
        ("POST", f"/chats/{chat['id']}/messages", {"body": {"content": "x"}}),
        ("GET", f"/chats/{chat['id']}/members", None),
    ]:
        err = assert_graph_error(graph_call(s.emu, method, path, weak, json=body), 403, "Forbidden")
        assert err["message"].startswith("Missing scope permissions on the request. API requires one of '"), err
        # MSAL's sign-in adds the OIDC scopes to what was consented (issue 13: scp lists them when asked).
        assert "Scopes on the request 'User.Read" in err["message"]


def test_non_member_is_403_and_unknown_chat_404(world):
    s, token = world
    chat = _one_on_one(s, token, s.emu.people.colleague.object_id)
    other = agent_user_token(s, second=True)
    assert_graph_error(graph_call(s.emu, "GET", f"/chats/{chat['id']}/messages", other), 403, "Forbidden")
    assert_graph_error(
        graph_call(s.emu, "POST", f"/chats/{chat['id']}/messages", other, json={"body": {"content": "x"}}),
        403,
        "Forbidden",
    )
    assert_graph_error(graph_call(s.emu, "GET", "/chats/19:nope@thread.v2", token), 404, "NotFound")
    assert_graph_error(graph_call(s.emu, "GET", "/chats/19:nope@thread.v2/messages", token), 404, "NotFound")


def test_auto_reply_appears_after_its_delay(world):
    s, token = world
    megan = s.emu.people.colleague
    s.emu.workspace.add_rule(AutoReply(megan.object_id, "Got it: {text}", delay=30))
    chat = _one_on_one(s, token, megan.object_id)
    url = f"/chats/{chat['id']}/messages"
    graph_call(s.emu, "POST", url, token, json={"body": {"contentType": "html", "content": "<p>ping</p>"}})
    assert [m["body"]["content"] for m in graph_call(s.emu, "GET", url, token).json()["value"]] == ["<p>ping</p>"]
    s.emu.advance_clock(31)
    newest = graph_call(s.emu, "GET", url, token).json()["value"][0]
    assert newest["body"]["content"] == "Got it: ping" and newest["from"]["user"]["id"] == megan.object_id


def test_throttling_fault_on_a_path_pattern(world):
    s, token = world
    chat = _one_on_one(s, token, s.emu.people.colleague.object_id)
    s.emu.faults.inject("429", count=2, path="/v1.0/chats/*/messages", retry_after=3)
    url = f"/chats/{chat['id']}/messages"
    for _ in range(2):
        r = graph_call(s.emu, "GET", url, token)
        assert_graph_error(r, 429, "TooManyRequests")
        assert r.headers["Retry-After"] == "3"
    assert graph_call(s.emu, "GET", f"/chats/{chat['id']}", token).status_code == 200
    assert graph_call(s.emu, "GET", url, token).status_code == 200
    s.emu.faults.inject("5xx", status=503, path="/v1.0/chats/*/messages")
    r = graph_call(s.emu, "POST", url, token, json={"body": {"content": "x"}})
    assert_graph_error(r, 503, "serviceNotAvailable")
    assert r.headers["Retry-After"]
