"""Provisioning and key lifecycle: ``entraclaw setup``, ``rotate`` and ``doctor`` (see docs/provisioning.md)."""
