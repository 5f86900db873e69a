"""Per field: raw text (from any layer) -> validated value, or the problem and its fix."""

from __future__ import annotations

import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from entraclaw.auth.thumbprint import validate_sha1_thumbprint, validate_x5t_s256
from entraclaw.config.model import KeyReference, _Invalid, _parse_key_ref, _preview
from entraclaw.config.names import _KEY_PROVIDERS, DEFAULT_AUTHORITY_HOST, DEFAULT_GRAPH_URL, ENV_AGENT_USER_ID
from entraclaw.errors import InvalidThumbprintError

_GUID = re.compile(r"[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}")
_UPN = re.compile(r"[^@\s]+@[A-Za-z0-9](?:[A-Za-z0-9-]*[A-Za-z0-9])?(?:\.[A-Za-z0-9](?:[A-Za-z0-9-]*[A-Za-z0-9])?)+")

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
