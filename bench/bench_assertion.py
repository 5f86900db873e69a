"""Client-assertion cost: entraclaw's builder against the RSA floor, MSAL's builder and PyJWT.

Baseline (ratio 1.00): one raw RSA-2048 PKCS#1 v1.5 / SHA-256 signature with
``cryptography`` over a signing input of the same size — the part no builder
can avoid. Every contender is given the key as PEM text, as callers hold it:

- ``build_client_assertion(private_key_pem=PEM)`` (entraclaw; parses the PEM once and caches the key);
- MSAL's ``JwtAssertionCreator(PEM, "RS256", sha1_thumbprint=...).create_normal_assertion``,
  what MSAL runs for ``client_credential={"private_key": PEM, "thumbprint": ...}``;
- ``jwt.encode(claims, PEM, algorithm="RS256")`` (PyJWT).

Goal: entraclaw within 1.10x of the floor and faster than both others.
Rounds interleave the contenders so drift (CPU frequency, other load) hits all
alike; each contender's ratio is the median over rounds of its time divided by
the floor's time in the same round. Each contender runs for about 40 ms per
round (a few calls for the slow ones, a few hundred for the fast ones).

Run: python bench/bench_assertion.py     (about 10 s on 2 cores)
"""

from __future__ import annotations

import statistics
import time
import uuid
from collections.abc import Callable

import jwt
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding
from msal.oauth2cli.assertion import JwtAssertionCreator

from entraclaw.auth import build_client_assertion
from entraclaw.auth.certgen import generate_rsa_key, private_key_to_pem, self_signed_certificate
from entraclaw.auth.thumbprint import compute_cert_thumbprint, compute_sha1_thumbprint

ENDPOINT = "https://login.microsoftonline.com/11111111-2222-3333-4444-555555555555/oauth2/v2.0/token"
CLIENT_ID = "66666666-7777-8888-9999-000000000000"
ROUNDS = 25
ROUND_BUDGET = 0.04  # seconds per contender per round


def main() -> None:
    key = generate_rsa_key()
    cert = self_signed_certificate(key, "bench-assertion")
    der = cert.public_bytes(serialization.Encoding.DER)
    pem = private_key_to_pem(key).decode("ascii")
    x5t_s256 = compute_cert_thumbprint(der)
    sha1_hex = compute_sha1_thumbprint(der)

    sample = build_client_assertion(
        private_key_pem=pem, cert_thumbprint=x5t_s256, client_id=CLIENT_ID, token_endpoint=ENDPOINT
    )
    signing_input = sample.rsplit(".", 1)[0].encode("ascii")
    pkcs1 = padding.PKCS1v15()
    sha256 = hashes.SHA256()
    msal_creator = JwtAssertionCreator(pem, "RS256", sha1_thumbprint=sha1_hex)

    def floor() -> object:
        return key.sign(signing_input, pkcs1, sha256)

    def entraclaw() -> object:
        return build_client_assertion(
            private_key_pem=pem, cert_thumbprint=x5t_s256, client_id=CLIENT_ID, token_endpoint=ENDPOINT
        )

    def msal_builder() -> object:
        return msal_creator.create_normal_assertion(audience=ENDPOINT, issuer=CLIENT_ID)

    def pyjwt() -> object:
        now = int(time.time())
        claims = {
            "aud": ENDPOINT,
            "iss": CLIENT_ID,
            "sub": CLIENT_ID,
            "jti": str(uuid.uuid4()),
            "iat": now,
            "nbf": now,
            "exp": now + 600,
        }
        return jwt.encode(claims, pem, algorithm="RS256", headers={"x5t#S256": x5t_s256})

    contenders: list[tuple[str, Callable[[], object]]] = [
        ("raw RSA-2048 sign (floor)", floor),
        ("entraclaw build_client_assertion(PEM)", entraclaw),
        ("MSAL JwtAssertionCreator(PEM)", msal_builder),
        ("PyJWT jwt.encode(PEM)", pyjwt),
    ]
    calls: dict[str, int] = {}
    for name, fn in contenders:  # warm-up (imports, caches) and per-round call counts
        start = time.perf_counter()
        for _ in range(3):
            fn()
        single = (time.perf_counter() - start) / 3
        calls[name] = max(2, int(ROUND_BUDGET / single))
    per_call: dict[str, list[float]] = {name: [] for name, _ in contenders}
    for _ in range(ROUNDS):
        for name, fn in contenders:
            n = calls[name]
            start = time.perf_counter()
            for _ in range(n):
                fn()
            per_call[name].append((time.perf_counter() - start) / n)

    floor_name = contenders[0][0]
    print(f"Client assertion build, RSA-2048 RS256, {ROUNDS} interleaved rounds of ~{ROUND_BUDGET * 1000:.0f} ms each")
    print(f"{'contender':<42} {'calls/round':>11} {'us/call':>10} {'ratio':>8}")
    print("-" * 74)
    ratios: dict[str, float] = {}
    for name, _ in contenders:
        paired = [t / f for t, f in zip(per_call[name], per_call[floor_name], strict=True)]
        ratios[name] = statistics.median(paired)
        median = statistics.median(per_call[name])
        print(f"{name:<42} {calls[name]:>11} {median * 1e6:>10.1f} {ratios[name]:>7.2f}x")
    ours = ratios[contenders[1][0]]
    others = min(ratios[contenders[2][0]], ratios[contenders[3][0]])
    print("-" * 74)
    print(
        f"goal: entraclaw <= 1.10x floor: {'met' if ours <= 1.10 else 'MISSED'} ({ours:.3f}x); "
        f"faster than MSAL and PyJWT: {'met' if ours < others else 'MISSED'} ({others / ours:.0f}x faster)"
    )


if __name__ == "__main__":
    main()
