"""pytest plugin for bench_mutation.py: swap one module's function bodies for a mutant's before tests run.

``ENTRACLAW_MUTANT_TREE`` (a copy of ``src/`` taken when the run started) is where ``entraclaw``'s
Python modules are imported from, ahead of the editable install's finder, so edits to the working
tree during a long run do not leak into it; compiled modules still come from the install.

``ENTRACLAW_MUTANT_MODULE`` names the module, ``ENTRACLAW_MUTANT_SOURCE`` a file holding its mutated
source. Every function and method of the mutated source replaces the ``__code__`` of its namesake,
so references other modules already hold (``from x import f``) run the mutant too.
"""

from __future__ import annotations

import importlib
import importlib.abc
import importlib.machinery
import importlib.util
import os
import sys
import types
from pathlib import Path
from typing import Any


class _SnapshotFinder(importlib.abc.MetaPathFinder):
    def __init__(self, src: Path) -> None:
        self.src = src

    def find_spec(self, fullname: str, path: Any = None, target: Any = None) -> importlib.machinery.ModuleSpec | None:
        if fullname != "entraclaw" and not fullname.startswith("entraclaw."):
            return None
        base = self.src.joinpath(*fullname.split("."))
        if (base / "__init__.py").exists():
            return importlib.util.spec_from_file_location(
                fullname, base / "__init__.py", submodule_search_locations=[str(base)]
            )
        if base.with_suffix(".py").exists():
            return importlib.util.spec_from_file_location(fullname, base.with_suffix(".py"))
        return None


if os.environ.get("ENTRACLAW_MUTANT_TREE"):
    sys.meta_path.insert(0, _SnapshotFinder(Path(os.environ["ENTRACLAW_MUTANT_TREE"])))


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
