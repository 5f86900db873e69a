"""What setup, rotate and doctor share: where the tenant is, how to reach it, how to say things."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import requests

from entraclaw.auth.exchange import normalize_authority
from entraclaw.config import DEFAULT_AUTHORITY_HOST, DEFAULT_GRAPH_URL
from entraclaw.config import make_session as config_make_session

# The propagation rule and wait live in propagation.py; imported here for the callers that use context.
from entraclaw.provisioning.propagation import PropagationWait, http_status, is_propagation_error

__all__ = [
    "DEFAULT_AUTHORITY_HOST",
    "DEFAULT_GRAPH_URL",
    "Endpoints",
    "PropagationWait",
    "http_status",
    "is_propagation_error",
    "make_session",
]


def make_session(ca_bundle: str | None) -> requests.Session:
    """The config's one trust rule: ENTRACLAW_CA_BUNDLE (or certifi), REQUESTS_CA_BUNDLE ignored."""
    return config_make_session(ca_bundle or None)


@dataclass(frozen=True)
class Endpoints:
    tenant_id: str
    authority_host: str = DEFAULT_AUTHORITY_HOST
    graph_url: str = DEFAULT_GRAPH_URL
    ca_bundle: str | None = None

    @property
    def authority(self) -> str:
        return normalize_authority(self.tenant_id, self.authority_host)

    @property
    def is_microsoft(self) -> bool:
        return self.authority_host.rstrip("/").lower() == DEFAULT_AUTHORITY_HOST

    def session(self) -> requests.Session:
        return make_session(self.ca_bundle)


def describe(value: Any) -> str:
    return str(value) if value is not None else "-"


def path_text(path: Path) -> str:
    return str(path)
