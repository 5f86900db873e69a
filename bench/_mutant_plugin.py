"""pytest plugin for bench_mutation.py: swap one module's function bodies for a mutant's before tests run.

``ENTRACLAW_MUTANT_MODULE`` names the module, ``ENTRACLAW_MUTANT_SOURCE`` a file holding its mutated
source. Every function and method of the mutated source replaces the ``__code__`` of its namesake,
so references other modules already hold (``from x import f``) run the mutant too.
"""

from __future__ import annotations

import importlib
import os
import types
from typing import Any


def _functions(namespace: dict[str, Any], prefix: str = "") -> dict[str, types.FunctionType]:
    found: dict[str, types.FunctionType] = {}
    for name, value in namespace.items():
        if isinstance(value, (staticmethod, classmethod)):
            value = value.__func__
        if isinstance(value, property):
            for part, fn in (("fget", value.fget), ("fset", value.fset)):
                if isinstance(fn, types.FunctionType):
                    found[f"{prefix}{name}.{part}"] = fn
            continue
        wrapped = getattr(value, "__wrapped__", None)
        if isinstance(wrapped, types.FunctionType):
            value = wrapped
        if isinstance(value, types.FunctionType):
            found[prefix + name] = value
        elif isinstance(value, type) and not prefix:
            found.update(_functions(dict(vars(value)), f"{name}."))
    return found


def pytest_configure(config: Any) -> None:
    module_name = os.environ.get("ENTRACLAW_MUTANT_MODULE")
    source_path = os.environ.get("ENTRACLAW_MUTANT_SOURCE")
    if not module_name or not source_path:
        return
    module = importlib.import_module(module_name)
    with open(source_path, encoding="utf-8") as handle:
        source = handle.read()
    namespace: dict[str, Any] = {"__name__": module_name, "__file__": module.__file__}
    exec(compile(source, module.__file__ or module_name, "exec"), namespace)
    old, new = _functions(dict(vars(module))), _functions(namespace)
    for name, fn in new.items():
        if name in old and old[name].__code__ != fn.__code__:
            try:
                old[name].__code__ = fn.__code__
            except ValueError:  # a closure of another shape: this mutant cannot be planted
                os._exit(97)
