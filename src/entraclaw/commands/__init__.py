"""Subcommands of the ``entraclaw`` CLI, one module each (see :mod:`entraclaw.cli`)."""
