"""Issue 8, attestation: prove the key is in the TPM (stand-in claims, forged and truncated ones too)."""

from __future__ import annotations

import struct

import pytest

import attestation_helpers as ah
from cng_helpers import PLATFORM, Standin, standin_fixture  # noqa: F401  (fixture)
from conftest import KeyPair
from entraclaw import attestation, cng, errors

pytestmark = [pytest.mark.standin, pytest.mark.native]

AIK = "entraclaw-test-aik"


def _setup(standin: Standin, kp: KeyPair, *, ek: KeyPair | None = None, **options: int) -> tuple[cng.CngSigner, bytes]:
    installed = standin.add(kp, provider=PLATFORM)
    for name, value in options.items():
        standin.set_key_option(installed.provider, installed.container, name, value)
    standin.create_aik(AIK)
    if ek is not None:
        standin.set_ek_certificate(ek.der)
    # The AIK as a relying party enrolls it: its TPM2B_PUBLIC.
    return cng.CngSigner(installed.thumbprint), standin.key_tpm_public(PLATFORM, AIK)


def _claim(standin: Standin, kp: KeyPair) -> tuple[bytes, bytes, KeyPair]:
    signer, aik = _setup(standin, kp)
    info = signer.info(aik=AIK)
    signer.close()
    assert info.evidence.claim is not None
    return info.evidence.claim, aik, kp


def test_attested_tpm_key(standin: Standin, keypair: KeyPair, other_keypair: KeyPair) -> None:
    signer, aik = _setup(standin, keypair, ek=other_keypair)
    info = signer.info(aik=AIK)
    att = attestation.assess(info, aik_public=aik)
    assert att.hardware is True
    assert att.signature_verified is True
    assert att.problems == ()
    attrs = att.attributes
    assert attrs is not None
    assert (attrs.fixed_tpm, attrs.fixed_parent, attrs.sensitive_data_origin) == (True, True, True)
    assert attrs.sign is True
    assert attrs.sign_only is False  # PCP's default key usage also allows decryption
    assert att.ek_certificate is not None
    assert att.ek_certificate.subject == other_keypair.cert.subject
    assert att.platform_type is not None and "TPM-Version:2.0" in att.platform_type
    assert attestation.attestation_summary(info, aik_public=aik) == "TPM-backed, non-exportable, attested"
    signer.close()
    assert standin.open_handles() == 0


def test_sign_only_key_is_reported(standin: Standin, keypair: KeyPair) -> None:
    tpma = (1 << 1) | (1 << 4) | (1 << 5) | (1 << 6) | (1 << 18)
    signer, aik = _setup(standin, keypair, tpma=tpma)
    attrs = attestation.assess(signer.info(aik=AIK), aik_public=aik).attributes
    assert attrs is not None and attrs.sign_only is True
    signer.close()


def test_created_key_is_attested_sign_only(standin: Standin) -> None:
    made = cng.create_certificate("entraclaw-blueprint-attest-usage", provider="tpm")
    standin.create_aik(AIK)
    signer = cng.CngSigner(made.thumbprint)
    info = signer.info(aik=AIK)
    aik = standin.key_tpm_public(PLATFORM, AIK)
    attrs = attestation.assess(info, aik_public=aik).attributes
    assert attrs is not None
    assert (attrs.sign, attrs.decrypt, attrs.sign_only) == (True, False, True)
    assert info.sign_only is True
    assert attestation.attestation_summary(info, aik_public=aik) == "TPM-backed, non-exportable, sign-only, attested"
    signer.close()


def test_sign_only_from_the_provider_when_there_is_no_claim(standin: Standin) -> None:
    made = cng.create_certificate("entraclaw-blueprint-usage-noclaim", provider="tpm")
    signer = cng.CngSigner(made.thumbprint)
    summary = attestation.attestation_summary(signer.info())
    assert summary.startswith(
        "TPM-backed, non-exportable (reported by the provider), sign-only (reported by the provider), not attested:"
    )
    signer.close()


def test_claim_wins_over_the_providers_usage(standin: Standin, keypair: KeyPair) -> None:
    # The provider says sign-only, the TPM's own attributes allow decryption: the TPM is believed.
    signer, aik = _setup(
        standin, keypair, key_usage=2, tpma=(1 << 1) | (1 << 4) | (1 << 5) | (1 << 6) | (1 << 17) | (1 << 18)
    )
    info = signer.info(aik=AIK)
    assert info.sign_only is True
    summary = attestation.attestation_summary(info, aik_public=aik)
    assert summary.startswith("TPM-backed, non-exportable, not sign-only")
    assert "decryption" in summary
    signer.close()


def test_without_an_aik_the_summary_says_what_is_missing(standin: Standin, keypair: KeyPair) -> None:
    signer, _aik = _setup(standin, keypair)
    info = signer.info()
    summary = attestation.attestation_summary(info)
    assert summary.startswith("TPM-backed, non-exportable (reported by the provider), not attested:")
    assert "no AIK" in summary
    att = attestation.assess(info)
    assert att.ek_certificate is None
    assert "EK certificate" in " ".join(att.problems)
    signer.close()


def test_claim_without_aik_public_key_is_parsed_but_not_attested(standin: Standin, keypair: KeyPair) -> None:
    signer, _aik = _setup(standin, keypair)
    info = signer.info(aik=AIK)
    att = attestation.assess(info)
    assert att.attributes is not None
    assert att.signature_verified is False
    assert "AIK public area" in attestation.attestation_summary(info)
    signer.close()


def test_software_key_summary(standin: Standin, keypair: KeyPair) -> None:
    signer = cng.CngSigner(standin.add(keypair).thumbprint)
    info = signer.info(aik=AIK)
    assert info.evidence.hardware is False and attestation.assess(info).hardware is False
    assert attestation.attestation_summary(info).startswith("not TPM-backed")
    assert standin.calls("NCryptCreateClaim") == 0
    signer.close()


def test_key_attributes_that_are_not_tpm_bound_are_named(standin: Standin, keypair: KeyPair) -> None:
    # An imported (not TPM-generated) duplicable key: no fixedParent, no sensitiveDataOrigin.
    signer, aik = _setup(standin, keypair, tpma=(1 << 6) | (1 << 18))
    summary = attestation.attestation_summary(signer.info(aik=AIK), aik_public=aik)
    assert "fixedTPM" in summary
    assert "sensitiveDataOrigin" in summary
    assert "attested" not in summary.replace("not attested", "")
    signer.close()


@pytest.mark.parametrize(
    ("mode", "reason"),
    [(1, "truncated"), (2, "magic"), (3, "name"), (4, "signature")],
)
def test_tampered_claims_from_the_provider(standin: Standin, keypair: KeyPair, mode: int, reason: str) -> None:
    signer, aik = _setup(standin, keypair)
    standin.set_claim_tamper(mode)
    info = signer.info(aik=AIK)
    att = attestation.assess(info, aik_public=aik)
    assert att.signature_verified is False
    assert any(reason in p for p in att.problems), att.problems
    summary = attestation.attestation_summary(info, aik_public=aik)
    assert "not attested" in summary
    assert reason in summary
    signer.close()


# --- the parser against forged and truncated claims --------------------------------


def test_parse_genuine_claim(standin: Standin, keypair: KeyPair) -> None:
    blob, aik, kp = _claim(standin, keypair)
    claim = attestation.parse_key_claim(blob)
    assert claim.attest.magic == attestation.TPM_GENERATED_VALUE
    assert claim.attest.type == attestation.TPM_ST_ATTEST_CERTIFY
    assert claim.public.modulus == kp.key.public_key().public_numbers().n.to_bytes(256, "big")
    attestation.verify_key_claim(claim, public_key=kp.cert.public_key(), aik_public=aik)


@pytest.mark.parametrize("cut", [1, 10, 24, 100])
def test_truncated_claim(standin: Standin, keypair: KeyPair, cut: int) -> None:
    blob, _aik, _kp = _claim(standin, keypair)
    with pytest.raises(errors.AttestationError) as info:
        attestation.parse_key_claim(blob[: len(blob) - cut] if cut != 24 else blob[:cut])
    assert info.value.reason == "truncated"


def test_forged_magic(standin: Standin, keypair: KeyPair) -> None:
    blob, _aik, _kp = _claim(standin, keypair)
    forged = bytearray(blob)
    forged[24:28] = struct.pack(">I", 0xFF544346)
    with pytest.raises(errors.AttestationError, match="TPM_GENERATED") as info:
        attestation.parse_key_claim(bytes(forged))
    assert info.value.reason == "magic"


def test_forged_public_area_does_not_match_attested_name(standin: Standin, keypair: KeyPair, other_keypair) -> None:
    blob, aik, _kp = _claim(standin, keypair)
    claim = attestation.parse_key_claim(blob)
    # Swap in another key's modulus: the TPM attested a different name.
    other_n = other_keypair.key.public_key().public_numbers().n.to_bytes(256, "big")
    forged = blob.replace(claim.public.modulus, other_n)
    forged_claim = attestation.parse_key_claim(forged)
    with pytest.raises(errors.AttestationError) as info:
        attestation.verify_key_claim(
            forged_claim,
            public_key=other_keypair.cert.public_key(),
            aik_public=aik,
        )
    assert info.value.reason == "name"
    # And a genuine claim for key A does not vouch for key B's certificate.
    with pytest.raises(errors.AttestationError) as info2:
        attestation.verify_key_claim(claim, public_key=other_keypair.cert.public_key())
    assert info2.value.reason == "public_key"


def test_a_bare_public_key_is_not_accepted_as_aik(standin: Standin, keypair: KeyPair) -> None:
    blob, _aik, kp = _claim(standin, keypair)
    claim = attestation.parse_key_claim(blob)
    with pytest.raises(errors.AttestationError) as info:
        attestation.verify_key_claim(
            claim, public_key=kp.cert.public_key(), aik_public=standin.key_public_der(PLATFORM, AIK)
        )
    assert info.value.reason == "aik_format"
    assert "TPM2B_PUBLIC" in str(info.value)


def test_garbage_is_rejected_without_leaking_bytes() -> None:
    with pytest.raises(errors.AttestationError) as info:
        attestation.parse_key_claim(b"\x00" * 64)
    assert info.value.reason == "magic"
    assert "00000000000000" not in str(info.value)


def test_claim_with_a_tpmt_signature_and_sha256_aik(keypair: KeyPair, other_keypair: KeyPair) -> None:
    # Built here, not by the stand-in: a claim whose signature is a TPMT_SIGNATURE
    # (RSASSA, SHA-256) by an AIK we hold, around a bare TPM2B_PUBLIC key blob.
    area = ah.tpmt_public(keypair.key.public_key(), ah.KEY_ATTRS)
    aik_area = ah.tpmt_public(other_keypair.key.public_key(), ah.AIK_ATTRS, scheme=ah.ALG_RSASSA)
    blob = ah.claim_blob(ah.attest(ah.name_of(aik_area), b"nonce", ah.name_of(area)), other_keypair.key, area)
    claim = attestation.parse_key_claim(blob)
    assert claim.signature_hash == 0x000B
    assert claim.attest.extra_data == b"nonce"
    assert claim.public.attributes.sign_only
    attestation.verify_key_claim(
        claim, public_key=keypair.cert.public_key(), aik_public=ah.b2(aik_area), nonce=b"nonce"
    )
    with pytest.raises(errors.AttestationError) as info:
        attestation.parse_key_claim(blob + b"\x00")
    assert info.value.reason == "format"
