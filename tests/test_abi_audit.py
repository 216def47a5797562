"""The ABI audit on real vendored trees (LiteRT Lambda, x86_64 and arm64), and the faults
it must catch: a wrong-architecture .so (whatever its name), a symbol version from a newer
glibc, a wheel tagged for another Python or platform, a truncated or 32-bit ELF file."""

from __future__ import annotations

import os
import shutil
import struct
import subprocess
from pathlib import Path

import pytest

from edgepack.abi_audit import AuditReport, audit_tree, tag_problem
from edgepack.cache import BuildCache
from edgepack.errors import AbiAuditError
from edgepack.targets import load_target
from edgepack.vendoring import vendor

X86, ARM = "lambda-x86_64", "lambda-arm64"
# Each profile's Lambda Python: arm64 defaults to python3.13 (Debian ships an aarch64 3.13 to run it).
PYTHON = {X86: "3.12", ARM: "3.13"}


@pytest.fixture(scope="module")
def trees(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """The trimmed vendored trees of both LiteRT Lambda targets (downloads shared via the build cache)."""
    out = {}
    for name in (X86, ARM):
        dest = tmp_path_factory.mktemp(name)
        vendor(load_target(name), dest, BuildCache.default())
        out[name] = dest
    return out


@pytest.fixture
def x86_copy(trees: dict[str, Path], tmp_path: Path) -> Path:
    dest = tmp_path / "tree"
    shutil.copytree(trees[X86], dest)
    return dest


def _aarch64_so(trees: dict[str, Path]) -> Path:
    found = sorted(trees[ARM].glob("numpy/_core/_multiarray_umath.cpython-313-aarch64-linux-gnu.so"))
    assert found, "the arm64 tree has numpy's core extension"
    return found[0]


def test_real_trees_pass(trees: dict[str, Path]) -> None:
    for name, arch in ((X86, "x86_64"), (ARM, "aarch64")):
        report = audit_tree(trees[name], arch, "2.34", python=PYTHON[name])
        assert isinstance(report, AuditReport)
        assert len(report.elf_files) >= 10, "numpy and litert ship a dozen native files at least"
        assert {f.machine for f in report.elf_files} == {arch}
        assert len(report.wheels) >= 5
        paths = {f.path for f in report.elf_files}
        assert "ai_edge_litert/libpywrap_litert_common.so" in paths
        newest = report.max_glibc
        assert newest is not None and tuple(map(int, newest.split("."))) <= (2, 34)
        assert report.to_dict()["elf_files"] == len(report.elf_files)


def test_wrong_architecture_so_is_named(trees: dict[str, Path], x86_copy: Path) -> None:
    name = "numpy/_core/_multiarray_umath.cpython-313-aarch64-linux-gnu.so"
    shutil.copyfile(_aarch64_so(trees), x86_copy / name)
    with pytest.raises(AbiAuditError) as e:
        audit_tree(x86_copy, "x86_64", "2.34", python="3.12")
    assert f"{name}: ELF machine aarch64, target is x86_64" in str(e.value)
    assert e.value.exit_code == 1


def test_elf_found_by_magic_not_extension(trees: dict[str, Path], x86_copy: Path) -> None:
    hidden = x86_copy / "ai_edge_litert" / "model_assets.bin"
    shutil.copyfile(_aarch64_so(trees), hidden)
    with pytest.raises(AbiAuditError, match=r"ai_edge_litert/model_assets\.bin: ELF machine aarch64"):
        audit_tree(x86_copy, "x86_64", "2.34")


def test_glibc_ceiling_below_what_the_tree_needs(trees: dict[str, Path]) -> None:
    # ai-edge-litert's wheels are manylinux_2_27: on an older glibc its core library cannot load.
    with pytest.raises(AbiAuditError) as e:
        audit_tree(trees[X86], "x86_64", "2.17")
    message = str(e.value)
    assert "ai_edge_litert/libpywrap_litert_common.so: needs GLIBC_2.2" in message
    assert "newer than the target's glibc 2.17" in message
    assert "more)" in message  # every problem is counted, the first few are shown


def test_arm64_litert_needs_more_than_its_wheel_tag_says(trees: dict[str, Path]) -> None:
    """The aarch64 wheel is tagged manylinux_2_27 but its core library needs GLIBC_2.34:
    the audit reads the ELF files, not the tag, and refuses a 2.31 device."""
    report = audit_tree(trees[ARM], "aarch64", "2.34")
    needs = {f.path: f.max_glibc for f in report.elf_files}
    if needs["ai_edge_litert/libpywrap_litert_common.so"] != "2.34":
        pytest.skip("this ai-edge-litert build no longer needs glibc 2.34")
    with pytest.raises(AbiAuditError, match="libpywrap_litert_common.so: needs GLIBC_2.34"):
        audit_tree(trees[ARM], "aarch64", "2.31")


ARC4RANDOM_C = """
#include <stdlib.h>
unsigned int draw(void) { return arc4random(); }  /* GLIBC_2.36 */
"""


def test_gcc_built_so_needing_a_newer_glibc(x86_copy: Path, tmp_path: Path) -> None:
    if shutil.which("gcc") is None:
        pytest.skip("needs gcc")
    libc = os.confstr("CS_GNU_LIBC_VERSION") or "glibc 0.0"
    if tuple(int(x) for x in libc.split()[1].split(".")[:2]) < (2, 36):
        pytest.skip("arc4random needs glibc 2.36 on the build host")
    src = tmp_path / "draw.c"
    src.write_text(ARC4RANDOM_C)
    out = x86_copy / "userlib" / "libdraw.so"
    out.parent.mkdir()
    subprocess.run(["gcc", "-shared", "-fPIC", "-o", str(out), str(src)], check=True)
    with pytest.raises(AbiAuditError) as e:
        audit_tree(x86_copy, "x86_64", "2.34")
    assert "userlib/libdraw.so: needs GLIBC_2.36, newer than the target's glibc 2.34 (from libc.so.6)" in str(
        e.value
    )
    assert "numpy" not in str(e.value)  # only the offender is named
    report = audit_tree(x86_copy, "x86_64", "2.36")
    assert {f.path: f.max_glibc for f in report.elf_files}["userlib/libdraw.so"] == "2.36"


def _write_wheel(root: Path, dist: str, *tags: str) -> Path:
    info = root / f"{dist}.dist-info"
    info.mkdir()
    lines = ["Wheel-Version: 1.0", "Generator: test", "Root-Is-Purelib: false", *(f"Tag: {t}" for t in tags)]
    (info / "WHEEL").write_text("\n".join(lines) + "\n")
    return info / "WHEEL"


@pytest.mark.parametrize(
    ("tag", "problem"),
    [
        ("cp311-cp311-manylinux_2_17_x86_64", "is for cp311, target is python3.12"),
        ("cp312-cp312-manylinux_2_17_aarch64", "is for aarch64, target is x86_64"),
        ("cp312-cp312-manylinux_2_35_x86_64", "needs glibc 2.35, newer than the target's 2.34"),
        ("cp312-cp312-linux_x86_64", "not a manylinux platform"),
        ("cp312-cp312-musllinux_1_2_x86_64", "not a manylinux platform"),
        ("cp313-abi3-manylinux2014_x86_64", "needs Python >= 3.13"),
        ("pp310-pypy310_pp73-manylinux2014_x86_64", "interpreter pp310"),
    ],
)
def test_wrong_wheel_tag_is_named(tmp_path: Path, tag: str, problem: str) -> None:
    _write_wheel(tmp_path, "fake-1.0", tag)
    with pytest.raises(AbiAuditError) as e:
        audit_tree(tmp_path, "x86_64", "2.34", python="3.12")
    assert f"fake-1.0.dist-info/WHEEL: tag {tag} " in str(e.value)
    assert problem in str(e.value)


@pytest.mark.parametrize(
    "tags",
    [
        ("py3-none-any",),
        ("py2-none-any", "py3-none-any"),
        ("cp310-abi3-manylinux2014_x86_64",),
        ("cp312-cp312-manylinux_2_34_x86_64",),
        ("cp312-cp312-manylinux1_x86_64",),
        # A compressed tag set: one tag that fits is enough.
        ("cp312-cp312-manylinux_2_27_x86_64", "cp312-cp312-manylinux_2_35_x86_64"),
    ],
)
def test_fitting_wheel_tags_pass(tmp_path: Path, tags: tuple[str, ...]) -> None:
    _write_wheel(tmp_path, "fake-1.0", *tags)
    report = audit_tree(tmp_path, "x86_64", "2.34", python="3.12")
    assert report.wheels[0].tags == tags


def test_without_python_only_the_platform_is_checked(tmp_path: Path) -> None:
    _write_wheel(tmp_path, "fake-1.0", "cp311-cp311-manylinux_2_17_x86_64")
    audit_tree(tmp_path, "x86_64", "2.34")
    with pytest.raises(AbiAuditError):
        audit_tree(tmp_path, "x86_64", "2.34", python="3.12")


def test_truncated_elf_is_named(trees: dict[str, Path], tmp_path: Path) -> None:
    data = (trees[X86] / "ai_edge_litert" / "libpywrap_litert_common.so").read_bytes()
    (tmp_path / "broken.so").write_bytes(data[:300])
    with pytest.raises(AbiAuditError, match=r"broken\.so: malformed ELF file \(truncated"):
        audit_tree(tmp_path, "x86_64", "2.34")


def test_32bit_elf_is_refused(tmp_path: Path) -> None:
    ident = b"\x7fELF" + bytes([1, 1, 1, 0]) + bytes(8)
    header = ident + struct.pack("<HHIIIIIHHHHHH", 3, 3, 1, 0, 0, 0, 0, 52, 32, 0, 40, 0, 0)
    (tmp_path / "lib32.so").write_bytes(header)
    with pytest.raises(AbiAuditError) as e:
        audit_tree(tmp_path, "x86_64", "2.34")
    assert "lib32.so: ELF machine i686, target is x86_64" in str(e.value)
    assert "lib32.so: 32-bit ELF, target is 64-bit x86_64" in str(e.value)


def test_non_elf_files_are_skipped(tmp_path: Path) -> None:
    (tmp_path / "readme.so").write_text("not ELF")
    (tmp_path / "empty.bin").write_bytes(b"")
    report = audit_tree(tmp_path, "aarch64", "2.34")
    assert report.skipped == 2 and report.elf_files == []


def test_bad_arguments() -> None:
    with pytest.raises(AbiAuditError, match="unknown architecture"):
        audit_tree(Path("."), "sparc", "2.34")
    with pytest.raises(AbiAuditError, match="invalid glibc"):
        audit_tree(Path("."), "x86_64", "")


def test_tag_problem_rules() -> None:
    fits = [
        ("py3-none-any", 12),
        ("py312-none-any", 12),
        ("cp312-none-any", 12),
        ("cp37-abi3-manylinux_2_17_aarch64", 12),
        ("cp312-cp312-manylinux2014_aarch64.manylinux_2_17_aarch64", 12),
    ]
    for tag, minor in fits:
        assert tag_problem(tag, "aarch64", (2, 34), minor) is None, tag
    assert tag_problem("py313-none-any", "aarch64", (2, 34), 12) is not None
    assert (
        tag_problem("cp312-cp312-manylinux_2_28_x86_64.manylinux_2_28_aarch64", "aarch64", (2, 34), 12)
        is None
    )
    assert "malformed" in (tag_problem("garbage", "x86_64", (2, 34), 12) or "")
