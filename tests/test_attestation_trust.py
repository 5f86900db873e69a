"""Issue 14: a claim a relying party can trust -- the AIK as TPM2B_PUBLIC (restricted + sign + fixedTPM +
fixedParent), qualifiedSigner = the AIK's Name, and a nonce in extraData. Forgeries are refused with their reason.
"""

from __future__ import annotations

import pytest

import attestation_helpers as ah
from cng_helpers import PLATFORM, Standin, standin_fixture  # noqa: F401  (fixture)
from conftest import KeyPair
from entraclaw import attestation, cng, errors

AIK, OTHER_AIK = "entraclaw-trust-aik", "entraclaw-trust-aik-2"


def _reason(call) -> str:
    with pytest.raises(errors.AttestationError) as info:
        call()
    return str(info.value.reason)


def test_forged_claim_signed_by_an_unrestricted_key_is_refused(keypair: KeyPair, other_keypair: KeyPair) -> None:
    # An unrestricted signing key in the same TPM passes credential activation (it is fixedTPM and in the TPM) but
    # the TPM lets it sign anything, including a TPMS_ATTEST it made up: "this software key is fixedTPM".
    software_key = ah.tpmt_public(keypair.key.public_key(), ah.KEY_ATTRS)
    forger_area = ah.tpmt_public(other_keypair.key.public_key(), ah.KEY_ATTRS)  # sign, fixedTPM, NOT restricted
    blob = ah.claim_blob(ah.attest(ah.name_of(forger_area), b"n", ah.name_of(software_key)), other_keypair.key,
                         software_key)
    claim = attestation.parse_key_claim(blob)  # well-formed: only the AIK check can catch it
    reason = _reason(lambda: attestation.verify_key_claim(
        claim, public_key=keypair.cert.public_key(), aik_public=ah.b2(forger_area), nonce=b"n"))
    assert reason == "aik_not_restricted"
    # The same forgery passed the old check (signature under a bare AIK public key) -- it is the AIK attributes
    # that refuse it, not the signature.
    restricted_area = ah.tpmt_public(other_keypair.key.public_key(), ah.AIK_ATTRS, scheme=ah.ALG_RSASSA)
    with pytest.raises(errors.AttestationError, match="lacks restricted"):
        attestation.verify_key_claim(claim, public_key=keypair.cert.public_key(), aik_public=ah.b2(forger_area))
    assert ah.name_of(restricted_area) != claim.attest.qualified_signer


@pytest.mark.parametrize("missing", [ah.RESTRICTED, ah.SIGN, ah.FIXED_TPM, ah.FIXED_PARENT])
def test_each_required_aik_attribute_is_checked(keypair: KeyPair, other_keypair: KeyPair, missing: int) -> None:
    area = ah.tpmt_public(keypair.key.public_key(), ah.KEY_ATTRS)
    aik_area = ah.tpmt_public(other_keypair.key.public_key(), ah.AIK_ATTRS & ~missing, scheme=ah.ALG_RSASSA)
    blob = ah.claim_blob(ah.attest(ah.name_of(aik_area), b"", ah.name_of(area)), other_keypair.key, area)
    claim = attestation.parse_key_claim(blob)
    assert _reason(lambda: attestation.verify_key_claim(
        claim, public_key=keypair.cert.public_key(), aik_public=ah.b2(aik_area))) == "aik_not_restricted"


def _tpm_signer(standin: Standin, kp: KeyPair) -> cng.CngSigner:
    installed = standin.add(kp, provider=PLATFORM)
    standin.create_aik(AIK)
    standin.create_aik(OTHER_AIK)
    return cng.CngSigner(installed.thumbprint)


def test_genuine_fresh_claim_is_attested(standin: Standin, keypair: KeyPair) -> None:
    signer = _tpm_signer(standin, keypair)
    nonce = b"relying-party-challenge-0001"
    info = signer.info(aik=AIK, nonce=nonce)
    att = attestation.assess(info, aik_public=standin.key_tpm_public(PLATFORM, AIK))
    assert att.signature_verified and att.nonce_verified, att.problems
    assert att.parsed is not None and att.parsed.attest.extra_data == nonce
    assert attestation.attestation_summary(info, aik_public=standin.key_tpm_public(PLATFORM, AIK)).endswith(
        ", attested"
    )
    signer.close()


def test_claim_from_another_aik_is_refused(standin: Standin, keypair: KeyPair) -> None:
    signer = _tpm_signer(standin, keypair)
    info = signer.info(aik=OTHER_AIK, nonce=b"n1")
    att = attestation.assess(info, aik_public=standin.key_tpm_public(PLATFORM, AIK))  # enrolled: the first AIK
    assert not att.signature_verified
    assert att.claim_problem is not None and att.claim_problem.startswith("the claim is invalid (signer)")
    assert "another AIK" in att.claim_problem
    signer.close()


def test_replayed_claim_is_refused(standin: Standin, keypair: KeyPair) -> None:
    signer = _tpm_signer(standin, keypair)
    aik = standin.key_tpm_public(PLATFORM, AIK)
    old = signer.info(aik=AIK, nonce=b"yesterday's challenge")
    assert old.evidence.claim is not None
    claim = attestation.parse_key_claim(old.evidence.claim)
    assert _reason(lambda: attestation.verify_key_claim(
        claim, public_key=keypair.cert.public_key(), aik_public=aik, nonce=b"today's challenge")) == "nonce"
    att = attestation.assess(old, aik_public=aik, nonce=b"today's challenge")
    assert not att.signature_verified and att.claim_problem is not None and "(nonce)" in att.claim_problem
    signer.close()


def test_nonce_reaches_the_provider_as_buffer_49(standin: Standin, keypair: KeyPair) -> None:
    # NCRYPTBUFFER_CLAIM_KEYATTESTATION_NONCE = 49 (ncrypt.h); the stand-in refuses any other buffer type.
    signer = _tpm_signer(standin, keypair)
    info = signer.info(aik=AIK, nonce=b"x" * 32)
    assert info.evidence.claim is not None
    assert attestation.parse_key_claim(info.evidence.claim).attest.extra_data == b"x" * 32
    with pytest.raises(errors.ConfigurationError, match="64 bytes"):
        signer.info(aik=AIK, nonce=b"x" * 65)
    signer.close()


def test_the_parser_and_the_signer_do_not_import_each_other() -> None:
    import ast
    from pathlib import Path

    src = Path(attestation.__file__).parent
    for module, other in (("attestation.py", "entraclaw.cng"), ("cng.py", "entraclaw.attestation")):
        tree = ast.parse((src / module).read_text())
        imported = {n.module for n in ast.walk(tree) if isinstance(n, ast.ImportFrom)}
        imported |= {a.name for n in ast.walk(tree) if isinstance(n, ast.Import) for a in n.names}
        assert other not in imported, f"{module} imports {other}"
