"""Entra's error answers: the AADSTS codes the emulator returns and the JSON shape they travel in.

Every refusal of the token endpoint is an :class:`StsError` raised by the checks
and turned into Entra's body by :func:`error_body`::

    {"error": "invalid_client",
     "error_description": "AADSTS700027: ... Trace ID: ... Correlation ID: ... Timestamp: ...",
     "error_codes": [700027], "timestamp": "2026-01-01 10:00:00Z",
     "trace_id": "<guid>", "correlation_id": "<client-request-id or new guid>",
     "error_uri": "https://login.microsoftonline.com/error?code=700027"}

HTTP status follows Entra: 401 for ``invalid_client``, 400 for the others.

Code table (where the code is public Entra behaviour, the source that confirms it is named; a
few failures have no documented Entra code and use the closest documented one, marked *;
"documented" = Microsoft's AADSTS reference / Azure SDK troubleshooting tables):

=========  ========================  ==========================================================
code       OAuth error               when
=========  ========================  ==========================================================
900144     invalid_request           a required parameter is missing (grant_type, client_id,
                                     scope, client_assertion, user_federated_identity_credential)
9002313    invalid_request           request malformed: user_id AND username (documented
                                     "InvalidRequest")
9002324    invalid_request *         client_secret and client_assertion sent together (code as
                                     agreed in the project brief; not confirmed publicly)
7000216    invalid_client            client_credentials / user_fic without any credential
                                     (documented: "'client_assertion', 'client_secret' or
                                     'request' is required")
7000215    invalid_client            a client_secret was sent; no app here has secrets
700016     unauthorized_client       client_id is not an application in the tenant
90002      invalid_request           the tenant in the URL is not this tenant
70003      unsupported_grant_type    grant type other than client_credentials / user_fic
700021 *   invalid_client            client_assertion_type is not jwt-bearer (no public code;
                                     700021 is Entra's "client assertion application
                                     identifier" family)
700021     invalid_client            assertion ``iss``/``sub`` is not the client_id
                                     (documented: "Client assertion application identifier
                                     doesn't match 'client_id' parameter")
700023     invalid_client            assertion ``aud`` is not this token endpoint (documented:
                                     "Client assertion audience claim does not match Realm
                                     issuer")
50027      invalid_request           a JWT that is not a JWT (parts, base64url, JSON), missing
                                     ``exp``; for T1/T2: bad signature, issuer or audience
                                     (documented: "JWT token is invalid or malformed")
5002727    invalid_request           header ``typ`` not JWT (documented)
700027     invalid_client            the x5t#S256 / x5t names no registered key, or the
                                     signature does not verify, or alg is not RS256/PS256
                                     (documented: "certificate with identifier ... is not
                                     registered" / "failed signature validation")
7000274    invalid_client            the registered certificate (or its keyCredential window) is
                                     expired or not yet valid (Microsoft.Identity.Web:
                                     CertificateNotWithinValidityPeriod)
700024     invalid_client            assertion outside nbf/exp (5 min skew), or lifetime over
                                     the 10-minute cap (documented: "Client assertion is not
                                     within its valid time range")
50013 *    invalid_client            assertion ``jti`` already used (documented generic
                                     "InvalidAssertion"; Entra publishes no replay code)
700213     invalid_client            T1 presented by an Agent Identity it was not minted for, or
                                     minted by a Blueprint that is not its parent (documented
                                     FIC family: "No matching federated identity record found
                                     for presented assertion subject")
50013      invalid_grant             T2 expired or issued to another Agent Identity
70011      invalid_scope             scope not valid for the grant (documented)
500011     invalid_resource          scope names a resource not in the tenant (documented)
50034      invalid_grant             user_id / username names no user (documented
                                     "UserAccountNotFound")
50000 *    invalid_grant             a UPN sent as ``user_id`` (the object id slot), as agreed in
                                     the brief ("There was an error issuing a token")
70000 *    invalid_grant             the Agent User's identity parent is another Agent Identity;
                                     ``fmi_path`` names no Agent Identity of this Blueprint; a
                                     Blueprint tries ``user_fic`` (documented generic
                                     "InvalidGrant")
9002313    invalid_request           ``requested_token_use`` other than ``on_behalf_of``
90055      temporarily_unavailable   injected 429 fault (documented "TenantThrottlingError")
90033      temporarily_unavailable   injected 5xx fault (documented transient error)
65001      invalid_grant             no consent for the requested scope (documented)
7000229    invalid_client            the app has no service principal (yet) in the tenant, e.g. a
                                     Blueprint made over Graph without its Blueprint principal
                                     (Entra's text "is missing service principal in the tenant";
                                     not in the published table)
700016     unauthorized_client       also: an object made over Graph that has not propagated yet
                                     (``propagation_delay``)
7000218    invalid_client            device code asked for by a confidential (non-public) client
                                     (documented "request body must contain ... client_assertion
                                     or client_secret")
70016      authorization_pending     device code not approved yet (documented AuthorizationPending)
70016 *    slow_down                 polled sooner than ``interval`` (RFC 8628; no Entra code)
70018      bad_verification_code     unknown, foreign or already redeemed device code (documented
                                     BadVerificationCode)
70019      expired_token             device code past ``expires_in`` (documented CodeExpired)
65004 *    authorization_declined    the user declined the device code (Entra's error name is
                                     documented; its code is not)
=========  ========================  ==========================================================
"""

from __future__ import annotations

import datetime as _dt
import uuid
from dataclasses import dataclass
from typing import Any

__all__ = ["CLIENT_ASSERTION_TYPE", "StsError", "error_body", "status_for"]

CLIENT_ASSERTION_TYPE = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"

_STATUS = {"invalid_client": 401}


def status_for(error: str) -> int:
    return _STATUS.get(error, 400)


@dataclass
class StsError(Exception):
    """A refusal in Entra's terms. ``description`` never contains a token or key."""

    code: int
    error: str
    description: str

    def __str__(self) -> str:
        return f"AADSTS{self.code}: {self.description}"

    @property
    def status(self) -> int:
        return status_for(self.error)


def _timestamp(now: float) -> str:
    return _dt.datetime.fromtimestamp(now, _dt.timezone.utc).strftime("%Y-%m-%d %H:%M:%SZ")


def error_body(err: StsError, *, correlation_id: str | None, now: float) -> dict[str, Any]:
    trace_id = str(uuid.uuid4())
    correlation = correlation_id or str(uuid.uuid4())
    stamp = _timestamp(now)
    return {
        "error": err.error,
        "error_description": (
            f"AADSTS{err.code}: {err.description} Trace ID: {trace_id} Correlation ID: {correlation} Timestamp: {stamp}"
        ),
        "error_codes": [err.code],
        "timestamp": stamp,
        "trace_id": trace_id,
        "correlation_id": correlation,
        "error_uri": f"https://login.microsoftonline.com/error?code={err.code}",
    }


# --- refusals raised by more than one check -------------------------------------------


def missing_parameter(name: str) -> StsError:
    return StsError(900144, "invalid_request", f"The request body must contain the following parameter: '{name}'.")


def app_not_found(client_id: str, tenant_id: str) -> StsError:
    return StsError(
        700016,
        "unauthorized_client",
        f"Application with identifier '{client_id}' was not found in the directory '{tenant_id}'.",
    )


def resource_not_found(resource: str, tenant_id: str) -> StsError:
    return StsError(
        500011,
        "invalid_resource",
        f"The resource principal named {resource} was not found in the tenant named {tenant_id}.",
    )


def user_not_found(user: str, tenant_id: str) -> StsError:
    return StsError(50034, "invalid_grant", f"The user account {user} does not exist in the {tenant_id} directory.")
