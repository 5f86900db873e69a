"""whoami (GET /me as the Agent User, plus the device's identity chain; never a token) and audit_log."""

from __future__ import annotations

import datetime as _dt
import time
from typing import Annotated

from mcp.server.mcpserver import MCPServer
from pydantic import Field

from entraclaw.mcp.audit import AuditFilter, format_record
from entraclaw.mcp.graph import AgentGraph
from entraclaw.mcp.runtime import AgentRuntime
from entraclaw.mcp.tools import PERMISSIONS

__all__ = ["register"]

_PROVIDERS = {"tpm": "TPM (CNG Platform Crypto Provider)", "software_ksp": "CNG software KSP", "pem": "PEM key"}


def register(server: MCPServer, rt: AgentRuntime) -> None:
    @server.tool(description="Who the agent acts as: the Agent User, its Agent Identity and Blueprint, the key "
                 "provider, the token's expiry and consented scopes. Never shows a token. Needs User.Read.")
    async def whoami() -> str:
        async with rt.call("whoami") as call:

            def work(graph: AgentGraph, scope: str) -> str:
                me = graph.client(scope).request("GET", "me", what="GET /me",
                                                 params={"$select": "id,displayName,userPrincipalName,mail"})
                config = rt.config
                token = rt.credential.get_token("https://graph.microsoft.com/.default")
                left = int(token.expires_on - time.time())
                expiry = _dt.datetime.fromtimestamp(token.expires_on, _dt.timezone.utc).strftime("%Y-%m-%d %H:%M:%SZ")
                key_ref = config.key_ref
                kind = getattr(key_ref, "kind", "?")
                provider = _PROVIDERS.get(str(config.key_provider), str(config.key_provider or kind))
                return "\n".join([
                    f"Agent User: {me.get('displayName') or '?'} <{me.get('userPrincipalName')}> id={me.get('id')}",
                    f"Agent Identity (app id): {config.agent_identity_app_id}",
                    f"Blueprint (app id): {config.blueprint_app_id}",
                    f"Tenant: {config.tenant_id}",
                    f"Key: {provider}; reference kind {kind}; certificate x5t#S256 {config.cert_x5t_s256 or '?'}",
                    f"Token: Graph, expires {expiry} (in {left} s)",
                    f"Consented delegated scopes: {' '.join(sorted(graph.granted())) or '(none)'}",
                ])

            return await rt.graph_work(call, PERMISSIONS["whoami"], work)

    @server.tool(description="The last tool calls from the local audit trail (message bodies appear only as "
                 "hash + length). No Graph call, no permission needed.")
    async def audit_log(
        last: Annotated[int, Field(ge=1, le=500, description="how many of the latest calls")] = 20,
        tool: Annotated[str | None, Field(description="only calls of this tool")] = None,
        status: Annotated[str | None, Field(description="only this outcome: ok, error, refused, declined, "
                                            "cancelled, timeout")] = None,
    ) -> str:
        async with rt.call("audit_log", last=last, tool=tool, status=status):
            records = rt.audit.read(AuditFilter(tool=tool, status=status, last=last))
            if not records:
                return f"No audit records yet in {rt.audit.path}."
            return f"{len(records)} record(s) from {rt.audit.path}, oldest first:\n" + "\n".join(
                format_record(r) for r in records)
