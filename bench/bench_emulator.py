"""Emulator throughput: is the local Entra fast enough for the client benchmarks to measure the client?

All numbers are ratios against a baseline measured in the same run: a warm
(keep-alive) GET of the JWKS document, which is pure HTTP + TLS record cost.

1. Warm per-request cost of each token leg (hop 1 verifies an RSA assertion,
   hops 2/3 verify emulator tokens and mint new ones) and of Graph /me.
2. Cold hop 1 (new TLS connection per request) vs warm hop 1.
3. 16 clients cold-starting the full three-hop chain at once vs one client
   alone: the wall-time ratio shows whether the server serialises them
   (a ratio near 16 would; per-connection threads keep it well below).

Run: python bench/bench_emulator.py    (finishes in well under 60 s on 2 cores)
"""

from __future__ import annotations

import statistics
import time
import uuid

import jwt
import requests
from cryptography.hazmat.primitives import serialization

from entraclaw.auth.certgen import generate_rsa_key, self_signed_certificate
from entraclaw.auth.thumbprint import compute_cert_thumbprint
from entraclaw.emulator import Emulator

JWT_BEARER = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"
EXCHANGE = "api://AzureADTokenExchange/.default"


class Chain:
    def __init__(self, emu: Emulator) -> None:
        self.emu = emu
        self.key = generate_rsa_key()
        self.cert = self_signed_certificate(self.key, "bench")
        self.x5t = compute_cert_thumbprint(self.cert.public_bytes(serialization.Encoding.DER))
        self.bp = emu.tenant.add_blueprint("bench bp", certificates=[self.cert])
        self.ai = emu.tenant.add_agent_identity(self.bp.app_id, "bench ai")
        self.au = emu.tenant.add_agent_user(self.ai.app_id, "bench@contoso.test", "Bench")
        emu.tenant.grant_consent(self.ai.app_id, scopes=["User.Read"])

    def assertion(self) -> str:
        now = int(time.time())
        claims = {
            "aud": self.emu.token_endpoint,
            "iss": self.bp.app_id,
            "sub": self.bp.app_id,
            "jti": str(uuid.uuid4()),
            "iat": now,
            "nbf": now,
            "exp": now + 600,
        }
        return jwt.encode(claims, self.key, algorithm="RS256", headers={"x5t#S256": self.x5t})

    def _post(self, s: requests.Session, form: dict[str, str]) -> str:
        r = s.post(self.emu.token_endpoint, data=form, timeout=30)
        r.raise_for_status()
        return str(r.json()["access_token"])

    def hop1(self, s: requests.Session) -> str:
        return self._post(
            s,
            {
                "client_id": self.bp.app_id,
                "grant_type": "client_credentials",
                "scope": EXCHANGE,
                "client_assertion_type": JWT_BEARER,
                "client_assertion": self.assertion(),
                "fmi_path": self.ai.app_id,
            },
        )

    def hop2(self, s: requests.Session, t1: str) -> str:
        return self._post(
            s,
            {
                "client_id": self.ai.app_id,
                "grant_type": "client_credentials",
                "scope": EXCHANGE,
                "client_assertion_type": JWT_BEARER,
                "client_assertion": t1,
            },
        )

    def hop3(self, s: requests.Session, t1: str, t2: str) -> str:
        return self._post(
            s,
            {
                "client_id": self.ai.app_id,
                "grant_type": "user_fic",
                "scope": "https://graph.microsoft.com/.default openid profile offline_access",
                "client_assertion_type": JWT_BEARER,
                "client_assertion": t1,
                "user_federated_identity_credential": t2,
                "user_id": self.au.object_id,
                "client_info": "1",
            },
        )

    def full(self, s: requests.Session) -> str:
        t1 = self.hop1(s)
        return self.hop3(s, t1, self.hop2(s, t1))


def per_call(fn, n: int, repeats: int = 3) -> float:
    best = float("inf")
    for _ in range(repeats):
        start = time.perf_counter()
        for _ in range(n):
            fn()
        best = min(best, (time.perf_counter() - start) / n)
    return best


def main() -> None:
    with Emulator() as emu:
        chain = Chain(emu)
        warm = emu.session()
        t1 = chain.hop1(warm)
        t2 = chain.hop2(warm, t1)
        t3 = chain.hop3(warm, t1, t2)
        me_headers = {"Authorization": f"Bearer {t3}"}
        n = 150

        base = per_call(lambda: warm.get(emu.jwks_uri, timeout=30).raise_for_status(), n)
        rows = [
            ("GET JWKS, warm (baseline)", base),
            ("hop 1 (cert assertion -> T1), warm", per_call(lambda: chain.hop1(warm), n)),
            ("hop 2 (T1 -> T2), warm", per_call(lambda: chain.hop2(warm, t1), n)),
            ("hop 3 (user_fic -> T3), warm", per_call(lambda: chain.hop3(warm, t1, t2), n)),
            (
                "Graph GET /me, warm",
                per_call(lambda: warm.get(f"{emu.graph_url}/me", headers=me_headers, timeout=30).raise_for_status(), n),
            ),
        ]

        def cold_hop1() -> None:
            with emu.session() as s:
                chain.hop1(s)

        rows.append(("hop 1, cold (new TLS connection)", per_call(cold_hop1, 50)))

        def cold_chain() -> None:
            with emu.session() as s:
                chain.full(s)

        alone_inproc = statistics.median(_timed(cold_chain) for _ in range(7))
        # Clients in their own processes, as the credential benchmark runs them: the server's GIL
        # is then its own, and the ratio shows the server's parallelism, not the client's.
        alone = statistics.median(_run_clients(emu, chain, 1) for _ in range(3))
        together = statistics.median(_run_clients(emu, chain, 16) for _ in range(3))

    print("Emulator throughput (ratios against the warm JWKS GET of this run)")
    print(f"{'operation':<40} {'ms/op':>8} {'x baseline':>11}")
    for name, seconds in rows:
        print(f"{name:<40} {seconds * 1e3:8.2f} {seconds / base:11.1f}")
    print()
    print("16 clients cold-starting the three-hop chain at once vs one alone (wall time)")
    print(f"{'case':<40} {'ms':>8} {'x alone':>11}")
    print(f"{'one chain, in-process client (cold)':<40} {alone_inproc * 1e3:8.1f} {alone_inproc / alone:11.1f}")
    print(f"{'one chain alone (cold)':<40} {alone * 1e3:8.1f} {1.0:11.1f}")
    print(f"{'16 chains at once (cold)':<40} {together * 1e3:8.1f} {together / alone:11.1f}")
    print(f"{'(fully serialised would be)':<40} {alone * 16e3:8.1f} {16.0:11.1f}")


def _client(args: tuple[str, str, str, str, str, str, bytes, str]) -> float:
    """One process: wait for the start signal file, run a cold three-hop chain, return seconds."""
    import os

    token_endpoint, bp_app_id, ai_app_id, au_oid, ca_path, x5t, key_pem, go_file = args
    from cryptography.hazmat.primitives.serialization import load_pem_private_key

    from entraclaw.config import make_session

    key = load_pem_private_key(key_pem, password=None)
    while not os.path.exists(go_file):
        time.sleep(0.001)
    start = time.perf_counter()
    with make_session(ca_path) as s:

        def post(form: dict[str, str]) -> str:
            r = s.post(token_endpoint, data=form, timeout=30)
            r.raise_for_status()
            return str(r.json()["access_token"])

        now = int(time.time())
        assertion = jwt.encode(
            {
                "aud": token_endpoint,
                "iss": bp_app_id,
                "sub": bp_app_id,
                "jti": str(uuid.uuid4()),
                "iat": now,
                "nbf": now,
                "exp": now + 600,
            },
            key,
            algorithm="RS256",
            headers={"x5t#S256": x5t},
        )
        t1 = post(
            {
                "client_id": bp_app_id,
                "grant_type": "client_credentials",
                "scope": EXCHANGE,
                "client_assertion_type": JWT_BEARER,
                "client_assertion": assertion,
                "fmi_path": ai_app_id,
            }
        )
        t2 = post(
            {
                "client_id": ai_app_id,
                "grant_type": "client_credentials",
                "scope": EXCHANGE,
                "client_assertion_type": JWT_BEARER,
                "client_assertion": t1,
            }
        )
        post(
            {
                "client_id": ai_app_id,
                "grant_type": "user_fic",
                "scope": "https://graph.microsoft.com/.default",
                "client_assertion_type": JWT_BEARER,
                "client_assertion": t1,
                "user_federated_identity_credential": t2,
                "user_id": au_oid,
            }
        )
    return time.perf_counter() - start


def _run_clients(emu: Emulator, chain: Chain, count: int) -> float:
    """Wall time from the start signal until ``count`` client processes have all finished a chain."""
    import multiprocessing
    import os
    import tempfile

    key_pem = chain.key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    with tempfile.TemporaryDirectory() as tmp:
        go_file = os.path.join(tmp, "go")
        args = (
            emu.token_endpoint,
            chain.bp.app_id,
            chain.ai.app_id,
            chain.au.object_id,
            emu.ca_bundle_path,
            chain.x5t,
            key_pem,
            go_file,
        )
        ctx = multiprocessing.get_context("fork")
        with ctx.Pool(count) as pool:
            pending = pool.map_async(_client, [args] * count)
            time.sleep(0.3)  # let every worker reach its wait loop
            start = time.perf_counter()
            open(go_file, "w").close()
            pending.get(timeout=60)
            return time.perf_counter() - start


def _timed(fn) -> float:
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


if __name__ == "__main__":
    main()
