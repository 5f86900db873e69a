"""One configuration for an agent: what it is (tenant, Blueprint, Agent Identity, Agent User),
which key it signs with, and whom it trusts for TLS.

Precedence, the same for every field and implemented only in :func:`load_config`:

====  ========================================  ==========================================
rank  source                                    how it is named in errors
====  ========================================  ==========================================
1     explicit arguments (``overrides``)        ``argument <field>``
2     an ``AgentConfig`` passed as ``base``     ``the AgentConfig passed in``
3     the process environment                   ``process environment``
4     ``.env`` in the state directory           ``<path> line <n>``
5     derived (key reference from thumbprint)   ``derived from <KEY>``
6     built-in default                          ``default``
====  ========================================  ==========================================

An empty value counts as unset at every rank. Every field is validated wherever it
came from, and every missing or invalid field is reported in one
:class:`~entraclaw.errors.ConfigurationError` whose ``problems`` lists them all,
each naming the key, where it came from (file and line) and the fix.

TLS trust has one rule too (:func:`requests_verify`): ``ENTRACLAW_CA_BUNDLE`` if set,
else the ``certifi`` bundle. ``REQUESTS_CA_BUNDLE`` / ``CURL_CA_BUNDLE`` are ignored by
design (sessions use ``trust_env=False``): they are set machine-wide for other
programs and would silently replace the trust anchors of the token endpoint.
"""

from __future__ import annotations

import logging
import os
import re
import sys
from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from types import MappingProxyType
from typing import TYPE_CHECKING, Any, Literal
from urllib.parse import urlsplit

from entraclaw.auth.thumbprint import validate_sha1_thumbprint, validate_x5t_s256
from entraclaw.errors import ConfigurationError, EntraclawError, InvalidThumbprintError
from entraclaw.platform import paths

if TYPE_CHECKING:
    import requests

    from entraclaw.auth.signer import Signer
    from entraclaw.keystore import KeyStore

__all__ = [
    "DEFAULT_AUTHORITY_HOST",
    "DEFAULT_GRAPH_URL",
    "ENV_AGENT_IDENTITY_ID",
    "ENV_AGENT_USER_ID",
    "ENV_AGENT_USER_UPN",
    "ENV_AUTHORITY_HOST",
    "ENV_BLUEPRINT_APP_ID",
    "ENV_BLUEPRINT_CERT_SHA1",
    "ENV_BLUEPRINT_CERT_THUMBPRINT",
    "ENV_BLUEPRINT_CERT_X5T_S256",
    "ENV_BLUEPRINT_OBJECT_ID",
    "ENV_CA_BUNDLE",
    "ENV_GRAPH_URL",
    "ENV_HOME",
    "ENV_KEY_PASSWORD",
    "ENV_KEY_PROVIDER",
    "ENV_KEY_REF",
    "ENV_PROXY",
    "ENV_SCOPES",
    "ENV_TENANT_ID",
    "FIELD_ENV",
    "TOKEN_REQUIRED",
    "USER_TOKEN_REQUIRED",
    "AgentConfig",
    "ConfigProblem",
    "KeyReference",
    "Origin",
    "config_to_env",
    "load_config",
    "make_session",
    "open_signer",
    "requests_verify",
    "save_config",
]

logger = logging.getLogger(__name__)

# --- the one table of names ------------------------------------------------------------

ENV_TENANT_ID = "ENTRACLAW_TENANT_ID"
ENV_AUTHORITY_HOST = "ENTRACLAW_AUTHORITY_HOST"
ENV_GRAPH_URL = "ENTRACLAW_GRAPH_URL"
ENV_BLUEPRINT_APP_ID = "ENTRACLAW_BLUEPRINT_APP_ID"
ENV_BLUEPRINT_OBJECT_ID = "ENTRACLAW_BLUEPRINT_OBJECT_ID"
ENV_AGENT_IDENTITY_ID = "ENTRACLAW_AGENT_IDENTITY_ID"
ENV_AGENT_USER_ID = "ENTRACLAW_AGENT_USER_ID"
ENV_AGENT_USER_UPN = "ENTRACLAW_AGENT_USER_UPN"
ENV_BLUEPRINT_CERT_X5T_S256 = "ENTRACLAW_BLUEPRINT_CERT_X5T_S256"
ENV_BLUEPRINT_CERT_SHA1 = "ENTRACLAW_BLUEPRINT_CERT_SHA1"
ENV_KEY_REF = "ENTRACLAW_KEY_REF"
ENV_KEY_PROVIDER = "ENTRACLAW_KEY_PROVIDER"
ENV_SCOPES = "ENTRACLAW_SCOPES"
ENV_CA_BUNDLE = "ENTRACLAW_CA_BUNDLE"
#: A proxy URL or ``direct``; the one proxy rule is entraclaw.platform.proxy.
ENV_PROXY = "ENTRACLAW_PROXY"
#: Read on input only: x5t#S256 or SHA-1, told apart by shape. Writes use the two keys above.
ENV_BLUEPRINT_CERT_THUMBPRINT = "ENTRACLAW_BLUEPRINT_CERT_THUMBPRINT"
#: Password of an encrypted PEM key: a secret, so read from the process environment only, never from .env.
ENV_KEY_PASSWORD = "ENTRACLAW_KEY_PASSWORD"  # noqa: S105 - the variable's name, not a password
ENV_HOME = paths.ENV_HOME

DEFAULT_AUTHORITY_HOST = "https://login.microsoftonline.com"
DEFAULT_GRAPH_URL = "https://graph.microsoft.com/v1.0"

#: AgentConfig field -> environment / .env name, in the order ``save_config`` writes them.
FIELD_ENV: Mapping[str, str] = MappingProxyType(
    {
        "tenant_id": ENV_TENANT_ID,
        "authority_host": ENV_AUTHORITY_HOST,
        "graph_url": ENV_GRAPH_URL,
        "blueprint_app_id": ENV_BLUEPRINT_APP_ID,
        "blueprint_object_id": ENV_BLUEPRINT_OBJECT_ID,
        "agent_identity_app_id": ENV_AGENT_IDENTITY_ID,
        "agent_user_id": ENV_AGENT_USER_ID,
        "agent_user_upn": ENV_AGENT_USER_UPN,
        "cert_x5t_s256": ENV_BLUEPRINT_CERT_X5T_S256,
        "cert_sha1": ENV_BLUEPRINT_CERT_SHA1,
        "key_ref": ENV_KEY_REF,
        "key_provider": ENV_KEY_PROVIDER,
        "scopes": ENV_SCOPES,
        "ca_bundle": ENV_CA_BUNDLE,
        "proxy": ENV_PROXY,
    }
)
_ENV_FIELD = {env: name for name, env in FIELD_ENV.items()}

#: What a token needs. ``a|b`` means one of the two.
TOKEN_REQUIRED: tuple[str, ...] = ("tenant_id", "blueprint_app_id", "agent_identity_app_id", "key_ref")
USER_TOKEN_REQUIRED: tuple[str, ...] = (*TOKEN_REQUIRED, "agent_user_id|agent_user_upn")

KeyProvider = Literal["tpm", "software_ksp", "pem"]
_KEY_PROVIDERS: tuple[str, ...] = ("tpm", "software_ksp", "pem")
_CNG_LOCATIONS = {"currentuser": "CurrentUser", "localmachine": "LocalMachine"}
_GUID = re.compile(r"[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}")
_UPN = re.compile(r"[^@\s]+@[A-Za-z0-9](?:[A-Za-z0-9-]*[A-Za-z0-9])?(?:\.[A-Za-z0-9](?:[A-Za-z0-9-]*[A-Za-z0-9])?)+")
_ENTRY = re.compile(r"[A-Za-z0-9][A-Za-z0-9._@-]{0,199}")

# --- where a value came from -----------------------------------------------------------

OriginKind = Literal["argument", "config", "environment", "file", "derived", "default"]


@dataclass(frozen=True)
class Origin:
    """Where a configuration value came from; ``str()`` is how errors name it."""

    kind: OriginKind
    key: str = ""
    path: str | None = None
    line: int | None = None

    def __str__(self) -> str:
        if self.kind == "argument":
            return f"argument {self.key}"
        if self.kind == "config":
            return "the AgentConfig passed in"
        if self.kind == "environment":
            return "process environment"
        if self.kind == "file":
            return f"{self.path} line {self.line}"
        if self.kind == "derived":
            return f"derived from {self.key}"
        return "default"

    @property
    def rank(self) -> int:
        return ("argument", "config", "environment", "file", "derived", "default").index(self.kind)


@dataclass(frozen=True)
class ConfigProblem:
    """One missing or invalid setting: the key, where its value came from, what is wrong, the fix."""

    key: str
    origin: str
    problem: str
    fix: str

    def __str__(self) -> str:
        return f"{self.key} ({self.origin}): {self.problem} Fix: {self.fix}"


class _Invalid(Exception):
    def __init__(self, problem: str, fix: str) -> None:
        super().__init__(problem)
        self.problem = problem
        self.fix = fix


# --- the key reference -----------------------------------------------------------------


@dataclass(frozen=True)
class KeyReference:
    """Where the Blueprint's private key is: a CNG certificate, a keystore entry or a PEM file.

    ``str()`` is the ``ENTRACLAW_KEY_REF`` form: ``cng:CurrentUser/<SHA1>``,
    ``cng:LocalMachine/<SHA1>``, ``keystore:<entry>``, ``file:<path>`` or
    ``tpm2:<path>`` (a Linux TPM key file: wrapped blobs, see :mod:`entraclaw.tpm2`).
    """

    kind: Literal["cng", "keystore", "file", "tpm2"]
    location: str | None = None
    sha1: str | None = None
    entry: str | None = None
    path: Path | None = None

    def __str__(self) -> str:
        if self.kind == "cng":
            return f"cng:{self.location}/{self.sha1}"
        if self.kind == "keystore":
            return f"keystore:{self.entry}"
        return f"{self.kind}:{self.path}"

    @classmethod
    def cng(cls, sha1: str, location: str = "CurrentUser") -> KeyReference:
        return cls.parse(f"cng:{location}/{sha1}")

    @classmethod
    def keystore(cls, entry: str) -> KeyReference:
        return cls.parse(f"keystore:{entry}")

    @classmethod
    def file(cls, path: str | os.PathLike[str]) -> KeyReference:
        return cls.parse(f"file:{os.fspath(path)}")

    @classmethod
    def parse(cls, text: str, *, base_dir: Path | None = None) -> KeyReference:
        """Parse the ``ENTRACLAW_KEY_REF`` form; a relative ``file:`` path is taken from ``base_dir``."""
        try:
            return _parse_key_ref(text, base_dir)
        except _Invalid as exc:
            raise ConfigurationError(
                f"{ENV_KEY_REF} {_preview(text)}: {exc.problem}", remedy=exc.fix, key=ENV_KEY_REF
            ) from None


_KEY_REF_FIX = (
    "Use cng:CurrentUser/<SHA-1 thumbprint> (Windows certificate store), keystore:<entry name> "
    "(OS keystore), file:<path to a PEM private key> or tpm2:<path to a TPM key file>."
)


def _parse_key_ref(text: str, base_dir: Path | None) -> KeyReference:
    kind, sep, rest = text.strip().partition(":")
    kind = kind.lower()
    if not sep or kind not in ("cng", "keystore", "file", "tpm2") or not rest.strip():
        raise _Invalid("is not a key reference.", _KEY_REF_FIX)
    rest = rest.strip()
    if kind == "cng":
        location_text, slash, sha1_text = rest.rpartition("/")
        location = _CNG_LOCATIONS.get((location_text if slash else "CurrentUser").lower())
        if location is None:
            raise _Invalid(
                f"store location {location_text[:30]!r} is neither CurrentUser nor LocalMachine.", _KEY_REF_FIX
            )
        try:
            sha1 = validate_sha1_thumbprint(sha1_text, source="the CNG key reference's thumbprint")
        except InvalidThumbprintError:
            raise _Invalid(
                "the part after the store location is not a SHA-1 thumbprint (40 hex digits).",
                "Copy the Thumbprint of the entraclaw certificate from `certutil -user -store My`.",
            ) from None
        return KeyReference("cng", location=location, sha1=sha1)
    if kind == "keystore":
        if not _ENTRY.fullmatch(rest):
            raise _Invalid("the keystore entry name must be 1-200 letters, digits, '.', '_', '@' or '-'.", _KEY_REF_FIX)
        return KeyReference("keystore", entry=rest)
    path = Path(rest).expanduser()
    if not path.is_absolute():
        path = (base_dir if base_dir is not None else Path.cwd()) / path
    if kind == "tpm2":
        if not path.is_file():
            raise _Invalid(
                f"the TPM key file {path} does not exist or is not a file.",
                "Point tpm2: at the key file `entraclaw setup --key-storage tpm` wrote (in the state directory's "
                "keys/), or run `entraclaw rotate --force` with admin credentials for a new key.",
            )
        return KeyReference("tpm2", path=path)
    if not path.is_file():
        raise _Invalid(
            f"the PEM key file {path} does not exist or is not a file.",
            "Point file: at the Blueprint's PEM private key (or pass entraclaw token --key-file PATH).",
        )
    return KeyReference("file", path=path)


# --- the configuration -----------------------------------------------------------------


@dataclass(frozen=True)
class AgentConfig:
    """A validated, immutable configuration. Unset optional fields are ``None`` (``scopes``: empty)."""

    tenant_id: str | None = None
    authority_host: str = DEFAULT_AUTHORITY_HOST
    graph_url: str = DEFAULT_GRAPH_URL
    blueprint_app_id: str | None = None
    blueprint_object_id: str | None = None
    agent_identity_app_id: str | None = None
    agent_user_id: str | None = None
    agent_user_upn: str | None = None
    cert_x5t_s256: str | None = None
    cert_sha1: str | None = None
    key_ref: KeyReference | None = None
    key_provider: KeyProvider | None = None
    scopes: tuple[str, ...] = ()
    ca_bundle: str | None = None
    proxy: str | None = None
    #: The ``.env`` that was read (or would have been), for messages and ``save_config``.
    env_file: Path | None = field(default=None, compare=False)
    #: Field name -> where its value came from (``str(origin)`` names it as errors do).
    origins: Mapping[str, Origin] = field(default_factory=lambda: MappingProxyType({}), compare=False, repr=False)

    @property
    def authority(self) -> str:
        if self.tenant_id is None:
            raise _missing_error(["tenant_id"], self.env_file)
        return f"{self.authority_host}/{self.tenant_id}"

    def agent_user(self) -> tuple[Literal["id", "upn"], str] | None:
        """The Agent User to act as: the one set at the higher precedence; the object id on a tie."""
        if self.agent_user_id is None and self.agent_user_upn is None:
            return None
        if self.agent_user_upn is None:
            assert self.agent_user_id is not None
            return ("id", self.agent_user_id)
        if self.agent_user_id is None:
            return ("upn", self.agent_user_upn)
        id_rank = self.origins["agent_user_id"].rank if "agent_user_id" in self.origins else 9
        upn_rank = self.origins["agent_user_upn"].rank if "agent_user_upn" in self.origins else 9
        return ("upn", self.agent_user_upn) if upn_rank < id_rank else ("id", self.agent_user_id)

    def describe(self) -> list[tuple[str, str, str]]:
        """(env name, value, origin) per set field, for ``doctor``; nothing here is secret."""
        env = config_to_env(self)
        return [(name, value, str(self.origins.get(_ENV_FIELD[name], "-"))) for name, value in env.items()]


def _preview(value: object) -> str:
    # A value pasted into the wrong key may be a secret (token, PEM): show only its start.
    if not isinstance(value, str):
        return f"<{type(value).__name__}>"
    if value.startswith("eyJ") or "BEGIN" in value or len(value) > 48:
        return f"{value[:6]!r}... ({len(value)} characters)"
    return repr(value)


# --- validators: raw text -> value, or _Invalid ----------------------------------------


def _guid(what: str) -> Any:
    def check(raw: str, base_dir: Path | None) -> str:
        text = raw.strip().strip("{}")
        if not _GUID.fullmatch(text):
            raise _Invalid(
                f"{_preview(raw)} is not a GUID (8-4-4-4-12 hex digits).",
                f"Use the {what} exactly as the Entra admin center or Graph shows it.",
            )
        return text.lower()

    return check


def _https_url(what: str, *, allow_path: bool) -> Any:
    def check(raw: str, base_dir: Path | None) -> str:
        text = raw.strip().rstrip("/")
        if "://" not in text:
            text = "https://" + text
        parts = urlsplit(text)
        fix = f"Use the {what} as an https URL, e.g. " + (DEFAULT_GRAPH_URL if allow_path else DEFAULT_AUTHORITY_HOST)
        if parts.scheme != "https":
            raise _Invalid(f"{_preview(raw)} is not https; tokens must never travel in clear text.", fix)
        try:
            port_ok = parts.port is None or parts.port > 0
        except ValueError:
            port_ok = False
        if not parts.hostname or parts.username or parts.password or not port_ok:
            raise _Invalid(f"{_preview(raw)} has no valid host.", fix)
        if parts.query or parts.fragment or (parts.path and not allow_path):
            raise _Invalid(f"{_preview(raw)} must be scheme and host only (no path, query or fragment).", fix)
        return text

    return check


def _upn(raw: str, base_dir: Path | None) -> str:
    text = raw.strip()
    if not _UPN.fullmatch(text):
        raise _Invalid(
            f"{_preview(raw)} is not a user principal name (name@domain.tld).",
            "Use the Agent User's userPrincipalName, or its object id in " + ENV_AGENT_USER_ID + ".",
        )
    return text


def _x5t(raw: str, base_dir: Path | None) -> str:
    try:
        return validate_x5t_s256(raw, source="value")
    except InvalidThumbprintError:
        raise _Invalid(
            f"{_preview(raw)} is not an x5t#S256 thumbprint (43 base64url characters).",
            "Recompute it with `entraclaw thumbprint CERT` and write only that value.",
        ) from None


def _sha1(raw: str, base_dir: Path | None) -> str:
    try:
        return validate_sha1_thumbprint(raw, source="value")
    except InvalidThumbprintError:
        raise _Invalid(
            f"{_preview(raw)} is not a SHA-1 thumbprint (40 hex digits).",
            "Recompute it with `entraclaw thumbprint CERT` (the SHA-1 line) and write only that value.",
        ) from None


def _key_ref(raw: str, base_dir: Path | None) -> KeyReference:
    return _parse_key_ref(raw, base_dir)


def _key_provider(raw: str, base_dir: Path | None) -> str:
    text = raw.strip().lower()
    if text not in _KEY_PROVIDERS:
        raise _Invalid(f"{_preview(raw)} is not one of tpm, software_ksp, pem.", "Use tpm, software_ksp or pem.")
    return text


def _scopes(raw: str, base_dir: Path | None) -> tuple[str, ...]:
    scopes = tuple(raw.split())
    for scope in scopes:
        if "," in scope or ";" in scope:
            raise _Invalid(
                f"{_preview(scope)} contains ',' or ';'; scopes are separated by spaces.",
                "Separate scopes with spaces, e.g. https://graph.microsoft.com/.default",
            )
    return scopes


def _ca_bundle(raw: str, base_dir: Path | None) -> str:
    path = Path(raw.strip()).expanduser()
    if not path.is_absolute():
        path = (base_dir if base_dir is not None else Path.cwd()) / path
    if not path.is_file():
        raise _Invalid(
            f"the CA bundle {path} does not exist or is not a file.",
            "Point it at a PEM file of the CA certificates to trust, or remove it to trust the public CAs.",
        )
    # Without this, a wrong file surfaces much later as a bare SSLError from the first request.
    try:
        with path.open("rb") as handle:
            head = handle.read(1 << 20)
    except OSError as exc:
        raise _Invalid(
            f"the CA bundle {path} cannot be read: {exc.strerror}.",
            "Make it readable by this user, or point the setting at a readable PEM file.",
        ) from None
    if b"-----BEGIN CERTIFICATE-----" not in head:
        raise _Invalid(
            f"the CA bundle {path} holds no PEM certificate (-----BEGIN CERTIFICATE-----).",
            "Point it at a PEM file of the CA certificates to trust (for the emulator: the ca_bundle "
            "`entraclaw emulator serve` printed), or remove it to trust the public CAs.",
        )
    return str(path)


def _proxy(raw: str, base_dir: Path | None) -> str:
    from entraclaw.platform.proxy import validate_proxy_url

    try:
        return validate_proxy_url(raw)
    except ValueError as exc:
        raise _Invalid(f"{exc}.", "Set it to http://host:port of the proxy, or `direct` for no proxy.") from None


_VALIDATORS: Mapping[str, Any] = {
    "tenant_id": _guid("directory (tenant) id"),
    "authority_host": _https_url("authority host", allow_path=False),
    "graph_url": _https_url("Microsoft Graph URL", allow_path=True),
    "blueprint_app_id": _guid("Blueprint's application (client) id"),
    "blueprint_object_id": _guid("Blueprint's object id"),
    "agent_identity_app_id": _guid("Agent Identity's app id"),
    "agent_user_id": _guid("Agent User's object id"),
    "agent_user_upn": _upn,
    "cert_x5t_s256": _x5t,
    "cert_sha1": _sha1,
    "key_ref": _key_ref,
    "key_provider": _key_provider,
    "scopes": _scopes,
    "ca_bundle": _ca_bundle,
    "proxy": _proxy,
}

_WHAT: Mapping[str, str] = {
    "tenant_id": "<directory (tenant) id>",
    "authority_host": DEFAULT_AUTHORITY_HOST,
    "graph_url": DEFAULT_GRAPH_URL,
    "blueprint_app_id": "<Blueprint app id>",
    "blueprint_object_id": "<Blueprint object id>",
    "agent_identity_app_id": "<Agent Identity app id>",
    "agent_user_id": "<Agent User object id>",
    "agent_user_upn": "<Agent User UPN>",
    "cert_x5t_s256": "<x5t#S256 from `entraclaw thumbprint CERT`>",
    "cert_sha1": "<SHA-1 from `entraclaw thumbprint CERT`>",
    "key_ref": "file:<PEM path> | keystore:<entry> | cng:CurrentUser/<SHA-1> | tpm2:<TPM key file>",
    "key_provider": "tpm | software_ksp | pem",
    "scopes": "https://graph.microsoft.com/.default",
    "ca_bundle": "<path to a PEM CA bundle>",
    "proxy": "http://<proxy host>:<port> | direct",
}


# --- the loader ------------------------------------------------------------------------


@dataclass
class _Layer:
    values: dict[str, tuple[str, str, Origin]]  # field -> (raw text, key it was given as, origin)
    base_dir: Path | None = None


def _override_text(name: str, value: object) -> str:
    if isinstance(value, str):
        return value
    if isinstance(value, (KeyReference, os.PathLike)):
        return str(value) if isinstance(value, KeyReference) else os.fspath(value)
    if name == "scopes" and isinstance(value, Sequence):
        return " ".join(str(v) for v in value)
    raise _Invalid(f"<{type(value).__name__}> is not text.", f"Pass {name} as a string.")


def _thumbprint_legacy(layer: _Layer, raw: str, key: str, origin: Origin, problems: list[ConfigProblem]) -> None:
    """Route ENTRACLAW_BLUEPRINT_CERT_THUMBPRINT to the field its shape says, unless that field is set here."""
    text = raw.strip()
    for name, check in (("cert_x5t_s256", _x5t), ("cert_sha1", _sha1)):
        try:
            value = check(text, None)
        except _Invalid:
            continue
        layer.values.setdefault(name, (value, key, origin))
        return
    problems.append(
        ConfigProblem(
            key,
            str(origin),
            f"{_preview(raw)} is neither an x5t#S256 (43 base64url characters) nor a SHA-1 thumbprint "
            "(40 hex digits); diagnostic output may have been captured with it.",
            f"Recompute it with `entraclaw thumbprint CERT` and write {ENV_BLUEPRINT_CERT_X5T_S256} "
            f"and {ENV_BLUEPRINT_CERT_SHA1} instead.",
        )
    )


def _layer_from_env(
    env: Mapping[str, str], origin_for: Any, base_dir: Path | None, problems: list[ConfigProblem]
) -> _Layer:
    layer = _Layer({}, base_dir)
    for env_name, name in _ENV_FIELD.items():
        raw = env.get(env_name)
        if raw is not None and raw.strip():
            layer.values[name] = (raw, env_name, origin_for(env_name))
    legacy = env.get(ENV_BLUEPRINT_CERT_THUMBPRINT)
    if legacy is not None and legacy.strip():
        _thumbprint_legacy(
            layer, legacy, ENV_BLUEPRINT_CERT_THUMBPRINT, origin_for(ENV_BLUEPRINT_CERT_THUMBPRINT), problems
        )
    return layer


def _file_layer(path: Path, explicit: bool, problems: list[ConfigProblem]) -> _Layer | None:
    from entraclaw.platform.dotenv import parse_env_text

    try:
        data = path.read_bytes()
    except FileNotFoundError:
        if explicit:
            problems.append(
                ConfigProblem(
                    str(path), "argument env_file", "the file does not exist.", "Pass the path of an existing .env."
                )
            )
        return None
    except OSError as exc:
        problems.append(
            ConfigProblem(
                str(path),
                "state directory",
                f"cannot be read: {exc.strerror or type(exc).__name__}.",
                f"Make {path} readable by this user, or set {ENV_HOME} to another state directory.",
            )
        )
        return None
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = data[: exc.start].count(b"\n") + 1
        problems.append(
            ConfigProblem(
                str(path), f"{path} line {line}", "is not UTF-8.", f"Save {path} as UTF-8 without a byte-order mark."
            )
        )
        return None
    env_file, file_problems = parse_env_text(text, path)
    for problem in file_problems:
        problems.append(
            ConfigProblem(
                problem.key or ".env",
                f"{path} line {problem.line}",
                problem.what + ".",
                f"Edit {path}: one KEY=value per line, each key once, or a # comment.",
            )
        )
    known = {*_ENV_FIELD, ENV_BLUEPRINT_CERT_THUMBPRINT, ENV_KEY_PASSWORD, ENV_HOME}
    for key in env_file.values():
        if key.startswith("ENTRACLAW_") and key not in known:
            import difflib

            # A misspelled key would silently leave its setting unset; the nearest known key names the fix.
            near = difflib.get_close_matches(key, sorted(known), n=1, cutoff=0.8)
            if near:
                problems.append(
                    ConfigProblem(
                        key,
                        f"{path} line {env_file.line_of(key)}",
                        f"is not a setting entraclaw knows; did you mean {near[0]}?",
                        f"Rename it to {near[0]} in {path}.",
                    )
                )
            else:
                logger.warning("%s line %s: %s is not a setting entraclaw reads; it is ignored.",
                               path, env_file.line_of(key), key)
    if env_file.had_bom:
        logger.warning(
            "%s starts with a UTF-8 byte-order mark (PowerShell 5 writes one); it was ignored and the next "
            "write by entraclaw removes it.",
            path,
        )
    return _layer_from_env(
        env_file.values(),
        lambda key: Origin("file", key, str(path), env_file.line_of(key)),
        path.parent,
        problems,
    )


def _missing_error(names: Sequence[str], env_file: Path | None) -> ConfigurationError:
    problems = [_missing_problem(name, env_file) for name in names]
    return _error(problems, env_file)


def _missing_problem(name: str, env_file: Path | None) -> ConfigProblem:
    choices = name.split("|")
    keys = " or ".join(FIELD_ENV[c] for c in choices)
    where = f"{env_file}" if env_file is not None else "the .env in the state directory"
    example = f"{FIELD_ENV[choices[0]]}={_WHAT[choices[0]]}"
    fix = f"Add {example} to {where}, or export it in the environment."
    if choices[0] == "key_ref":
        fix += " For `entraclaw token`, --key-file PATH names a PEM key."
    return ConfigProblem(keys, "not set", "is missing.", fix)


def _error(problems: list[ConfigProblem], env_file: Path | None) -> ConfigurationError:
    lines = "\n".join(f"  - {p}" for p in problems)
    where = f" (.env: {env_file})" if env_file is not None else ""
    remedy = (
        "Correct each setting above where it was found; the precedence is arguments > process "
        "environment > .env in the state directory (ENTRACLAW_HOME overrides where that is)."
    )
    if problems and all(p.origin == "not set" for p in problems) and any("TENANT_ID" in p.key for p in problems):
        # Nothing at all is configured: the likely story is a device nobody has provisioned yet.
        remedy = (
            "This device is not set up: run `entraclaw setup` with an admin sign-in (see `entraclaw setup --help`; "
            "against the emulator, paste the `setup` line `entraclaw emulator serve` prints), which writes "
            f"{env_file if env_file is not None else 'the .env in the state directory'}. Or "
            + remedy[0].lower()
            + remedy[1:]
        )
    return ConfigurationError(
        f"The configuration has {len(problems)} problem(s){where}:\n{lines}\n",
        remedy=remedy,
        problems=problems,
        path=str(env_file) if env_file is not None else None,
    )


def load_config(
    overrides: Mapping[str, object] | None = None,
    *,
    base: AgentConfig | None = None,
    environ: Mapping[str, str] | None = None,
    env_file: str | os.PathLike[str] | Literal[False] | None = None,
    required: Collection[str] = (),
    platform: str | None = None,
) -> AgentConfig:
    """The agent's configuration: ``overrides`` > ``base`` > process environment > ``.env`` > derived > defaults.

    ``overrides`` keys are field names (``tenant_id``) or variable names
    (``ENTRACLAW_TENANT_ID``); ``None`` values are ignored. ``environ`` stands in
    for ``os.environ`` (it also decides the state directory through
    ``ENTRACLAW_HOME``); ``env_file`` names the ``.env`` instead of the state
    directory's (``False``: read no ``.env``). ``required`` lists fields that must be set (``a|b``: one of
    them), e.g. :data:`USER_TOKEN_REQUIRED`. Every problem is reported in one
    ConfigurationError with a ``problems`` list.
    """
    env = os.environ if environ is None else environ
    problems: list[ConfigProblem] = []
    explicit_file = env_file is not None
    path: Path | None
    if env_file is False:
        path = None
    elif env_file is None:
        if sys.platform == "win32" and environ is None and not os.environ.get(ENV_HOME, "").strip():
            _migrate_quietly()
        path = paths.env_file_path(environ=env)
    else:
        path = Path(env_file)

    layers: list[_Layer] = []
    arg_layer = _Layer({})
    for key, value in (overrides or {}).items():
        if value is None:
            continue
        name = _ENV_FIELD.get(key, key)
        if name not in FIELD_ENV:
            problems.append(
                ConfigProblem(
                    key, f"argument {key}", "is not a configuration field.", "Use one of: " + ", ".join(FIELD_ENV) + "."
                )
            )
            continue
        try:
            text = _override_text(name, value)
        except _Invalid as exc:
            problems.append(ConfigProblem(FIELD_ENV[name], f"argument {name}", exc.problem, exc.fix))
            continue
        if text.strip():
            arg_layer.values[name] = (text, FIELD_ENV[name], Origin("argument", name))
    layers.append(arg_layer)
    if base is not None:
        layers.append(
            _Layer(
                {
                    _ENV_FIELD[k]: (v, k, base.origins.get(_ENV_FIELD[k], Origin("config")))
                    for k, v in config_to_env(base).items()
                }
            )
        )
    layers.append(_layer_from_env(env, lambda key: Origin("environment", key), None, problems))
    file_layer = _file_layer(path, explicit_file, problems) if path is not None else None
    if file_layer is not None:
        layers.append(file_layer)

    values: dict[str, Any] = {}
    origins: dict[str, Origin] = {}
    for name in FIELD_ENV:
        for layer in layers:
            if name not in layer.values:
                continue
            raw, key, origin = layer.values[name]
            try:
                values[name] = _VALIDATORS[name](raw, layer.base_dir)
            except _Invalid as exc:
                problems.append(ConfigProblem(key, str(origin), exc.problem, exc.fix))
                values[name] = _INVALID
            origins[name] = origin
            break

    _derive(values, origins, platform or sys.platform)
    for name, default in (("authority_host", DEFAULT_AUTHORITY_HOST), ("graph_url", DEFAULT_GRAPH_URL)):
        if name not in values:
            values[name] = default
            origins[name] = Origin("default")
    _cross_check(values, origins, problems)

    for requirement in required:
        choices = requirement.split("|")
        unknown = [c for c in choices if c not in FIELD_ENV]
        if unknown:
            raise ConfigurationError(
                f"load_config(required=...) names unknown field(s) {unknown}.",
                remedy="Use AgentConfig field names, e.g. USER_TOKEN_REQUIRED.",
            )
        if all(values.get(c) is None and c not in origins for c in choices):
            problems.append(_missing_problem(requirement, path))
    if problems:
        raise _error(problems, path)
    return AgentConfig(
        **{name: value for name, value in values.items() if value is not None},
        env_file=path,
        origins=MappingProxyType(origins),
    )


_INVALID: Any = None  # an invalid value is reported, then treated as unset


def raw_settings(
    *, environ: Mapping[str, str] | None = None, env_file: str | os.PathLike[str] | None = None
) -> dict[str, str]:
    """The ``ENTRACLAW_*`` settings as written, before validation, by :func:`load_config`'s precedence
    (process environment over the ``.env``), keyed by variable name.

    For writers (setup, rotate) that compare and rewrite values; the runtime uses
    :func:`load_config`. A ``.env`` that cannot be parsed (duplicate keys, bad lines,
    not UTF-8) is the same one ConfigurationError ``load_config`` raises.
    """
    env = os.environ if environ is None else environ
    path = Path(env_file) if env_file is not None else paths.env_file_path(environ=env)
    problems: list[ConfigProblem] = []
    layers = [_layer_from_env(env, lambda key: Origin("environment", key), None, problems)]
    file_layer = _file_layer(path, False, problems)
    if file_layer is not None:
        layers.append(file_layer)
    if problems:
        raise _error(problems, path)
    values: dict[str, str] = {}
    for name, env_name in FIELD_ENV.items():
        for layer in layers:
            if name in layer.values:
                values[env_name] = layer.values[name][0]
                break
    return values


def _derive(values: dict[str, Any], origins: dict[str, Origin], platform: str) -> None:
    """A key reference from the SHA-1 thumbprint, for .env files written before ENTRACLAW_KEY_REF existed."""
    sha1 = values.get("cert_sha1")
    if values.get("key_ref") is not None or "key_ref" in origins or sha1 is None:
        return
    provider = values.get("key_provider")
    if provider in ("tpm", "software_ksp") or (provider is None and platform == "win32"):
        values["key_ref"] = KeyReference("cng", location="CurrentUser", sha1=sha1)
    elif values.get("blueprint_app_id") is not None:
        # The keystore's name for a Blueprint PEM (CONTRACTS: one entry per key, so rotation never overwrites).
        values["key_ref"] = KeyReference("keystore", entry=f"blueprint-key-{values['blueprint_app_id']}-{sha1}")
    else:
        return
    origins["key_ref"] = Origin("derived", ENV_BLUEPRINT_CERT_SHA1)


def _cross_check(values: dict[str, Any], origins: dict[str, Origin], problems: list[ConfigProblem]) -> None:
    def where(name: str) -> str:
        return str(origins.get(name, "-"))

    ref: KeyReference | None = values.get("key_ref")
    sha1 = values.get("cert_sha1")
    if ref is not None and ref.kind == "cng" and sha1 is not None and ref.sha1 != sha1:
        problems.append(
            ConfigProblem(
                ENV_KEY_REF,
                where("key_ref"),
                f"names certificate {ref.sha1} but {ENV_BLUEPRINT_CERT_SHA1} ({where('cert_sha1')}) is {sha1}.",
                "Make both name the certificate registered on the Blueprint (after a rotation both change).",
            )
        )
    provider = values.get("key_provider")
    if ref is not None and provider is not None:
        expected = {"tpm": ("cng", "tpm2"), "software_ksp": ("cng",)}.get(provider, ("keystore", "file"))
        if ref.kind not in expected:
            problems.append(
                ConfigProblem(
                    ENV_KEY_PROVIDER,
                    where("key_provider"),
                    f"{provider!r} does not fit the key reference {ref.kind}: ({where('key_ref')}).",
                    "tpm goes with cng: or tpm2: references, software_ksp with cng:, pem with keystore: or file:.",
                )
            )
    bp, ai = values.get("blueprint_app_id"), values.get("agent_identity_app_id")
    if bp is not None and bp == ai:
        problems.append(
            ConfigProblem(
                ENV_AGENT_IDENTITY_ID,
                where("agent_identity_app_id"),
                f"is the Blueprint's own app id {bp}.",
                f"{ENV_AGENT_IDENTITY_ID} is the Agent Identity's app id, not the Blueprint's.",
            )
        )


def _migrate_quietly() -> None:
    try:
        paths.migrate_legacy_state()
    except EntraclawError as exc:
        logger.warning("Moving the legacy state directory failed: %s", exc)


# --- writing ---------------------------------------------------------------------------


def config_to_env(config: AgentConfig) -> dict[str, str]:
    """The ``.env`` lines for ``config`` (set fields only), in :data:`FIELD_ENV` order."""
    out: dict[str, str] = {}
    for name, env_name in FIELD_ENV.items():
        value = getattr(config, name)
        if value is None or value == ():
            continue
        if name == "scopes":
            out[env_name] = " ".join(value)
        else:
            out[env_name] = str(value)
    return out


def save_config(config: AgentConfig, path: str | os.PathLike[str] | None = None) -> Path:
    """Write ``config`` into a ``.env`` (default: the state directory's), changing only its lines.

    The legacy ``ENTRACLAW_BLUEPRINT_CERT_THUMBPRINT`` line is removed: the two
    thumbprint keys replace it, and a stale copy would contradict them.
    """
    from entraclaw.platform.dotenv import update_env_file

    target = Path(path) if path is not None else (config.env_file or paths.env_file_path())
    updates: dict[str, str | None] = dict(config_to_env(config))
    updates[ENV_BLUEPRINT_CERT_THUMBPRINT] = None
    update_env_file(target, updates)
    return target


# --- using it: the key and the TLS trust ---------------------------------------------------


def requests_verify(source: AgentConfig | str | os.PathLike[str] | None = None) -> str | bool:
    """The ``verify=`` for every session: ``ENTRACLAW_CA_BUNDLE`` when configured, else True (certifi)."""
    bundle = source.ca_bundle if isinstance(source, AgentConfig) else source
    if bundle is None:
        return True
    return os.fspath(bundle)


def make_session(
    source: AgentConfig | str | os.PathLike[str] | None = None, *, proxy: str | None = None
) -> requests.Session:
    """A session that trusts only what :func:`requests_verify` says and reaches hosts through the one
    proxy rule (:mod:`entraclaw.platform.proxy`: ENTRACLAW_PROXY > HTTPS_PROXY/HTTP_PROXY > the Windows
    system proxy; NO_PROXY), resolved here once. ``trust_env`` stays off: the REQUESTS_CA_BUNDLE
    family never replaces the trust anchors. ``proxy``: ENTRACLAW_PROXY when ``source`` is not a config.
    """
    from entraclaw.platform.proxy import PinnedSession, resolve_proxy_rule

    explicit = source.proxy if isinstance(source, AgentConfig) and source.proxy is not None else proxy
    session = PinnedSession(resolve_proxy_rule(explicit))
    session.verify = requests_verify(source)
    return session


_PEM_BLOCK = re.compile(rb"-----BEGIN ([A-Z0-9 ]+)-----.*?-----END \1-----", re.DOTALL)


def _split_pem(pem: bytes) -> tuple[bytes, bytes | None]:
    """The private key block and, when the PEM also holds one, the first certificate block (either order)."""
    key: bytes | None = None
    cert: bytes | None = None
    for match in _PEM_BLOCK.finditer(pem):
        label = match.group(1)
        if label.endswith(b"PRIVATE KEY") and key is None:
            key = match.group(0)
        elif label == b"CERTIFICATE" and cert is None:
            cert = match.group(0)
    # No key block found: hand the bytes on unchanged so PemSigner reports what is wrong with them.
    return (key if key is not None else pem), cert


def open_signer(
    config: AgentConfig,
    *,
    keystore: KeyStore[str] | None = None,
    password: str | None = None,
) -> Signer:
    """The Blueprint's signer for ``config.key_ref``.

    ``cng:`` -> the CNG key of that certificate (Windows); ``tpm2:`` -> the Linux TPM key
    file's key (:mod:`entraclaw.tpm2`); ``keystore:`` -> the PEM
    in the OS keystore (``keystore`` replaces :func:`entraclaw.keystore.default_keystore`);
    ``file:`` -> the PEM file. A PEM that carries its certificate is checked
    against it; otherwise ``cert_x5t_s256`` must be configured for the assertion header.
    """
    from entraclaw.auth.signer import PemSigner

    ref = config.key_ref
    if ref is None:
        raise _missing_error(["key_ref"], config.env_file)
    origin = str(config.origins.get("key_ref", "the AgentConfig passed in"))
    if ref.kind == "cng":
        from entraclaw import cng

        assert ref.sha1 is not None and ref.location is not None
        return cng.CngKeyHandle(ref.sha1, ref.location).as_signer()
    if ref.kind == "tpm2":
        from entraclaw.tpm2 import Tpm2KeyHandle

        assert ref.path is not None
        return Tpm2KeyHandle(ref.path).as_signer()
    if ref.kind == "keystore":
        assert ref.entry is not None
        store = keystore
        if store is None:
            # Imported here: the keystore pulls in keyring and the OS backends, which file: and cng: never need.
            from entraclaw.keystore import default_keystore

            store = default_keystore()
        pem_text = store.get(ref.entry)
        if pem_text is None:
            raise ConfigurationError(
                f"{ENV_KEY_REF} ({origin}) names keystore entry {ref.entry}, which is not in the "
                f"{getattr(store, 'name', type(store).__name__)} keystore.",
                remedy="Store the Blueprint's PEM key under that entry name, or point ENTRACLAW_KEY_REF at the "
                "entry that holds it.",
                key=ENV_KEY_REF,
                entry=ref.entry,
            )
        pem = pem_text.encode("utf-8") if isinstance(pem_text, str) else bytes(pem_text)
        source_name = f"keystore entry {ref.entry}"
    else:
        assert ref.path is not None
        try:
            pem = ref.path.read_bytes()
        except OSError as exc:
            raise ConfigurationError(
                f"Cannot read the key file {ref.path} ({ENV_KEY_REF}, {origin}): {exc.strerror}.",
                remedy="Point ENTRACLAW_KEY_REF (or --key-file) at the Blueprint's PEM private key.",
                path=str(ref.path),
            ) from exc
        source_name = f"key file {ref.path}"
    key_pem, cert_pem = _split_pem(pem)
    signer = PemSigner.from_pem(key_pem, password=password, certificate=cert_pem)
    if signer.certificate is None and config.cert_x5t_s256 is None:
        raise ConfigurationError(
            f"The {source_name} holds no certificate and {ENV_BLUEPRINT_CERT_X5T_S256} is not set, so the "
            "assertion cannot name the Blueprint certificate.",
            remedy=f"Set {ENV_BLUEPRINT_CERT_X5T_S256} (from `entraclaw thumbprint CERT`), or append the "
            "certificate PEM to the key.",
            key=ENV_BLUEPRINT_CERT_X5T_S256,
        )
    return signer
