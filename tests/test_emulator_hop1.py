"""Hop 1 over real sockets: the Blueprint's certificate assertion + fmi_path -> T1, and every refusal."""

from __future__ import annotations

import datetime as _dt
import json
import uuid

import pytest

from emulator_helpers import (
    EXCHANGE_AUD,
    GRAPH,
    assert_sts_error,
    make_assertion,
    make_cert,
    verify_token,
)
from entraclaw.auth import b64url_decode, b64url_encode, build_client_assertion

# The helper module is a plugin so its fixtures (seeded, fresh) reach these tests.
pytest_plugins = ["emulator_helpers"]


def _tamper_payload(token: str, **changes: object) -> str:
    head, payload, sig = token.split(".")
    claims = json.loads(b64url_decode(payload))
    claims.update(changes)
    return ".".join([head, b64url_encode(json.dumps(claims).encode()), sig])


@pytest.mark.parametrize("alg", ["RS256", "PS256"])
@pytest.mark.parametrize("thumbprint", ["S256", "x5t", "both"])
def test_hop1_issues_t1(seeded, alg, thumbprint):
    r = seeded.post_token(seeded.hop1_form(seeded.assertion(alg=alg, thumbprint=thumbprint)))
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["token_type"] == "Bearer"
    assert body["expires_in"] == 3599 and isinstance(body["expires_in"], int)
    assert body["ext_expires_in"] == 3599
    claims = verify_token(seeded.emu, body["access_token"], EXCHANGE_AUD)
    assert claims["sub"] == seeded.ai.app_id
    assert claims["appid"] == seeded.bp.app_id
    assert claims["idtyp"] == "app"
    assert claims["exp"] - claims["iat"] == 3599


@pytest.mark.parametrize("alg", ["RS256", "PS256"])
def test_hop1_accepts_entraclaw_built_assertion(seeded, alg):
    assertion = build_client_assertion(
        private_key_pem=seeded.cert.pem,
        cert_thumbprint=seeded.cert.x5t_s256,
        client_id=seeded.bp.app_id,
        token_endpoint=seeded.emu.token_endpoint,
        algorithm=alg,
    )
    r = seeded.post_token(seeded.hop1_form(assertion))
    assert r.status_code == 200, r.text


def test_hop1_accepts_v1_endpoint_audience(seeded):
    aud = f"{seeded.emu.base_url}/{seeded.emu.tenant_id}/oauth2/token"
    r = seeded.post_token(seeded.hop1_form(make_assertion(seeded.cert, seeded.bp.app_id, aud)))
    assert r.status_code == 200, r.text


def test_tampered_assertion_rejected(seeded):
    bad = _tamper_payload(seeded.assertion(), exp=2_000_000_000)
    body = assert_sts_error(seeded.post_token(seeded.hop1_form(bad)), 700027, "invalid_client")
    assert "signature validation" in body["error_description"]
    assert bad not in json.dumps(body) and bad.split(".")[2] not in json.dumps(body)


def test_assertion_signed_by_another_key_rejected(seeded):
    # Right thumbprint in the header, wrong private key: only the signature check can catch it.
    forged = seeded.assertion(signing_key=seeded.other_cert.key)
    assert_sts_error(seeded.post_token(seeded.hop1_form(forged)), 700027, "invalid_client")


def test_unknown_key_rejected_and_named(seeded):
    unknown = seeded.assertion(cert=seeded.other_cert)  # registered on Blueprint B, not A
    body = assert_sts_error(seeded.post_token(seeded.hop1_form(unknown)), 700027, "invalid_client")
    assert seeded.other_cert.x5t_s256 in body["error_description"]
    assert seeded.bp.app_id in body["error_description"]


def test_missing_thumbprint_header_rejected(seeded):
    bare = seeded.assertion(thumbprint="none")
    assert_sts_error(seeded.post_token(seeded.hop1_form(bare)), 700027, "invalid_client")


@pytest.mark.parametrize("alg", ["HS256", "none"])
def test_non_rsa_algorithms_rejected(seeded, alg):
    if alg == "none":
        good = seeded.assertion()
        head = json.loads(b64url_decode(good.split(".")[0]))
        head["alg"] = "none"
        token = b64url_encode(json.dumps(head).encode()) + "." + good.split(".")[1] + "."
    else:
        import jwt

        token = jwt.encode(
            {
                "aud": seeded.emu.token_endpoint,
                "iss": seeded.bp.app_id,
                "sub": seeded.bp.app_id,
                "jti": "x",
                "nbf": int(seeded.emu.clock()),
                "exp": int(seeded.emu.clock()) + 60,
            },
            "a-shared-secret-that-is-long-enough-for-hs256",
            algorithm="HS256",
            headers={"x5t#S256": seeded.cert.x5t_s256},
        )
    assert_sts_error(seeded.post_token(seeded.hop1_form(token)), 700027, "invalid_client")


def test_expired_assertion_rejected(seeded):
    expired = seeded.assertion(nbf_offset=-1200, claims={"iat": int(seeded.emu.clock()) - 1200})
    body = assert_sts_error(seeded.post_token(seeded.hop1_form(expired)), 700024, "invalid_client")
    assert "not within its valid time range" in body["error_description"]


def test_not_yet_valid_assertion_rejected(seeded):
    future = seeded.assertion(nbf_offset=900)
    assert_sts_error(seeded.post_token(seeded.hop1_form(future)), 700024, "invalid_client")


def test_clock_skew_within_five_minutes_accepted(seeded):
    slightly_ahead = seeded.assertion(nbf_offset=240, lifetime=300)
    assert seeded.post_token(seeded.hop1_form(slightly_ahead)).status_code == 200
    slightly_expired = seeded.assertion(nbf_offset=-500, lifetime=300)  # exp 200 s ago
    assert seeded.post_token(seeded.hop1_form(slightly_expired)).status_code == 200


def test_over_long_lifetime_rejected(seeded):
    long_lived = seeded.assertion(lifetime=3600)
    body = assert_sts_error(seeded.post_token(seeded.hop1_form(long_lived)), 700024, "invalid_client")
    assert "3600" in body["error_description"]
    assert seeded.post_token(seeded.hop1_form(seeded.assertion(lifetime=600))).status_code == 200


def test_wrong_audience_rejected(seeded):
    wrong = make_assertion(
        seeded.cert,
        seeded.bp.app_id,
        "https://login.microsoftonline.com/common/oauth2/v2.0/token",
        now=seeded.emu.clock(),
    )
    assert_sts_error(seeded.post_token(seeded.hop1_form(wrong)), 700023, "invalid_client")


@pytest.mark.parametrize("claim", ["iss", "sub"])
def test_wrong_issuer_or_subject_rejected(seeded, claim):
    wrong = seeded.assertion(claims={claim: seeded.bp2.app_id})
    body = assert_sts_error(seeded.post_token(seeded.hop1_form(wrong)), 700021, "invalid_client")
    assert seeded.bp.app_id in body["error_description"]


def test_replayed_assertion_rejected(seeded):
    once = seeded.assertion()
    assert seeded.post_token(seeded.hop1_form(once)).status_code == 200
    assert_sts_error(seeded.post_token(seeded.hop1_form(once)), 50013, "invalid_client")


def test_unverified_assertion_does_not_burn_its_jti(seeded):
    good = seeded.assertion()
    forged = _tamper_payload(good, nbf=json.loads(b64url_decode(good.split(".")[1]))["nbf"] - 1)
    assert_sts_error(seeded.post_token(seeded.hop1_form(forged)), 700027, "invalid_client")
    assert seeded.post_token(seeded.hop1_form(good)).status_code == 200


@pytest.mark.parametrize("missing", ["jti", "exp"])
def test_missing_required_claims_rejected(seeded, missing):
    token = seeded.assertion(drop=(missing,))
    assert_sts_error(seeded.post_token(seeded.hop1_form(token)), 50027, "invalid_request")


@pytest.mark.parametrize("garbage", ["not-a-jwt", "a.b.c", "e30.e30", "W10.e30.e30"])
def test_malformed_assertion_rejected(seeded, garbage):
    assert_sts_error(seeded.post_token(seeded.hop1_form(garbage)), 50027, "invalid_request")


def test_wrong_typ_header_rejected(seeded):
    token = seeded.assertion(headers={"typ": "at+jwt"})
    assert_sts_error(seeded.post_token(seeded.hop1_form(token)), 5002727, "invalid_request")


def test_expired_certificate_rejected(fresh):
    old = make_cert(2, cn="expired", days=30, not_before=_dt.datetime.now(_dt.timezone.utc) - _dt.timedelta(days=60))
    fresh.emu.tenant.set_key_credentials(fresh.bp.object_id, [old.cert])
    body = assert_sts_error(fresh.post_token(fresh.hop1_form(fresh.assertion(cert=old))), 7000274, "invalid_client")
    assert old.x5t_s256 in body["error_description"]


def test_not_yet_valid_certificate_rejected(fresh):
    future = make_cert(3, cn="future", not_before=_dt.datetime.now(_dt.timezone.utc) + _dt.timedelta(days=2))
    fresh.emu.tenant.set_key_credentials(fresh.bp.object_id, [future.cert])
    assert_sts_error(fresh.post_token(fresh.hop1_form(fresh.assertion(cert=future))), 7000274, "invalid_client")


def test_fmi_path_of_another_blueprints_identity_rejected(seeded):
    form = seeded.hop1_form(fmi_path=seeded.ai2.app_id)
    body = assert_sts_error(seeded.post_token(form), 70000, "invalid_grant")
    assert seeded.ai2.app_id in body["error_description"]


def test_fmi_path_needs_token_exchange_scope(seeded):
    form = seeded.hop1_form(scope=f"{GRAPH}/.default")
    assert_sts_error(seeded.post_token(form), 70011, "invalid_scope")


def test_token_exchange_app_id_scope_accepted(seeded):
    form = seeded.hop1_form(scope=f"{EXCHANGE_AUD}/.default")
    assert seeded.post_token(form).status_code == 200


def test_secret_and_assertion_together_rejected(seeded):
    form = seeded.hop1_form(client_secret="s3cr3t-value")
    body = assert_sts_error(seeded.post_token(form), 9002324, "invalid_request")
    assert "s3cr3t-value" not in json.dumps(body)


def test_secret_alone_rejected(seeded):
    form = seeded.hop1_form(client_secret="s3cr3t-value")
    del form["client_assertion"], form["client_assertion_type"]
    body = assert_sts_error(seeded.post_token(form), 7000215, "invalid_client")
    assert "s3cr3t-value" not in json.dumps(body)


def test_missing_credential_rejected(seeded):
    form = seeded.hop1_form()
    del form["client_assertion"], form["client_assertion_type"]
    assert_sts_error(seeded.post_token(form), 7000216, "invalid_client")


@pytest.mark.parametrize("param", ["grant_type", "client_id", "scope", "client_assertion_type"])
def test_missing_parameter_rejected(seeded, param):
    form = seeded.hop1_form()
    del form[param]
    body = assert_sts_error(seeded.post_token(form), 900144, "invalid_request")
    assert f"'{param}'" in body["error_description"]


def test_unknown_client_rejected(seeded):
    form = seeded.hop1_form(client_id="11111111-1111-1111-1111-111111111111")
    body = assert_sts_error(seeded.post_token(form), 700016, "unauthorized_client")
    assert "11111111-1111-1111-1111-111111111111" in body["error_description"]


def test_bad_assertion_type_rejected(seeded):
    form = seeded.hop1_form(client_assertion_type="urn:ietf:params:oauth:client-assertion-type:saml2-bearer")
    assert_sts_error(seeded.post_token(form), 700021, "invalid_client")


def test_unsupported_grant_rejected(seeded):
    form = seeded.hop1_form(grant_type="password")
    assert_sts_error(seeded.post_token(form), 70003, "unsupported_grant_type")


def test_wrong_tenant_in_path_rejected(seeded):
    with seeded.emu.session() as s:
        r = s.post(
            f"{seeded.emu.base_url}/22222222-2222-2222-2222-222222222222/oauth2/v2.0/token",
            data=seeded.hop1_form(),
            timeout=10,
        )
    assert_sts_error(r, 90002, "invalid_request")


def test_json_body_is_not_a_form(seeded):
    with seeded.emu.session() as s:
        r = s.post(seeded.emu.token_endpoint, json=seeded.hop1_form(), timeout=10)
    assert_sts_error(r, 900144, "invalid_request")


def test_correlation_id_is_echoed(seeded):
    cid = "0b8c6f1e-6a55-4c39-9a43-3d3c7b4b9f10"
    form = seeded.hop1_form(client_id="11111111-1111-1111-1111-111111111111")
    r = seeded.post_token(form, headers={"client-request-id": cid})
    assert_sts_error(r, 700016, "unauthorized_client", correlation_id=cid)


def test_stats_record_hop_and_status(fresh):
    fresh.emu.stats.reset()
    fresh.post_token(fresh.hop1_form())
    fresh.post_token(fresh.hop1_form(fresh.assertion(lifetime=3600)))
    assert fresh.emu.stats.count() == 2
    assert fresh.emu.stats.count(hop=1) == 2
    assert [e["status"] for e in fresh.emu.stats.token_requests] == [200, 401]
    assert fresh.emu.stats.token_requests[0] == {
        "hop": 1,
        "grant_type": "client_credentials",
        "client_id": fresh.bp.app_id,
        "status": 200,
    }


def _signed_raw(seeded, payload_json: str) -> str:
    """An RS256 assertion whose payload is exactly ``payload_json`` (for numbers JSON encoders will not write)."""
    from cryptography.hazmat.primitives import hashes
    from cryptography.hazmat.primitives.asymmetric import padding

    head = b64url_encode(json.dumps({"typ": "JWT", "alg": "RS256", "x5t#S256": seeded.cert.x5t_s256}).encode())
    signing_input = head + "." + b64url_encode(payload_json.encode())
    signature = seeded.cert.key.sign(signing_input.encode(), padding.PKCS1v15(), hashes.SHA256())
    return signing_input + "." + b64url_encode(signature)


@pytest.mark.parametrize(
    "times",
    [
        # NaN compares false with everything: a NaN nbf once let a one-day lifetime through,
        # a NaN exp made an assertion valid (and replayable) forever.
        '"iat":{now},"nbf":NaN,"exp":{day}',
        '"iat":{now},"nbf":{now},"exp":NaN',
        '"iat":{now},"nbf":{now},"exp":Infinity',
        '"iat":{now},"nbf":-Infinity,"exp":{soon}',
        # Finite in JSON, infinite (or not a float at all) in Python: once crashed the handler.
        '"iat":{now},"nbf":{now},"exp":1e400',
        '"iat":{now},"nbf":{now},"exp":1' + "0" * 400,
    ],
    ids=["nbf-nan", "exp-nan", "exp-inf", "nbf-neg-inf", "exp-1e400", "exp-huge-int"],
)
def test_non_finite_time_claims_rejected_like_entra(seeded, times):
    now = int(seeded.emu.clock())
    claims = (
        f'{{"aud":"{seeded.emu.token_endpoint}","iss":"{seeded.bp.app_id}","sub":"{seeded.bp.app_id}",'
        f'"jti":"{uuid.uuid4()}",' + times.format(now=now, day=now + 86400, soon=now + 300) + "}"
    )
    token = _signed_raw(seeded, claims)
    for _ in range(2):  # and never on a replay either
        assert_sts_error(seeded.post_token(seeded.hop1_form(token)), 50027, "invalid_request")


def test_raw_signed_helper_builds_an_acceptable_assertion(seeded):
    # The negative test above is only meaningful if the same construction passes with sane numbers.
    now = int(seeded.emu.clock())
    claims = (
        f'{{"aud":"{seeded.emu.token_endpoint}","iss":"{seeded.bp.app_id}","sub":"{seeded.bp.app_id}",'
        f'"jti":"{uuid.uuid4()}","iat":{now},"nbf":{now},"exp":{now + 300}}}'
    )
    assert seeded.post_token(seeded.hop1_form(_signed_raw(seeded, claims))).status_code == 200
