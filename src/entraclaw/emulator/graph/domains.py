"""``/domains``: the tenant's domains, so setup can pick the default verified one for the Agent User's UPN.

Follows https://learn.microsoft.com/graph/api/domain-list and domain-get: app roles and scp
Domain.Read.All (least), Domain.ReadWrite.All, Directory.Read.All, Directory.ReadWrite.All.
The emulator's tenant has one initial, default, verified ``emulator<id>.onmicrosoft.com`` domain;
tests add more with ``tenant.add_domain``. ``$filter`` is not supported on /domains (docs: the
list supports no OData query parameters besides $select), so it is refused.
"""

from __future__ import annotations

from typing import Any

from entraclaw.emulator.graph._core import (
    Context,
    GraphResponse,
    bad_request,
    entity,
    method_not_allowed,
    no_segment,
    not_found,
    page,
    require,
)
from entraclaw.emulator.tenant import Domain

__all__ = ["handle"]

_READ = ("Domain.Read.All", "Domain.ReadWrite.All", "Directory.Read.All", "Directory.ReadWrite.All")


def domain_json(domain: Domain) -> dict[str, Any]:
    return {
        "authenticationType": "Managed",
        "availabilityStatus": None,
        "id": domain.name,
        "isAdminManaged": True,
        "isDefault": domain.is_default,
        "isInitial": domain.is_initial,
        "isRoot": True,
        "isVerified": domain.is_verified,
        "passwordNotificationWindowInDays": None,
        "passwordValidityPeriodInDays": None,
        "supportedServices": ["Email", "OfficeCommunicationsOnline"],
        "state": None,
    }


def handle(ctx: Context) -> GraphResponse:
    seg = ctx.req.segments
    if ctx.req.method != "GET":
        raise method_not_allowed(ctx.req.method, "domains")
    require(ctx.caller, app=_READ, delegated=_READ)
    if "$filter" in ctx.req.query:
        raise bad_request("Unsupported query: /domains does not support $filter.", "Request_UnsupportedQuery")
    if len(seg) == 1:
        items = [domain_json(d) for d in ctx.tenant.domains]
        return page(ctx, items, "domains")
    if len(seg) == 2:
        domain = next((d for d in ctx.tenant.domains if d.name == seg[1].lower()), None)
        if domain is None:
            raise not_found(seg[1])
        return GraphResponse(200, entity(ctx, "domains", domain_json(domain)))
    raise no_segment(seg[2])
