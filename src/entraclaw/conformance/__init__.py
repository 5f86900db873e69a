"""Conformance: run the provisioning and token flow against a tenant and keep a sanitized transcript.

``entraclaw conformance --record FILE`` runs :mod:`~entraclaw.conformance.scenario` against the
configured tenant (or the emulator) and writes a :class:`~entraclaw.conformance.transcript.Transcript`;
``tests/fidelity/`` replays every stored transcript against the emulator and fails on any difference.
"""

from entraclaw.conformance.transcript import FORMAT, Entry, Transcript, compare

__all__ = ["FORMAT", "Entry", "Transcript", "compare"]
