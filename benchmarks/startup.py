"""Startup and verify speed of the CLI (issue 14): `edgepack --help`, `edgepack verify` and
`edgepack invoke` of the sample's Lambda zip, against the floor for verify.

The floor is what verify cannot avoid: inflating every member of the zip and hashing it
with sha256, in Python, in one process. It is measured two ways: with ``zipfile`` (which
also checks each member's CRC, as the trust reader does) and with one ``zlib.decompress``
call per member (no CRC: a stricter floor). Verify is measured end to end (the CLI in a
fresh process, against the zipfile floor in a fresh process and ``python -c pass``) and in
process (``verify_and_extract(path, None, keys, kind="zip")`` against the floor loops).
Each command also reports which ML frameworks it loaded (there should be none).

    .venv/bin/python benchmarks/startup.py [--repeat 9] [--artifact ZIP --key PUB]

Without ``--artifact`` it takes ``dist/digits-1.0.0-lambda-x86_64.zip`` with
``samples/digits/keys/dev.pub`` when both exist, else builds the sample for lambda-x86_64
with a fresh key in a temporary directory (``edgepack build``, in its own process).
The timed processes read and write their bytecode under a temporary PYTHONPYCACHEPREFIX
(one untimed run first), as after an ordinary install, whatever PYTHONDONTWRITEBYTECODE says.
Rounds interleave the measurements; medians of wall and CPU time (user + system) are
printed; nothing is asserted.
"""

from __future__ import annotations

import argparse
import hashlib
import inspect
import json
import os
import platform
import resource
import statistics
import subprocess
import sys
import tempfile
import time
import zipfile
import zlib
from collections.abc import Callable
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
SAMPLE = REPO / "samples" / "digits"
EVENT = SAMPLE / "events" / "direct.json"
sys.path.insert(0, str(REPO))

from sample_artifact import build_sample, edgepack_cli  # noqa: E402

from tests.frameworks import ML_FRAMEWORKS  # noqa: E402

FRAMEWORKS = [*ML_FRAMEWORKS, "numpy", "pydantic", "jinja2", "boto3", "yaml", "cryptography", "click"]


def floor_zipfile(path: Path) -> None:
    """The floor with the standard library's zip reader (which checks each member's CRC)."""
    with zipfile.ZipFile(path) as zf:
        for info in zf.infolist():
            digest = hashlib.sha256()
            with zf.open(info) as member:
                while block := member.read(1 << 20):
                    digest.update(block)


def floor_zlib(path: Path) -> None:
    """Each member's compressed bytes in one read, inflated in one call, hashed in one call."""
    with zipfile.ZipFile(path) as zf, open(path, "rb") as f:
        for info in zf.infolist():
            f.seek(info.header_offset)
            header = f.read(30)
            f.seek(
                info.header_offset
                + 30
                + int.from_bytes(header[26:28], "little")
                + int.from_bytes(header[28:30], "little")
            )
            data = f.read(info.compress_size)
            hashlib.sha256(zlib.decompress(data, -15) if info.compress_type == zipfile.ZIP_DEFLATED else data)


# Runs ``edgepack ARGS`` as the console script does, then prints the frameworks it loaded.
MODULES_RUNNER = """
import json, runpy, sys
report, *args = sys.argv[1:]
sys.argv = ["edgepack", *args]
try:
    runpy.run_module("edgepack", run_name="__main__", alter_sys=True)
except SystemExit:
    pass
finally:
    with open(report, "w") as f:
        json.dump(sorted({name.split(".")[0] for name in sys.modules}), f)
"""


def _children_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def bytecode_env(work: Path) -> dict[str, str]:
    """The environment for the timed processes: bytecode written and read under ``work``, as
    after an ordinary install (which compiles it), even where PYTHONDONTWRITEBYTECODE is set
    and site-packages holds no .pyc files (then every import would compile its source)."""
    env = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}
    env["PYTHONPYCACHEPREFIX"] = str(work / "pycache")
    return env


def timed_process(argv: list[str], env: dict[str, str]) -> tuple[float, float]:
    """Wall time and CPU time (user + system, the process and what it waited for)."""
    cpu, start = _children_cpu(), time.perf_counter()
    proc = subprocess.run(argv, capture_output=True, text=True, env=env)
    elapsed, cpu = time.perf_counter() - start, _children_cpu() - cpu
    if proc.returncode:
        raise SystemExit(f"{' '.join(argv)} failed ({proc.returncode}):\n{proc.stderr[-2000:]}")
    return elapsed, cpu


def timed_call(fn: Callable[[], object]) -> tuple[float, float]:
    cpu, start = time.process_time(), time.perf_counter()
    fn()
    return time.perf_counter() - start, time.process_time() - cpu


def loaded_frameworks(args: list[str], work: Path) -> list[str]:
    report = work / "modules.json"
    subprocess.run(
        [sys.executable, "-c", MODULES_RUNNER, str(report), *args], capture_output=True, check=True
    )
    return [m for m in FRAMEWORKS if m in json.loads(report.read_text())]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=9, help="rounds (default 9)")
    parser.add_argument("--artifact", type=Path, help="a signed lambda zip (default: see above)")
    parser.add_argument("--key", type=Path, help="its signer's public key")
    args = parser.parse_args()

    from edgepack.runtime.trust.reader import verify_and_extract
    from edgepack.signing.keys import load_public_keys

    with tempfile.TemporaryDirectory(prefix="edgepack-startup-") as tmp:
        work = Path(tmp)
        default = REPO / "dist" / "digits-1.0.0-lambda-x86_64.zip", SAMPLE / "keys" / "dev.pub"
        if args.artifact:
            if args.key is None:
                parser.error("--artifact needs --key")
            artifact, pub = args.artifact, args.key
        elif default[0].exists() and default[1].exists():
            artifact, pub = default
        else:
            artifact, pub = build_sample(work, "lambda-x86_64")
        keys = load_public_keys([pub])
        with zipfile.ZipFile(artifact) as zf:
            infos = zf.infolist()
        cli = edgepack_cli()
        verify_args = ["verify", str(artifact), "--key", str(pub)]
        invoke_args = ["invoke", str(artifact), "--key", str(pub), "--event", str(EVENT)]

        process_cases: dict[str, list[str]] = {
            "python -c pass": [sys.executable, "-c", "pass"],
            "python -c 'import edgepack.cli.main'": [sys.executable, "-c", "import edgepack.cli.main"],
            "edgepack --help": [*cli, "--help"],
            "floor process (zipfile)": [
                sys.executable,
                "-c",
                "from __future__ import annotations\nimport hashlib, sys, zipfile\n"
                + inspect.getsource(floor_zipfile)
                + "floor_zipfile(sys.argv[1])",
                str(artifact),
            ],
            "edgepack verify": [*cli, *verify_args],
            "edgepack invoke (1 event)": [*cli, *invoke_args],
        }
        call_cases: dict[str, Callable[[], object]] = {
            "floor (zipfile)": lambda: floor_zipfile(artifact),
            "floor (zlib one-shot)": lambda: floor_zlib(artifact),
            "verify_and_extract(dest=None)": lambda: verify_and_extract(artifact, None, keys, kind="zip"),
        }
        env = bytecode_env(work)
        load_start = os.getloadavg()[0]
        for argv in process_cases.values():  # write the bytecode, warm the page cache
            timed_process(argv, env)
        for fn in call_cases.values():
            fn()
        wall: dict[str, list[float]] = {name: [] for name in [*process_cases, *call_cases]}
        cpu: dict[str, list[float]] = {name: [] for name in wall}
        for round_ in range(args.repeat):
            print(f"round {round_ + 1}/{args.repeat}", file=sys.stderr, flush=True)
            for name, argv in process_cases.items():
                w, c = timed_process(argv, env)
                wall[name].append(w)
                cpu[name].append(c)
            for name, fn in call_cases.items():
                w, c = timed_call(fn)
                wall[name].append(w)
                cpu[name].append(c)
        med_wall = {name: statistics.median(values) for name, values in wall.items()}
        med_cpu = {name: statistics.median(values) for name, values in cpu.items()}

        print(
            f"{platform.processor() or platform.machine()}, {os.cpu_count()} CPUs, "
            f"load average {load_start:.2f} at the start, {os.getloadavg()[0]:.2f} at the end; "
            f"Python {platform.python_version()}, zlib {zlib.ZLIB_RUNTIME_VERSION}"
        )
        print(
            f"artifact {artifact.name}: {artifact.stat().st_size / 1e6:.1f} MB, {len(infos)} members, "
            f"{sum(i.file_size for i in infos) / 1e6:.1f} MB unzipped; {args.repeat} rounds\n"
        )
        print("| measurement | wall median ms | wall min ms | CPU median ms |\n|---|---|---|---|")
        for name, values in wall.items():
            print(
                f"| {name} | {med_wall[name] * 1000:.1f} | {min(values) * 1000:.1f} | {med_cpu[name] * 1000:.1f} |"
            )

        def ratio(num: str, den: str, less: str | None = None) -> str:
            cells = []
            for med in (med_wall, med_cpu):
                base = med[less] if less else 0.0
                cells.append(f"{(med[num] - base) / (med[den] - base):.3f}")
            return " | ".join(cells)

        verify_in = "verify_and_extract(dest=None)"
        print("\n| verify / floor | wall | CPU |\n|---|---|---|")
        print(f"| in process, zipfile floor | {ratio(verify_in, 'floor (zipfile)')} |")
        print(f"| in process, zlib one-shot floor | {ratio(verify_in, 'floor (zlib one-shot)')} |")
        print(
            f"| end to end (CLI vs floor process) | {ratio('edgepack verify', 'floor process (zipfile)')} |"
        )
        print(
            "| end to end, less `python -c pass` | "
            f"{ratio('edgepack verify', 'floor process (zipfile)', 'python -c pass')} |"
        )

        print("\nmodules loaded (of: " + ", ".join(FRAMEWORKS) + ")")
        for label, cmd in (("--help", ["--help"]), ("verify", verify_args), ("invoke", invoke_args)):
            print(f"- edgepack {label}: {', '.join(loaded_frameworks(cmd, work)) or 'none'}")


if __name__ == "__main__":
    main()
