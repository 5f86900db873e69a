"""docs/fidelity.md stays true: every row names a source and a test, and every test it names exists."""

from __future__ import annotations

import ast
import re
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
LEDGER = ROOT / "docs" / "fidelity.md"
# `tests/x.py::test_a` (or `x.py::test_a`), a bare `tests/x.py`, `::test_b` (a further test of the file
# named before it), and a bare `test_c` (found in whichever test file defines it).
TEST_REF = re.compile(r"((?:tests/)?[\w/]+\.py)?(?:::(\w+))?|\b(test_\w+)")


def _rows() -> list[list[str]]:
    rows = []
    for line in LEDGER.read_text(encoding="utf-8").splitlines():
        if not line.startswith("|") or set(line) <= {"|", "-", " "}:
            continue
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if cells[0] == "behaviour":
            continue
        rows.append(cells)
    return rows


def _tests_in(path: Path) -> set[str]:
    tree = ast.parse(path.read_text(encoding="utf-8"))
    return {n.name for n in ast.walk(tree) if isinstance(n, ast.FunctionDef | ast.AsyncFunctionDef)}


def test_every_row_has_a_source_and_an_existing_test() -> None:
    rows = _rows()
    assert len(rows) > 30
    problems = []
    for cells in rows:
        if len(cells) != 4:
            problems.append(f"not 4 columns: {cells}")
            continue
        behaviour, source, does, pinned = cells
        if not source or not does:
            problems.append(f"{behaviour}: no source or description")
        refs = [(f, n or bare) for f, n, bare in TEST_REF.findall(pinned) if f or n or bare]
        if not refs:
            problems.append(f"{behaviour}: no test named")
        file = ""
        for named_file, name in refs:
            if named_file:
                file = named_file if named_file.startswith("tests/") else f"tests/{named_file}"
            if not file:
                if not any(name in _tests_in(p) for p in ROOT.joinpath("tests").rglob("test_*.py")):
                    problems.append(f"{behaviour}: no test named {name}")
                continue
            path = ROOT / file
            if not path.is_file():
                problems.append(f"{behaviour}: test file {file} does not exist")
            elif name and name not in _tests_in(path):
                problems.append(f"{behaviour}: {file}::{name} does not exist")
    assert problems == []
