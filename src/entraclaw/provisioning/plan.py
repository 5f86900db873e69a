"""The plan setup and rotate print: one :class:`PlanStep` per step, in order, as it is decided.

A dry run decides every step with reads only and says ``would <action>``; a real run
records the same steps as it acts, so ``--dry-run`` and the run share one description.
"""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["PlanStep", "describe"]


@dataclass(frozen=True)
class PlanStep:
    step: str
    action: str  # "exists", "create", "update", "register (PATCH)", "register (addKey)", "write", "run", "skip", ...
    detail: str = ""


def describe(step: PlanStep, *, dry_run: bool) -> str:
    """The progress line for ``step``: ``[step] action: detail`` (``would`` in a dry run)."""
    marker = "would " if dry_run and step.action not in ("exists", "skip", "done") else ""
    return f"[{step.step}] {marker}{step.action}{': ' + step.detail if step.detail else ''}"
