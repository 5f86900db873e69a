"""Writes that reference an object still propagating: Entra's 400s, per referenced kind.

The tenant stamps objects created over Graph with ``visible_at`` (``propagation_delay``). Reads
already 404 until then; a write that names such an object (PATCH or addKey on a new Blueprint,
its principal, an Agent Identity under a new principal, an Agent User under a new Agent Identity,
a consent for a new Agent User, a role assignment for a new principal) gets what real Entra answers
when the request lands on a replica that has not seen the create yet:

- ``400 Object with id {id} not found`` — Microsoft Entra Agent ID FAQ ("Why do sequential Microsoft
  Graph API requests sometimes fail when creating agent identity objects?",
  https://learn.microsoft.com/entra/agent-id/faq). The error *code* is not documented; Graph's
  general ``Request_BadRequest`` is used;
- ``AgentIdentity_AgentBlueprintPrincipalDoesNotExist`` for an Agent Identity whose Blueprint
  principal is not there yet (upstream microsoft/entraclaw ``docs/runbooks/hard-won-learnings.md``);
- ``Principal was not found`` for a consent grant naming a new Agent User (upstream
  ``scripts/create_entra_agent_ids.py``, its consent retry).

DELETE stays permissive (a rollback right after a create): the docs are silent on it.
"""

from __future__ import annotations

from typing import Any

from entraclaw.emulator.graph._core import Context, GraphError, bad_request

__all__ = [
    "BLUEPRINT_PRINCIPAL_MISSING",
    "PRINCIPAL_NOT_FOUND",
    "refuse_if_propagating",
    "still_propagating",
]

BLUEPRINT_PRINCIPAL_MISSING = "AgentIdentity_AgentBlueprintPrincipalDoesNotExist"
PRINCIPAL_NOT_FOUND = "Principal was not found."


def still_propagating(ctx: Context, obj: Any) -> bool:
    """True while ``obj`` (created over Graph) has not reached every replica yet."""
    return obj is not None and not ctx.tenant.visible(obj)


def object_not_found(object_id: str) -> GraphError:
    return bad_request(f"Object with id {object_id} not found.")


def refuse_if_propagating(ctx: Context, obj: Any, object_id: str, *, error: GraphError | None = None) -> None:
    """Raise Entra's 400 for a write referencing ``obj`` before it has propagated."""
    if still_propagating(ctx, obj):
        raise error if error is not None else object_not_found(object_id)
