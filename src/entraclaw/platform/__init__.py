"""The platform layer: where entraclaw keeps its state on this machine.

- :mod:`entraclaw.platform.paths`: the state directory (one resolver) and the files in it;
- :mod:`entraclaw.platform.dotenv`: the ``.env`` file (atomic, owner-only, in-place updates);
- :mod:`entraclaw.platform.files`: atomic owner-only writes (POSIX mode, Windows DACL).

Per-OS imports are deferred to the functions that need them.
"""
