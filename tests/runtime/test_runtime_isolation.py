"""The runtime ships alone: it imports nothing from the build side, and runs in a clean
interpreter that has only the target's runtime packages (numpy, ai-edge-litert, Powertools)."""

from __future__ import annotations

import ast
import json
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy
import pytest
from runtime_helpers import load_event

from edgepack.resources import runtime_package_dir

RUNTIME_DIR = runtime_package_dir()
# Imported only inside functions, where the backend or adapter that needs them runs.
LAZY_ALLOWED = {
    "ai_edge_litert": None,
    "tflite_runtime": None,
    "onnxruntime": None,
    "openvino": None,
    "aws_lambda_powertools": {"lambda_adapter.py"},  # None: any runtime module
    "paho": {"uplink_mqtt.py"},  # the device's MQTT telemetry uplink only
    "cryptography": {"public_keys.py"},  # only where a signature is checked
    # s3:// channels on a device that has boto3 (others read the presigned HTTPS URLs)
    "boto3": {"download.py"},
    "botocore": {"download.py"},
}
BUILD_SIDE = {"edgepack", "pydantic", "jinja2", "click", "yaml", "tensorflow", "keras", "tf2onnx", "onnx"}


def _imports(tree: ast.AST) -> list[tuple[ast.stmt, bool]]:
    """Every import statement with whether it sits inside a function body."""
    found: list[tuple[ast.stmt, bool]] = []

    def visit(node: ast.AST, in_function: bool) -> None:
        for child in ast.iter_child_nodes(node):
            if isinstance(child, ast.Import | ast.ImportFrom):
                found.append((child, in_function))
            visit(
                child, in_function or isinstance(child, ast.FunctionDef | ast.AsyncFunctionDef | ast.Lambda)
            )

    visit(tree, False)
    return found


def test_every_runtime_import_is_relative_stdlib_numpy_or_a_lazy_backend() -> None:
    problems = []
    files = sorted(RUNTIME_DIR.rglob("*.py"))
    assert len(files) >= 10
    for path in files:
        rel = path.relative_to(RUNTIME_DIR).as_posix()
        for node, in_function in _imports(ast.parse(path.read_text(), str(path))):
            if isinstance(node, ast.ImportFrom) and node.level > 0:
                continue
            if isinstance(node, ast.ImportFrom):
                names = [node.module or ""]
            else:
                assert isinstance(node, ast.Import)
                names = [a.name for a in node.names]
            for name in names:
                top = name.split(".")[0]
                if top in sys.stdlib_module_names or top == "numpy":
                    continue
                if top in LAZY_ALLOWED:
                    allowed_in = LAZY_ALLOWED[top]
                    if not in_function:
                        problems.append(
                            f"{rel}:{node.lineno}: {name} imported at module level (import it lazily)"
                        )
                    elif allowed_in is not None and path.name not in allowed_in:
                        problems.append(f"{rel}:{node.lineno}: {name} belongs only in {sorted(allowed_in)}")
                    continue
                problems.append(f"{rel}:{node.lineno}: import of {name} (not stdlib, numpy or a backend)")
    assert problems == []


@pytest.fixture(scope="session")
def clean_site(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A site directory holding only what a LiteRT Lambda artifact vendors."""
    site_packages = Path(numpy.__file__).resolve().parents[1]
    site = tmp_path_factory.mktemp("clean-site")
    wanted = [
        "numpy",
        "numpy.libs",
        "ai_edge_litert",
        "aws_lambda_powertools",
        "jmespath",
        "typing_extensions.py",
    ]
    wanted += [p.name for p in site_packages.glob("ai_edge_litert-*.dist-info")]
    for name in wanted:
        if (site_packages / name).exists():
            (site / name).symlink_to(site_packages / name)
    return site


def _run_clean(code: str, *paths: Path, cwd: Path) -> subprocess.CompletedProcess[str]:
    # -I: no user site, no PYTHONPATH; -S: no site-packages. sys.path = stdlib + ``paths``.
    keep = [str(p) for p in paths]
    prelude = f"import sys; sys.path[:] = [p for p in sys.path if 'site-packages' not in p] + {keep}\n"
    return subprocess.run(
        [sys.executable, "-I", "-S", "-c", prelude + textwrap.dedent(code)],
        capture_output=True,
        text=True,
        cwd=cwd,
        timeout=120,
    )


def test_predictor_runs_in_a_clean_interpreter(fp32_artifact: Path, clean_site: Path) -> None:
    result = _run_clean(
        f"""
        import json
        from pathlib import Path
        import numpy as np
        from edgepack_runtime.predictor import Predictor
        from edgepack_runtime.dataplane import DataPlane
        import edgepack_runtime.hooks, edgepack_runtime.telemetry

        predictor = Predictor.from_artifact(Path({str(fp32_artifact)!r}))
        out = predictor.predict({{"image": np.zeros((2, 8, 8, 1), np.float32)}})
        print(json.dumps({{"shape": list(out["probabilities"].shape),
                           "modules": sorted({{m.split(".")[0] for m in sys.modules}})}}))
        """,
        fp32_artifact,
        clean_site,
        cwd=fp32_artifact,
    )
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout.splitlines()[-1])
    assert report["shape"] == [2, 10]
    assert "edgepack_runtime" in report["modules"] and "ai_edge_litert" in report["modules"]
    assert BUILD_SIDE.isdisjoint(report["modules"])
    assert "aws_lambda_powertools" not in report["modules"]  # only the Lambda adapter needs it


_INVOKE = """
import json
from dataclasses import dataclass

@dataclass
class Context:
    function_name: str = "digits-fn"
    memory_limit_in_mb: int = 1024
    invoked_function_arn: str = "arn:aws:lambda:us-east-1:123456789012:function:digits-fn"
    aws_request_id: str = "req"

import handler  # the rendered glue: loads the model at import, as Lambda's init phase does

for event in json.load(open("events.json")):
    print("RESULT " + json.dumps(handler.handler(event, Context())), flush=True)
print("MODULES " + json.dumps(sorted({m.split(".")[0] for m in sys.modules})))
"""


@pytest.mark.slow
def test_rendered_handler_in_a_clean_interpreter(
    int8_artifact: Path, clean_site: Path, tmp_path: Path
) -> None:
    events = [
        load_event("direct.json"),
        load_event("apigw-v2.json"),
        load_event("oip.json"),
        {"inputs": {"x": [1]}},
    ]
    workdir = tmp_path / "work"
    workdir.mkdir()
    (workdir / "events.json").write_text(json.dumps(events))
    result = _run_clean(_INVOKE, int8_artifact, clean_site, cwd=workdir)
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    results = [json.loads(line[len("RESULT ") :]) for line in lines if line.startswith("RESULT ")]
    direct, http, oip, bad = results
    assert len(direct["outputs"]["probabilities"][0]) == 10 and len(direct["outputs"]["label"]) == 1
    assert http["statusCode"] == 200 and json.loads(http["body"]) == direct
    assert oip["id"] == "sample-1"
    assert bad["statusCode"] == 400 and "unknown input 'x'" in bad["error"]["message"]

    modules = json.loads(next(line for line in lines if line.startswith("MODULES "))[len("MODULES ") :])
    assert BUILD_SIDE.isdisjoint(modules)
    assert "aws_lambda_powertools" in modules

    emf = [json.loads(line) for line in lines if line.startswith("{") and '"_aws"' in line]
    metric_sets = [{m["Name"] for m in e["_aws"]["CloudWatchMetrics"][0]["Metrics"]} for e in emf]
    assert sum("ColdStart" in names for names in metric_sets) == 1  # the first invocation only
    cold = next(e for e, names in zip(emf, metric_sets, strict=True) if "ColdStart" in names)
    assert cold["function_name"] == "digits-fn"
    assert sum("Invocations" in names for names in metric_sets) == len(events)
    assert sum("Errors" in names for names in metric_sets) == 1


def test_rendered_handler_without_powertools(fp32_artifact: Path, clean_site: Path, tmp_path: Path) -> None:
    """A container has no Powertools: stdlib logging, no metrics, same answers."""
    site = tmp_path / "site"
    site.mkdir()
    for entry in clean_site.iterdir():
        if entry.name != "aws_lambda_powertools":
            (site / entry.name).symlink_to(entry.resolve())
    workdir = tmp_path / "work"
    workdir.mkdir()
    (workdir / "events.json").write_text(json.dumps([load_event("direct.json"), {"inputs": {"x": [1]}}]))
    result = _run_clean(_INVOKE, fp32_artifact, site, cwd=workdir)
    assert result.returncode == 0, result.stderr
    results = [json.loads(line[7:]) for line in result.stdout.splitlines() if line.startswith("RESULT ")]
    assert "outputs" in results[0] and results[1]["statusCode"] == 400
    assert '"_aws"' not in result.stdout
    assert "INFO edgepack_runtime.digits inference" in result.stdout
    assert "WARNING edgepack_runtime.digits error " in result.stdout and "unknown input 'x'" in result.stdout
