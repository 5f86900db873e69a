"""The smoke tests setup, rotate and doctor share: a real Hop 1, the whole chain, Graph ``/me``.

Results describe tokens by claims only; no token leaves these functions.
"""

from __future__ import annotations

from dataclasses import dataclass

from entraclaw.auth.adapters import client_assertion_callable
from entraclaw.auth.credential import AgentUserCredential
from entraclaw.auth.exchange import EXCHANGE_SCOPE, MsalExchanger
from entraclaw.auth.jwt_claims import unverified_claims
from entraclaw.auth.signer import Signer
from entraclaw.errors import GraphRequestError
from entraclaw.provisioning.auth import GRAPH_DEFAULT_SCOPE, StaticTokenAuth
from entraclaw.provisioning.context import Endpoints
from entraclaw.provisioning.graph import GraphClient

__all__ = ["ChainResult", "prove_hop1", "run_chain"]


@dataclass(frozen=True)
class ChainResult:
    t1_audience: str | None
    t3_scopes: tuple[str, ...]
    me_id: str
    me_upn: str


def prove_hop1(endpoints: Endpoints, *, blueprint_app_id: str, agent_identity_app_id: str, signer: Signer) -> str:
    """Hop 1 with ``signer``: proves Entra accepts the key now. Returns T1's audience, never T1."""
    exchanger = MsalExchanger(endpoints.authority, session=endpoints.session())
    assertion = client_assertion_callable(signer, blueprint_app_id, exchanger.token_endpoint)
    response = exchanger.client_credentials(
        hop=1,
        client_id=blueprint_app_id,
        scopes=[EXCHANGE_SCOPE],
        client_assertion=assertion,
        fmi_path=agent_identity_app_id,
    )
    return str(unverified_claims(str(response["access_token"])).get("aud"))


def run_chain(
    endpoints: Endpoints,
    *,
    blueprint_app_id: str,
    agent_identity_app_id: str,
    agent_user_id: str,
    signer: Signer,
    scope: str = GRAPH_DEFAULT_SCOPE,
) -> ChainResult:
    """Hops 1-3 for the Agent User, then ``GET /me`` with T3; /me must answer for that user."""
    credential = AgentUserCredential(
        tenant=endpoints.tenant_id,
        authority_host=endpoints.authority_host,
        blueprint_app_id=blueprint_app_id,
        agent_identity_app_id=agent_identity_app_id,
        agent_user_id=agent_user_id,
        signer=signer,
        session=endpoints.session(),
    )
    chain = credential.acquire_chain([scope])
    assert chain.t3 is not None
    claims = unverified_claims(chain.t3.token)
    graph = GraphClient(
        endpoints.graph_url, StaticTokenAuth(chain.t3.token, description="Agent User T3"), session=endpoints.session()
    )
    me = graph.request("GET", "me", what="GET /me as the Agent User")
    if str(me.get("id", "")).lower() != agent_user_id.lower():
        raise GraphRequestError(
            f"/me answered for {me.get('id')}, not the Agent User {agent_user_id}.",
            remedy="ENTRACLAW_AGENT_USER_ID does not match the Agent User; re-run `entraclaw setup`.",
            http_status=200,
            code="wrong_user",
            request_id=None,
            url=f"{endpoints.graph_url}/me",
        )
    return ChainResult(
        t1_audience=str(unverified_claims(chain.t1.token).get("aud")),
        t3_scopes=tuple(str(claims.get("scp", "")).split()),
        me_id=str(me.get("id")),
        me_upn=str(me.get("userPrincipalName") or ""),
    )
