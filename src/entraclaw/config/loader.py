"""The precedence (arguments > AgentConfig passed in > process environment > ``.env`` > derived >
default), implemented once: :func:`load_config`, :func:`raw_settings` for writers, :func:`save_config`."""

from __future__ import annotations

import logging
import os
import sys
from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from types import MappingProxyType
from typing import Any, Literal

from entraclaw.config.model import (
    AgentConfig,
    ConfigProblem,
    KeyReference,
    Origin,
    _error,
    _Invalid,
    _missing_problem,
    _preview,
    config_to_env,
)
from entraclaw.config.names import (
    _ENV_FIELD,
    DEFAULT_AUTHORITY_HOST,
    DEFAULT_GRAPH_URL,
    ENV_AGENT_IDENTITY_ID,
    ENV_BLUEPRINT_CERT_SHA1,
    ENV_BLUEPRINT_CERT_THUMBPRINT,
    ENV_BLUEPRINT_CERT_X5T_S256,
    ENV_HOME,
    ENV_KEY_PASSWORD,
    ENV_KEY_PROVIDER,
    ENV_KEY_REF,
    FIELD_ENV,
)
from entraclaw.config.validators import _VALIDATORS, _sha1, _x5t
from entraclaw.errors import ConfigurationError, EntraclawError
from entraclaw.platform import paths

# The package's name, as before the split: log filters and handlers keyed on it keep working.
logger = logging.getLogger("entraclaw.config")

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
