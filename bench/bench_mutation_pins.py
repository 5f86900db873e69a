"""Each test of tests/test_security_pins.py against the mutant it was written for: the test must fail.

The six checks a hand-made mutation pass found unpinned (issue 13). Each mutant is planted by
bench/_mutant_plugin.py; the same test also runs unmutated, so a pass there is shown too.
Run: python bench/bench_mutation_pins.py   (about 2 min; prints one markdown row per pin)
"""

import os
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = str(Path(__file__).resolve().parent.parent)
CASES = [
    (
        "entraclaw.emulator.tenant.objects",
        "src/entraclaw/emulator/tenant/objects.py",
        "x5t_s256 is None and x5t is not None and cred.x5t == x5t",
        "x5t is not None and cred.x5t == x5t",
        "tests/test_security_pins.py::test_x5t_s256_wins_over_x5t",
    ),
    (
        "entraclaw.emulator.graph",
        "src/entraclaw/emulator/graph/__init__.py",
        'if claims.get("iss") != realm.issuer:',
        "if False:",
        "tests/test_security_pins.py::test_graph_refuses_a_tenant_signed_token_of_another_issuer",
    ),
    (
        "entraclaw.emulator.graph",
        "src/entraclaw/emulator/graph/__init__.py",
        "if not isinstance(nbf, (int, float)) or now < nbf - 300:",
        "if not isinstance(nbf, (int, float)):",
        "tests/test_security_pins.py::test_graph_refuses_a_token_not_valid_for_more_than_five_minutes",
    ),
    (
        "entraclaw.emulator.graph._core",
        "src/entraclaw/emulator/graph/_core.py",
        "if caller.has(*delegated) and (caller.admin or owner):",
        "if caller.has(*delegated):",
        "tests/test_security_pins.py::test_delegated_scope_without_a_role_or_ownership_cannot_write_agent_id",
    ),
    (
        "entraclaw.platform.files",
        "src/entraclaw/platform/files.py",
        "os.fsync(handle.fileno())",
        "pass",
        "tests/test_security_pins.py::test_atomic_write_fsyncs_the_temp_file_before_replacing",
    ),
    (
        "entraclaw.keystore.keyring_store",
        "src/entraclaw/keystore/keyring_store.py",
        'if "plaintext" in qualified or module.startswith("keyrings.alt.file"):',
        'if module.startswith("keyrings.alt.file"):',
        "tests/test_security_pins.py::test_a_keyring_backend_named_plaintext_is_refused_wherever_it_lives",
    ),
]
for module, path, old, new, test in CASES:
    source = Path(ROOT, path).read_text(encoding="utf-8")
    assert source.count(old) == 1, (path, old)
    with tempfile.NamedTemporaryFile("w", suffix=".py", delete=False) as f:
        f.write(source.replace(old, new))
    env = {k: v for k, v in os.environ.items() if k not in ("REQUESTS_CA_BUNDLE", "CURL_CA_BUNDLE")}
    env.update(
        PYTHONPATH=f"{ROOT}/bench",
        ENTRACLAW_MUTANT_MODULE=module,
        ENTRACLAW_MUTANT_SOURCE=f.name,
        ENTRACLAW_MUTANT_TREE=f"{ROOT}/src",
    )
    r = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-p", "_mutant_plugin", test],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
    )
    clean = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", test],
        cwd=ROOT,
        env={k: v for k, v in env.items() if not k.startswith("ENTRACLAW_MUTANT")},
        capture_output=True,
        text=True,
    )
    killed = "killed" if r.returncode else "SURVIVED"
    unmutated = "pass" if clean.returncode == 0 else "FAIL"
    print(f"| {test.split('::')[1]} | `{old}` -> `{new}` | mutant: {killed} | unmutated: {unmutated} |", flush=True)
