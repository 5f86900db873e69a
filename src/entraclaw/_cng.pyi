"""Type stub for the compiled CNG core (native/python/cng_module.cpp). Use entraclaw.cng instead."""

from typing import Final, TypedDict

backend: Final[str]  # "cng" on Windows, "standin" in the Linux test build
PADDING_PKCS1: Final[int]
PADDING_PSS: Final[int]

class CngStatusError(RuntimeError):
    """args = (hresult: int (unsigned), api: str, attempts: int, reacquires: int[, orphan hresult, orphan api])."""

class KeyClosedError(RuntimeError): ...

class CertificateDict(TypedDict):
    der: bytes
    not_before: int
    not_after: int
    subject: str

class ListedCertificateDict(CertificateDict):
    has_key_link: bool
    provider: str
    container: str

class KeyPropertiesDict(TypedDict):
    provider: str
    container: str
    key_length: int
    impl_type: int
    hardware: bool
    export_policy: int
    exportable: bool
    pss_salt_size: int
    key_usage: int | None  # NCRYPT_KEY_USAGE_PROPERTY; None when the provider does not report it

class AttestationDict(TypedDict):
    hardware: bool
    platform_type: str | None
    platform_status: tuple[int, str]
    ek_certificate: bytes | None
    ek_status: tuple[int, str]
    claim: bytes | None
    claim_status: tuple[int, str]

class DeleteOutcomeDict(TypedDict):
    key_deleted: bool
    capi_provider: str
    key_shared_with: bytes | None

class ProvisionedDict(TypedDict):
    der: bytes
    provider: str
    hardware: bool
    tpm_hresult: int
    tpm_api: str
    tpm_attempts: int
    usage_hresult: int
    usage_api: str

class OwnerOnlyDict(TypedDict):
    sid: str
    owner_set: bool
    owner_hresult: int
    owner_api: str

class DaclDict(TypedDict):
    owner: str
    control: int
    dacl_present: bool
    protected: bool
    aces: list[tuple[str, int, int, int]]  # (sid, mask, ace type, ace flags)

class KeyAccessDict(DaclDict):
    names: list[str]  # "DOMAIN\\name" per ACE, "" where the SID does not map

class AccountDict(TypedDict):
    sid: str
    name: str
    domain: str
    kind: str  # "user", "LocalSystem", "LocalService", "NetworkService"
    lookup_hresult: int
    lookup_api: str

class CertKey:
    def __init__(
        self,
        thumbprint: str,
        location: str = "CurrentUser",
        attempts: int = 2,
        initial_delay_ms: float = 100.0,
        multiplier: float = 2.0,
        max_delay_ms: float = 2000.0,
    ) -> None: ...
    def sign_digest(self, digest: bytes, padding: int) -> bytes: ...
    def set_retry_policy(
        self, attempts: int, initial_delay_ms: float, multiplier: float, max_delay_ms: float
    ) -> None: ...
    def properties(self) -> KeyPropertiesDict: ...
    def certificate(self) -> CertificateDict: ...
    def attestation(self, aik: str = "", nonce: bytes = b"") -> AttestationDict: ...
    def read_access(self) -> KeyAccessDict: ...
    def restrict_access(self, account: str) -> AccountDict: ...
    @property
    def hardware(self) -> bool: ...
    @property
    def pss_salt_size(self) -> int: ...
    def close(self) -> None: ...
    @property
    def closed(self) -> bool: ...
    @property
    def location(self) -> str: ...

def status_table() -> list[tuple[str, int, str, str]]: ...
def system_message(code: int) -> str | None: ...
def provision_certificate(
    common_name: str,
    container: str,
    provider: str,
    key_bits: int,
    not_before: int,
    not_after: int,
    attempts: int = 2,
    initial_delay_ms: float = 100.0,
    multiplier: float = 2.0,
    max_delay_ms: float = 2000.0,
    location: str = "CurrentUser",
) -> ProvisionedDict: ...
def list_certificates(prefix: str, location: str = "CurrentUser") -> list[ListedCertificateDict]: ...
def delete_certificate(
    thumbprint: str, location: str = "CurrentUser", delete_key: bool = True
) -> DeleteOutcomeDict: ...
def protect(data: bytes, entropy: bytes = b"", description: str = "") -> bytes: ...
def unprotect(blob: bytes, entropy: bytes = b"") -> bytes: ...
def set_owner_only_dacl(path: str, directory: bool = False) -> OwnerOnlyDict: ...
def read_dacl(path: str) -> DaclDict: ...
def current_account() -> AccountDict: ...
def lookup_account(name: str) -> AccountDict: ...
class AccountDaclsDict(AccountDict):
    failed: tuple[int, int, str] | None  # (entry index, hresult, api) of the first failure

def set_account_only_dacls(account: str, entries: list[tuple[str, bool]]) -> AccountDaclsDict: ...
