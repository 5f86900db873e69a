"""The OAuth 2.0 device authorization grant (RFC 8628) as Entra serves it.

Modelled on "Microsoft identity platform and the OAuth 2.0 device authorization grant flow"
(https://learn.microsoft.com/entra/identity-platform/v2-oauth2-device-code):

- ``POST /{tenant}/oauth2/v2.0/devicecode`` (``client_id``, ``scope``) answers ``device_code``,
  ``user_code``, ``verification_uri``, ``expires_in`` (900 s, Entra's default), ``interval``
  (5 s) and ``message``; Entra sends no ``verification_uri_complete`` and neither does this;
- polling ``POST /{tenant}/oauth2/v2.0/token`` with
  ``grant_type=urn:ietf:params:oauth:grant-type:device_code`` answers, per the page's
  "Expected errors": ``authorization_pending`` (AADSTS70016), ``authorization_declined``,
  ``bad_verification_code`` (AADSTS70018), ``expired_token`` (AADSTS70019, "CodeExpired").
  Codes from https://learn.microsoft.com/entra/identity-platform/reference-error-codes.
- ``slow_down`` is RFC 8628 section 3.5; Entra's page does not list it and no AADSTS code is
  published for it (docs silent): the emulator answers it, with code 70016, when a client polls
  again sooner than ``interval`` after its previous poll.
- ``authorization_declined`` has no published AADSTS code either (docs silent); the emulator
  uses 65004 ("UserDeclinedConsent").

Approval: a browser sign-in at ``verification_uri`` is out of scope; the emulator approves a
code for a seeded user when ``auto_approve_upn`` is set (``serve --auto-approve``), or through
``POST /devicelogin`` (``user_code``, ``action=approve|deny``, optional ``username``), which
``entraclaw emulator approve CODE`` calls.
"""

from __future__ import annotations

import secrets
import threading
from dataclasses import dataclass

from entraclaw.emulator.aadsts import StsError

__all__ = ["DEVICE_CODE_GRANT", "DeviceFlow", "DeviceFlows"]

DEVICE_CODE_GRANT = "urn:ietf:params:oauth:grant-type:device_code"
DEVICE_CODE_LIFETIME = 900
POLL_INTERVAL = 5
# RFC 8628 section 6.1: a user code from a small alphabet without look-alike letters.
_USER_CODE_ALPHABET = "BCDFGHJKLMNPQRSTVWXZ"


@dataclass
class DeviceFlow:
    device_code: str
    user_code: str
    client_id: str
    scopes: tuple[str, ...]
    expires_at: float
    interval: int
    last_poll: float | None = None
    state: str = "pending"  # "pending" | "approved" | "declined" | "redeemed"
    user_id: str | None = None


class DeviceFlows:
    """Outstanding device codes. Held in memory only: a restart ends pending sign-ins, as in Entra."""

    def __init__(self) -> None:
        self._by_device: dict[str, DeviceFlow] = {}
        self._lock = threading.Lock()

    def start(self, client_id: str, scopes: tuple[str, ...], now: float) -> DeviceFlow:
        user_code = "".join(secrets.choice(_USER_CODE_ALPHABET) for _ in range(9))
        flow = DeviceFlow(
            device_code=secrets.token_urlsafe(48),
            user_code=user_code,
            client_id=client_id,
            scopes=scopes,
            expires_at=now + DEVICE_CODE_LIFETIME,
            interval=POLL_INTERVAL,
        )
        with self._lock:
            self._by_device = {k: v for k, v in self._by_device.items() if v.expires_at > now}
            self._by_device[flow.device_code] = flow
        return flow

    def decide(self, user_code: str, *, approve: bool, user_id: str | None, now: float) -> DeviceFlow | None:
        """Approve or decline the pending flow with ``user_code``; None when no such live code exists."""
        wanted = user_code.replace("-", "").strip().upper()
        with self._lock:
            for flow in self._by_device.values():
                if flow.user_code == wanted and flow.state == "pending" and flow.expires_at > now:
                    flow.state = "approved" if approve else "declined"
                    flow.user_id = user_id
                    return flow
        return None

    def poll(self, device_code: str, client_id: str, now: float) -> DeviceFlow:
        """The approved flow (consumed), or the StsError Entra answers for this poll."""
        with self._lock:
            flow = self._by_device.get(device_code)
            if flow is None or flow.client_id != client_id or flow.state == "redeemed":
                raise StsError(
                    70018,
                    "bad_verification_code",
                    "Invalid verification code: the device_code was not issued to this client or was already used.",
                )
            if now > flow.expires_at:
                del self._by_device[device_code]
                raise StsError(70019, "expired_token", "Verification code expired. Have the user retry the sign-in.")
            if flow.state == "declined":
                del self._by_device[device_code]
                raise StsError(65004, "authorization_declined", "The user declined the authorization request.")
            if flow.state == "approved":
                flow.state = "redeemed"
                return flow
            previous, flow.last_poll = flow.last_poll, now
            if previous is not None and now - previous < flow.interval:
                raise StsError(
                    70016,
                    "slow_down",
                    f"The client polls faster than the interval of {flow.interval} seconds; wait longer between polls.",
                )
            raise StsError(
                70016,
                "authorization_pending",
                "OAuth 2.0 device flow error. Authorization is pending. Continue polling.",
            )
