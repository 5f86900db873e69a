"""The one place that decides where entraclaw's state lives.

``ENTRACLAW_HOME`` wins; otherwise ``%LOCALAPPDATA%\\entraclaw`` on Windows
(resolved through ``platformdirs``, which asks the Known Folder API rather than
trusting an environment string) and ``~/.entraclaw`` elsewhere. Every file
entraclaw keeps (``.env``, the token cache, the DPAPI key files) is named here.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Mapping
from pathlib import Path

__all__ = [
    "ENV_HOME",
    "env_file_path",
    "legacy_state_dir",
    "state_dir",
    "token_cache_path",
]

ENV_HOME = "ENTRACLAW_HOME"
APP_NAME = "entraclaw"


def _windows_local_appdata() -> Path:
    import platformdirs

    # appauthor=False: no vendor folder; roaming=False: %LOCALAPPDATA%, not %APPDATA%.
    return Path(platformdirs.user_data_dir(APP_NAME, appauthor=False, roaming=False))


def state_dir(*, environ: Mapping[str, str] | None = None, platform: str | None = None) -> Path:
    """The state directory (not created here)."""
    env = os.environ if environ is None else environ
    override = env.get(ENV_HOME, "").strip()
    if override:
        return Path(override).expanduser()
    if (platform or sys.platform) == "win32":
        return _windows_local_appdata()
    return Path.home() / ".entraclaw"


def legacy_state_dir() -> Path:
    """Where pre-Windows-port installs kept state on every OS: ``~/.entraclaw``."""
    return Path.home() / ".entraclaw"


def env_file_path(*, environ: Mapping[str, str] | None = None) -> Path:
    return state_dir(environ=environ) / ".env"


def token_cache_path(*, environ: Mapping[str, str] | None = None) -> Path:
    return state_dir(environ=environ) / "agent_tokens.bin"
