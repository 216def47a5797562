"""The pure-Python ELF reader against real files (gcc-built and the host's own libraries),
hand-built headers, and truncated or corrupted copies."""

from __future__ import annotations

import random
import shutil
import struct
import subprocess
import sys
from pathlib import Path

import pytest

from edgepack.elf import (
    EM_AARCH64,
    EM_ARM,
    EM_X86_64,
    ET_DYN,
    ElfError,
    is_elf,
    parse_glibc_version,
    read_elf,
)

HOST_MACHINE = {"x86_64": EM_X86_64, "aarch64": EM_AARCH64}

needs_gcc = pytest.mark.skipif(shutil.which("gcc") is None, reason="needs gcc to build a shared object")


def _gcc_shared(tmp_path: Path, source: str, name: str = "libprobe.so", *flags: str) -> Path:
    src = tmp_path / f"{name}.c"
    src.write_text(source)
    out = tmp_path / name
    subprocess.run(["gcc", "-shared", "-fPIC", "-O1", "-o", str(out), str(src), *flags], check=True)
    return out


PROBE_C = """
#include <math.h>
#include <string.h>
double probe(double x) { return cos(x); }
void *copy(void *d, const void *s, unsigned long n) { return memcpy(d, s, n); }
"""


@pytest.fixture(scope="module")
def probe_so(tmp_path_factory: pytest.TempPathFactory) -> Path:
    if shutil.which("gcc") is None:
        pytest.skip("needs gcc to build a shared object")
    return _gcc_shared(tmp_path_factory.mktemp("elf"), PROBE_C, "libprobe.so", "-lm")


def test_reads_a_gcc_built_shared_object(probe_so: Path) -> None:
    import platform

    info = read_elf(probe_so)
    assert info is not None
    assert info.elf_class == 64 and info.little_endian and info.type == ET_DYN
    assert info.machine == HOST_MACHINE[platform.machine()]
    assert "libc.so.6" in info.needed and "libm.so.6" in info.needed
    libs = {need.library for need in info.version_needs}
    assert "libc.so.6" in libs
    assert info.max_glibc is not None and info.max_glibc >= (2, 2)
    assert all(v >= (2, 0) for v in info.glibc_versions)


def test_matches_readelf_on_host_libraries() -> None:
    """Cross-check DT_NEEDED and the GLIBC versions needed against binutils on real files."""
    if shutil.which("readelf") is None:
        pytest.skip("needs binutils' readelf")
    import re

    candidates = [Path(sys.executable).resolve()]
    candidates += sorted(Path(p) for p in Path("/usr/lib").rglob("libstdc++.so.6*") if not p.is_symlink())[:1]
    candidates += sorted(Path(sys.base_prefix).rglob("lib-dynload/*.so"))[:20]
    checked = 0
    for path in candidates:
        info = read_elf(path)
        if info is None:
            continue
        out = subprocess.run(["readelf", "-V", "-d", str(path)], capture_output=True, text=True).stdout
        needs_part = out.split("Version needs section", 1)[1] if "Version needs section" in out else ""
        expected_versions = sorted(set(re.findall(r"Name: (GLIBC_2[0-9.]+)", needs_part)))
        got_versions = sorted({v for n in info.version_needs for v in n.versions if v.startswith("GLIBC_2")})
        assert got_versions == expected_versions, path
        assert list(info.needed) == re.findall(r"Shared library: \[([^\]]+)\]", out), path
        checked += 1
    assert checked >= 5


def test_non_elf_is_none_not_an_error(tmp_path: Path) -> None:
    for name, data in {"empty": b"", "short": b"\x7fEL", "text.so": b"not an ELF file at all"}.items():
        p = tmp_path / name
        p.write_bytes(data)
        assert read_elf(p) is None
        assert not is_elf(p)


def _elf32_header(machine: int, big_endian: bool = False) -> bytes:
    end = ">" if big_endian else "<"
    ident = b"\x7fELF" + bytes([1, 2 if big_endian else 1, 1, 0]) + bytes(8)
    # e_type e_machine e_version e_entry e_phoff e_shoff e_flags e_ehsize e_phentsize e_phnum ...
    return ident + struct.pack(f"{end}HHIIIIIHHHHHH", ET_DYN, machine, 1, 0, 0, 0, 0, 52, 32, 0, 40, 0, 0)


def test_hand_built_32bit_header(tmp_path: Path) -> None:
    p = tmp_path / "arm32.so"
    p.write_bytes(_elf32_header(EM_ARM, big_endian=True))
    info = read_elf(p)
    assert info is not None
    assert (info.elf_class, info.little_endian, info.machine_name) == (32, False, "armv7l")
    assert info.version_needs == () and info.max_glibc is None


@pytest.mark.parametrize("keep", [5, 16, 20, 40, 63])
def test_truncated_header_raises(probe_so: Path, tmp_path: Path, keep: int) -> None:
    p = tmp_path / "truncated.so"
    p.write_bytes(probe_so.read_bytes()[:keep])
    with pytest.raises(ElfError, match="truncated"):
        read_elf(p)


def test_truncated_before_dynamic_segment_raises(probe_so: Path, tmp_path: Path) -> None:
    data = probe_so.read_bytes()
    p = tmp_path / "half.so"
    p.write_bytes(data[:200])  # header and program headers, but not the dynamic segment
    with pytest.raises(ElfError):
        read_elf(p)


def test_invalid_class_and_byte_order(probe_so: Path, tmp_path: Path) -> None:
    data = bytearray(probe_so.read_bytes()[:64])
    data[4] = 7
    p = tmp_path / "badclass.so"
    p.write_bytes(bytes(data))
    with pytest.raises(ElfError, match="class"):
        read_elf(p)
    data[4], data[5] = 2, 9
    p.write_bytes(bytes(data))
    with pytest.raises(ElfError, match="byte order"):
        read_elf(p)


def test_corrupted_copies_never_escape_as_other_errors(probe_so: Path, tmp_path: Path) -> None:
    """Garbage in the headers and tables gives ElfError or a parse, never struct.error/IndexError."""
    data = probe_so.read_bytes()
    rng = random.Random(1234)
    p = tmp_path / "fuzz.so"
    outcomes = {"parsed": 0, "ElfError": 0}
    for _ in range(400):
        mutated = bytearray(data)
        for _ in range(rng.randint(1, 8)):
            # Mostly hit the ELF header and program headers, sometimes anywhere.
            pos = rng.randrange(0, 256) if rng.random() < 0.7 else rng.randrange(0, len(mutated))
            mutated[pos] = rng.randrange(256)
        mutated[:4] = b"\x7fELF"
        cut = len(mutated) if rng.random() < 0.7 else rng.randrange(4, len(mutated))
        p.write_bytes(bytes(mutated[:cut]))
        try:
            read_elf(p)
            outcomes["parsed"] += 1
        except ElfError:
            outcomes["ElfError"] += 1
    assert outcomes["parsed"] and outcomes["ElfError"]


def test_parse_glibc_version() -> None:
    assert parse_glibc_version("GLIBC_2.27") == (2, 27)
    assert parse_glibc_version("GLIBC_2.2.5") == (2, 2, 5)
    assert parse_glibc_version("GLIBC_PRIVATE") is None
    assert parse_glibc_version("GLIBCXX_3.4.30") is None
    assert (2, 2, 5) < (2, 3) < (2, 27) < (2, 34)


@needs_gcc
def test_static_executable_has_no_version_needs(tmp_path: Path) -> None:
    src = tmp_path / "main.c"
    src.write_text("int main(void) { return 0; }\n")
    exe = tmp_path / "static-main"
    done = subprocess.run(["gcc", "-static", "-o", str(exe), str(src)], capture_output=True)
    if done.returncode != 0:
        pytest.skip("no static libc to link against")
    info = read_elf(exe)
    assert info is not None and info.needed == () and info.version_needs == ()
