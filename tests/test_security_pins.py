"""Security checks a hand-made mutation pass found unpinned: each test fails when its check is removed.

One test per surviving mutant (issue 13), each with a control next to it so it cannot pass
vacuously: the same request minus the defect succeeds.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import pytest

from emulator_helpers import GRAPH, assert_graph_error, assert_sts_error, graph_call, make_assertion
from entraclaw.emulator import Emulator
from entraclaw.errors import KeystoreError
from keystore_helpers import plaintext_keyring

pytest_plugins = ["emulator_helpers"]


# --- emulator: certificate selection ------------------------------------------------------------


def test_x5t_s256_wins_over_x5t(fresh: Any) -> None:
    """x5t#S256 names an unregistered certificate, x5t a registered one: Entra selects by S256 and refuses."""
    s = fresh
    registered_x5t = s.cert.x5t
    mixed = make_assertion(
        s.cert,
        s.bp.app_id,
        s.emu.token_endpoint,
        now=s.emu.clock(),
        thumbprint="none",
        headers={"x5t#S256": s.other_cert.x5t_s256, "x5t": registered_x5t},
    )
    assert_sts_error(s.post_token(s.hop1_form(mixed)), 700027, "invalid_client")
    # Control: the registered certificate named by both thumbprints is accepted.
    both = make_assertion(s.cert, s.bp.app_id, s.emu.token_endpoint, now=s.emu.clock(), thumbprint="both")
    assert s.post_token(s.hop1_form(both)).status_code == 200


@pytest.mark.parametrize("header", ["x5t#S256", "x5t"])
def test_padded_thumbprints_select_the_key(fresh: Any, header: str) -> None:
    """MSAL's padded base64url thumbprints name the same key; a wrong pad does not."""
    s = fresh
    value = s.cert.x5t_s256 if header == "x5t#S256" else s.cert.x5t
    padded = make_assertion(
        s.cert, s.bp.app_id, s.emu.token_endpoint, now=s.emu.clock(), thumbprint="none", headers={header: value + "="}
    )
    assert s.post_token(s.hop1_form(padded)).status_code == 200
    overpadded = make_assertion(
        s.cert, s.bp.app_id, s.emu.token_endpoint, now=s.emu.clock(), thumbprint="none", headers={header: value + "=="}
    )
    assert_sts_error(s.post_token(s.hop1_form(overpadded)), 700027, "invalid_client")


# --- emulator: Graph bearer checks --------------------------------------------------------------


def _graph_token(emu: Emulator, *, issuer: str | None = None, now: float | None = None, **claims: Any) -> str:
    """A Graph token signed by the tenant's own key, bent as the test says."""
    body: dict[str, Any] = {
        "aud": GRAPH,
        "appid": emu.admin.app_id,
        "azp": emu.admin.app_id,
        "idtyp": "app",
        "roles": ["Application.Read.All"],
    }
    body.update(claims)
    return emu._issuer.mint(
        issuer=issuer or emu.issuer,
        tenant_id=emu.tenant_id,
        now=emu.clock() if now is None else now,
        lifetime=3600,
        **body,
    )


def test_graph_refuses_a_tenant_signed_token_of_another_issuer(emu: Emulator) -> None:
    foreign = _graph_token(emu, issuer="https://login.microsoftonline.com/00000000-0000-0000-0000-000000000001/v2.0")
    err = assert_graph_error(graph_call(emu, "GET", "/applications", foreign), 401, "InvalidAuthenticationToken")
    assert "issuer" in err["message"].lower()
    assert graph_call(emu, "GET", "/applications", _graph_token(emu)).status_code == 200


def test_graph_refuses_a_token_not_valid_for_more_than_five_minutes(emu: Emulator) -> None:
    ahead = _graph_token(emu, now=emu.clock() + 301 + 5)
    err = assert_graph_error(graph_call(emu, "GET", "/applications", ahead), 401, "InvalidAuthenticationToken")
    assert "not yet valid" in err["message"]
    # Control: within the 5-minute skew Graph tolerates, the same token is accepted.
    assert graph_call(emu, "GET", "/applications", _graph_token(emu, now=emu.clock() + 240)).status_code == 200


def test_delegated_scope_without_a_role_or_ownership_cannot_write_agent_id(emu: Emulator) -> None:
    """Graph combines the delegated scope with a directory role (or ownership) for Agent ID writes."""
    nobody = emu.tenant.add_person(f"nobody@{emu.tenant.default_domain}", "No Role")
    admin = emu.tenant.person_by_upn(emu.admin.user_upn)
    assert admin is not None and admin.roles
    body = {
        "displayName": "Blueprint by delegated caller",
        "sponsors@odata.bind": [f"{emu.graph_url}/users/{admin.object_id}"],
    }

    def delegated(oid: str) -> str:
        return _graph_token(
            emu, idtyp="user", oid=oid, sub=oid, scp="AgentIdentityBlueprint.Create", roles=None,
            appid=emu.admin.client_id, azp=emu.admin.client_id,
        )  # fmt: skip

    path = "/applications/microsoft.graph.agentIdentityBlueprint"
    r = graph_call(emu, "POST", path, delegated(nobody.object_id), json=body)
    assert_graph_error(r, 403, "Authorization_RequestDenied")
    assert graph_call(emu, "POST", path, delegated(admin.object_id), json=body).status_code == 201


# --- client: atomic_write and the keyring backend -----------------------------------------------


def test_atomic_write_fsyncs_the_temp_file_before_replacing(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from entraclaw.platform import files

    events: list[tuple[str, str]] = []
    real_fsync, real_replace = os.fsync, os.replace

    def fsync(fd: int) -> None:
        events.append(("fsync", os.readlink(f"/proc/self/fd/{fd}")))
        real_fsync(fd)

    def replace(src: Any, dst: Any) -> None:
        events.append(("replace", os.fspath(src)))
        real_replace(src, dst)

    monkeypatch.setattr(files.os, "fsync", fsync)
    monkeypatch.setattr(files.os, "replace", replace)
    target = tmp_path / "state.json"
    files.atomic_write(target, b"{}")
    assert target.read_bytes() == b"{}"
    (replaced,) = [i for i, e in enumerate(events) if e[0] == "replace"]
    temp = events[replaced][1]
    assert ("fsync", temp) in events[:replaced], events


def test_a_keyring_backend_named_plaintext_is_refused_wherever_it_lives() -> None:
    from entraclaw.keystore.keyring_store import KeyringStore

    with pytest.raises(KeystoreError, match="plaintext file") as caught:
        KeyringStore(backend=plaintext_keyring("someone.elses.backends", priority=1))
    assert caught.value.backend == "keyring:someone.elses.backends.PlaintextKeyring"
