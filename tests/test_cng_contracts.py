"""Issue 14: documented Win32 contracts, through entraclaw.cng against the stand-in that models them.

C++ twins of these run under ASan/UBSan in native/tests/contract_test.cpp (scripts/native_sanitize.sh).
"""

from __future__ import annotations

import pytest
from cryptography.hazmat.primitives.serialization import Encoding

from cng_helpers import HR, PLATFORM, SOFTWARE, Standin, standin_fixture  # noqa: F401  (fixture)
from entraclaw import cng, errors


def test_provisioning_creates_a_missing_my_store(standin: Standin) -> None:
    # CertOpenStore: CERT_STORE_OPEN_EXISTING_FLAG "only open an existing store" -- a fresh service or
    # virtual account has no My store, and provisioning used to fail after the key was made.
    standin.set_store_missing("CurrentUser")
    assert cng.list_certificates("entraclaw-") == []  # listing a missing store is an empty list
    assert not standin.store_exists("CurrentUser")
    made = cng.create_certificate("entraclaw-contract-store")
    assert standin.store_exists("CurrentUser")
    assert [c.thumbprint for c in cng.list_certificates("entraclaw-contract-")] == [made.thumbprint]
    assert standin.open_handles() == 0


def test_pcp_refusing_flags_keeps_the_key_in_the_tpm(standin: Standin) -> None:
    # PCPTool passes 0 to NCryptSetProperty; dotnet/runtime#71310: PCP answers NTE_BAD_FLAGS to a flag it does not
    # support. The call is repeated with 0, and the key stays in the TPM.
    standin.set_pcp_setproperty_flags(False)
    made = cng.create_certificate("entraclaw-contract-flags")
    assert made.hardware and made.provider == PLATFORM
    assert made.tpm_fallback_reason is None and made.sign_only


def test_persistent_bad_flags_is_an_error_not_a_software_key(standin: Standin) -> None:
    standin.fail("NCryptSetProperty", HR["NTE_BAD_FLAGS"], -1)
    with pytest.raises(errors.SigningError, match="NCryptSetProperty failed with 0x80090009") as info:
        cng.create_certificate("entraclaw-contract-flags2")
    assert info.value.hresult == HR["NTE_BAD_FLAGS"]
    assert cng.list_certificates("entraclaw-contract-") == []
    assert standin.open_handles() == 0


def test_a_failed_key_delete_is_surfaced_and_its_handle_freed(standin: Standin) -> None:
    # NCryptDeleteKey frees the handle on success only; the caller frees it after a failure.
    made = cng.create_certificate("entraclaw-contract-del", provider="software")
    standin.fail("NCryptDeleteKey", HR["NTE_PERM"], 1)
    with pytest.raises(errors.AccessDeniedError, match="NCryptDeleteKey") as info:
        cng.delete_certificate(made.thumbprint)
    assert info.value.thumbprint == made.thumbprint
    assert standin.key_exists(SOFTWARE, made.container)
    assert standin.open_handles() == 0 and standin.invalid_frees() == 0
    assert cng.delete_certificate(made.thumbprint) is True
    assert not standin.key_exists(SOFTWARE, made.container)


def test_a_rollback_that_cannot_delete_the_key_names_the_orphan(standin: Standin) -> None:
    standin.fail("CertAddCertificateContextToStore", HR["E_ACCESSDENIED"], 1)
    standin.fail("NCryptDeleteKey", HR["NTE_PERM"], 1)
    with pytest.raises(errors.AccessDeniedError) as info:
        cng.create_certificate("entraclaw-contract-orphan", provider="software")
    text = str(info.value)
    assert "CertAddCertificateContextToStore" in text
    assert "left behind" in text and "NCryptDeleteKey" in text and "entraclaw-" in text
    assert standin.open_handles() == 0 and standin.invalid_frees() == 0


def test_deleting_one_certificate_keeps_a_key_another_certificate_links(standin: Standin) -> None:
    # A renewal on the same key (certreq -renew) links a second certificate to the same container.
    made = cng.create_certificate("entraclaw-contract-shared", provider="software")
    standin.add_linked_certificate("CurrentUser", made.certificate.public_bytes(Encoding.DER), "renewed")
    assert cng.delete_certificate(made.thumbprint) is False  # certificate gone, key kept
    assert standin.key_exists(SOFTWARE, made.container)
    (renewed,) = cng.list_certificates("renewed")
    assert cng.delete_certificate(renewed.thumbprint) is True  # the last link takes the key
    assert not standin.key_exists(SOFTWARE, made.container)


def test_the_exception_translator_is_module_local(standin: Standin) -> None:
    # A global translator (py::register_exception_translator) is consulted for every pybind11 module of this ABI in
    # the process; _cng registers a module-local one. pybind11 itself registers one global translator.
    from entraclaw import _cng  # noqa: F401  (imported: its init has run)

    assert standin.global_exception_translators() == 1
