"""The layer split's pieces on a synthetic tree: names, the layer's manifest and signature,
determinism, and the limit Lambda counts across a function and its layer."""

from __future__ import annotations

import hashlib
import random
import re
from dataclasses import dataclass, field
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest

from edgepack.errors import BudgetExceededError
from edgepack.packaging.lambda_layer import (
    LayerSplit,
    check_combined,
    layer_files,
    layer_name,
    layer_result,
    layer_zip_name,
    package_function,
    splits_layer,
)
from edgepack.signing.keys import Ed25519FileSigner, generate_keypair, load_public_keys
from edgepack.signing.verify import verify_artifact
from edgepack.targets import Limits, load_target

MIB = 1024 * 1024
FUNCTION = "digits-1.0.0-lambda-x86_64.zip"


@dataclass(frozen=True)
class _Package:
    name: str
    version: str

    def to_dict(self) -> dict[str, Any]:
        return {"name": self.name, "version": self.version, "wheel": f"{self.name}-{self.version}.whl"}


@dataclass(frozen=True)
class _Vendored:
    packages: list[_Package] = field(default_factory=lambda: [_Package("numpy", "2.4.6")])
    trimmed: list[str] = field(default_factory=lambda: ["numpy/f2py"])


def _project(layer: bool = True, version: str = "1.0.0") -> Any:
    return SimpleNamespace(
        name="digits", version=version, file=SimpleNamespace(function=SimpleNamespace(layer=layer))
    )


@pytest.fixture(scope="module")
def keys(tmp_path_factory: pytest.TempPathFactory) -> tuple[Ed25519FileSigner, Path]:
    key, pub = generate_keypair(tmp_path_factory.mktemp("keys") / "dev")
    return Ed25519FileSigner.from_file(key), pub


def _put(root: Path, name: str, size: int, seed: int = 7) -> None:
    path = root / name
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(random.Random(seed + size).randbytes(size))


def _split(out: Path, signer: Any, limits: Limits | None = None, version: str = "1.0.0") -> tuple[Any, ...]:
    out.mkdir(parents=True, exist_ok=True)
    profile = load_target("lambda-x86_64", {"limits": limits.model_dump()} if limits else None)
    project = _project(version=version)
    split = LayerSplit.for_target(project, profile, out / FUNCTION)
    assert split is not None
    _put(split.python_dir, "numpy/_core/_umath.so", 300_000)
    _put(split.python_dir, "numpy-2.4.6.dist-info/METADATA", 1_000)
    shared = SimpleNamespace(project=project, signer=signer, epoch=1_700_000_000)
    return split, shared, profile


def test_names() -> None:
    assert layer_zip_name(FUNCTION) == "digits-1.0.0-lambda-x86_64.layer.zip"
    assert layer_name("digits", "lambda-x86_64") == "digits-lambda-x86_64-deps"
    # Target names may hold dots; Lambda layer names may not.
    assert layer_name("digits", "lambda.v2") == "digits-lambda-v2-deps"
    assert re.fullmatch(r"[A-Za-z0-9_-]{1,140}", layer_name("a" * 63, "b" * 100))


def test_only_lambda_targets_with_function_layer_split(tmp_path: Path) -> None:
    lam = load_target("lambda-x86_64")
    box = load_target("container-cpu")
    assert splits_layer(_project(True), lam)
    assert not splits_layer(_project(False), lam)
    assert not splits_layer(_project(True), box)
    assert LayerSplit.for_target(_project(False), lam, tmp_path / FUNCTION) is None
    assert layer_files(_project(False), lam, tmp_path / FUNCTION) == []
    assert layer_result([tmp_path / FUNCTION]) is None
    assert list(tmp_path.iterdir()) == []  # nothing staged when there is no split


def test_layer_is_a_signed_artifact_named_by_the_function(tmp_path: Path, keys: Any) -> None:
    signer, pub = keys
    (tmp_path / "fn").mkdir()
    split, shared, profile = _split(tmp_path / "out", signer)
    record = split.finish(shared, profile, _Vendored(), tmp_path / "fn")
    verified = verify_artifact(split.partial, load_public_keys([pub]), kind="zip")
    assert verified.manifest["layer"] is True
    assert verified.manifest["runtime"]["layer"]["content_sha256"] == record["content_sha256"]
    assert sorted(verified.subjects) == [
        "edgepack.json",
        "python/numpy-2.4.6.dist-info/METADATA",
        "python/numpy/_core/_umath.so",
        "sbom.cdx.json",
    ]
    assert record["file"] == split.final.name and record["name"] == "digits-lambda-x86_64-deps"
    assert record["sha256"] == hashlib.sha256(split.partial.read_bytes()).hexdigest()
    split.cleanup()
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == []


def test_layer_zip_is_deterministic_and_content_digest_survives_a_version_bump(
    tmp_path: Path, keys: Any
) -> None:
    signer, _ = keys
    records = []
    for i, version in enumerate(("1.0.0", "1.0.0", "1.1.0")):
        split, shared, profile = _split(tmp_path / f"out{i}", signer, version=version)
        records.append(split.finish(shared, profile, _Vendored(), tmp_path / "fn"))
        split.cleanup()
    assert records[0] == records[1]
    assert records[2]["sha256"] != records[0]["sha256"]  # its manifest names the version
    assert records[2]["content_sha256"] == records[0]["content_sha256"]  # python/ is the same


def test_function_and_layer_together_over_the_unzipped_limit(tmp_path: Path, keys: Any) -> None:
    signer, _ = keys
    split, shared, profile = _split(
        tmp_path / "out", signer, Limits(zipped_bytes=50 * MIB, unzipped_bytes=400_000)
    )
    split.finish(shared, profile, _Vendored(), tmp_path / "fn")  # the layer alone fits
    function = tmp_path / "function"
    _put(function, "model/model.tflite", 150_000)
    dest = tmp_path / "out" / FUNCTION
    with pytest.raises(BudgetExceededError) as e:
        split.package_function(function, dest, profile.limits, shared.epoch)
    message = e.value.hint()
    assert "function 0.1 MB + layer 0.3 MB" in message
    assert "Lambda counts across a function and its layers" in message
    assert "largest: numpy 0.3 MB, model 0.1 MB" in message
    assert not dest.exists()
    split.cleanup()


def test_layer_over_the_zipped_limit_alone(tmp_path: Path, keys: Any) -> None:
    signer, _ = keys
    split, shared, profile = _split(
        tmp_path / "out", signer, Limits(zipped_bytes=100_000, unzipped_bytes=50 * MIB)
    )
    with pytest.raises(BudgetExceededError, match="direct-upload limit"):
        split.finish(shared, profile, _Vendored(), tmp_path / "fn")
    split.cleanup()
    assert list((tmp_path / "out").iterdir()) == []


def test_check_combined_within_the_limit(tmp_path: Path) -> None:
    _put(tmp_path / "f", "handler.py", 1_000)
    _put(tmp_path / "l", "python/six.py", 1_000)
    check_combined(tmp_path / "f", tmp_path / "l", Limits(unzipped_bytes=2_000))
    check_combined(tmp_path / "f", tmp_path / "l", Limits())
    with pytest.raises(BudgetExceededError, match="largest: handler 0.0 MB, six 0.0 MB"):
        check_combined(tmp_path / "f", tmp_path / "l", Limits(unzipped_bytes=1_999))


def test_zip_over_the_upload_limit_suggests_the_layer_split(tmp_path: Path) -> None:
    _put(tmp_path / "f", "numpy/_core/_umath.so", 200_000)
    with pytest.raises(BudgetExceededError, match=r"direct-upload limit.*set function\.layer: true"):
        package_function(tmp_path / "f", tmp_path / "fn.zip", Limits(zipped_bytes=100_000), 0)


def test_zip_over_the_unzipped_limit_points_at_the_image_form(tmp_path: Path) -> None:
    _put(tmp_path / "f", "numpy/_core/_umath.so", 200_000)
    with pytest.raises(BudgetExceededError, match=r"unzipped limit.*container-image form"):
        package_function(tmp_path / "f", tmp_path / "fn.zip", Limits(unzipped_bytes=100_000), 0)
    assert not (tmp_path / "fn.zip").exists()
