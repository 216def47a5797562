"""The Lambda zip: sizes, contributors by package, and budgets that leave nothing behind."""

from __future__ import annotations

import os
import re
import zipfile
from pathlib import Path

import pytest

from edgepack.errors import BudgetExceededError
from edgepack.packaging.lambda_zip import PackageReport, package_lambda, package_of
from edgepack.targets import Limits, load_target

MIB = 1024 * 1024


def _staging(root: Path) -> Path:
    """A Lambda root whose packages have known sizes; random bytes so zipped ~= unzipped."""
    rng = __import__("random").Random(7)

    def put(name: str, size: int) -> None:
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(rng.randbytes(size))

    put("ai_edge_litert/_pywrap.so", 300_000)
    put("ai_edge_litert-2.3.0.dist-info/RECORD", 2_000)
    put("numpy/_core/_umath.so", 150_000)
    put("numpy.libs/libopenblas.so.0", 60_000)
    put("numpy-2.4.6.dist-info/METADATA", 1_000)
    put("aws_lambda_powertools/logging.py", 20_000)
    put("handler.py", 500)
    put("edgepack.json", 800)
    put("model/model.tflite", 40_000)
    put("typing_extensions.py", 5_000)
    return root


def _leftovers(directory: Path) -> list[str]:
    return sorted(p.name for p in directory.iterdir() if p.name.startswith("."))


def test_package_of_groups_dist_info_and_libs() -> None:
    assert package_of("numpy/_core/x.so") == "numpy"
    assert package_of("numpy.libs/libopenblas.so.0") == "numpy"
    assert package_of("numpy-2.4.6.dist-info/RECORD") == "numpy"
    assert package_of("ai_edge_litert-2.3.0.dist-info/RECORD") == "ai_edge_litert"
    assert package_of("typing_extensions.py") == "typing_extensions"
    assert package_of("_cffi_backend.cpython-312-x86_64-linux-gnu.so") == "_cffi_backend"
    assert package_of("edgepack.json") == "edgepack.json"
    assert package_of("model/model.tflite") == "model"


def test_within_budget(tmp_path: Path) -> None:
    staging = _staging(tmp_path / "staging")
    dest = tmp_path / "out" / "fn.zip"
    report = package_lambda(staging, dest, Limits(zipped_bytes=10 * MIB, unzipped_bytes=10 * MIB), epoch=0)
    assert isinstance(report, PackageReport)
    assert report.zipped_bytes == dest.stat().st_size
    assert report.unzipped_bytes == sum(p.stat().st_size for p in staging.rglob("*") if p.is_file())
    assert report.files == 10
    assert report.largest[:3] == [("ai_edge_litert", 302_000), ("numpy", 211_000), ("model", 40_000)]
    assert [pkg for pkg, _ in report.largest_zipped[:2]] == ["ai_edge_litert", "numpy"]
    with zipfile.ZipFile(dest) as zf:
        assert zf.testzip() is None and len(zf.infolist()) == 10
    assert _leftovers(dest.parent) == []


def test_shipped_lambda_limits_fit_a_small_artifact(tmp_path: Path) -> None:
    limits = load_target("lambda-x86_64").limits
    assert limits.zipped_bytes == 50 * MIB
    package_lambda(_staging(tmp_path / "s"), tmp_path / "fn.zip", limits, epoch=0)
    assert (tmp_path / "fn.zip").is_file()


def test_over_zipped_limit_lists_contributors_and_leaves_nothing(tmp_path: Path) -> None:
    staging = _staging(tmp_path / "staging")
    out = tmp_path / "out"
    out.mkdir()
    dest = out / "fn.zip"
    with pytest.raises(BudgetExceededError) as info:
        package_lambda(staging, dest, Limits(zipped_bytes=200_000, unzipped_bytes=10 * MIB), epoch=0)
    hint = info.value.hint()
    assert re.fullmatch(
        r"lambda zip is 0\.\d MB, over the 0\.2 MB direct-upload limit; "
        r"largest: ai_edge_litert 0\.\d MB, numpy 0\.\d MB, model 0\.0 MB, .*, \.\.\.",
        hint,
    ), hint
    assert info.value.exit_code == 2
    assert not dest.exists() and os.listdir(out) == []


def test_over_unzipped_limit_lists_contributors(tmp_path: Path) -> None:
    staging = _staging(tmp_path / "staging")
    dest = tmp_path / "fn.zip"
    dest.write_bytes(b"previous build")
    with pytest.raises(BudgetExceededError) as info:
        package_lambda(staging, dest, Limits(zipped_bytes=None, unzipped_bytes=500_000), epoch=0)
    assert info.value.hint().startswith(
        "lambda zip unzips to 0.6 MB, over the 0.5 MB unzipped limit; "
        "largest: ai_edge_litert 0.3 MB, numpy 0.2 MB, model 0.0 MB"
    )
    assert dest.read_bytes() == b"previous build"  # a refused build does not touch what was there
    assert _leftovers(tmp_path) == []


def test_message_in_megabytes_like_lambda(tmp_path: Path) -> None:
    """Sizes print in MiB, Lambda's unit: 50 MB is 52,428,800 bytes."""
    root = tmp_path / "s"
    (root / "big").mkdir(parents=True)
    (root / "big" / "blob.bin").write_bytes(os.urandom(MIB + MIB // 2))
    with pytest.raises(
        BudgetExceededError, match=r"lambda zip is 1\.5 MB, over the 1\.0 MB direct-upload limit"
    ):
        package_lambda(root, tmp_path / "fn.zip", Limits(zipped_bytes=MIB), epoch=0)
