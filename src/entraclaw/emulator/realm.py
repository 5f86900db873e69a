"""Where the emulator lives: its base URL and tenant, and the issuer and endpoint URLs derived from them.

Read by the token endpoint (issuer, assertion audiences) and by Graph (the tenant's own URLs).
"""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["Realm"]


@dataclass(frozen=True)
class Realm:
    """Where the emulator lives: base URL and tenant, and the URLs derived from them."""

    base_url: str
    tenant_id: str

    @property
    def issuer(self) -> str:
        return f"{self.base_url}/{self.tenant_id}/v2.0"

    @property
    def token_endpoint(self) -> str:
        return f"{self.base_url}/{self.tenant_id}/oauth2/v2.0/token"

    @property
    def assertion_audiences(self) -> frozenset[str]:
        # Entra accepts its v2 and v1 token endpoints as the audience of a client assertion.
        return frozenset({self.token_endpoint, f"{self.base_url}/{self.tenant_id}/oauth2/token"})
