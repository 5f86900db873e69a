"""Setup shared by the provisioning benchmarks (bench_provisioning, bench_propagation, bench_fleet_limits):
a Graph client signed in as the in-process emulator's seeded admin app, as `entraclaw setup` would be."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from entraclaw.auth.signer import PemSigner
from entraclaw.emulator import Emulator
from entraclaw.provisioning.auth import ClientCertificateAuth
from entraclaw.provisioning.context import Endpoints
from entraclaw.provisioning.graph import GraphClient

__all__ = ["admin_graph"]


def admin_graph(emu: Emulator, endpoints: Endpoints, *, on_response: Callable[..., Any] | None = None) -> GraphClient:
    """The admin app's Graph client (certificate client credentials); ``on_response``: a requests response
    hook on Graph's session (not the token endpoint's)."""
    admin = emu.admin
    auth = ClientCertificateAuth(
        authority=endpoints.authority,
        client_id=admin.app_id,
        signer=PemSigner(admin.key, admin.cert),
        session=endpoints.session(),
    )
    session = endpoints.session()
    if on_response is not None:
        session.hooks["response"].append(on_response)
    return GraphClient(endpoints.graph_url, auth, session=session)
