"""The token endpoint's checks of its own tokens: T1 presented as a client assertion (Hop 2, Hop 3), T2 as
the user_federated_identity_credential (Hop 3), and the on-behalf-of assertion it refuses.

Each check raises the :class:`~entraclaw.emulator.aadsts.StsError` Entra answers with; none keeps state.
"""

from __future__ import annotations

from collections.abc import Mapping

from entraclaw.emulator import jwt_codec
from entraclaw.emulator.aadsts import StsError, missing_parameter
from entraclaw.emulator.client_assertion import ALLOWED_SKEW
from entraclaw.emulator.issuer import TOKEN_EXCHANGE_AUDIENCES, TokenIssuer
from entraclaw.emulator.realm import Realm
from entraclaw.emulator.tenant import AgentIdentity

__all__ = ["in_window", "no_federated_record", "parse_own", "refuse_on_behalf_of", "verify_t1", "verify_t2"]


def no_federated_record(identity: AgentIdentity, why: str) -> StsError:
    return StsError(
        700211,
        "invalid_client",
        f"No matching federated identity record found for presented assertion issuer: the assertion presented by "
        f"Agent Identity '{identity.app_id}' is not a T1 for it ({why}). Request T1 with "
        "scope api://AzureADTokenExchange/.default and fmi_path=<Agent Identity app id>.",
    )


def parse_own(
    issuer: TokenIssuer, token: str, what: str, realm: Realm, *, exchange_audience: bool = True
) -> jwt_codec.ParsedJwt:
    try:
        parsed = jwt_codec.parse(token)
    except jwt_codec.MalformedJwt as exc:
        raise StsError(50027, "invalid_request", f"JWT token is invalid or malformed: {what}: {exc}.") from exc
    if not issuer.verify(parsed):
        raise StsError(
            50027,
            "invalid_request",
            f"Invalid JWT token. {what} is not signed by this tenant's token signing key.",
        )
    if parsed.claims.get("iss") != realm.issuer or parsed.claims.get("tid") != realm.tenant_id:
        raise StsError(50027, "invalid_request", f"Invalid JWT token. {what} has the wrong issuer.")
    if exchange_audience and parsed.claims.get("aud") not in TOKEN_EXCHANGE_AUDIENCES:
        raise StsError(
            50027,
            "invalid_request",
            f"Invalid JWT token. {what} has the wrong audience: it must be api://AzureADTokenExchange.",
        )
    if exchange_audience and parsed.claims.get("idtyp") != "app":
        raise StsError(50027, "invalid_request", f"Invalid JWT token. {what} is not an app token.")
    return parsed


def in_window(parsed: jwt_codec.ParsedJwt, now: float) -> bool:
    exp, nbf = parsed.claims.get("exp"), parsed.claims.get("nbf", 0)
    if not isinstance(exp, (int, float)) or not isinstance(nbf, (int, float)):
        return False
    return nbf - ALLOWED_SKEW <= now <= exp


def verify_t1(issuer: TokenIssuer, token: str, identity: AgentIdentity, realm: Realm, now: float) -> None:
    t1 = parse_own(issuer, token, "The client assertion (T1)", realm, exchange_audience=False)
    if t1.claims.get("aud") not in TOKEN_EXCHANGE_AUDIENCES:
        # A token of this tenant for another resource (Hop 1 asked for Graph, without fmi_path):
        # upstream saw AADSTS700211 for exactly this (HWL Learning #12).
        raise no_federated_record(
            identity, f"its audience is {t1.claims.get('aud')!r}, not api://AzureADTokenExchange"
        )
    if t1.claims.get("idtyp") != "app":
        raise StsError(
            50027, "invalid_request", "Invalid JWT token. The client assertion (T1) is not an app token."
        )
    if not in_window(t1, now):
        raise StsError(
            700024,
            "invalid_client",
            f"Client assertion is not within its valid time range (T1 for Agent Identity {identity.app_id}).",
        )
    if t1.claims.get("appid") != identity.blueprint_app_id:
        raise StsError(
            700213,
            "invalid_client",
            f"No matching federated identity record found for presented assertion: it was issued to "
            f"'{t1.claims.get('appid')}', not to the parent Blueprint '{identity.blueprint_app_id}' of Agent "
            f"Identity '{identity.app_id}'.",
        )
    if t1.claims.get("sub") == t1.claims.get("oid"):
        # Hop 1 without fmi_path: the token is about the Blueprint itself, not an Agent Identity.
        raise no_federated_record(identity, "it was requested without fmi_path")
    if t1.claims.get("sub") != identity.app_id:
        raise StsError(
            700213,
            "invalid_client",
            f"No matching federated identity record found for presented assertion subject "
            f"'{t1.claims.get('sub')}': the assertion's fmi_path is not Agent Identity '{identity.app_id}'.",
        )


def refuse_on_behalf_of(issuer: TokenIssuer, client_id: str, form: Mapping[str, str], realm: Realm) -> None:
    """jwt-bearer (on-behalf-of): the ``assertion`` must be a token addressed to the client itself.

    Upstream (HWL Learning #40) sent a T3 (audience Graph) here and got AADSTS50013. A token
    that is addressed to the client would be exchanged by Entra; the emulator does not model
    on-behalf-of beyond this refusal and says so (docs/fidelity.md).
    """
    user_token = form.get("assertion")
    if not user_token:
        raise missing_parameter("assertion")
    try:
        parsed = jwt_codec.parse(user_token)
    except jwt_codec.MalformedJwt as exc:
        raise StsError(50013, "invalid_grant", f"Assertion is invalid: {exc}.") from exc
    aud = parsed.claims.get("aud")
    if not issuer.verify(parsed) or parsed.claims.get("iss") != realm.issuer:
        raise StsError(
            50013, "invalid_grant", "Assertion failed signature validation: it is not a token of this tenant."
        )
    if aud not in (client_id, f"api://{client_id}"):
        raise StsError(
            50013,
            "invalid_grant",
            f"Assertion is invalid: its audience {aud!r} is not the client '{client_id}' presenting it "
            "(an on-behalf-of assertion must be a token issued to that client).",
        )
    raise StsError(
        70003,
        "unsupported_grant_type",
        f"The emulator does not model the on-behalf-of exchange for '{client_id}' (Entra would); "
        "use the user_fic grant (Hop 3).",
    )


def verify_t2(issuer: TokenIssuer, token: str, identity: AgentIdentity, realm: Realm, now: float) -> None:
    t2 = parse_own(issuer, token, "The user_federated_identity_credential (T2)", realm)
    if not in_window(t2, now):
        raise StsError(
            50013,
            "invalid_grant",
            f"Assertion is not within its valid time range (T2 for Agent Identity {identity.app_id}).",
        )
    if t2.claims.get("appid") != identity.app_id:
        raise StsError(
            50013,
            "invalid_grant",
            f"Assertion is invalid: the user_federated_identity_credential was issued to "
            f"'{t2.claims.get('appid')}', not to Agent Identity '{identity.app_id}'.",
        )
