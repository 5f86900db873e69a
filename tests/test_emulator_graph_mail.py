"""Outlook mail over HTTPS as the Agent User: sendMail delivery, message lists with $filter/$top/$select/$skip
paging, Prefer text bodies, Mail.ReadBasic, 403 ErrorAccessDenied and throttling
(https://learn.microsoft.com/graph/api/user-sendmail, user-list-messages, mailfolder-list-messages)."""

from __future__ import annotations

import datetime as _dt

from emulator_helpers import Seeded, agent_user_token, assert_graph_error, graph_call
from entraclaw.emulator.workspace import AutoReply

pytest_plugins = ["emulator_helpers"]


def _mail(to: list[str], subject: str = "Hello", content: str = "Body", kind: str = "Text", **extra) -> dict:
    message = {
        "subject": subject,
        "body": {"contentType": kind, "content": content},
        "toRecipients": [{"emailAddress": {"address": a}} for a in to],
    }
    return {"message": message, **extra}


def _as_colleague(s: Seeded, subject: str, content: str, kind: str = "text") -> None:
    megan = s.emu.people.colleague
    s.emu.workspace.send_mail(megan, subject, kind, content, to=[("Agent", s.au.upn)], cc=[], bcc=[])


def test_send_mail_delivers_internally_and_keeps_external_outbound(world):
    s, token = world
    people = s.emu.people
    r = graph_call(s.emu, "POST", "/me/sendMail", token, json=_mail([people.colleague.mail, "x@elsewhere.example"]))
    assert r.status_code == 202 and r.content == b""
    inbox = s.emu.workspace.mailbox(people.colleague.object_id, "inbox")
    assert [m.subject for m in inbox] == ["Hello"]
    assert [m.folder for m in s.emu.workspace.mailbox(s.au.object_id)] == ["sentitems"]
    assert len(s.emu.workspace.outbound) == 1
    # A guest's mailbox is in its home tenant: mail to it leaves the tenant.
    graph_call(s.emu, "POST", "/me/sendMail", token, json=_mail([people.guest.mail], saveToSentItems=False))
    assert len(s.emu.workspace.outbound) == 2
    assert len(s.emu.workspace.mailbox(s.au.object_id)) == 1
    r = graph_call(s.emu, "POST", "/me/sendMail", token, json={"message": {"subject": "x"}})
    err = assert_graph_error(r, 400, "ErrorInvalidRecipients")
    assert "At least one recipient" in err["message"]


def test_list_inbox_filters_pages_and_selects(world):
    s, token = world
    for i in range(12):
        s.emu.advance_clock(60)
        _as_colleague(s, f"m{i}", f"<p>hello <b>{i}</b></p>", "html")
    first = graph_call(s.emu, "GET", "/me/mailFolders/inbox/messages", token).json()
    # user-list-messages: "The default page size is 10 messages"; the next page by $skip.
    assert len(first["value"]) == 10 and "$skip=10" in first["@odata.nextLink"]
    assert first["value"][0]["subject"] == "m11"  # newest first
    assert first["value"][0]["body"]["contentType"] == "html"
    rest = graph_call(s.emu, "GET", first["@odata.nextLink"], token).json()
    assert [m["subject"] for m in rest["value"]] == ["m1", "m0"] and "@odata.nextLink" not in rest
    r = graph_call(
        s.emu,
        "GET",
        "/me/messages",
        token,
        params={"$filter": "isRead eq false", "$top": "2", "$select": "subject,body"},
        headers={"Prefer": 'outlook.body-content-type="text"'},
    )
    assert r.headers["Preference-Applied"] == 'outlook.body-content-type="text"'
    item = r.json()["value"][0]
    assert set(item) == {"@odata.etag", "id", "subject", "body"}
    assert item["body"] == {"contentType": "text", "content": "hello 11"}
    since = _dt.datetime.fromtimestamp(s.emu.clock() - 90, _dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")
    recent = graph_call(s.emu, "GET", "/me/messages", token, params={"$filter": f"receivedDateTime ge {since}"})
    assert [m["subject"] for m in recent.json()["value"]] == ["m11", "m10"]
    combined = f"isRead eq false and from/emailAddress/address eq '{s.emu.people.colleague.mail}'"
    assert len(graph_call(s.emu, "GET", "/me/messages", token, params={"$filter": combined}).json()["value"]) == 10
    assert_graph_error(
        graph_call(s.emu, "GET", "/me/messages", token, params={"$filter": "subject eq 'x'"}), 400, "BadRequest"
    )
    assert_graph_error(graph_call(s.emu, "GET", "/me/mailFolders/nope/messages", token), 404, "ErrorItemNotFound")


def test_mail_read_basic_leaves_out_bodies_and_missing_scope_is_403(world):
    s, token = world
    _as_colleague(s, "hi", "secret body")
    assert graph_call(s.emu, "GET", "/me/messages", token).json()["value"][0]["body"]["content"]
    basic = agent_user_token(s, ("Mail.ReadBasic",))
    item = graph_call(s.emu, "GET", "/me/messages", basic).json()["value"][0]
    assert item["subject"] == "hi" and "body" not in item and "bodyPreview" not in item
    weak = agent_user_token(s, ("User.Read",), second=True)
    for method, path, body in [
        ("GET", "/me/messages", None),
        ("GET", "/me/mailFolders/inbox/messages", None),
        ("POST", "/me/sendMail", _mail(["a@b.example"])),
    ]:
        err = assert_graph_error(graph_call(s.emu, method, path, weak, json=body), 403, "ErrorAccessDenied")
        assert err["message"] == "Access is denied. Check credentials and try again."
    # Another user's mailbox with a delegated token.
    other = s.emu.people.colleague.object_id
    assert_graph_error(graph_call(s.emu, "GET", f"/users/{other}/messages", basic), 403, "ErrorAccessDenied")


def test_colleague_auto_replies_by_mail_after_delay(world):
    s, token = world
    megan = s.emu.people.colleague
    s.emu.workspace.add_rule(AutoReply(megan.object_id, "Re-read: {text}", delay=10, channel="mail"))
    graph_call(s.emu, "POST", "/me/sendMail", token, json=_mail([megan.upn], "Plan", "<p>ship it</p>", "HTML"))
    assert graph_call(s.emu, "GET", "/me/mailFolders/inbox/messages", token).json()["value"] == []
    s.emu.advance_clock(11)
    inbox = graph_call(
        s.emu,
        "GET",
        "/me/mailFolders/inbox/messages",
        token,
        headers={"Prefer": 'outlook.body-content-type="text"'},
    ).json()["value"]
    assert [(m["subject"], m["body"]["content"]) for m in inbox] == [("Re: Plan", "Re-read: ship it")]
    assert inbox[0]["from"]["emailAddress"]["address"] == megan.mail


def test_mail_throttling_fault(world):
    s, token = world
    s.emu.faults.inject("429", count=1, path="/v1.0/me/sendMail", retry_after=2)
    r = graph_call(s.emu, "POST", "/me/sendMail", token, json=_mail([s.emu.people.colleague.mail]))
    assert_graph_error(r, 429, "TooManyRequests")
    assert r.headers["Retry-After"] == "2"
    assert (
        graph_call(s.emu, "POST", "/me/sendMail", token, json=_mail([s.emu.people.colleague.mail])).status_code == 202
    )
