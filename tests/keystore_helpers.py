"""Capability checks and fixtures for the keystore tests.

``secretservice``: a real Secret Service on the D-Bus session bus with an unlocked default
collection, as scripts/with_secret_service.sh provides (and .ci/run requires).
"""

from __future__ import annotations

import functools
import os
import sys
import uuid
from collections.abc import Iterator
from typing import Any

import pytest

from capabilities import require

SECRET_SERVICE_HINT = "run the tests under scripts/with_secret_service.sh (needs gnome-keyring, dbus-daemon)"


@functools.lru_cache(maxsize=1)
def secret_service_problem() -> str | None:
    """None when a real, unlocked Secret Service answers on the session bus; else why not."""
    if not sys.platform.startswith("linux"):
        return f"the Secret Service is a Linux desktop service (this is {sys.platform})"
    if not os.environ.get("DBUS_SESSION_BUS_ADDRESS"):
        return "no D-Bus session bus (DBUS_SESSION_BUS_ADDRESS is unset)"
    try:
        import secretstorage

        connection = secretstorage.dbus_init()
        try:
            if not secretstorage.check_service_availability(connection):
                return "nothing owns org.freedesktop.secrets on the session bus"
            if secretstorage.get_default_collection(connection).is_locked():
                return "the default Secret Service collection is locked"
        finally:
            connection.close()
    except Exception as exc:
        return f"{type(exc).__name__}: {exc}"
    return None


def require_secret_service() -> None:
    problem = secret_service_problem()
    require("secretservice", problem is None, f"{problem}; {SECRET_SERVICE_HINT}")


def secret_service_backend() -> Any:
    """keyring's SecretService backend itself (not a chainer): the tests talk to the real service."""
    require_secret_service()
    from keyring.backends import SecretService

    return SecretService.Keyring()


@pytest.fixture
def secret_service_name() -> Iterator[str]:
    """A keyring service name of this test's own; every item under it is removed afterwards."""
    require_secret_service()
    service = f"entraclaw-test-{uuid.uuid4().hex[:12]}"
    yield service
    purge_service(service)


def purge_service(service: str) -> None:
    import secretstorage

    connection = secretstorage.dbus_init()
    try:
        collection = secretstorage.get_default_collection(connection)
        for item in collection.search_items({"service": service}):
            item.delete()
    finally:
        connection.close()
