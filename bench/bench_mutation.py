"""Mutation run over the security checks: how many hand-planted bugs the tests catch (not a CI test).

Targets (function by function): the emulator's verification code — ``client_assertion.py`` (Hop 1
assertion checks, replay cache), ``jwt_codec.py`` (parsing, signature), ``graph/__init__.py``
(``GraphService._bearer``/``_caller``: the Graph bearer checks) and ``graph/_core.py`` (``require``,
``agent_id_write_guard``, ``Caller``) — and the client's verify/redact code: ``auth/thumbprint.py``,
``auth/assertion.py`` and ``auth/token_errors.py`` (``redact`` and the log filter).

Mutants (one change each, inside those functions only): a comparison flipped (== / !=, < / <=,
> / >=, in / not in, is / is not), ``and`` / ``or`` swapped, a ``not`` dropped, an ``if`` that
raises made never true (the check removed), a returned True/False negated, any other ``if`` negated, a
call statement dropped. Each mutant runs the module's own test files (``-x``: the first failure kills it) in a
fresh pytest process; a mutant that hangs past the timeout counts as killed.

Why not mutmut: mutmut 3 runs the tests against a copy of the source tree it writes to
``mutants/``; entraclaw is an editable scikit-build install whose compiled ``_cng`` stand-in and
``python -m entraclaw`` subprocesses resolve to the real tree, and mutmut mutates whole files
rather than the verification functions asked for. Here a pytest plugin (``_mutant_plugin.py``)
swaps the ``__code__`` of each function for the mutant's, in the test process itself.

Run: python bench/bench_mutation.py [--module NAME] [--sample N]   (all 176 mutants: over an hour on 2
shared cores; --sample 12: about 25 min)
Prints a table: module, mutants, killed, survived, kill rate; then the survivors.
"""

from __future__ import annotations

import argparse
import ast
import copy
import os
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
SRC = ROOT / "src"


@dataclass(frozen=True)
class Target:
    module: str
    functions: tuple[str, ...]  # "name" or "Class.name"
    tests: tuple[str, ...]


TARGETS = (
    Target(
        "entraclaw.emulator.client_assertion",
        ("_numeric", "_thumbprint", "verify_certificate_assertion", "ReplayCache.claim", "ReplayCache._prune"),
        ("tests/test_security_pins.py", "tests/test_emulator_hop1.py"),
    ),
    Target(
        "entraclaw.emulator.jwt_codec",
        ("_json_part", "parse", "_padding", "verify"),
        (
            "tests/test_security_pins.py",
            "tests/test_emulator_hop1.py",
            "tests/test_emulator_hardening.py",
            "tests/test_emulator_hop2.py",
        ),
    ),
    Target(
        "entraclaw.emulator.graph",
        ("GraphService._bearer", "GraphService._caller"),
        ("tests/test_security_pins.py", "tests/test_emulator_graph_errors.py", "tests/test_emulator_graph.py"),
    ),
    Target(
        "entraclaw.emulator.graph._core",
        (
            "require",
            "agent_id_write_guard",
            "Caller.has",
            "Caller.owns",
            "Caller.ids",
            "Caller.admin",
            "Caller.delegated",
        ),
        (
            "tests/test_security_pins.py",
            "tests/test_emulator_graph_errors.py",
            "tests/test_emulator_graph_applications.py",
            "tests/test_emulator_graph_service_principals.py",
        ),
    ),
    Target(
        "entraclaw.auth.thumbprint",
        ("validate_x5t_s256", "validate_sha1_thumbprint", "compute_cert_thumbprint", "compute_sha1_thumbprint"),
        ("tests/test_foundation_thumbprint.py", "tests/test_foundation_assertion.py"),
    ),
    Target(
        "entraclaw.auth.assertion",
        ("build_client_assertion", "_check_endpoint"),
        ("tests/test_foundation_assertion.py",),
    ),
    Target(
        "entraclaw.auth.token_errors",
        ("redact", "_RedactingFilter.filter", "_description", "_shaped_field", "_text_field"),
        ("tests/test_credential_errors.py", "tests/test_foundation_errors.py", "tests/test_longrun_typed.py"),
    ),
)

_FLIP = {
    ast.Eq: ast.NotEq, ast.NotEq: ast.Eq, ast.Lt: ast.LtE, ast.LtE: ast.Lt, ast.Gt: ast.GtE, ast.GtE: ast.Gt,
    ast.In: ast.NotIn, ast.NotIn: ast.In, ast.Is: ast.IsNot, ast.IsNot: ast.Is,
}  # fmt: skip


@dataclass(frozen=True)
class Mutant:
    function: str
    line: int
    what: str
    source: str


def _module_path(module: str) -> Path:
    relative = Path(*module.split("."))
    candidate = SRC / relative.with_suffix(".py")
    return candidate if candidate.exists() else SRC / relative / "__init__.py"


def _target_nodes(tree: ast.Module, functions: tuple[str, ...]) -> Iterator[tuple[str, ast.AST]]:
    for node in tree.body:
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)) and node.name in functions:
            yield node.name, node
        if isinstance(node, ast.ClassDef):
            for item in node.body:
                name = f"{node.name}.{getattr(item, 'name', '')}"
                if isinstance(item, (ast.FunctionDef, ast.AsyncFunctionDef)) and name in functions:
                    yield name, item


def _sites(fn: ast.AST) -> Iterator[tuple[ast.AST, int, str]]:
    """(node, variant, description) for every mutation of ``fn``'s body."""
    for node in ast.walk(fn):
        if isinstance(node, ast.Compare):
            for i, op in enumerate(node.ops):
                if type(op) in _FLIP:
                    yield node, i, f"{type(op).__name__} -> {_FLIP[type(op)].__name__}"
        elif isinstance(node, ast.BoolOp):
            yield node, 0, f"{type(node.op).__name__} -> {'Or' if isinstance(node.op, ast.And) else 'And'}"
        elif isinstance(node, ast.UnaryOp) and isinstance(node.op, ast.Not):
            yield node, 0, "not dropped"
        elif isinstance(node, ast.If) and any(isinstance(s, ast.Raise) for s in node.body):
            yield node, 0, "raising check removed"
        elif isinstance(node, ast.If):
            yield node, 1, "if condition negated"
        elif isinstance(node, ast.Return) and isinstance(node.value, ast.Constant) and type(node.value.value) is bool:
            yield node, 0, f"return {node.value.value} -> {not node.value.value}"
        elif isinstance(node, ast.Expr) and isinstance(node.value, ast.Call):
            yield node, 0, "call dropped"


def _apply(node: ast.AST, variant: int) -> None:
    if isinstance(node, ast.Compare):
        node.ops[variant] = _FLIP[type(node.ops[variant])]()
    elif isinstance(node, ast.BoolOp):
        node.op = ast.Or() if isinstance(node.op, ast.And) else ast.And()
    elif isinstance(node, ast.If):
        node.test = ast.Constant(False) if variant == 0 else ast.UnaryOp(ast.Not(), node.test)
    elif isinstance(node, ast.Return):
        assert isinstance(node.value, ast.Constant)
        node.value = ast.Constant(not node.value.value)


class _Rewriter(ast.NodeTransformer):
    """Replaces the one marked node (unary not -> operand; call statement -> pass)."""

    def __init__(self, marked: ast.AST) -> None:
        self.marked = marked

    def visit_UnaryOp(self, node: ast.UnaryOp) -> ast.AST:
        self.generic_visit(node)
        return node.operand if node is self.marked else node

    def visit_Expr(self, node: ast.Expr) -> ast.AST:
        self.generic_visit(node)
        return ast.Pass() if node is self.marked else node


def mutants(target: Target) -> list[Mutant]:
    original = ast.parse(_module_path(target.module).read_text(encoding="utf-8"))
    out: list[Mutant] = []
    for name, fn in _target_nodes(original, target.functions):
        for index, (_, variant, what) in enumerate(list(_sites(fn))):
            tree = copy.deepcopy(original)
            fn_copy = dict(_target_nodes(tree, (name,)))[name]
            node, _, _ = list(_sites(fn_copy))[index]
            line = getattr(node, "lineno", 0)
            _apply(node, variant)
            tree = ast.fix_missing_locations(_Rewriter(node).visit(tree))
            out.append(Mutant(name, line, what, ast.unparse(tree)))
    return out


def _run(target: Target, source: str | None, timeout: float, tree: Path) -> str:
    env = {k: v for k, v in os.environ.items() if k not in ("REQUESTS_CA_BUNDLE", "CURL_CA_BUNDLE")}
    env["PYTHONPATH"] = os.pathsep.join([str(ROOT / "bench"), env.get("PYTHONPATH", "")])
    env["ENTRACLAW_MUTANT_TREE"] = str(tree / "src")
    with tempfile.NamedTemporaryFile("w", suffix=".py", delete=False, encoding="utf-8") as handle:
        handle.write(source or "")
    if source is not None:
        env["ENTRACLAW_MUTANT_MODULE"], env["ENTRACLAW_MUTANT_SOURCE"] = target.module, handle.name
    argv = [sys.executable, "-m", "pytest", "-x", "-q", "-p", "no:cacheprovider", "-p", "_mutant_plugin"]
    try:
        proc = subprocess.run([*argv, *target.tests], cwd=tree, env=env, capture_output=True, timeout=timeout)
    except subprocess.TimeoutExpired:
        return "timeout"
    finally:
        os.unlink(handle.name)
    if proc.returncode == 97:
        return "unplantable"
    return "survived" if proc.returncode == 0 else "killed"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--module", action="append", help="only this module (repeatable)")
    parser.add_argument(
        "--sample", type=int, default=0, help="at most N mutants per module, evenly spaced over its list (0: all)"
    )
    parser.add_argument("--timeout", type=float, default=300.0, help="seconds per mutant before it counts as killed")
    args = parser.parse_args()
    # The run uses a copy of src/ and tests/ taken now: editing the tree meanwhile does not leak in.
    snapshot = tempfile.TemporaryDirectory(prefix="entraclaw-mutation-")
    tree = Path(snapshot.name)
    for part in ("src", "tests", "pyproject.toml"):
        source_path = ROOT / part
        if source_path.is_dir():
            shutil.copytree(source_path, tree / part, ignore=shutil.ignore_patterns("__pycache__"))
        else:
            shutil.copy2(source_path, tree / part)
    rows: list[tuple[str, int, int, int, int]] = []
    survivors: list[tuple[str, Mutant]] = []
    for target in TARGETS:
        if args.module and target.module not in args.module:
            continue
        if _run(target, None, args.timeout, tree) != "survived":
            print(f"{target.module}: the unmutated tests fail; skipped", file=sys.stderr)
            continue
        found = mutants(target)
        if args.sample and len(found) > args.sample:
            step = len(found) / args.sample
            found = [found[int(i * step)] for i in range(args.sample)]
        killed = survived = unplantable = 0
        started = time.monotonic()
        for mutant in found:
            outcome = _run(target, mutant.source, args.timeout, tree)
            if outcome == "survived":
                survived += 1
                survivors.append((target.module, mutant))
            elif outcome == "unplantable":
                unplantable += 1
            else:
                killed += 1
            print(f"  {target.module} {mutant.function}:{mutant.line} {mutant.what}: {outcome}", file=sys.stderr)
        print(f"{target.module}: {len(found)} mutants in {time.monotonic() - started:.0f} s", file=sys.stderr)
        rows.append((target.module, len(found) - unplantable, killed, survived, unplantable))
    print("| module | mutants | killed | survived | kill rate |")
    print("|---|---:|---:|---:|---:|")
    total = [0, 0, 0]
    for module, count, killed, survived, _ in rows:
        total = [total[0] + count, total[1] + killed, total[2] + survived]
        rate = f"{killed / count:.0%}" if count else "-"
        print(f"| {module} | {count} | {killed} | {survived} | {rate} |")
    if total[0]:
        print(f"| all | {total[0]} | {total[1]} | {total[2]} | {total[1] / total[0]:.0%} |")
    if survivors:
        print("\nSurvivors:")
        for module, mutant in survivors:
            print(f"- {module} {mutant.function} (line {mutant.line}): {mutant.what}")
    snapshot.cleanup()
    return 0


if __name__ == "__main__":
    sys.exit(main())
