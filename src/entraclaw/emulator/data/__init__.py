"""Facts the emulator carries as data (each entry names its source): Graph's permission ids, first-party resources."""

from __future__ import annotations

import json
from functools import cache
from importlib import resources
from typing import Any

__all__ = ["load_data"]


@cache
def load_data(name: str) -> Any:
    """The parsed JSON file ``name`` of this package."""
    return json.loads(resources.files(__name__).joinpath(name).read_text(encoding="utf-8"))
