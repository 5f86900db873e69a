"""load_config: one precedence (argument > environment > .env) per field; every problem named with its origin."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from entraclaw import config as cfg
from entraclaw.config import (
    FIELD_ENV,
    USER_TOKEN_REQUIRED,
    AgentConfig,
    ConfigProblem,
    KeyReference,
    load_config,
    make_session,
    requests_verify,
    save_config,
)
from entraclaw.errors import ConfigurationError
from entraclaw.platform.dotenv import read_env_file, update_env_file

_PEM_SHAPE = "-----BEGIN CERTIFICATE-----\nplaceholder\n-----END CERTIFICATE-----\n"


@pytest.fixture
def files(tmp_path: Path) -> dict[str, Path]:
    out = {}
    for name in ("key_a.pem", "key_b.pem", "key_c.pem", "ca_a.pem", "ca_b.pem", "ca_c.pem"):
        out[name] = tmp_path / name
        # CA bundles must at least look like PEM certificates (the loader checks the shape).
        out[name].write_text(_PEM_SHAPE if name.startswith("ca_") else "placeholder\n")
    return out


def three_values(field: str, files: dict[str, Path]) -> tuple[str, str, str]:
    """Three valid, distinct values for ``field``: (.env, environment, argument)."""
    guids = tuple(f"{d * 8}-{d * 4}-{d * 4}-{d * 4}-{d * 12}" for d in "abc")
    table: dict[str, tuple[str, str, str]] = {
        "tenant_id": guids,
        "authority_host": ("https://login.a.example", "https://login.b.example", "https://127.0.0.1:8443"),
        "graph_url": ("https://graph.a.example/v1.0", "https://graph.b.example/beta", "https://127.0.0.1:1/v1.0"),
        "blueprint_app_id": guids,
        "blueprint_object_id": guids,
        "agent_identity_app_id": guids,
        "agent_user_id": guids,
        "agent_user_upn": ("a@x.example", "b@y.example", "c@z.example"),
        "cert_x5t_s256": ("a" * 43, "b" * 43, "c" * 43),
        "cert_sha1": ("A" * 40, "B" * 40, "C" * 40),
        "key_ref": (f"file:{files['key_a.pem']}", "keystore:entry-b", "file:" + str(files["key_c.pem"])),
        "key_provider": ("pem", "pem", "pem"),
        "scopes": ("https://a/.default", "https://b/.default x", "https://c/.default"),
        "ca_bundle": (str(files["ca_a.pem"]), str(files["ca_b.pem"]), str(files["ca_c.pem"])),
        "proxy": ("http://proxy-a:3128", "http://proxy-b:8080", "direct"),
    }
    return table[field]


def parsed(field: str, raw: str) -> object:
    if field == "key_ref":
        return KeyReference.parse(raw)
    if field == "scopes":
        return tuple(raw.split())
    return raw


@pytest.mark.parametrize("field", list(FIELD_ENV))
def test_precedence_argument_over_environment_over_file(tmp_path, files, field):
    env_name = FIELD_ENV[field]
    in_file, in_env, in_arg = three_values(field, files)
    dotenv = tmp_path / ".env"
    update_env_file(dotenv, {"OTHER": "x", env_name: in_file})
    line = read_env_file(dotenv).line_of(env_name)

    only_file = load_config(environ={}, env_file=dotenv)
    assert getattr(only_file, field) == parsed(field, in_file)
    assert str(only_file.origins[field]) == f"{dotenv} line {line}"

    with_env = load_config(environ={env_name: in_env}, env_file=dotenv)
    assert getattr(with_env, field) == parsed(field, in_env)
    assert str(with_env.origins[field]) == "process environment"

    with_arg = load_config({field: in_arg}, environ={env_name: in_env}, env_file=dotenv)
    assert getattr(with_arg, field) == parsed(field, in_arg)
    assert str(with_arg.origins[field]) == f"argument {field}"

    # The variable name works as an argument key too, and None/empty never override.
    assert getattr(load_config({env_name: in_arg}, environ={}, env_file=dotenv), field) == parsed(field, in_arg)
    assert getattr(load_config({field: None}, environ={env_name: ""}, env_file=dotenv), field) == parsed(field, in_file)


def test_state_dir_env_file_is_found_through_entraclaw_home(tmp_path):
    update_env_file(tmp_path / ".env", {"ENTRACLAW_TENANT_ID": "11111111-1111-1111-1111-111111111111"})
    config = load_config(environ={"ENTRACLAW_HOME": str(tmp_path)})
    assert config.tenant_id == "11111111-1111-1111-1111-111111111111"
    assert config.env_file == tmp_path / ".env"


def test_defaults():
    config = load_config(environ={}, env_file=False)
    assert config.authority_host == "https://login.microsoftonline.com"
    assert config.graph_url == "https://graph.microsoft.com/v1.0"
    assert config.scopes == () and config.key_ref is None and config.tenant_id is None
    assert str(config.origins["authority_host"]) == "default"


BAD_VALUES: dict[str, tuple[str, str]] = {
    # field: (bad value, a word the problem text must contain)
    "tenant_id": ("contoso", "GUID"),
    "authority_host": ("http://login.microsoftonline.com", "https"),
    "graph_url": ("https://graph.microsoft.com/v1.0?x=1", "query"),
    "blueprint_app_id": ("2222-not-a-guid", "GUID"),
    "blueprint_object_id": ("{bad}", "GUID"),
    "agent_identity_app_id": ("3333", "GUID"),
    "agent_user_id": ("agent@contoso.example", "GUID"),
    "agent_user_upn": ("agent-without-domain", "user principal name"),
    "cert_x5t_s256": ("WARNING: fallback\tabc", "x5t#S256"),
    "cert_sha1": ("XYZ", "SHA-1"),
    "key_ref": ("pem:/x", "key reference"),
    "key_provider": ("hsm", "tpm"),
    "scopes": ("a,b", "spaces"),
    "ca_bundle": ("/does/not/exist.pem", "does not exist"),
}


def test_every_invalid_field_is_named_with_file_and_line_in_one_error(tmp_path):
    dotenv = tmp_path / ".env"
    update_env_file(dotenv, {"UNRELATED": "1"})
    update_env_file(dotenv, {FIELD_ENV[f]: bad for f, (bad, _word) in BAD_VALUES.items()})
    lines = read_env_file(dotenv)
    with pytest.raises(ConfigurationError) as info:
        load_config(environ={}, env_file=dotenv, required=USER_TOKEN_REQUIRED)
    problems: list[ConfigProblem] = info.value.problems
    by_key = {p.key: p for p in problems}
    for field, (_bad, word) in BAD_VALUES.items():
        key = FIELD_ENV[field]
        problem = by_key[key]
        assert problem.origin == f"{dotenv} line {lines.line_of(key)}", key
        assert word in problem.problem, (key, problem.problem)
        assert problem.fix, key
        assert f"{key} ({dotenv} line {lines.line_of(key)})" in str(info.value)
    # Invalid is not also reported as missing.
    assert len(problems) == len(BAD_VALUES)
    assert "Fix:" in str(info.value)


@pytest.mark.parametrize("field", ["tenant_id", "agent_user_upn", "cert_x5t_s256", "key_ref"])
def test_invalid_value_from_environment_and_argument_names_that_origin(field):
    bad, _word = BAD_VALUES[field]
    with pytest.raises(ConfigurationError) as info:
        load_config(environ={FIELD_ENV[field]: bad}, env_file=False)
    assert [p.origin for p in info.value.problems] == ["process environment"]
    with pytest.raises(ConfigurationError) as info:
        load_config({field: bad}, environ={}, env_file=False)
    assert [p.origin for p in info.value.problems] == [f"argument {field}"]


def test_all_missing_fields_in_one_error(tmp_path):
    dotenv = tmp_path / ".env"
    with pytest.raises(ConfigurationError) as info:
        load_config(environ={"ENTRACLAW_HOME": str(tmp_path)}, required=USER_TOKEN_REQUIRED)
    keys = [p.key for p in info.value.problems]
    assert keys == [
        "ENTRACLAW_TENANT_ID",
        "ENTRACLAW_BLUEPRINT_APP_ID",
        "ENTRACLAW_AGENT_IDENTITY_ID",
        "ENTRACLAW_KEY_REF",
        "ENTRACLAW_AGENT_USER_ID or ENTRACLAW_AGENT_USER_UPN",
    ]
    assert all(str(dotenv) in p.fix for p in info.value.problems)
    assert "--key-file" in str(info.value)


def test_missing_and_invalid_and_malformed_lines_together(tmp_path):
    dotenv = tmp_path / ".env"
    dotenv.write_text("ENTRACLAW_TENANT_ID=nope\nthis is not a setting\nENTRACLAW_SCOPES=a\nENTRACLAW_SCOPES=b\n")
    with pytest.raises(ConfigurationError) as info:
        load_config(environ={}, env_file=dotenv, required=("tenant_id", "blueprint_app_id"))
    origins = [p.origin for p in info.value.problems]
    assert f"{dotenv} line 2" in origins and f"{dotenv} line 4" in origins
    assert f"{dotenv} line 1" in origins and "not set" in origins
    (duplicate,) = [p for p in info.value.problems if p.origin == f"{dotenv} line 4"]
    assert duplicate.key == "ENTRACLAW_SCOPES" and "lines 3 and 4" in duplicate.problem


def test_explicit_env_file_that_does_not_exist_is_a_problem(tmp_path):
    with pytest.raises(ConfigurationError, match="does not exist"):
        load_config(environ={}, env_file=tmp_path / "missing.env")


def test_unknown_argument_is_a_problem():
    with pytest.raises(ConfigurationError) as info:
        load_config({"tenant": "x"}, environ={}, env_file=False)
    assert info.value.problems[0].key == "tenant"


def test_secret_pasted_into_a_field_is_not_echoed():
    token = "eyJhbGciOiJSUzI1NiJ9." + "A" * 200 + ".sig"
    pem = "-----BEGIN PRIVATE KEY-----MIIEvQIBADANBgkqhkiG9w0BAQEFAASCBKcwggSjAgEAAoIBAQ"
    with pytest.raises(ConfigurationError) as info:
        load_config({"tenant_id": token, "cert_x5t_s256": pem, "agent_user_upn": pem}, environ={}, env_file=False)
    text = str(info.value) + repr(info.value) + repr(info.value.problems)
    assert token[:20] not in text and "MIIEvQ" not in text


# --- the legacy thumbprint key --------------------------------------------------------------


def test_legacy_thumbprint_is_routed_by_shape():
    x5t, sha1 = "q" * 43, "ab" * 20
    by_x5t = load_config(environ={"ENTRACLAW_BLUEPRINT_CERT_THUMBPRINT": x5t}, env_file=False)
    assert by_x5t.cert_x5t_s256 == x5t and by_x5t.cert_sha1 is None
    by_sha1 = load_config(environ={"ENTRACLAW_BLUEPRINT_CERT_THUMBPRINT": sha1}, env_file=False)
    assert by_sha1.cert_sha1 == sha1.upper() and by_sha1.cert_x5t_s256 is None
    # The new key at the same level wins over the legacy one.
    both = load_config(
        environ={"ENTRACLAW_BLUEPRINT_CERT_THUMBPRINT": x5t, "ENTRACLAW_BLUEPRINT_CERT_X5T_S256": "r" * 43},
        env_file=False,
    )
    assert both.cert_x5t_s256 == "r" * 43


def test_garbled_legacy_thumbprint_names_the_legacy_key(tmp_path):
    dotenv = tmp_path / ".env"
    dotenv.write_text("A=1\nENTRACLAW_BLUEPRINT_CERT_THUMBPRINT=Using TPM... 5E2A\n")
    with pytest.raises(ConfigurationError) as info:
        load_config(environ={}, env_file=dotenv)
    (problem,) = info.value.problems
    assert problem.key == "ENTRACLAW_BLUEPRINT_CERT_THUMBPRINT" and problem.origin == f"{dotenv} line 2"
    assert "x5t#S256" in problem.problem and "SHA-1" in problem.problem


# --- key references ---------------------------------------------------------------------------


def test_key_reference_forms(tmp_path):
    pem = tmp_path / "k.pem"
    pem.write_text("x")
    sha1 = "0123456789ABCDEF0123456789ABCDEF01234567"
    assert KeyReference.parse(f"cng:CurrentUser/{sha1.lower()}") == KeyReference("cng", "CurrentUser", sha1)
    assert KeyReference.parse(f"cng:localmachine/{sha1}") == KeyReference("cng", "LocalMachine", sha1)
    assert KeyReference.parse(f"cng:{sha1}").location == "CurrentUser"
    assert KeyReference.parse("keystore:blueprint-key-x").entry == "blueprint-key-x"
    assert KeyReference.parse("file:k.pem", base_dir=tmp_path).path == pem
    for ref in (KeyReference.cng(sha1), KeyReference.keystore("e"), KeyReference.file(pem)):
        assert KeyReference.parse(str(ref)) == ref
    for bad in ("cng:Elsewhere/" + sha1, "cng:CurrentUser/123", "keystore:", "keystore:a b", "file:/nope.pem", "x"):
        with pytest.raises(ConfigurationError):
            KeyReference.parse(bad)


def test_relative_paths_in_the_env_file_are_relative_to_it(tmp_path):
    (tmp_path / "keys").mkdir()
    (tmp_path / "keys" / "bp.pem").write_text("x")
    (tmp_path / "ca.pem").write_text(_PEM_SHAPE)
    dotenv = tmp_path / ".env"
    dotenv.write_text("ENTRACLAW_KEY_REF=file:keys/bp.pem\nENTRACLAW_CA_BUNDLE=ca.pem\n")
    config = load_config(environ={}, env_file=dotenv)
    assert config.key_ref == KeyReference("file", path=tmp_path / "keys" / "bp.pem")
    assert config.ca_bundle == str(tmp_path / "ca.pem")


def test_key_reference_is_derived_from_the_sha1_for_old_env_files():
    sha1 = "AB" * 20
    bp = "22222222-2222-2222-2222-222222222222"
    env = {"ENTRACLAW_BLUEPRINT_CERT_SHA1": sha1, "ENTRACLAW_BLUEPRINT_APP_ID": bp}
    on_windows = load_config(environ=env, env_file=False, platform="win32")
    assert on_windows.key_ref == KeyReference("cng", "CurrentUser", sha1)
    assert str(on_windows.origins["key_ref"]) == "derived from ENTRACLAW_BLUEPRINT_CERT_SHA1"
    elsewhere = load_config(environ=env, env_file=False, platform="linux")
    assert elsewhere.key_ref == KeyReference("keystore", entry=f"blueprint-key-{bp}-{sha1}")
    tpm = load_config(environ={**env, "ENTRACLAW_KEY_PROVIDER": "tpm"}, env_file=False, platform="linux")
    assert tpm.key_ref is not None and tpm.key_ref.kind == "cng"


def test_cross_checks():
    sha1_a, sha1_b = "AA" * 20, "BB" * 20
    same = "22222222-2222-2222-2222-222222222222"
    with pytest.raises(ConfigurationError) as info:
        load_config(
            {
                "key_ref": f"cng:CurrentUser/{sha1_a}",
                "cert_sha1": sha1_b,
                "key_provider": "pem",
                "blueprint_app_id": same,
                "agent_identity_app_id": same,
            },
            environ={},
            env_file=False,
        )
    keys = sorted(p.key for p in info.value.problems)
    assert keys == ["ENTRACLAW_AGENT_IDENTITY_ID", "ENTRACLAW_KEY_PROVIDER", "ENTRACLAW_KEY_REF"]


def test_agent_user_at_the_higher_precedence_wins():
    oid, upn = "44444444-4444-4444-4444-444444444444", "agent@contoso.example"
    env = {"ENTRACLAW_AGENT_USER_ID": oid, "ENTRACLAW_AGENT_USER_UPN": upn}
    assert load_config(environ=env, env_file=False).agent_user() == ("id", oid)
    by_arg = load_config({"agent_user_upn": upn}, environ={"ENTRACLAW_AGENT_USER_ID": oid}, env_file=False)
    assert by_arg.agent_user() == ("upn", upn)
    assert load_config(environ={}, env_file=False).agent_user() is None


# --- writing the configuration -----------------------------------------------------------------


def test_save_then_load_round_trips_and_rotation_changes_only_thumbprint_lines(tmp_path, files):
    dotenv = tmp_path / ".env"
    dotenv.write_text("# mine\nMY_SETTING=1\nENTRACLAW_BLUEPRINT_CERT_THUMBPRINT=" + "o" * 43 + "\n")
    config = load_config(
        {
            "tenant_id": "11111111-1111-1111-1111-111111111111",
            "blueprint_app_id": "22222222-2222-2222-2222-222222222222",
            "agent_identity_app_id": "33333333-3333-3333-3333-333333333333",
            "agent_user_id": "44444444-4444-4444-4444-444444444444",
            "cert_x5t_s256": "x" * 43,
            "cert_sha1": "A" * 40,
            "key_ref": KeyReference.file(files["key_a.pem"]),
            "key_provider": "pem",
            "scopes": ["https://graph.microsoft.com/.default", "offline_access"],
            "ca_bundle": files["ca_a.pem"],
        },
        environ={},
        env_file=False,
    )
    assert save_config(config, dotenv) == dotenv
    text = dotenv.read_text()
    assert text.startswith("# mine\nMY_SETTING=1\n") and "ENTRACLAW_BLUEPRINT_CERT_THUMBPRINT" not in text
    loaded = load_config(environ={}, env_file=dotenv, required=USER_TOKEN_REQUIRED)
    assert loaded == config

    before = dotenv.read_bytes().splitlines()
    rotated = load_config({"cert_x5t_s256": "y" * 43, "cert_sha1": "B" * 40}, base=loaded, environ={}, env_file=False)
    save_config(rotated, dotenv)
    after = dotenv.read_bytes().splitlines()
    changed = [b for a, b in zip(before, after, strict=True) if a != b]
    assert changed == [b"ENTRACLAW_BLUEPRINT_CERT_X5T_S256=" + b"y" * 43, b"ENTRACLAW_BLUEPRINT_CERT_SHA1=" + b"B" * 40]


def test_save_defaults_to_the_state_dir(tmp_path, monkeypatch):
    monkeypatch.setenv("ENTRACLAW_HOME", str(tmp_path / "home"))
    path = save_config(AgentConfig(tenant_id="11111111-1111-1111-1111-111111111111"))
    assert path == tmp_path / "home" / ".env"
    assert read_env_file(path).get("ENTRACLAW_TENANT_ID") == "11111111-1111-1111-1111-111111111111"


# --- the TLS trust rule ----------------------------------------------------------------------------


def test_ca_bundle_wins_over_requests_ca_bundle(tmp_path, monkeypatch, files):
    monkeypatch.setenv("REQUESTS_CA_BUNDLE", str(files["ca_b.pem"]))
    monkeypatch.setenv("CURL_CA_BUNDLE", str(files["ca_c.pem"]))
    config = load_config({"ca_bundle": files["ca_a.pem"]}, environ={}, env_file=False)
    assert requests_verify(config) == str(files["ca_a.pem"])
    session = make_session(config)
    assert session.trust_env is False
    settings = session.merge_environment_settings("https://login.microsoftonline.com/x", {}, None, None, None)
    assert settings["verify"] == str(files["ca_a.pem"])


def test_without_ca_bundle_the_public_cas_are_trusted_not_requests_ca_bundle(monkeypatch, files):
    monkeypatch.setenv("REQUESTS_CA_BUNDLE", str(files["ca_b.pem"]))
    config = load_config(environ={}, env_file=False)
    assert requests_verify(config) is True and requests_verify(None) is True
    session = make_session(config)
    settings = session.merge_environment_settings("https://login.microsoftonline.com/x", {}, None, None, None)
    assert settings["verify"] is True
    assert requests_verify(str(files["ca_a.pem"])) == str(files["ca_a.pem"])


def test_env_names_are_one_table():
    assert FIELD_ENV["tenant_id"] == cfg.ENV_TENANT_ID
    assert len(set(FIELD_ENV.values())) == len(FIELD_ENV)
    assert all(name.startswith("ENTRACLAW_") for name in FIELD_ENV.values())
    assert os.environ.get("ENTRACLAW_TEST_CRASH_AT") is None


def test_derived_keystore_entry_is_the_keystore_streams_name():
    from entraclaw.keystore import blueprint_key_entry

    sha1, bp = "ab" * 20, "22222222-2222-2222-2222-22222222222A"
    env = {"ENTRACLAW_BLUEPRINT_CERT_SHA1": sha1, "ENTRACLAW_BLUEPRINT_APP_ID": bp}
    config = load_config(environ=env, env_file=False, platform="linux")
    assert config.key_ref == KeyReference.keystore(blueprint_key_entry(bp, sha1))


def test_describe_lists_each_value_with_its_origin(tmp_path):
    dotenv = tmp_path / ".env"
    update_env_file(dotenv, {"ENTRACLAW_TENANT_ID": "11111111-1111-1111-1111-111111111111"})
    config = load_config(
        {"scopes": "https://graph.microsoft.com/.default"},
        environ={"ENTRACLAW_AGENT_USER_UPN": "a@b.example"},
        env_file=dotenv,
    )
    rows = {name: (value, origin) for name, value, origin in config.describe()}
    assert rows["ENTRACLAW_TENANT_ID"] == ("11111111-1111-1111-1111-111111111111", f"{dotenv} line 1")
    assert rows["ENTRACLAW_AGENT_USER_UPN"] == ("a@b.example", "process environment")
    assert rows["ENTRACLAW_SCOPES"] == ("https://graph.microsoft.com/.default", "argument scopes")
    assert rows["ENTRACLAW_AUTHORITY_HOST"] == ("https://login.microsoftonline.com", "default")
