"""Cold start of the edgepack Lambda artifact vs a handler that loads the model with TensorFlow.

Both run in fresh processes of the same interpreter Lambda would use (python3.12), with
only their own packages on sys.path and no bytecode writing (Lambda's task root is
read-only), and are timed from process spawn to the first result (model load + one
inference on the sample's direct event). The TensorFlow side
gets tensorflow-cpu vendored for the same platform (cp312, manylinux x86_64), as a
Lambda container image would carry it. The edgepack artifact is also run through the
faithful local invoke (awslambdaric + Runtime API) for Lambda's own Init Duration.

    python benchmarks/cold_start.py [--runs 5] [--artifact dist/digits-1.0.0-lambda-x86_64.zip]

Prints medians over ``--runs`` fresh processes and the ratios; nothing is asserted.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
SAMPLE = REPO / "samples" / "digits"
sys.path.insert(0, str(REPO))

# Runs inside the fresh process: import the handler module (loads the model, as Lambda's
# init does), call it once, print the answer.
RUNNER = """
import json, sys
sys.path[:0] = json.loads(sys.argv[1])
import {module} as h
event = json.loads(sys.argv[2])
print("RESULT " + json.dumps(h.handler(event, None))[:200], flush=True)
"""

TF_HANDLER = """
import os
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
import numpy as np
import keras

MODEL = keras.saving.load_model(os.path.join(os.path.dirname(__file__), "digits.keras"))


def handler(event, context):
    image = np.asarray(event["inputs"]["image"], dtype=np.float32)
    probabilities = MODEL.predict(image, verbose=0)
    return {"outputs": {"probabilities": probabilities.tolist(), "label": probabilities.argmax(-1).tolist()}}
"""


def tree_bytes(path: Path) -> int:
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file())


def spawn_to_result(python: str, task_root: Path, module: str, event: dict, extra_path: list[Path]) -> float:
    env = {"PATH": os.environ["PATH"], "LANG": "C.UTF-8"}
    paths = json.dumps([str(task_root), *map(str, extra_path)])
    start = time.perf_counter()
    # -I -S: no site-packages of the interpreter, nothing from the environment; only our paths.
    # -B: Lambda's task root is read-only, so no bytecode is ever written at run time; each side
    # gets only the .pyc files it ships (edgepack: its init imports; TensorFlow: all, below).
    proc = subprocess.run(
        [python, "-I", "-S", "-B", "-c", RUNNER.format(module=module), paths, json.dumps(event)],
        capture_output=True,
        text=True,
        env=env,
        timeout=300,
    )
    elapsed = (time.perf_counter() - start) * 1e3
    if proc.returncode != 0 or "RESULT " not in proc.stdout:
        raise SystemExit(f"{module} failed:\n{proc.stdout[-2000:]}\n{proc.stderr[-2000:]}")
    return elapsed


def build_artifact(out: Path) -> Path:
    from edgepack.build import build
    from edgepack.signing.keys import generate_keypair

    project = out / "digits"
    shutil.copytree(SAMPLE, project, ignore=shutil.ignore_patterns("keys", "__pycache__"))
    generate_keypair(project / "keys" / "dev")
    result = build(project, out / "dist", ["lambda-x86_64"])
    if not result.ok:
        raise SystemExit(result.results[0].error)
    artifact = result.results[0].artifact
    assert artifact is not None
    return artifact


def vendor_tensorflow(dest: Path) -> tuple[Path, list]:
    from edgepack.cache import BuildCache
    from edgepack.targets import load_target
    from edgepack.vendoring import vendor

    profile = load_target("lambda-x86_64", {"runtime_packages": ["tensorflow-cpu==2.21.0"], "trim": []})
    report = vendor(profile, dest, BuildCache.default(), lambda m: print(f"  {m}", file=sys.stderr))
    return dest, list(report.packages)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=5, help="fresh processes per side (default 5)")
    parser.add_argument("--artifact", type=Path, help="a built lambda-x86_64 zip (default: build one now)")
    args = parser.parse_args()

    from edgepack.invoke.lambda_base import find_python
    from edgepack.invoke.local import invoke_local
    from edgepack.runtime.trust.reader import verify_and_extract

    python = str(find_python("python3.12", "x86_64", None).path)
    event = json.loads((SAMPLE / "events" / "direct.json").read_text())
    work = Path(tempfile.mkdtemp(prefix="edgepack-coldstart-"))
    try:
        print("preparing: edgepack artifact and a TensorFlow task root for cp312 x86_64", file=sys.stderr)
        artifact = args.artifact or build_artifact(work)
        task = work / "edgepack-task"
        # The one trust path, unverified (the benchmark built the artifact itself).
        sizes = verify_and_extract(artifact, task, [], kind="zip", unverified=True).sizes
        unzipped = sum(sizes.values())
        runtime_deps = sum(
            size
            for name, size in sizes.items()
            if not name.startswith(("model/", "edgepack_runtime/"))
            and name not in {"edgepack.json", "attestation.dsse.json", "handler.py", "edgepack_user_hooks.py"}
        )
        tf_site, tf_packages = vendor_tensorflow(work / "tf-site")
        # A container image built with pip ships TensorFlow byte-compiled: do the same.
        subprocess.run(
            [python, "-m", "compileall", "-q", "-j", "0", str(tf_site)], check=False, capture_output=True
        )
        tf_task = work / "tf-task"
        tf_task.mkdir()
        (tf_task / "tf_handler.py").write_text(TF_HANDLER)
        shutil.copyfile(SAMPLE / "model" / "digits.keras", tf_task / "digits.keras")

        edgepack_ms, tf_ms, lambda_init, lambda_total = [], [], [], []
        for i in range(args.runs):
            print(f"run {i + 1}/{args.runs}", file=sys.stderr)
            edgepack_ms.append(spawn_to_result(python, task, "handler", event, []))
            tf_ms.append(spawn_to_result(python, tf_task, "tf_handler", event, [tf_site]))
            invoked = invoke_local(artifact, event)
            assert invoked.init_ms is not None and invoked.ok, invoked.error
            lambda_init.append(invoked.init_ms)
            lambda_total.append(invoked.init_ms + invoked.duration_ms)

        ep, tf = statistics.median(edgepack_ms), statistics.median(tf_ms)
        tf_bytes = tree_bytes(tf_site)
        cpu = next(
            (
                line.split(":", 1)[1].strip()
                for line in Path("/proc/cpuinfo").read_text().splitlines()
                if "model name" in line
            ),
            platform.processor(),
        )
        print(
            f"\ncold start, sample digits model, {args.runs} fresh processes each, python3.12 on {cpu} ({os.cpu_count()} cores)"
        )
        print("| | median ms | min ms | max ms |")
        print("| --- | ---: | ---: | ---: |")
        print(
            f"| edgepack artifact (LiteRT int8), spawn to first result | {ep:.0f} | {min(edgepack_ms):.0f} | {max(edgepack_ms):.0f} |"
        )
        print(
            f"| TensorFlow handler (keras.load_model), spawn to first result | {tf:.0f} | {min(tf_ms):.0f} | {max(tf_ms):.0f} |"
        )
        print(
            f"| edgepack via local invoke (awslambdaric): Init Duration | {statistics.median(lambda_init):.0f} | "
            f"{min(lambda_init):.0f} | {max(lambda_init):.0f} |"
        )
        print(
            f"| edgepack via local invoke: Init + first Duration | {statistics.median(lambda_total):.0f} | "
            f"{min(lambda_total):.0f} | {max(lambda_total):.0f} |"
        )
        print(f"\nratio edgepack / TensorFlow (spawn to first result): {ep / tf:.3f}  (target <= 0.05)")
        print("\nsize")
        print(f"  edgepack zip: {artifact.stat().st_size / 1e6:.1f} MB, unzipped {unzipped / 1e6:.1f} MB")
        print(
            f"  edgepack runtime dependencies (vendored, trimmed), unzipped: {runtime_deps / 1e6:.1f} MB  (target <= 85 MB)"
        )
        print(
            f"  TensorFlow (tensorflow-cpu 2.21.0 + deps, cp312 x86_64), unzipped: {tf_bytes / 1e6:.1f} MB "
            f"in {len(tf_packages)} distributions; ratio edgepack deps / TensorFlow: {runtime_deps / tf_bytes:.3f}"
        )
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
