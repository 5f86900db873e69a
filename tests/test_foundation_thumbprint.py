"""Thumbprints and base64url: known values, shapes, normalisation, properties."""

from __future__ import annotations

import base64
import hashlib

import pytest
from hypothesis import given
from hypothesis import strategies as st

from entraclaw.auth import (
    b64url_decode,
    b64url_encode,
    compute_cert_thumbprint,
    compute_sha1_thumbprint,
    validate_sha1_thumbprint,
    validate_x5t_s256,
)
from entraclaw.errors import ConfigurationError, InvalidThumbprintError


def test_x5t_s256_is_base64url_sha256_of_der(keypair):
    expected = base64.urlsafe_b64encode(hashlib.sha256(keypair.der).digest()).decode().rstrip("=")
    assert compute_cert_thumbprint(keypair.der) == expected
    assert len(expected) == 43


def test_sha1_thumbprint_matches_windows_shape(keypair):
    value = compute_sha1_thumbprint(keypair.der)
    assert value == hashlib.sha1(keypair.der).hexdigest().upper()
    assert len(value) == 40


def test_known_vector():
    # SHA-256 of b"abc" is ba7816bf...; its base64url form is fixed.
    assert compute_cert_thumbprint(b"abc") == "ungWv48Bz-pBQUDeXa4iI7ADYaOWF3qctBD_YfIAFa0"
    assert compute_sha1_thumbprint(b"abc") == "A9993E364706816ABA3E25717850C26C9CD0D89D"


@given(st.binary(max_size=512))
def test_b64url_round_trip(data):
    text = b64url_encode(data)
    assert "=" not in text and "+" not in text and "/" not in text
    assert b64url_decode(text) == data


@given(st.binary(min_size=1, max_size=64))
def test_any_der_gives_valid_thumbprints(data):
    assert validate_x5t_s256(compute_cert_thumbprint(data)) == compute_cert_thumbprint(data)
    assert validate_sha1_thumbprint(compute_sha1_thumbprint(data)) == compute_sha1_thumbprint(data)


@pytest.mark.parametrize("bad", ["abc=", "a+b/", "====", "a"])
def test_b64url_decode_rejects_garbage(bad):
    with pytest.raises(ValueError):
        b64url_decode(bad)


@pytest.mark.parametrize(
    "bad",
    [
        "",
        "x" * 42,
        "x" * 44,
        "ungWv48Bz+pBQUDeXa4iI7ADYaOWF3qctBD/YfIAFa0",  # standard base64 alphabet
        "WARNING: az is outdated\nungWv48Bz-pBQUDeXa4iI7ADYaOWF3qctBD_YfIAFa0",  # leaked diagnostics
        None,
        43,
    ],
)
def test_x5t_s256_validator_rejects(bad):
    with pytest.raises(InvalidThumbprintError) as info:
        validate_x5t_s256(bad, source="ENTRACLAW_BLUEPRINT_CERT_THUMBPRINT")
    err = info.value
    assert isinstance(err, ConfigurationError)
    assert "ENTRACLAW_BLUEPRINT_CERT_THUMBPRINT" in str(err)
    assert "Fix:" in str(err)
    assert err.kind == "x5t#S256"


def test_x5t_s256_validator_strips_trailing_newline():
    assert validate_x5t_s256("ungWv48Bz-pBQUDeXa4iI7ADYaOWF3qctBD_YfIAFa0\n") == (
        "ungWv48Bz-pBQUDeXa4iI7ADYaOWF3qctBD_YfIAFa0"
    )


@pytest.mark.parametrize(
    "given_value",
    [
        "a9993e364706816aba3e25717850c26c9cd0d89d",
        "\u200ea9 99 3e 36 47 06 81 6a ba 3e 25 71 78 50 c2 6c 9c d0 d8 9d",  # certmgr.msc copy
        "A9:99:3E:36:47:06:81:6A:BA:3E:25:71:78:50:C2:6C:9C:D0:D8:9D",
        "A9993E364706816ABA3E25717850C26C9CD0D89D\r\n",
    ],
)
def test_sha1_validator_normalises(given_value):
    assert validate_sha1_thumbprint(given_value) == "A9993E364706816ABA3E25717850C26C9CD0D89D"


@pytest.mark.parametrize("bad", ["", "A9993E36", "G" * 40, "A9993E364706816ABA3E25717850C26C9CD0D89D00", b"x"])
def test_sha1_validator_rejects(bad):
    with pytest.raises(InvalidThumbprintError) as info:
        validate_sha1_thumbprint(bad)
    assert info.value.kind == "SHA-1"


def test_long_bad_value_is_not_echoed_whole():
    secretish = "eyJhbGciOiJSUzI1NiJ9." + "A" * 400
    with pytest.raises(InvalidThumbprintError) as info:
        validate_x5t_s256(secretish)
    assert secretish not in str(info.value)
    assert "A" * 50 not in str(info.value)
    assert "421 characters" in str(info.value)
