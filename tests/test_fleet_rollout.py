"""A fleet rolled out at once onto one Blueprint: no device loses its certificate to another's PATCH.

Reported: one device set up, then 8 more at once with ``--patch-key-credentials`` against ``serve``;
6 of 8 exited 0 and 2 ended with AADSTS700027, because a read-modify-write PATCH keyCredentials
overwrote another device's certificate. Here the devices run as threads (the machine has 2 cores),
each with its own state directory, Graph client and key, against one emulator over HTTPS.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from entraclaw.provisioning.graph import GraphClient
from entraclaw.provisioning.setup import Setup
from provisioning_helpers import Tenant, chain_from_config, emulator_tenant


@pytest.fixture
def tenant() -> Iterator[Tenant]:
    yield from emulator_tenant()


def _device(tenant: Tenant, home: Path, index: int, domain: str, **overrides: object) -> Setup:
    options = tenant.options(
        home,
        agent_identity_name=f"fleet identity {index}",
        agent_user_upn=f"fleet{index}@{domain}",
        smoke_test=False,  # every device signs in at the end, after the whole fleet has registered
        **overrides,
    )
    return Setup(options, tenant.graph(), echo=lambda _line: None)


def _roll_out(tenant: Tenant, tmp_path: Path, devices: int) -> tuple[list[Path], list[BaseException]]:
    domain = GraphClient.default_domain(tenant.graph())
    assert domain
    first = tmp_path / "device-0"
    assert _device(tenant, first, 0, domain).run().completed
    homes = [tmp_path / f"device-{i}" for i in range(1, devices + 1)]
    setups = [_device(tenant, h, i, domain, patch_key_credentials=True) for i, h in enumerate(homes, 1)]
    start = threading.Barrier(devices)
    failures: list[BaseException] = []

    def run(setup: Setup) -> None:
        start.wait()
        try:
            setup.run()
        except BaseException as exc:
            failures.append(exc)

    threads = [threading.Thread(target=run, args=(s,)) for s in setups]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=600)
    return [first, *homes], failures


def _signs_in(home: Path) -> str | None:
    try:
        chain_from_config(home)
    except Exception as exc:
        return f"{home.name}: {type(exc).__name__}: {exc}"
    return None


@pytest.mark.slow
@pytest.mark.parametrize("devices", [8, 16])
def test_devices_set_up_at_once_on_one_blueprint_all_authenticate_afterwards(
    tenant: Tenant, tmp_path: Path, devices: int
) -> None:
    homes, failures = _roll_out(tenant, tmp_path, devices)
    assert not failures, failures
    refused = [why for why in map(_signs_in, homes) if why]
    assert not refused, refused
    bp_app_id = (homes[0] / ".env").read_text().split("ENTRACLAW_BLUEPRINT_APP_ID=", 1)[1].split("\n", 1)[0]
    graph = tenant.graph()
    blueprint = graph.find_blueprints(app_id=bp_app_id.strip().strip('"'))[0]
    assert len(graph.key_credentials(blueprint.object_id)) == devices + 1
