"""Vendoring the LiteRT Lambda runtime packages for x86_64 and arm64 with real wheels
from the package index: the report, the build cache, the trim rules (proved by running a
TFLite model on the trimmed tree in a clean python3.12), and the errors when no wheel fits."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from edgepack.abi_audit import audit_tree
from edgepack.cache import BuildCache
from edgepack.errors import ConfigError, PackagingError, PlatformError
from edgepack.invoke.emulation import aarch64_python
from edgepack.targets import TargetProfile, load_target
from edgepack.vendoring import (
    INSTALLER_ENV,
    TrimRule,
    VendorReport,
    choose_installer,
    copy_trimmed,
    tree_bytes,
    vendor,
)

X86, ARM = "lambda-x86_64", "lambda-arm64"
# Each profile's Lambda Python: arm64 defaults to python3.13 (Debian ships an aarch64 3.13 to run it).
PYTHON = {X86: "3.12", ARM: "3.13"}
# The budget for the LiteRT Lambda's runtime dependencies, unzipped.
RUNTIME_DEPENDENCIES_BUDGET = 85_000_000

# -- spotting subprocesses without mocking anything: the interpreter's own audit events ---

_spawned: list[list[str]] | None = None


def _audit_hook(event: str, args: tuple[Any, ...]) -> None:
    if _spawned is not None and event in ("subprocess.Popen", "os.posix_spawn", "os.exec", "os.system"):
        _spawned.append([str(a) for a in (args[1] if event == "subprocess.Popen" else args[:1])])


sys.addaudithook(_audit_hook)


@contextmanager
def spawned_processes() -> Iterator[list[list[str]]]:
    global _spawned
    _spawned = []
    try:
        yield _spawned
    finally:
        _spawned = None


@dataclass
class Vendored:
    profile: TargetProfile
    dest: Path
    report: VendorReport
    spawned: list[list[str]]
    cache: BuildCache


@pytest.fixture(scope="module")
def vendored(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Vendored]:
    """Both LiteRT Lambda targets, vendored once into fresh directories with a cache of their own,
    so the first call always runs the installer whatever else the session built."""
    out = {}
    cache = BuildCache(tmp_path_factory.mktemp("vendor-cache"))
    for name in (X86, ARM):
        profile = load_target(name)
        dest = tmp_path_factory.mktemp(name)
        messages: list[str] = []
        with spawned_processes() as spawned:
            report = vendor(profile, dest, cache, messages.append)
        assert messages, "vendoring says what it does"
        out[name] = Vendored(profile, dest, report, list(spawned), cache)
    return out


# -- what gets installed and reported -------------------------------------------------


@pytest.mark.parametrize(("name", "arch"), [(X86, "x86_64"), (ARM, "aarch64")])
def test_report_lists_every_installed_distribution(
    vendored: dict[str, Vendored], name: str, arch: str
) -> None:
    v = vendored[name]
    by_name = {re.sub(r"[-_.]+", "-", p.name).lower(): p for p in v.report.packages}
    assert {"ai-edge-litert", "numpy", "aws-lambda-powertools"} <= set(by_name)
    # Every .dist-info in the tree is in the report, and nothing else.
    dist_infos = sorted(p.name for p in v.dest.glob("*.dist-info"))
    assert len(dist_infos) == len(v.report.packages)
    for pkg in v.report.packages:
        assert f"{re.sub(r'[-.]+', '_', pkg.name)}-{pkg.version}.dist-info".lower() in [
            d.lower() for d in dist_infos
        ]
        assert pkg.wheel.endswith(".whl") and pkg.wheel.split("-")[1] == pkg.version
        assert re.fullmatch(r"[0-9a-f]{64}", pkg.sha256), pkg
        assert pkg.tags, pkg
        assert set(pkg.wheel.removesuffix(".whl").split("-")[-1].split(".")) == {
            t.split("-")[2] for t in pkg.tags
        }
    cp = "cp" + PYTHON[name].replace(".", "")
    litert = by_name["ai-edge-litert"]
    assert litert.version == "2.3.0"
    assert litert.tags == (f"{cp}-{cp}-manylinux_2_27_{arch}",)
    assert litert.wheel == f"ai_edge_litert-2.3.0-{cp}-{cp}-manylinux_2_27_{arch}.whl"
    numpy_pkg = by_name["numpy"]
    assert numpy_pkg.version.startswith("2.") and all(t.startswith(f"{cp}-{cp}-") for t in numpy_pkg.tags)
    assert all(t.endswith(f"_{arch}") for t in numpy_pkg.tags)
    assert by_name["aws-lambda-powertools"].tags == ("py3-none-any",)
    # What the manifest and the attestation record.
    entry = litert.to_dict()
    assert set(entry) == {"name", "version", "wheel", "sha256", "tags"}
    json.dumps(v.report.to_dict())
    assert v.report.platform_tags[0] == f"manylinux_2_34_{arch}"


def test_native_files_are_for_the_target(vendored: dict[str, Vendored]) -> None:
    x86 = vendored[X86].dest
    arm = vendored[ARM].dest
    assert list(x86.glob("numpy/_core/_multiarray_umath.cpython-312-x86_64-linux-gnu.so"))
    assert list(arm.glob("numpy/_core/_multiarray_umath.cpython-313-aarch64-linux-gnu.so"))
    # Nothing compiled by the build host's interpreter, no installer leftovers.
    assert not list(x86.rglob("*.pyc"))
    assert not (x86 / ".lock").exists()
    for name, arch in ((X86, "x86_64"), (ARM, "aarch64")):
        audit_tree(vendored[name].dest, arch, "2.34", python=PYTHON[name])


def test_two_targets_get_different_wheels_with_real_digests(vendored: dict[str, Vendored]) -> None:
    x86 = {p.name: p for p in vendored[X86].report.packages}
    arm = {p.name: p for p in vendored[ARM].report.packages}
    assert x86["numpy"].sha256 != arm["numpy"].sha256
    assert x86["numpy"].wheel != arm["numpy"].wheel
    pure = [n for n, p in x86.items() if p.tags == ("py3-none-any",) and n in arm]
    assert pure and all(x86[n].sha256 == arm[n].sha256 for n in pure)


# -- the build cache -------------------------------------------------------------------


def test_second_call_copies_from_the_cache_without_running_an_installer(
    vendored: dict[str, Vendored], tmp_path: Path
) -> None:
    first = vendored[X86]
    dest = tmp_path / "again"
    messages: list[str] = []
    with spawned_processes() as spawned:
        again = vendor(first.profile, dest, first.cache, messages.append)
    assert spawned == [], f"the cache hit ran {spawned}"
    assert again.from_cache
    assert any("build cache" in m for m in messages)
    assert again.packages == first.report.packages
    assert again.trimmed == first.report.trimmed
    assert again.cache_key == first.report.cache_key
    listing = sorted(p.relative_to(dest).as_posix() for p in dest.rglob("*"))
    assert listing == sorted(p.relative_to(first.dest).as_posix() for p in first.dest.rglob("*"))


def test_first_call_ran_the_installer(vendored: dict[str, Vendored]) -> None:
    v = vendored[X86]
    assert not v.report.from_cache
    installer = v.report.installer.split()[0]
    assert any(installer in Path(cmd[0]).name or installer in cmd for cmd in v.spawned), v.spawned


def test_cache_key_covers_what_decides_the_tree(vendored: dict[str, Vendored], tmp_path: Path) -> None:
    base = vendored[X86].profile
    pins = load_target(X86, {"runtime_packages": ["numpy==2.2.6"]})
    cache = BuildCache(tmp_path / "cache")
    # Only the key is computed here: a different requirement list is a different entry.
    report = vendor(pins, tmp_path / "pins", cache)
    assert report.cache_key != vendored[X86].report.cache_key
    assert [p.version for p in report.packages] == ["2.2.6"]
    assert base.platform_tags == pins.platform_tags


# -- trimming ----------------------------------------------------------------------------


def test_trim_rules_left_out_what_the_profile_names(vendored: dict[str, Vendored]) -> None:
    for name in (X86, ARM):
        v = vendored[name]
        trimmed = v.report.trimmed
        assert trimmed == sorted(trimmed)
        for expected in (
            "ai_edge_litert/libLiteRtWebGpuAccelerator.so",
            "ai_edge_litert/tools",
            "ai_edge_litert/aot",
            "numpy/_core/tests",
            "numpy/f2py",
            "numpy/_core/include",
            "bin",
        ):
            assert expected in trimmed, (name, expected)
        assert any(t.endswith(".dist-info/RECORD") for t in trimmed)
        assert any(t.endswith(".pyi") for t in trimmed)
        for rel in trimmed:
            assert not (v.dest / rel).exists(), rel
        # What the interpreter needs is still there.
        for kept in (
            "ai_edge_litert/interpreter.py",
            "ai_edge_litert/libpywrap_litert_common.so",
            "ai_edge_litert/libLiteRt.so",
            "numpy.libs",
        ):
            assert (v.dest / kept).exists(), kept


@pytest.mark.parametrize("name", [X86, ARM])
def test_runtime_dependencies_fit_the_budget(vendored: dict[str, Vendored], name: str) -> None:
    v = vendored[name]
    size = tree_bytes(v.dest)
    assert size == v.report.vendored_bytes
    assert v.report.installed_bytes > size
    assert size <= RUNTIME_DEPENDENCIES_BUDGET, f"{name}: {size / 1e6:.1f} MB unzipped"


def test_trim_touches_only_vendored_paths(vendored: dict[str, Vendored], tmp_path: Path) -> None:
    dest = tmp_path / "staging"
    ours = dest / "edgepack_runtime" / "__pycache__" / "predictor.cpython-312.pyc"
    ours.parent.mkdir(parents=True)
    ours.write_bytes(b"not vendored")
    (dest / "handler.py").write_text("def handler(event, context): ...\n")
    report = vendor(vendored[X86].profile, dest, BuildCache.default())
    assert ours.read_bytes() == b"not vendored"
    assert (dest / "handler.py").is_file()
    assert "edgepack_runtime/__pycache__" not in report.trimmed


def test_trim_rule_globs() -> None:
    tests = TrimRule.parse("**/tests")
    assert all(tests.matches(p) for p in ("tests", "numpy/tests", "numpy/_core/tests"))
    assert not tests.matches("numpy/tests_helpers") and not tests.matches("numpy/tests/x.py")
    record = TrimRule.parse("*.dist-info/RECORD")
    assert record.matches("numpy-2.4.6.dist-info/RECORD") and not record.matches("a/b.dist-info/RECORD")
    below = TrimRule.parse("numpy/f2py/**")
    assert below.matches("numpy/f2py") and below.matches("numpy/f2py/src/x.c") and not below.matches("numpy")
    so = TrimRule.parse("numpy/_core/_simd.*.so")
    assert so.matches("numpy/_core/_simd.cpython-312-x86_64-linux-gnu.so")
    assert not so.matches("numpy/_core/_simd_x.so")
    assert TrimRule.parse("lib[!x]?.so").matches("liba1.so") and not TrimRule.parse("lib[!x]?.so").matches(
        "libx1.so"
    )
    for bad in ("../outside", "/abs/path", "a/../b", ""):
        with pytest.raises(ConfigError, match="trim"):
            TrimRule.parse(bad, "lambda-x86_64")


def test_copy_trimmed_reports_sizes(tmp_path: Path) -> None:
    src = tmp_path / "src"
    (src / "pkg" / "tests").mkdir(parents=True)
    (src / "pkg" / "__init__.py").write_text("x = 1\n")
    (src / "pkg" / "tests" / "test_x.py").write_text("assert True\n" * 10)
    (src / "pkg" / "big.pyi").write_text("y: int\n")
    trimmed, total, kept = copy_trimmed(
        src, tmp_path / "dest", [TrimRule.parse("**/tests"), TrimRule.parse("**/*.pyi")]
    )
    assert trimmed == ["pkg/big.pyi", "pkg/tests"]
    assert (total, kept) == (6 + 120 + 7, 6)
    assert sorted(p.name for p in (tmp_path / "dest" / "pkg").iterdir()) == ["__init__.py"]


def test_copy_trimmed_links_cached_files_and_copies_across_filesystems(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    src = tmp_path / "src"
    (src / "pkg").mkdir(parents=True)
    (src / "pkg" / "mod.py").write_text("x = 1\n")
    (src / "pkg" / "tool").write_text("#!/bin/sh\n")
    (src / "pkg" / "tool").chmod(0o755)
    copy_trimmed(src, tmp_path / "linked", [])
    assert (tmp_path / "linked" / "pkg" / "mod.py").stat().st_ino == (src / "pkg" / "mod.py").stat().st_ino

    def cross_device(a: object, b: object) -> None:
        raise OSError(18, "Invalid cross-device link")

    monkeypatch.setattr(os, "link", cross_device)
    copy_trimmed(src, tmp_path / "copied", [])
    copied = tmp_path / "copied" / "pkg"
    assert copied.joinpath("mod.py").stat().st_ino != (src / "pkg" / "mod.py").stat().st_ino
    assert copied.joinpath("mod.py").read_text() == "x = 1\n"
    assert copied.joinpath("tool").stat().st_mode & 0o777 == 0o755


# -- the proof: a clean python3.12 runs a TFLite model on the trimmed tree ------------------


def _python312() -> Path | None:
    candidates = [shutil.which("python3.12")]
    pyenv = Path(os.environ.get("PYENV_ROOT") or Path.home() / ".pyenv") / "versions"
    candidates += [str(p) for p in sorted(pyenv.glob("3.12.*/bin/python3.12"), reverse=True)]
    for c in candidates:
        if not c:
            continue
        probe = subprocess.run(
            [c, "-I", "-S", "-c", "import sys, platform; print(sys.version_info[:2], platform.machine())"],
            capture_output=True,
            text=True,
        )
        if probe.returncode == 0 and probe.stdout.strip() == "(3, 12) x86_64":
            return Path(c)
    return None


@pytest.fixture(scope="module")
def tiny_tflite(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, np.ndarray, np.ndarray]:
    """softmax(x @ w + b) as a float TFLite model, with its weights for a numpy reference."""
    from edgepack.model.tf_env import import_tensorflow

    tf = import_tensorflow()
    rng = np.random.default_rng(7)
    w = rng.standard_normal((8, 4)).astype(np.float32)
    b = rng.standard_normal(4).astype(np.float32)

    class Tiny(tf.Module):  # type: ignore[name-defined]
        @tf.function(input_signature=[tf.TensorSpec([1, 8], tf.float32, name="x")])
        def __call__(self, x: Any) -> Any:
            return tf.nn.softmax(tf.matmul(x, w) + b)

    module = Tiny()
    converter = tf.lite.TFLiteConverter.from_concrete_functions(
        [module.__call__.get_concrete_function()], module
    )
    path = tmp_path_factory.mktemp("tflite") / "tiny.tflite"
    path.write_bytes(converter.convert())
    return path, w, b


RUN_MODEL = r"""
import json, sys
sys.path.insert(0, sys.argv[1])
import numpy as np
from ai_edge_litert.interpreter import Interpreter
it = Interpreter(model_path=sys.argv[2], num_threads=1)
it.allocate_tensors()
inp, out = it.get_input_details()[0], it.get_output_details()[0]
x = np.arange(8, dtype=np.float32).reshape(1, 8) / 8
it.set_tensor(inp["index"], x)
it.invoke()
y = it.get_tensor(out["index"])
# The Lambda adapter's telemetry: Powertools Logger and Metrics import from the same tree.
from aws_lambda_powertools import Logger, Metrics
Logger(service="probe")
Metrics(namespace="probe", service="probe")
loaded = sorted({line.split()[-1] for line in open("/proc/self/maps") if line.rstrip().endswith(".so")
                 or ".so." in line})
print(json.dumps({"y": y.tolist(), "numpy": np.__file__, "maps": loaded}))
"""


def test_trimmed_x86_64_tree_runs_a_tflite_model_in_a_clean_python312(
    vendored: dict[str, Vendored], tiny_tflite: tuple[Path, np.ndarray, np.ndarray], tmp_path: Path
) -> None:
    python = _python312()
    if python is None:
        pytest.skip("no CPython 3.12 for x86_64 on this host (Lambda python3.12 is the target)")
    model, w, b = tiny_tflite
    tree = vendored[X86].dest
    script = tmp_path / "run_model.py"
    script.write_text(RUN_MODEL)
    env = {k: v for k, v in os.environ.items() if not k.startswith("PYTHON") and k != "VIRTUAL_ENV"}
    # -I: no environment variables, no user site; -S: not even the interpreter's site-packages.
    done = subprocess.run(
        [str(python), "-I", "-S", "-B", str(script), str(tree), str(model)],
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    result = json.loads(done.stdout.strip().splitlines()[-1])
    assert Path(result["numpy"]).is_relative_to(tree)
    x = np.arange(8, dtype=np.float32).reshape(1, 8) / 8
    logits = x @ w + b
    expected = np.exp(logits - logits.max()) / np.exp(logits - logits.max()).sum()
    np.testing.assert_allclose(np.array(result["y"]), expected, rtol=1e-5, atol=1e-6)
    loaded = [m for m in result["maps"] if m.startswith(str(tree))]
    assert any(m.endswith("libpywrap_litert_common.so") for m in loaded)
    assert not any("WebGpu" in m or "/vendors/" in m for m in loaded)


@pytest.mark.slow
def test_trimmed_arm64_tree_runs_a_tflite_model_under_qemu(
    tiny_tflite: tuple[Path, np.ndarray, np.ndarray], tmp_path: Path
) -> None:
    """The arm64 trim rules, proved on aarch64: the profile's Lambda python3.13, vendored and
    run with trixie's python3.13 under qemu."""
    if shutil.which("mmdebstrap") is None:
        pytest.skip("needs mmdebstrap (apt-get install mmdebstrap) for an aarch64 CPython and qemu")
    cache = BuildCache.default()
    # The same trixie python3.13 and qemu 10 that local invoke runs arm64 artifacts with.
    emulated = aarch64_python("3.13", cache)
    profile = load_target(ARM)
    assert profile.lambda_runtime == "python3.13"
    tree = tmp_path / "tree"
    report = vendor(profile, tree, cache)
    assert "ai_edge_litert/libLiteRtWebGpuAccelerator.so" in report.trimmed
    audit_tree(tree, "aarch64", "2.34", python="3.13")
    model, w, b = tiny_tflite
    script = tmp_path / "run_model.py"
    script.write_text(RUN_MODEL)
    env = {k: v for k, v in os.environ.items() if not k.startswith("PYTHON") and k != "VIRTUAL_ENV"}
    done = subprocess.run(
        [*emulated.command(), "-I", "-S", "-B", str(script), str(tree), str(model)],
        capture_output=True,
        text=True,
        env=env,
        timeout=300,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    result = json.loads(done.stdout.strip().splitlines()[-1])
    x = np.arange(8, dtype=np.float32).reshape(1, 8) / 8
    logits = x @ w + b
    expected = np.exp(logits - logits.max()) / np.exp(logits - logits.max()).sum()
    np.testing.assert_allclose(np.array(result["y"]), expected, rtol=1e-5, atol=1e-6)
    assert any(m.endswith("libpywrap_litert_common.so") and m.startswith(str(tree)) for m in result["maps"])


# -- installers ----------------------------------------------------------------------------


def test_uv_is_chosen_when_it_can_name_the_glibc(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(INSTALLER_ENV, raising=False)
    installer = choose_installer(load_target(X86))
    if installer.name != "uv":
        pytest.skip("uv is not installed here: pip is the installer")
    # Lambda python3.11 runs on glibc 2.26, a ceiling uv's --python-platform cannot name.
    assert choose_installer(load_target(X86, {"lambda_runtime": "python3.11"})).name == "pip"


def test_pip_fallback_installs_the_same_wheels(
    vendored: dict[str, Vendored], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(INSTALLER_ENV, "pip")
    report = vendor(load_target(ARM), tmp_path / "pip", BuildCache.default())
    assert report.installer.startswith("pip ")
    uv_report = vendored[ARM].report
    if uv_report.installer == report.installer:
        pytest.skip("pip did both")
    assert report.cache_key != uv_report.cache_key  # the installer is part of the key
    ours = {p.name.lower().replace("_", "-"): p for p in report.packages}
    theirs = {p.name.lower().replace("_", "-"): p for p in uv_report.packages}
    assert set(ours) == set(theirs)
    for name in ("ai-edge-litert", "numpy"):
        # Same file from the same index, digests from two installers' own reports.
        assert (ours[name].wheel, ours[name].sha256) == (theirs[name].wheel, theirs[name].sha256)
    assert not list((tmp_path / "pip").rglob("__pycache__"))
    audit_tree(tmp_path / "pip", "aarch64", "2.34", python=PYTHON[ARM])


# -- when no wheel fits -----------------------------------------------------------------


def test_openvino_for_lambda_arm64_names_the_glibc_it_needs(tmp_path: Path) -> None:
    profile = load_target(ARM, {"runtime_packages": ["openvino>=2025.3"]})
    dest = tmp_path / "out"
    with pytest.raises(PlatformError) as e:
        vendor(profile, dest, BuildCache.default())
    message = e.value.hint()
    assert re.search(
        r"openvino==\S+ has no wheel for Lambda python3\.13 on aarch64 with glibc <= 2\.34 "
        r"\(newest it ships: manylinux_2_(\d+)_aarch64\)",
        message,
    ), message
    assert int(re.search(r"manylinux_2_(\d+)_aarch64", message).group(1)) > 34  # type: ignore[union-attr]
    assert e.value.exit_code == 2
    assert not dest.exists() or not any(dest.iterdir())


def test_litert_on_lambda_python311_is_refused(tmp_path: Path) -> None:
    # python3.11 runs on Amazon Linux 2 (glibc 2.26); ai-edge-litert ships manylinux_2_27 wheels.
    profile = load_target(X86, {"lambda_runtime": "python3.11"})
    with pytest.raises(PlatformError) as e:
        vendor(profile, tmp_path / "out", BuildCache.default())
    assert (
        "ai-edge-litert==2.3.0 has no wheel for Lambda python3.11 on x86_64 with glibc <= 2.26 "
        "(newest it ships: manylinux_2_27_x86_64)"
    ) in str(e.value)


def test_unknown_package_is_named(tmp_path: Path) -> None:
    profile = load_target(X86, {"runtime_packages": ["numpy", "edgepack-no-such-package-4f9c2"]})
    with pytest.raises(
        ConfigError, match="'edgepack-no-such-package-4f9c2' was not found in the package index"
    ):
        vendor(profile, tmp_path / "out", BuildCache.default())


def test_invalid_requirement_is_named(tmp_path: Path) -> None:
    profile = load_target(X86, {"runtime_packages": ["numpy", "ai-edge-litert>>2"]})
    with pytest.raises(ConfigError) as e:
        vendor(profile, tmp_path / "out", BuildCache.default())
    assert e.value.where == "target lambda-x86_64: runtime_packages[1]"
    assert "ai-edge-litert>>2" in e.value.hint()


def test_no_runtime_packages_is_nothing_to_do(tmp_path: Path) -> None:
    with spawned_processes() as spawned:
        report = vendor(load_target(X86, {"runtime_packages": []}), tmp_path / "out", BuildCache.default())
    assert (report.packages, report.trimmed, spawned) == ([], [], [])


def test_unreachable_index_is_a_packaging_error_not_a_platform_error(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    profile = load_target(X86, {"runtime_packages": ["numpy==2.2.6"]})
    if choose_installer(profile).name != "uv":
        pytest.skip("uv reads UV_INDEX_URL; this case is about uv")
    # Nothing listens on the discard port of the loopback: every fetch fails at once.
    monkeypatch.setenv("UV_INDEX_URL", "http://127.0.0.1:9/simple")
    monkeypatch.setenv("UV_HTTP_RETRIES", "0")
    monkeypatch.setenv("UV_NO_CACHE", "1")
    with pytest.raises(PackagingError) as e:
        vendor(profile, tmp_path / "out", BuildCache(tmp_path / "cache"))
    assert not isinstance(e.value, PlatformError)
    assert "127.0.0.1:9" in e.value.hint()
