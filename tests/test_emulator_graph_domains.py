"""Graph /domains over real sockets: the default verified domain setup builds the Agent User's UPN from."""

from __future__ import annotations

from emulator_helpers import admin_token, app_token, assert_graph_error, graph_call, make_cert

pytest_plugins = ["emulator_helpers"]


def test_list_domains(fresh):
    emu = fresh.emu
    emu.tenant.add_domain("contoso.test", is_default=True)
    r = graph_call(emu, "GET", "/domains", admin_token(emu))
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["@odata.context"].endswith("$metadata#domains")
    by_name = {d["id"]: d for d in body["value"]}
    assert by_name["contoso.test"]["isDefault"] is True and by_name["contoso.test"]["isVerified"] is True
    (initial,) = [d for d in body["value"] if d["isInitial"]]
    assert initial["isDefault"] is False and initial["id"].endswith(".onmicrosoft.com")
    one = graph_call(emu, "GET", "/domains/contoso.test", admin_token(emu))
    assert one.status_code == 200 and one.json()["authenticationType"] == "Managed"
    assert_graph_error(
        graph_call(emu, "GET", "/domains/nope.example", admin_token(emu)), 404, "Request_ResourceNotFound"
    )


def test_domains_need_domain_read(fresh):
    emu = fresh.emu
    cert = make_cert(18)
    app = emu.tenant.add_application("no roles", [cert.cert])
    assert_graph_error(
        graph_call(emu, "GET", "/domains", app_token(emu, app.app_id, cert)), 403, "Authorization_RequestDenied"
    )
    assert_graph_error(graph_call(emu, "GET", "/domains"), 401, "InvalidAuthenticationToken")
    r = graph_call(emu, "GET", "/domains", admin_token(emu), params={"$filter": "isDefault eq true"})
    assert_graph_error(r, 400, "Request_UnsupportedQuery")


def test_injected_throttling_and_outage_have_graphs_shape(fresh):
    emu = fresh.emu
    token = admin_token(emu)
    emu.faults.inject("429", path="/v1.0/domains", retry_after=7)
    r = graph_call(emu, "GET", "/domains", token, headers={"client-request-id": "5d0f2a57-1c67-4e40-9d1e-6b7ad7c7c1f0"})
    err = assert_graph_error(r, 429, "TooManyRequests")
    assert r.headers["Retry-After"] == "7"
    assert err["innerError"]["client-request-id"] == "5d0f2a57-1c67-4e40-9d1e-6b7ad7c7c1f0"
    emu.faults.inject("5xx", path="/v1.0/domains", status=503)
    assert_graph_error(graph_call(emu, "GET", "/domains", token), 503, "serviceNotAvailable")
    assert graph_call(emu, "GET", "/domains", token).status_code == 200
