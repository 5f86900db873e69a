"""Run a scenario with the one trust rule and return its transcript (what the CLI and the tests call)."""

from __future__ import annotations

from entraclaw.conformance.scenario import Run, run_scenario
from entraclaw.conformance.transcript import Transcript
from entraclaw.errors import ConfigurationError
from entraclaw.provisioning.auth import GraphAuth
from entraclaw.provisioning.context import Endpoints

__all__ = ["record"]


def record(
    endpoints: Endpoints,
    auth: GraphAuth,
    scenario: str,
    *,
    sponsors: list[str] | None = None,
    kind: str = "tenant",
    propagation_timeout: float = 180.0,
) -> tuple[Transcript, dict[str, int]]:
    """The sanitized transcript of ``scenario`` and how many propagation retries each step needed."""
    if scenario == "full" and not sponsors:
        raise ConfigurationError(
            "A full conformance run creates a Blueprint and an Agent Identity, which need a sponsor.",
            remedy="Pass --sponsor <user UPN or object id>, or run `entraclaw conformance --read-only --record FILE`.",
        )
    if sponsors:
        sponsors = _sponsor_ids(endpoints, auth, sponsors)
    run = Run(endpoints=endpoints, auth=auth, session=endpoints.session(), propagation_timeout=propagation_timeout)
    transcript = run_scenario(run, scenario, sponsors=sponsors)
    transcript.kind = kind
    transcript.note = f"recorded by `entraclaw conformance` ({scenario})"
    return transcript, dict(run.waits)


def _sponsor_ids(endpoints: Endpoints, auth: GraphAuth, sponsors: list[str]) -> list[str]:
    # Resolved outside the recorded run: whether a sponsor was given by UPN or by id must not change the transcript.
    from entraclaw.provisioning.graph import GraphClient

    graph = GraphClient(endpoints.graph_url, auth, session=endpoints.session())
    ids = []
    for sponsor in sponsors:
        if "@" not in sponsor:
            ids.append(sponsor)
            continue
        user = graph.find_user(sponsor)
        if user is None:
            raise ConfigurationError(
                f"Sponsor {sponsor} is not a user of tenant {endpoints.tenant_id}.",
                remedy="Pass --sponsor with an existing user's UPN or object id.",
            )
        ids.append(user.object_id)
    return ids
