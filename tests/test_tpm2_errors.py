"""TPM response codes -> typed errors (no TPM needed); the TCTI rule; device access naming the `tss` group."""

from __future__ import annotations

from pathlib import Path

import pytest

from entraclaw.errors import (
    AccessDeniedError,
    KeyNotFoundError,
    KeySlotsExhaustedError,
    SigningError,
    TpmLockedOutError,
    TpmUnavailableError,
    TransientSigningError,
)
from entraclaw.tpm2.rc import decode, error_for_rc, format_rc


@pytest.mark.parametrize(
    ("rc", "name", "category", "cls"),
    [
        (0x922, "TPM_RC_RETRY", "transient", TransientSigningError),
        (0x908, "TPM_RC_YIELDED", "transient", TransientSigningError),
        (0x90A, "TPM_RC_TESTING", "transient", TransientSigningError),
        (0x921, "TPM_RC_LOCKOUT", "locked_out", TpmLockedOutError),
        (0x98E, "TPM_RC_AUTH_FAIL", "auth_failed", AccessDeniedError),  # session 1
        (0x18B, "TPM_RC_HANDLE", "stale_handle", KeyNotFoundError),  # handle 1
        (0x910, "TPM_RC_REFERENCE_H0", "stale_handle", KeyNotFoundError),
        (0x1DF, "TPM_RC_INTEGRITY", "wrong_tpm", KeyNotFoundError),  # parameter 1
        (0x902, "TPM_RC_OBJECT_MEMORY", "slots_exhausted", KeySlotsExhaustedError),
        (0x101, "TPM_RC_FAILURE", "tpm_unavailable", TpmUnavailableError),
        (0xA000A, "TSS2_TCTI_RC_IO_ERROR", "tpm_unavailable", TpmUnavailableError),
        (0x70018, "TSS2_ESAPI_RC_BAD_TR", "stale_handle", KeyNotFoundError),
        (0x0C0922, "TPM_RC_RETRY", "transient", TransientSigningError),  # through a resource manager
        (0x12345, "0x2345", "other", SigningError),
    ],
)
def test_codes_map_to_names_categories_and_classes(rc: int, name: str, category: str, cls: type) -> None:
    code = decode(rc)
    assert name in code.name and code.category == category
    err = error_for_rc(rc, "TPM2_Sign", subject="TPM key file /k.tpm2")
    assert type(err) is cls
    assert "TPM2_Sign" in err.message and "/k.tpm2" in err.message and f"0x{rc:08X}" in err.message
    assert err.remedy and err.tpm_rc == rc  # type: ignore[attr-defined]


def test_format_one_codes_name_the_handle_parameter_or_session() -> None:
    assert format_rc(0x18B) == "0x0000018B (TPM_RC_HANDLE, handle 1)"
    assert format_rc(0x1DF) == "0x000001DF (TPM_RC_INTEGRITY, parameter 1)"
    assert format_rc(0x98E) == "0x0000098E (TPM_RC_AUTH_FAIL, session 1)"


def test_linux_remedies_never_send_users_to_windows_tools() -> None:
    for rc in (0x921, 0x98E, 0x101, 0x902, 0x922, 0x1DF):
        remedy = error_for_rc(rc, "TPM2_Sign", subject="k").remedy
        for windows_only in ("Get-Tpm", "tpm.msc", "certlm", "TBS", "deploy-windows"):
            assert windows_only not in remedy, (hex(rc), remedy)


def test_the_tcti_comes_from_the_argument_then_the_environment_then_the_kernel_device() -> None:
    from entraclaw.tpm2.device import tcti_config

    assert tcti_config(environ={}) == "device:/dev/tpmrm0"
    assert tcti_config(environ={"ENTRACLAW_TPM2_TCTI": "swtpm:port=1"}) == "swtpm:port=1"
    assert tcti_config("mssim:port=2", environ={"ENTRACLAW_TPM2_TCTI": "swtpm:port=1"}) == "mssim:port=2"


def test_a_missing_tpm_device_is_tpm_unavailable(tmp_path: Path) -> None:
    pytest.importorskip("tpm2_pytss")
    from entraclaw.tpm2.device import connect

    with pytest.raises(TpmUnavailableError) as caught:
        connect(f"device:{tmp_path / 'tpmrm0'}")
    assert str(tmp_path / "tpmrm0") in caught.value.message
    assert "`entraclaw setup --key-storage file`" in caught.value.remedy


def test_a_device_this_user_may_not_open_names_the_tss_group(tmp_path: Path) -> None:
    """A real permission check: as root (CI), the probe runs as `nobody` through setpriv, since file
    modes do not stop root; otherwise as this user against a node it may not open."""
    pytest.importorskip("tpm2_pytss")
    import os
    import shutil
    import subprocess
    import sys
    import tempfile

    folder = Path(tempfile.mkdtemp(prefix="entraclaw-tpm-node-"))
    try:
        folder.chmod(0o755)  # reachable by anyone, like /dev
        node = folder / "tpmrm0"
        node.write_bytes(b"")
        probe = (
            "import sys; from entraclaw.tpm2.device import connect\n"
            "try:\n    connect(sys.argv[1])\nexcept Exception as e:\n"
            "    print(type(e).__name__); print(e.message); print(e.remedy)"
        )
        if os.geteuid() == 0:
            if shutil.which("setpriv") is None:
                pytest.skip("running as root without setpriv: cannot open the node as an unprivileged user")
            node.chmod(0o600)
            argv = ["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups", sys.executable]
        else:
            node.chmod(0o000)
            argv = [sys.executable]
        done = subprocess.run([*argv, "-c", probe, f"device:{node}"], capture_output=True, text=True, check=False)
        name, message, remedy = [*done.stdout.splitlines(), "", "", ""][:3]
        assert name == "AccessDeniedError", done.stdout + done.stderr
        assert str(node) in message
        assert "`tss` group" in remedy and "usermod -aG tss" in remedy
        assert "`entraclaw setup --key-storage file`" in remedy
    finally:
        shutil.rmtree(folder, ignore_errors=True)


def test_an_unreachable_simulator_is_tpm_unavailable_naming_the_tcti() -> None:
    pytest.importorskip("tpm2_pytss")
    from entraclaw.tpm2 import probe

    why = probe("swtpm:host=127.0.0.1,port=1")
    assert why is not None and "swtpm:host=127.0.0.1,port=1" in why


def test_pss_signatures_are_classified_by_their_salt() -> None:
    from cryptography.hazmat.primitives import hashes
    from cryptography.hazmat.primitives.asymmetric import padding

    from entraclaw.auth.certgen import generate_rsa_key
    from entraclaw.tpm2.signer import classify_pss

    key = generate_rsa_key()
    data = b"header.claims"

    def pss(salt: int) -> bytes:
        return key.sign(data, padding.PSS(padding.MGF1(hashes.SHA256()), salt), hashes.SHA256())

    assert classify_pss(key.public_key(), pss(32), data) == "hash"
    assert classify_pss(key.public_key(), pss(256 - 32 - 2), data) == "max"  # what pre-1.16 TPMs make
    assert classify_pss(key.public_key(), pss(20), data) == "bad"
    assert classify_pss(key.public_key(), b"\0" * 256, data) == "bad"


def test_tpm2_key_references_parse_and_fit_the_tpm_provider(tmp_path: Path) -> None:
    from entraclaw.config import KeyReference, load_config
    from entraclaw.errors import ConfigurationError

    key = tmp_path / "keys" / "k.tpm2"
    key.parent.mkdir()
    key.write_text("{}")
    ref = KeyReference.parse("tpm2:keys/k.tpm2", base_dir=tmp_path)
    assert ref.kind == "tpm2" and ref.path == key and str(ref) == f"tpm2:{key}"
    with pytest.raises(ConfigurationError) as caught:
        KeyReference.parse(f"tpm2:{tmp_path / 'gone.tpm2'}")
    assert "`entraclaw setup --key-storage tpm`" in caught.value.remedy
    base = {"ENTRACLAW_TENANT_ID": "11111111-2222-3333-4444-555555555555", "ENTRACLAW_KEY_REF": f"tpm2:{key}"}
    assert load_config(environ={**base, "ENTRACLAW_KEY_PROVIDER": "tpm"}, env_file=False).key_ref == ref
    with pytest.raises(ConfigurationError) as mismatch:
        load_config(environ={**base, "ENTRACLAW_KEY_PROVIDER": "software_ksp"}, env_file=False)
    assert "tpm2:" in str(mismatch.value)
