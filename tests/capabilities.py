"""Capability checks for tests: skip when a capability is absent, fail when CI requires it.

CI sets ``ENTRACLAW_REQUIRE=native,standin,wine,...``; a test whose capability
is named there fails instead of skipping, so a missing install step cannot turn
into a quietly green run.
"""

from __future__ import annotations

import os

import pytest

__all__ = ["require", "required_capabilities"]


def required_capabilities() -> frozenset[str]:
    raw = os.environ.get("ENTRACLAW_REQUIRE", "")
    return frozenset(part.strip() for part in raw.split(",") if part.strip())


def require(marker: str, available: bool, reason: str) -> None:
    """Skip (or, when CI requires ``marker``, fail) the calling test if ``available`` is false."""
    if available:
        return
    if marker in required_capabilities():
        pytest.fail(f"capability {marker!r} is required by ENTRACLAW_REQUIRE but absent: {reason}")
    pytest.skip(f"{marker}: {reason}")
