"""CNG signer against the stand-in: real RSA signatures, verified with cryptography."""

from __future__ import annotations

import threading

import jwt
import pytest
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes

from cng_helpers import FAST, PLATFORM, SOFTWARE, Standin, standin_fixture, verify  # noqa: F401  (fixture)
from entraclaw import cng, errors
from entraclaw.auth import build_client_assertion
from entraclaw.auth.signer import Signer

pytestmark = [pytest.mark.standin, pytest.mark.native]

DATA = b"eyJhbGciOiJSUzI1NiJ9.eyJzdWIiOiJ0ZXN0In0"


@pytest.mark.parametrize("algorithm", ["RS256", "PS256"])
def test_signature_verifies_against_certificate(standin: Standin, keypair, algorithm: str) -> None:
    installed = standin.add(keypair)
    signer = cng.CngSigner(installed.thumbprint)
    signature = signer.sign(DATA, algorithm)  # type: ignore[arg-type]
    assert len(signature) == 256
    verify(keypair, signature, DATA, algorithm)
    # A signature over different data must not verify: the check above is real.
    with pytest.raises(InvalidSignature):
        verify(keypair, signature, DATA + b"x", algorithm)
    signer.close()


def test_pss_signatures_are_randomised_pkcs1_deterministic(standin: Standin, keypair) -> None:
    signer = cng.CngSigner(standin.add(keypair).thumbprint)
    assert signer.sign(DATA, "RS256") == signer.sign(DATA, "RS256")
    assert signer.sign(DATA, "PS256") != signer.sign(DATA, "PS256")
    signer.close()


def test_signer_reports_certificate_and_thumbprints(standin: Standin, keypair) -> None:
    signer = cng.CngSigner(standin.add(keypair).thumbprint.lower())
    assert isinstance(signer, Signer)
    assert signer.certificate == keypair.cert
    assert signer.sha1_thumbprint == keypair.sha1
    assert signer.x5t_s256 == keypair.x5t_s256
    assert signer.thumbprint == keypair.sha1
    signer.close()


def test_warm_signature_is_one_win32_call(standin: Standin, keypair) -> None:
    signer = cng.CngSigner(standin.add(keypair).thumbprint)
    standin.reset_counters()
    signer.sign(DATA)  # cold: size query + sign
    assert standin.calls("NCryptSignHash") == 2
    standin.reset_counters()
    for _ in range(10):
        signer.sign(DATA)
        signer.sign(DATA, "PS256")
    assert standin.calls("NCryptSignHash") == 20
    assert standin.total_calls() == 20  # nothing else: no store/cert/key churn per signature
    signer.close()


def test_local_machine_store(standin: Standin, keypair) -> None:
    installed = standin.add(keypair, location="LocalMachine")
    signer = cng.CngSigner(installed.thumbprint, "LocalMachine")
    verify(keypair, signer.sign(DATA), DATA)
    assert signer.store_location == "LocalMachine"
    signer.close()
    with pytest.raises(errors.CertificateNotFoundError):
        cng.CngSigner(installed.thumbprint, "CurrentUser")


def test_properties_software_key(standin: Standin, keypair) -> None:
    signer = cng.CngSigner(standin.add(keypair).thumbprint)
    info = signer.info()
    assert info.provider == SOFTWARE
    assert info.key_length == 2048
    assert info.hardware is False
    assert info.exportable is False
    assert info.not_before == keypair.cert.not_valid_before_utc
    assert info.not_after == keypair.cert.not_valid_after_utc
    assert info.subject == "entraclaw-test-a"
    assert info.container.startswith("test-")
    assert "software RSA-2048" in signer.key_description
    signer.close()
    # NCryptGetProperty handed out a provider handle; it was freed.
    assert standin.open_handles() == 0


def test_properties_tpm_and_exportable_flags(standin: Standin, keypair, other_keypair) -> None:
    tpm = cng.CngSigner(standin.add(keypair, provider=PLATFORM).thumbprint)
    assert tpm.info().hardware is True
    assert tpm.info().provider == PLATFORM
    assert "TPM RSA-2048" in tpm.key_description
    exportable = cng.CngSigner(standin.add(other_keypair, exportable=True).thumbprint)
    assert exportable.info().exportable is True
    tpm.close()
    exportable.close()


def test_many_threads_sign_concurrently(standin: Standin, keypair) -> None:
    signer = cng.CngSigner(standin.add(keypair).thumbprint)
    results: list[tuple[bytes, str, bytes]] = []
    errors: list[BaseException] = []
    lock = threading.Lock()

    def work(n: int) -> None:
        try:
            for i in range(15):
                data = f"{n}-{i}".encode() + DATA
                alg = "RS256" if (n + i) % 2 else "PS256"
                sig = signer.sign(data, alg)  # type: ignore[arg-type]
                with lock:
                    results.append((data, alg, sig))
        except BaseException as exc:  # pragma: no cover - reported below
            errors.append(exc)

    threads = [threading.Thread(target=work, args=(n,)) for n in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors
    assert len(results) == 120
    for data, alg, sig in results:
        verify(keypair, sig, data, alg)
    signer.close()
    assert standin.open_handles() == 0


@pytest.mark.parametrize("algorithm", ["RS256", "PS256"])
def test_build_client_assertion_with_cng_key_handle(standin: Standin, keypair, algorithm: str) -> None:
    handle = cng.CngKeyHandle(standin.add(keypair).thumbprint, retry_policy=FAST)
    endpoint = "https://login.microsoftonline.com/tenant/oauth2/v2.0/token"
    token = build_client_assertion(
        private_key_pem=handle,
        cert_thumbprint=keypair.x5t_s256,
        client_id="11111111-2222-3333-4444-555555555555",
        token_endpoint=endpoint,
        algorithm=algorithm,  # type: ignore[arg-type]
    )
    claims = jwt.decode(token, key=keypair.cert.public_key(), algorithms=[algorithm], audience=endpoint)
    assert claims["iss"] == claims["sub"] == "11111111-2222-3333-4444-555555555555"
    header = jwt.get_unverified_header(token)
    assert header["x5t#S256"] == keypair.x5t_s256
    assert header["alg"] == algorithm
    # The handle keeps one warm signer across assertions.
    assert handle.as_signer() is handle.as_signer()
    standin.reset_counters()
    build_client_assertion(
        private_key_pem=handle, cert_thumbprint=keypair.x5t_s256, client_id="c", token_endpoint=endpoint
    )
    assert standin.calls("CertOpenStore") == 0
    assert standin.calls("CryptAcquireCertificatePrivateKey") == 0
    assert standin.calls("NCryptSignHash") == 1
    handle.close()
    assert standin.open_handles() == 0


def test_key_handle_makes_new_signer_after_close(standin: Standin, keypair) -> None:
    handle = cng.CngKeyHandle(standin.add(keypair).thumbprint)
    first = handle.as_signer()
    first.close()
    second = handle.as_signer()
    assert second is not first
    verify(keypair, second.sign(DATA), DATA)
    assert "CngKeyHandle(thumbprint=" in repr(handle)
    handle.close()
    assert standin.open_handles() == 0


def test_unsupported_algorithm(standin: Standin, keypair) -> None:
    signer = cng.CngSigner(standin.add(keypair).thumbprint)
    with pytest.raises(errors.UnsupportedKeyError, match=keypair.sha1):
        signer.sign(DATA, "ES256")  # type: ignore[arg-type]
    signer.close()


def test_hash_is_sha256_of_signing_input(standin: Standin, keypair) -> None:
    # Verifying with Prehashed proves the module signs SHA-256(data), not data.
    from cryptography.hazmat.primitives.asymmetric import padding, utils

    signer = cng.CngSigner(standin.add(keypair).thumbprint)
    digest = hashes.Hash(hashes.SHA256())
    digest.update(DATA)
    keypair.cert.public_key().verify(
        signer.sign(DATA), digest.finalize(), padding.PKCS1v15(), utils.Prehashed(hashes.SHA256())
    )
    signer.close()
