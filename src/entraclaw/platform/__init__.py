"""The platform layer: where entraclaw keeps its state on this machine.

- :mod:`entraclaw.platform.paths`: the state directory (one resolver) and the files in it;
- :mod:`entraclaw.platform.dotenv`: the ``.env`` file (atomic, owner-only, in-place updates);
- :mod:`entraclaw.platform.files`: atomic owner-only writes (POSIX mode, Windows DACL);
- :mod:`entraclaw.platform.winacl`: the Windows part, native: owner-only DACL by SID, and the
  account the process runs as (user, LocalSystem, LocalService, NetworkService).

Per-OS imports are deferred to the functions that need them.
"""
