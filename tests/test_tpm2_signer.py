"""The Linux TPM signer against a real TPM simulator (swtpm, started here; CI requires it: `tpm2`).

What is shown: the key is made in the TPM with the attributes asked for; RS256/PS256 verify under
the certificate; a warm signature is exactly one TPM command on the wire; the key is loaded again
after the TPM drops it (another client flushed it, the TPM restarted); the key file is not a PEM and
another TPM cannot load it; transient TPM states are retried, lockout is not; the AK's TPM2_Certify
verifies and a tampered one does not; a kill while the key file is written loses nothing.
"""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from cryptography.hazmat.primitives import serialization

from entraclaw.attestation import TPMA_FIXED_PARENT, TPMA_FIXED_TPM, TPMA_SENSITIVE_DATA_ORIGIN, attestation_summary
from entraclaw.auth.signer import verify_signature
from entraclaw.errors import KeyNotFoundError, TpmLockedOutError, TransientSigningError
from entraclaw.platform.files import CRASH_ENV, WRITE_STEPS
from tpm2_helpers import TPM2_CC_LOAD, TPM2_CC_SIGN, CountingProxy, Swtpm, fault_tcti, require_tpm2

TPM_RC_RETRY = 0x922
TPM_RC_TESTING = 0x90A
TPM_RC_YIELDED = 0x908
TPM_RC_LOCKOUT = 0x921


@pytest.fixture(scope="module")
def swtpm(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Swtpm]:
    require_tpm2()
    with Swtpm(tmp_path_factory.mktemp("swtpm")) as tpm:
        yield tpm


@pytest.fixture(scope="module")
def key_path(swtpm: Swtpm, tmp_path_factory: pytest.TempPathFactory) -> Path:
    from entraclaw.tpm2 import create_key

    path = tmp_path_factory.mktemp("keys") / "k.tpm2"
    create_key(path, "entraclaw-blueprint-test", tcti=swtpm.tcti).close()
    return path


def _signer(path: Path, tcti: object) -> object:
    from entraclaw.tpm2 import Tpm2Signer

    return Tpm2Signer(path, tcti=tcti)  # type: ignore[arg-type]


def test_the_key_is_made_in_the_tpm_sign_only_and_non_exportable(key_path: Path, swtpm: Swtpm) -> None:
    from entraclaw.tpm2 import Tpm2Signer

    with Tpm2Signer(key_path, tcti=swtpm.tcti) as signer:
        assert isinstance(signer, Tpm2Signer)
        info = signer.info(attest=False)
    attrs = info.attributes
    assert attrs & TPMA_FIXED_TPM and attrs & TPMA_FIXED_PARENT and attrs & TPMA_SENSITIVE_DATA_ORIGIN
    assert info.sign_only is True and info.exportable is False and info.key_length == 2048
    assert (key_path.stat().st_mode & 0o777) == 0o600


def test_rs256_and_ps256_verify_under_the_certificate(key_path: Path, swtpm: Swtpm) -> None:
    from entraclaw.tpm2 import Tpm2Signer

    with Tpm2Signer(key_path, tcti=swtpm.tcti) as signer:
        key = signer.public_key()
        assert key is not None
        for algorithm in ("RS256", "PS256"):
            signature = signer.sign(b"header.claims", algorithm)  # type: ignore[arg-type]
            assert verify_signature(key, signature, b"header.claims", algorithm)
        # libtpms signs RSASSA-PSS with a hash-length salt: PS256 allowed.
        assert signer.pss_salt_size == "hash size"


def test_a_warm_signature_is_one_tpm_command(key_path: Path, swtpm: Swtpm) -> None:
    from entraclaw.tpm2 import Tpm2Signer

    with CountingProxy(swtpm.port) as proxy, Tpm2Signer(key_path, tcti=proxy.tcti) as signer:
        signer.sign(b"cold")
        cold = dict(proxy.codes)
        proxy.reset()
        for i in range(5):
            signer.sign(f"warm {i}".encode())
        assert dict(proxy.codes) == {TPM2_CC_SIGN: 5}, proxy.codes
    # cold: CreatePrimary (parent) + Load + FlushContext (parent) + Sign
    assert cold.get(TPM2_CC_LOAD) == 1 and cold.get(TPM2_CC_SIGN) == 1, cold
    assert sum(cold.values()) == 4, cold


def test_a_key_flushed_by_another_client_is_loaded_again(key_path: Path, swtpm: Swtpm) -> None:
    import tpm2_pytss as tss

    from entraclaw.tpm2 import Tpm2Signer

    with Tpm2Signer(key_path, tcti=swtpm.tcti) as signer:
        signer.sign(b"first")
        assert signer.loads == 1
        other = tss.ESAPI(swtpm.tcti)
        try:
            handles = other.get_capability(tss.TPM2_CAP.HANDLES, tss.TPM2_HT.TRANSIENT << 24, 16)[1]
            for raw in list(handles.data.handles):
                other.flush_context(other.tr_from_tpmpublic(raw))
        finally:
            other.close()
        signature = signer.sign(b"after eviction")
        assert signer.loads == 2
        key = signer.public_key()
        assert key is not None and verify_signature(key, signature, b"after eviction", "RS256")


def test_a_restarted_tpm_is_reconnected_and_the_key_loaded_again(tmp_path: Path) -> None:
    require_tpm2()
    from entraclaw.tpm2 import Tpm2Signer, create_key

    with Swtpm(tmp_path / "tpm") as tpm:
        with create_key(tmp_path / "k.tpm2", "entraclaw-blueprint-restart", tcti=tpm.tcti) as signer:
            signer.sign(b"before")
            tpm.restart()  # power cycle: same seeds, transient objects and the connection gone
            signature = signer.sign(b"after")
            assert signer.loads == 2
            key = signer.public_key()
            assert key is not None and verify_signature(key, signature, b"after", "RS256")
        assert isinstance(signer, Tpm2Signer)


def test_the_key_file_is_not_a_pem_and_another_tpm_cannot_use_it(key_path: Path, tmp_path: Path) -> None:
    from entraclaw.tpm2 import Tpm2Signer

    data = key_path.read_bytes()
    assert b"-----BEGIN" not in data and b"PRIVATE KEY" not in data
    with pytest.raises(ValueError):
        serialization.load_der_private_key(data, password=None)
    with (
        Swtpm(tmp_path / "other") as other,
        Tpm2Signer(key_path, tcti=other.tcti) as signer,
        pytest.raises(KeyNotFoundError) as caught,
    ):
        signer.sign(b"x")
    err = caught.value
    assert err.category == "wrong_tpm" and err.api == "TPM2_Load", err  # type: ignore[attr-defined]
    assert "TPM_RC_INTEGRITY" in err.message and str(key_path) in err.message
    assert "`entraclaw rotate --force`" in err.remedy


@pytest.mark.parametrize("rc", [TPM_RC_RETRY, TPM_RC_TESTING, TPM_RC_YIELDED])
def test_transient_tpm_states_are_retried(key_path: Path, swtpm: Swtpm, rc: int) -> None:
    # ESYS resubmits these itself up to 5 times; 6 in a row reach our policy, which retries again.
    tcti = fault_tcti(swtpm.tcti, {TPM2_CC_SIGN: [rc] * 6})
    signer = _signer(key_path, tcti)
    try:
        signature = signer.sign(b"busy")  # type: ignore[attr-defined]
        key = signer.public_key()  # type: ignore[attr-defined]
        assert verify_signature(key, signature, b"busy", "RS256")
        assert tcti.sent[TPM2_CC_SIGN] == 1  # type: ignore[attr-defined]
    finally:
        signer.close()  # type: ignore[attr-defined]


def test_a_tpm_busy_beyond_the_policy_is_a_typed_error_with_attempts(key_path: Path, swtpm: Swtpm) -> None:
    from entraclaw.auth.retry import TokenRetryPolicy
    from entraclaw.tpm2 import Tpm2Signer

    tcti = fault_tcti(swtpm.tcti, {TPM2_CC_SIGN: [TPM_RC_RETRY] * 100})
    policy = TokenRetryPolicy(max_attempts=2, base_delay=0.0, max_delay=0.0, jitter=0.0)
    with Tpm2Signer(key_path, tcti=tcti, retry_policy=policy) as signer, pytest.raises(TransientSigningError) as caught:
        signer.sign(b"busy")
    assert caught.value.attempts == 2 and "TPM_RC_RETRY" in caught.value.message  # type: ignore[attr-defined]


def test_lockout_is_never_retried(key_path: Path, swtpm: Swtpm) -> None:
    tcti = fault_tcti(swtpm.tcti, {TPM2_CC_SIGN: [TPM_RC_LOCKOUT] * 10})
    signer = _signer(key_path, tcti)
    try:
        with pytest.raises(TpmLockedOutError) as caught:
            signer.sign(b"x")  # type: ignore[attr-defined]
    finally:
        signer.close()  # type: ignore[attr-defined]
    # One Sign reached the fault layer, none was resent: 10 - 1 faults left.
    err = caught.value
    assert err.attempts == 1 and "tpm2_dictionarylockout" in err.remedy  # type: ignore[attr-defined]


def test_the_aks_certification_verifies_and_a_tampered_one_does_not(key_path: Path, swtpm: Swtpm) -> None:
    from entraclaw.attestation import parse_certify, verify_key_claim
    from entraclaw.errors import AttestationError
    from entraclaw.tpm2 import Tpm2Signer
    from entraclaw.tpm2.attest import ak_public_area

    with Tpm2Signer(key_path, tcti=swtpm.tcti) as signer:
        enrolled = ak_public_area(signer)
        info = signer.info(ak_public=enrolled)
        assert info.attestation.signature_verified, info.attestation.problems
        assert attestation_summary(info).startswith("TPM-backed, non-exportable, sign-only, attested")
        claim = info.attestation.parsed
        assert claim is not None and claim.public.attributes.non_exportable
        public = bytes(signer.public_area.marshal())
    attest = bytearray(claim.attest.raw)
    attest[-40] ^= 1  # one bit of the attested name
    signature = claim.signature_alg.to_bytes(2, "big") + (claim.signature_hash or 0).to_bytes(2, "big")
    signature += len(claim.signature).to_bytes(2, "big") + claim.signature
    tampered = parse_certify(bytes(attest), signature, public)
    with pytest.raises(AttestationError):
        verify_key_claim(tampered, public_key=signer.certificate.public_key(), aik_public=enrolled)


@pytest.mark.parametrize("step", WRITE_STEPS)
def test_a_kill_while_the_key_file_is_written_loses_nothing(key_path: Path, swtpm: Swtpm, tmp_path: Path,
                                                            step: str) -> None:
    import os

    target = tmp_path / "keys" / "k.tpm2"
    script = (
        "import sys; from pathlib import Path; from entraclaw.tpm2.keyfile import Tpm2KeyFile, write_key_file; "
        "write_key_file(Path(sys.argv[1]), Tpm2KeyFile.from_bytes(Path(sys.argv[2]).read_bytes(), 'source'))"
    )
    env = {**os.environ, CRASH_ENV: step}
    done = subprocess.run([sys.executable, "-c", script, str(target), str(key_path)], env=env, check=False)
    assert done.returncode in (-9, 86)
    # Either no key file or the whole one, never a torn one.
    assert not target.exists() or target.read_bytes() == key_path.read_bytes()
    env.pop(CRASH_ENV)
    subprocess.run([sys.executable, "-c", script, str(target), str(key_path)], env=env, check=True)
    signer = _signer(target, swtpm.tcti)
    try:
        assert signer.sign(b"converged")  # type: ignore[attr-defined]
    finally:
        signer.close()  # type: ignore[attr-defined]
    leftovers = [p.name for p in target.parent.iterdir() if p.name != target.name]
    assert leftovers == [], leftovers


def test_after_a_max_salt_signature_ps256_is_refused_before_the_tpm_is_asked(key_path: Path, swtpm: Swtpm) -> None:
    """libtpms makes hash-length salts, so the max-salt verdict is set by hand (the classifier itself is
    tested with software signatures in test_tpm2_errors.py); what is shown: no TPM command is sent."""
    from entraclaw.errors import PssSaltUnsupportedError

    tcti = fault_tcti(swtpm.tcti, {})
    signer = _signer(key_path, tcti)
    try:
        signer.sign(b"warm")  # type: ignore[attr-defined]
        before = tcti.sent[TPM2_CC_SIGN]  # type: ignore[attr-defined]
        signer._pss = "max"  # type: ignore[attr-defined]
        with pytest.raises(PssSaltUnsupportedError) as caught:
            signer.sign(b"x", "PS256")  # type: ignore[attr-defined]
        assert tcti.sent[TPM2_CC_SIGN] == before  # type: ignore[attr-defined]
        assert "refused before signing" in caught.value.message and "RS256" in caught.value.remedy
        assert signer.sign(b"rs256 still works")  # type: ignore[attr-defined]
    finally:
        signer.close()  # type: ignore[attr-defined]


def test_the_ek_certificate_of_a_manufactured_tpm_is_read(tmp_path: Path) -> None:
    """swtpm_setup plays manufacturer: an EK certificate from its local CA in NV index 0x01C00002."""
    import shutil

    from capabilities import require

    require_tpm2()
    require("tpm2", shutil.which("swtpm_setup") is not None, "swtpm_setup is missing (apt-get install swtpm-tools)")
    from entraclaw.tpm2 import create_key

    state = tmp_path / "tpm"
    state.mkdir()
    made = subprocess.run(
        ["swtpm_setup", "--tpm2", "--tpmstate", str(state), "--create-ek-cert", "--overwrite"],
        capture_output=True, text=True, timeout=120, check=False,
    )
    assert made.returncode == 0, made.stdout + made.stderr
    with Swtpm(state) as tpm, create_key(tmp_path / "k.tpm2", "entraclaw-blueprint-ek", tcti=tpm.tcti) as signer:
        attestation = signer.info().attestation
    assert attestation.signature_verified
    assert attestation.ek_certificate is not None, attestation.problems
    assert not any("EK certificate" in p and "no EK" in p for p in attestation.problems)
