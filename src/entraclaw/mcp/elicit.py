"""The approver built here: MCP elicitation (form mode), the client shows the question to its user.

The form has one required boolean, ``approve``; the client's accept with ``approve: true`` is a yes,
accept with ``false`` counts as a decline, decline and cancel are kept apart, and no answer within
the policy's timeout is ``timeout``. A platform approver (Windows Hello's UserConsentVerifier) would
implement the same :class:`entraclaw.mcp.consent.Approver` interface.
"""

from __future__ import annotations

from typing import Any

import anyio
from pydantic import BaseModel, Field

from entraclaw.mcp.consent import ConsentRequest, Outcome

__all__ = ["ApprovalForm", "ElicitationApprover"]


class ApprovalForm(BaseModel):
    approve: bool = Field(description="Allow the agent to do this?")


class ElicitationApprover:
    name = "elicitation"

    def __init__(self, ctx: Any) -> None:
        self._ctx = ctx

    def available(self) -> bool:
        """Did the client declare the elicitation capability (form mode)?"""
        try:
            capabilities = self._ctx.client_capabilities
        except Exception:
            return False
        elicitation = getattr(capabilities, "elicitation", None) if capabilities is not None else None
        if elicitation is None:
            return False
        form = getattr(elicitation, "form", None)
        url = getattr(elicitation, "url", None)
        # An empty capability object means form mode (the spec's default); url-only clients cannot show a form.
        return form is not None or url is None

    async def approve(self, request: ConsentRequest, *, timeout: float) -> Outcome:
        from mcp.server.mcpserver import AcceptedElicitation, DeclinedElicitation

        message = (
            f"entraclaw: the agent wants to {request.summary}. Policy rule: {request.rule.replace('_', ' ')}. "
            "Approve?"
        )
        with anyio.move_on_after(timeout) as scope:
            result = await self._ctx.elicit(message, ApprovalForm)
        if scope.cancelled_caught:
            return "timeout"
        if isinstance(result, AcceptedElicitation):
            return "accepted" if result.data.approve else "declined"
        if isinstance(result, DeclinedElicitation):
            return "declined"
        return "cancelled"
