"""The agent: ``entraclaw-mcp``, an MCP server whose tools act as the device's Agent User in Teams and mail.

Layout: :mod:`~entraclaw.mcp.server` (the stdio server and ``main``), :mod:`~entraclaw.mcp.runtime`
(config, credential, one tool call: audit, errors, consent), :mod:`~entraclaw.mcp.graph` (Graph as the
Agent User with per-tool scopes and deadlines), ``tools/`` (one module per call family),
:mod:`~entraclaw.mcp.consent` + :mod:`~entraclaw.mcp.elicit` (human consent), :mod:`~entraclaw.mcp.audit`
(``audit.jsonl``), :mod:`~entraclaw.mcp.client_config` (Claude Code, VS Code, Copilot CLI entries).
Nothing here is imported by the layers below.
"""
