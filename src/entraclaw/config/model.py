"""The configuration's values: :class:`AgentConfig`, :class:`KeyReference` (the ``ENTRACLAW_KEY_REF``
form), where each value came from (:class:`Origin`), and the problems and the one error reporting them."""

from __future__ import annotations

import os
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from types import MappingProxyType
from typing import Literal

from entraclaw.auth.thumbprint import validate_sha1_thumbprint
from entraclaw.config.names import (
    _ENV_FIELD,
    _WHAT,
    DEFAULT_AUTHORITY_HOST,
    DEFAULT_GRAPH_URL,
    ENV_KEY_REF,
    FIELD_ENV,
    KeyProvider,
)
from entraclaw.errors import ConfigurationError, InvalidThumbprintError

_CNG_LOCATIONS = {"currentuser": "CurrentUser", "localmachine": "LocalMachine"}
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
