"""The sample built for one target into a work directory, for benchmarks that need a real
artifact and must run from a fresh clone (where ``dist/`` holds none)."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
SAMPLE = REPO / "samples" / "digits"


def edgepack_cli() -> list[str]:
    script = Path(sys.executable).parent / "edgepack"  # the venv's console script
    return [str(script)] if script.exists() else [sys.executable, "-m", "edgepack"]


def build_sample(work: Path, target: str) -> tuple[Path, Path]:
    """Build the sample's ``target`` under ``work`` with a throwaway key: (artifact, public key)."""
    from edgepack.signing.keys import generate_keypair

    project = work / "digits"
    shutil.copytree(SAMPLE, project, ignore=shutil.ignore_patterns("keys", "dist", "__pycache__"))
    _, pub = generate_keypair(project / "keys" / "dev")
    print(f"building the sample's {target} artifact ...", file=sys.stderr, flush=True)
    subprocess.run(
        [*edgepack_cli(), "build", str(project), "--target", target, "--out", str(work / "dist"), "-q"],
        check=True,
        stdout=subprocess.DEVNULL,
    )
    suffix = ".zip" if target.startswith("lambda-") else ".bundle.tar.gz"
    return work / "dist" / f"digits-1.0.0-{target}{suffix}", pub
