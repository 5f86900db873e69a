"""Verification of certificate client assertions (RFC 7523), the way Entra checks Hop 1.

Order matters and follows Entra: parse, header, issuer/subject, audience, key
lookup by thumbprint, certificate validity, signature, time window, lifetime,
and only then the ``jti`` replay check — so an unsigned or unverifiable
assertion can never consume a ``jti``.
"""

from __future__ import annotations

import datetime as _dt
import heapq
import math
import threading
from collections.abc import Collection

from entraclaw.emulator import jwt_codec
from entraclaw.emulator.aadsts import StsError
from entraclaw.emulator.tenant import Application, KeyCredential

__all__ = ["ALLOWED_SKEW", "MAX_LIFETIME", "ReplayCache", "verify_certificate_assertion"]

#: Clock skew Entra tolerates on nbf/exp.
ALLOWED_SKEW = 300
#: Longest assertion lifetime (exp - nbf) accepted; clients (MSAL, entraclaw) use 600 s.
MAX_LIFETIME = 600


def _utc(seconds: float) -> str:
    try:
        return _dt.datetime.fromtimestamp(seconds, _dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")
    except (OverflowError, OSError, ValueError):
        return "out of range"


class ReplayCache:
    """``jti`` values seen per client, kept until the assertion could no longer be valid anyway.

    Pruning pops expired entries off a min-heap ordered by expiry, so each claim costs
    O(log n) however many live entries there are (rebuilding the map on every request
    made Hop 1 linear in the number of assertions of the last 15 minutes). ``max_entries``
    bounds memory: past it the entry closest to expiry is forgotten first. Entra documents
    no limit; the emulator needs one so a flood cannot exhaust it.
    """

    def __init__(self, max_entries: int = 1_000_000) -> None:
        self.max_entries = max_entries
        self._seen: dict[tuple[str, str], float] = {}
        self._expiries: list[tuple[float, str, str]] = []
        self._lock = threading.Lock()

    def _prune(self, now: float) -> None:
        heap, seen = self._expiries, self._seen
        while heap and (heap[0][0] <= now or len(heap) > self.max_entries):
            expires, client_id, jti = heapq.heappop(heap)
            key = (client_id, jti)
            if seen.get(key) == expires:
                del seen[key]

    def claim(self, client_id: str, jti: str, expires: float, now: float) -> bool:
        """Record ``jti``; False when it was already used."""
        with self._lock:
            self._prune(now)
            key = (client_id, jti)
            previous = self._seen.get(key)
            if previous is not None and previous > now:
                return False
            until = float(expires + ALLOWED_SKEW)
            self._seen[key] = until
            heapq.heappush(self._expiries, (until, client_id, jti))
            return True

    def __len__(self) -> int:
        with self._lock:
            return len(self._seen)


def _numeric(claims: dict[str, object], name: str) -> float | None:
    value = claims.get(name)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise StsError(50027, "invalid_request", f"JWT token is invalid or malformed: claim '{name}' is not a number.")
    try:
        number = float(value)
    except OverflowError:  # an integer too large for a float
        number = math.inf
    if not math.isfinite(number):
        raise StsError(
            50027, "invalid_request", f"JWT token is invalid or malformed: claim '{name}' is not a finite number."
        )
    return number


def _thumbprint(value: object) -> str | None:
    """A header thumbprint in the unpadded form keys are stored under.

    MSAL and azure-identity send ``x5t`` / ``x5t#S256`` as base64url WITH '=' padding
    (``base64.urlsafe_b64encode``); upstream entraclaw and RFC 7515 send it unpadded. Entra
    takes both, so the padding a base64url value of that length would carry is dropped; any
    other '=' is left in place and so matches no key.
    """
    if not isinstance(value, str) or not value:
        return None
    bare = value.rstrip("=")
    return bare if len(value) - len(bare) == (-len(bare)) % 4 else value


def verify_certificate_assertion(
    assertion: str,
    *,
    app: Application,
    audiences: Collection[str],
    now: float,
    replay: ReplayCache,
) -> KeyCredential:
    """Check ``assertion`` for ``app``; return the key credential that verified it or raise StsError."""
    client_id = app.app_id
    try:
        jwt = jwt_codec.parse(assertion)
    except jwt_codec.MalformedJwt as exc:
        raise StsError(50027, "invalid_request", f"JWT token is invalid or malformed: {exc}.") from exc
    header, claims = jwt.header, jwt.claims

    typ = header.get("typ")
    if typ is not None and str(typ).lower() not in ("jwt", "http://openid.net/specs/jwt/1.0"):
        raise StsError(
            5002727,
            "invalid_request",
            "Invalid JWT header type specified, must be 'JWT' or 'http://openid.net/specs/jwt/1.0'.",
        )
    if claims.get("iss") != client_id or claims.get("sub") != client_id:
        raise StsError(
            700021,
            "invalid_client",
            f"Client assertion application identifier doesn't match 'client_id' parameter ({client_id}). "
            "The 'iss' and 'sub' claims must both be the client id.",
        )
    aud = claims.get("aud")
    aud_values = aud if isinstance(aud, list) else [aud]
    if not any(isinstance(a, str) and a in audiences for a in aud_values):
        raise StsError(
            700023,
            "invalid_client",
            f"Client assertion audience claim does not match Realm issuer. The 'aud' claim of the assertion "
            f"for {client_id} must be this token endpoint.",
        )

    s256 = _thumbprint(header.get("x5t#S256"))
    sha1 = _thumbprint(header.get("x5t"))
    cred = app.find_key(x5t_s256=s256, x5t=sha1) if (s256 or sha1) else None
    if cred is None:
        shown = s256 or sha1 or "(none: the header has neither x5t#S256 nor x5t)"
        raise StsError(
            700027,
            "invalid_client",
            "The certificate with identifier used to sign the client assertion is not registered on application. "
            f"[Reason - The key was not found., Thumbprint of key used by client: '{shown}', "
            f"Please visit the Azure Portal, Graph Explorer or directly use MS Graph to see configured keys "
            f"for app Id '{client_id}'.]",
        )
    if not cred.valid_at(now):
        raise StsError(
            7000274,
            "invalid_client",
            f"The certificate {cred.x5t_s256} (keyId {cred.key_id}) registered on application '{client_id}' is not "
            f"within its validity period ({_utc(max(cred.start, cred.certificate.not_valid_before_utc).timestamp())}"
            f" to {_utc(min(cred.end, cred.certificate.not_valid_after_utc).timestamp())}).",
        )
    alg = header.get("alg")
    if alg not in jwt_codec.VERIFY_ALGORITHMS or not jwt_codec.verify(jwt, cred.public_key, str(alg)):
        raise StsError(
            700027,
            "invalid_client",
            f"Client assertion failed signature validation. [Reason - The provided signature value did not match "
            f"the expected signature value., Thumbprint of key used by client: '{cred.x5t_s256}', "
            f"Found key 'Start={_utc(cred.start.timestamp())}, End={_utc(cred.end.timestamp())}', "
            f"alg '{alg}'.]",
        )

    exp = _numeric(claims, "exp")
    nbf = _numeric(claims, "nbf")
    iat = _numeric(claims, "iat")
    if exp is None:
        raise StsError(50027, "invalid_request", "JWT token is invalid or malformed: the 'exp' claim is missing.")
    start = nbf if nbf is not None else (iat if iat is not None else 0.0)
    if now < start - ALLOWED_SKEW or now > exp + ALLOWED_SKEW:
        raise StsError(
            700024,
            "invalid_client",
            f"Client assertion is not within its valid time range. Current time: {_utc(now)}, assertion valid from "
            f"{_utc(start)}, expiry time of assertion {_utc(exp)}.",
        )
    if exp - start > MAX_LIFETIME:
        raise StsError(
            700024,
            "invalid_client",
            f"Client assertion is not within its valid time range: its lifetime of {int(exp - start)} s exceeds "
            f"the maximum of {MAX_LIFETIME} s.",
        )

    jti = claims.get("jti")
    if not isinstance(jti, str) or not jti:
        raise StsError(50027, "invalid_request", "JWT token is invalid or malformed: the 'jti' claim is missing.")
    if not replay.claim(client_id, jti, exp, now):
        raise StsError(
            50013,
            "invalid_client",
            f"Assertion is invalid: the client assertion for {client_id} was already used (jti replay).",
        )
    return cred
