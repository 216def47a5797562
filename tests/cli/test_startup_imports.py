"""`edgepack --help`, `edgepack verify` and `edgepack invoke` load no ML framework (issue 14).

Each command runs through the real entry point (``python -m edgepack``) in a fresh
interpreter, which then writes the names in its ``sys.modules`` to a file. Invoke runs the
function in a child interpreter: only the parent (edgepack's side) is checked here.

The artifact is a small signed Lambda zip with a standard-library handler, made here with
edgepack's own signer and zip writer: what verify and invoke's parent do with a zip does
not depend on what the model is (benchmarks/startup.py checks the same with the sample's
real build).
"""

from __future__ import annotations

import json
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.frameworks import ML_FRAMEWORKS
from tests.signed_trees import manifest_for, sign_tree

# The ML frameworks, and the heavier libraries these three commands have no use for.
FORBIDDEN = frozenset({*ML_FRAMEWORKS, "numpy", "pydantic", "jinja2", "boto3", "botocore"})

# Runs ``edgepack ARGS`` as the console script would, then writes the top-level names of
# every loaded module to REPORT, whether the command returned, exited or raised.
_RUNNER = """
import json, runpy, sys
report, *args = sys.argv[1:]
sys.argv = ["edgepack", *args]
try:
    runpy.run_module("edgepack", run_name="__main__", alter_sys=True)
finally:
    with open(report, "w") as f:
        json.dump(sorted({name.split(".")[0] for name in sys.modules}), f)
"""

HANDLER = 'def handler(event, context):\n    return {"ok": True, "echo": event}\n'


@dataclass(frozen=True)
class Signed:
    zip: Path
    pub: Path
    event: Path


@pytest.fixture(scope="module")
def signed(tmp_path_factory: pytest.TempPathFactory) -> Signed:
    from edgepack.packaging.archive import write_zip

    work = tmp_path_factory.mktemp("startup")
    tree = work / "tree"
    tree.mkdir()
    (tree / "handler.py").write_text(HANDLER)
    manifest = manifest_for(
        "lambda-x86_64",
        "lambda",
        name="startup",
        target={"name": "lambda-x86_64", "kind": "lambda", "arch": "x86_64", "lambda_runtime": "python3.12"},
        runtime={"entrypoint": "handler.handler"},
    )
    pub = sign_tree(tree, work / "keys", manifest, epoch=1_700_000_000)
    artifact = work / "startup-1.0.0-lambda-x86_64.zip"
    write_zip(tree, artifact, 1_700_000_000)
    event = work / "event.json"
    event.write_text('{"hello": "world"}')
    return Signed(artifact, pub, event)


def _loaded(tmp_path: Path, *args: str) -> tuple[set[str], subprocess.CompletedProcess[str]]:
    report = tmp_path / "modules.json"
    proc = subprocess.run(
        [sys.executable, "-c", _RUNNER, str(report), *args], capture_output=True, text=True, timeout=300
    )
    assert proc.returncode == 0, proc.stderr
    return set(json.loads(report.read_text())), proc


def test_help_loads_no_framework(tmp_path: Path) -> None:
    modules, proc = _loaded(tmp_path, "--help")
    assert "Usage:" in proc.stdout
    assert sorted(modules & FORBIDDEN) == []


def test_verify_loads_no_framework(tmp_path: Path, signed: Signed) -> None:
    modules, proc = _loaded(tmp_path, "verify", str(signed.zip), "--key", str(signed.pub))
    assert "verified" in proc.stdout
    assert "cryptography" in modules  # the report sees what the command really loaded
    assert sorted(modules & FORBIDDEN) == []


def test_invoke_parent_loads_no_framework(tmp_path: Path, signed: Signed) -> None:
    from edgepack.errors import PlatformError
    from edgepack.invoke.lambda_base import find_python, host_arch

    if host_arch() != "x86_64":
        pytest.skip("the artifact is x86_64")
    try:
        find_python("python3.12", "x86_64")
    except PlatformError as e:
        pytest.skip(f"no CPython 3.12 on this host: {e.hint()}")
    modules, proc = _loaded(
        tmp_path, "invoke", str(signed.zip), "--key", str(signed.pub), "--event", str(signed.event)
    )
    assert json.loads(proc.stdout.splitlines()[-1]) == {"ok": True, "echo": {"hello": "world"}}
    assert sorted(modules & FORBIDDEN) == []
