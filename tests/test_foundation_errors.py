"""The error hierarchy: one root, structured fields, remedies, pickling, no secrets in text."""

from __future__ import annotations

import inspect
import pickle

import pytest

from entraclaw import errors
from entraclaw.errors import (
    EntraclawError,
    KeyNotFoundError,
    SigningError,
    TokenExchangeError,
    TransientSigningError,
)

ALL_CLASSES = [
    obj
    for _, obj in inspect.getmembers(errors, inspect.isclass)
    if issubclass(obj, Exception) and obj.__module__ == errors.__name__
]


def test_every_error_is_rooted_and_exported():
    assert ALL_CLASSES
    for cls in ALL_CLASSES:
        assert issubclass(cls, EntraclawError)
        assert cls.__name__ in errors.__all__
        assert cls.__doc__, f"{cls.__name__} needs a docstring saying when it is raised"


def test_message_and_remedy_and_fields():
    err = KeyNotFoundError(
        "Key for certificate 0A1B... is gone (NTE_BAD_KEYSET 0x80090016 from NCryptSignHash).",
        thumbprint="0A1B",
        hresult=0x80090016,
        api="NCryptSignHash",
    )
    assert isinstance(err, SigningError)
    assert err.thumbprint == "0A1B" and err.hresult == 0x80090016 and err.api == "NCryptSignHash"
    assert "deploy-windows.ps1" in str(err)  # default remedy
    assert str(err).startswith("Key for certificate")
    assert repr(err).startswith("KeyNotFoundError(")


def test_explicit_remedy_overrides_default():
    err = TransientSigningError("TPM busy for 0A1B after 3 attempts.", remedy="wait", attempts=3)
    assert str(err).endswith("Fix: wait")
    assert err.attempts == 3


@pytest.mark.parametrize("cls", ALL_CLASSES)
def test_pickle_round_trip_keeps_fields(cls):
    err = cls("Something about client 123 failed.", remedy="do x", hop=2, aadsts_code=700027)
    back = pickle.loads(pickle.dumps(err))
    assert type(back) is cls
    assert str(back) == str(err)
    assert back.hop == 2 and back.aadsts_code == 700027


def test_token_exchange_error_is_catchable_as_root():
    with pytest.raises(EntraclawError):
        raise TokenExchangeError("Hop 1 for client abc failed: AADSTS700027.", hop=1, aadsts_code=700027)
