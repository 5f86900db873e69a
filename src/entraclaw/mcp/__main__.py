"""``python -m entraclaw.mcp``: the same server as the ``entraclaw-mcp`` console script."""

from entraclaw.mcp.server import main

raise SystemExit(main())
