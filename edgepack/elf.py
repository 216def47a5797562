"""A small, pure-Python ELF reader: just what the ABI audit needs.

It reads the ELF header, the program headers and the dynamic segment: the machine,
the class (32/64-bit), the byte order, the shared libraries needed (``DT_NEEDED``) and
the symbol versions needed from each (``DT_VERNEED``, the table the dynamic loader
checks, e.g. ``GLIBC_2.27`` from ``libc.so.6``). It works from the dynamic segment, not
the section headers, because that is what the loader reads and stripped files keep it.

Every read is bounds-checked: a truncated or garbage file raises :class:`ElfError`,
never ``struct.error`` or ``IndexError``; a file without the ELF magic is not an error
(:func:`read_elf` returns ``None``).
"""

from __future__ import annotations

import re
import struct
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import BinaryIO

ELF_MAGIC = b"\x7fELF"

ELFCLASS32 = 1
ELFCLASS64 = 2
ELFDATA2LSB = 1
ELFDATA2MSB = 2

ET_REL, ET_EXEC, ET_DYN, ET_CORE = 1, 2, 3, 4
_TYPE_NAMES = {ET_REL: "relocatable", ET_EXEC: "executable", ET_DYN: "shared object", ET_CORE: "core"}

EM_386 = 3
EM_ARM = 40
EM_X86_64 = 62
EM_AARCH64 = 183
# Names follow ``uname -m`` / wheel platform tags, so they compare with a target's ``arch``.
MACHINE_NAMES: dict[int, str] = {
    EM_386: "i686",
    8: "mips",
    20: "ppc",
    21: "ppc64",
    22: "s390x",
    EM_ARM: "armv7l",
    EM_X86_64: "x86_64",
    EM_AARCH64: "aarch64",
    243: "riscv64",
    258: "loongarch64",
}
MACHINES: dict[str, int] = {name: number for number, name in MACHINE_NAMES.items()}

PT_LOAD = 1
PT_DYNAMIC = 2

DT_NULL = 0
DT_NEEDED = 1
DT_STRTAB = 5
DT_STRSZ = 10
DT_SONAME = 14
DT_VERNEED = 0x6FFFFFFE
DT_VERNEEDNUM = 0x6FFFFFFF

# Far more than any real file has; only a corrupt (or hostile) file gets near these.
_MAX_PHNUM = 0xFFFF
_MAX_DYN_ENTRIES = 1 << 16
_MAX_VERNEED = 1 << 12
_MAX_STRING = 4096

_GLIBC_RE = re.compile(r"^GLIBC_(\d+)\.(\d+)(?:\.(\d+))?$")


class ElfError(ValueError):
    """The file starts with the ELF magic but is truncated or malformed."""


@dataclass(frozen=True)
class VersionNeed:
    """Symbol versions a file needs from one shared library (one ``Verneed`` entry)."""

    library: str
    versions: tuple[str, ...]


@dataclass(frozen=True)
class ElfInfo:
    elf_class: int  # 32 or 64
    little_endian: bool
    machine: int  # e_machine
    type: int  # e_type
    soname: str | None = None
    needed: tuple[str, ...] = ()
    version_needs: tuple[VersionNeed, ...] = field(default_factory=tuple)

    @property
    def machine_name(self) -> str:
        return MACHINE_NAMES.get(self.machine, f"machine {self.machine}")

    @property
    def type_name(self) -> str:
        return _TYPE_NAMES.get(self.type, f"type {self.type}")

    @property
    def glibc_versions(self) -> list[tuple[int, ...]]:
        """Every ``GLIBC_x.y[.z]`` version needed, from any library, sorted (``GLIBC_PRIVATE`` skipped)."""
        found = set()
        for need in self.version_needs:
            for version in need.versions:
                parsed = parse_glibc_version(version)
                if parsed is not None:
                    found.add(parsed)
        return sorted(found)

    @property
    def max_glibc(self) -> tuple[int, ...] | None:
        versions = self.glibc_versions
        return versions[-1] if versions else None


def parse_glibc_version(name: str) -> tuple[int, ...] | None:
    """``"GLIBC_2.27"`` -> ``(2, 27)``; anything else (``GLIBCXX_3.4``, ``GLIBC_PRIVATE``) -> None."""
    m = _GLIBC_RE.match(name)
    if m is None:
        return None
    return tuple(int(g) for g in m.groups() if g is not None)


def is_elf(path: Path) -> bool:
    """True when the file starts with the ELF magic (extension does not matter)."""
    try:
        with open(path, "rb") as f:
            return f.read(4) == ELF_MAGIC
    except OSError:
        return False


class _Reader:
    def __init__(self, f: BinaryIO, size: int) -> None:
        self.f = f
        self.size = size

    def read(self, offset: int, length: int, what: str) -> bytes:
        if offset < 0 or length < 0 or offset + length > self.size:
            raise ElfError(
                f"truncated: {what} at offset {offset} (+{length}) is past the end ({self.size} bytes)"
            )
        self.f.seek(offset)
        data = self.f.read(length)
        if len(data) != length:
            raise ElfError(f"truncated: short read of {what} at offset {offset}")
        return data

    def cstring(self, offset: int, limit: int, what: str) -> str:
        """A NUL-terminated string starting at ``offset`` that must end before ``limit``."""
        end = min(limit, self.size, offset + _MAX_STRING)
        if offset < 0 or offset >= end:
            raise ElfError(f"{what}: string offset {offset} is outside its table")
        data = self.read(offset, end - offset, what)
        nul = data.find(b"\0")
        if nul < 0:
            raise ElfError(f"{what}: string at offset {offset} is not terminated")
        return data[:nul].decode("utf-8", errors="replace")


@dataclass(frozen=True)
class _Segment:
    type: int
    offset: int
    vaddr: int
    filesz: int


def read_elf(path: Path) -> ElfInfo | None:
    """Read an ELF file's header and dynamic section; ``None`` if it is not ELF at all.

    Raises :class:`ElfError` for an ELF file that is truncated or malformed.
    """
    with open(path, "rb") as f:
        size = f.seek(0, 2)
        f.seek(0)
        if f.read(4) != ELF_MAGIC:
            return None
        return _parse(_Reader(f, size))


def _parse(r: _Reader) -> ElfInfo:
    ident = r.read(0, 16, "e_ident")
    elf_class, data = ident[4], ident[5]
    if elf_class not in (ELFCLASS32, ELFCLASS64):
        raise ElfError(f"invalid ELF class {elf_class}")
    if data not in (ELFDATA2LSB, ELFDATA2MSB):
        raise ElfError(f"invalid ELF byte order {data}")
    is64 = elf_class == ELFCLASS64
    end = "<" if data == ELFDATA2LSB else ">"
    word = "Q" if is64 else "I"  # Elf_Addr / Elf_Off

    header_fmt = f"{end}HHI{word}{word}{word}IHHHHHH"
    header = r.read(16, struct.calcsize(header_fmt), "ELF header")
    fields = struct.unpack(header_fmt, header)
    # e_type e_machine e_version e_entry e_phoff e_shoff e_flags e_ehsize e_phentsize e_phnum ...
    e_type, e_machine, e_phoff, e_phentsize, e_phnum = fields[0], fields[1], fields[4], fields[8], fields[9]
    info = ElfInfo(elf_class=64 if is64 else 32, little_endian=end == "<", machine=e_machine, type=e_type)
    if e_phnum == 0 or e_phoff == 0:
        return info  # relocatable objects and the like: no segments, nothing loaded

    phdr_fmt = f"{end}IIQQQQQQ" if is64 else f"{end}IIIIIIII"
    phdr_size = struct.calcsize(phdr_fmt)
    if e_phentsize < phdr_size:
        raise ElfError(f"program header entries of {e_phentsize} bytes are too small (need {phdr_size})")
    if e_phnum > _MAX_PHNUM:
        raise ElfError(f"implausible program header count {e_phnum}")
    segments = []
    for i in range(e_phnum):
        raw = r.read(e_phoff + i * e_phentsize, phdr_size, f"program header {i}")
        ph = struct.unpack(phdr_fmt, raw)
        if is64:  # p_type, p_flags, p_offset, p_vaddr, p_paddr, p_filesz, p_memsz, p_align
            p_type, _, p_offset, p_vaddr, _, p_filesz, _, _ = ph
        else:  # p_type, p_offset, p_vaddr, p_paddr, p_filesz, p_memsz, p_flags, p_align
            p_type, p_offset, p_vaddr, _, p_filesz, _, _, _ = ph
        segments.append(_Segment(p_type, p_offset, p_vaddr, p_filesz))

    dynamic = next((s for s in segments if s.type == PT_DYNAMIC), None)
    if dynamic is None:
        return info  # statically linked: needs no shared library and no symbol versions
    return _read_dynamic(r, info, dynamic, [s for s in segments if s.type == PT_LOAD], end, is64)


def _read_dynamic(
    r: _Reader, info: ElfInfo, dynamic: _Segment, loads: list[_Segment], end: str, is64: bool
) -> ElfInfo:
    dyn_fmt = f"{end}qQ" if is64 else f"{end}iI"
    dyn_size = struct.calcsize(dyn_fmt)
    count = min(dynamic.filesz // dyn_size, _MAX_DYN_ENTRIES)
    raw = r.read(dynamic.offset, count * dyn_size, "dynamic segment")
    tags: dict[int, int] = {}
    needed_offsets: list[int] = []
    for i in range(count):
        d_tag, d_val = struct.unpack_from(dyn_fmt, raw, i * dyn_size)
        if d_tag == DT_NULL:
            break
        if d_tag == DT_NEEDED:
            needed_offsets.append(d_val)
        else:
            tags.setdefault(d_tag, d_val)

    def file_offset(vaddr: int, what: str) -> int:
        # Addresses in the dynamic segment are virtual; PT_LOAD maps them back to the file.
        for seg in loads:
            if seg.vaddr <= vaddr < seg.vaddr + seg.filesz:
                return vaddr - seg.vaddr + seg.offset
        raise ElfError(f"{what} address {vaddr:#x} is not inside any loaded segment")

    if DT_STRTAB not in tags:
        if needed_offsets or DT_VERNEED in tags:
            raise ElfError("dynamic segment has no string table")
        return info
    strtab = file_offset(tags[DT_STRTAB], "DT_STRTAB")
    strsz = tags.get(DT_STRSZ, r.size - strtab)
    str_end = strtab + strsz
    if str_end > r.size:
        raise ElfError(f"truncated: string table ends at {str_end}, past the end ({r.size} bytes)")

    def string(offset: int, what: str) -> str:
        return r.cstring(strtab + offset, str_end, what)

    needed = tuple(string(off, "DT_NEEDED") for off in needed_offsets)
    soname = string(tags[DT_SONAME], "DT_SONAME") if DT_SONAME in tags else None

    needs: list[VersionNeed] = []
    if DT_VERNEED in tags:
        offset = file_offset(tags[DT_VERNEED], "DT_VERNEED")
        expected = tags.get(DT_VERNEEDNUM, _MAX_VERNEED)
        needs = _read_verneed(r, offset, min(expected, _MAX_VERNEED), end, string)
    return ElfInfo(
        elf_class=info.elf_class,
        little_endian=info.little_endian,
        machine=info.machine,
        type=info.type,
        soname=soname,
        needed=needed,
        version_needs=tuple(needs),
    )


def _read_verneed(
    r: _Reader, offset: int, count: int, end: str, string: Callable[[int, str], str]
) -> list[VersionNeed]:
    # Elf_Verneed: vn_version(2) vn_cnt(2) vn_file(4) vn_aux(4) vn_next(4), same on 32/64-bit.
    # Elf_Vernaux: vna_hash(4) vna_flags(2) vna_other(2) vna_name(4) vna_next(4).
    needs = []
    seen: set[int] = set()
    for i in range(count):
        if offset in seen:
            raise ElfError("version-needed entries form a loop")
        seen.add(offset)
        vn_version, vn_cnt, vn_file, vn_aux, vn_next = struct.unpack(
            f"{end}HHIII", r.read(offset, 16, f"version-needed entry {i}")
        )
        if vn_version != 1:
            raise ElfError(f"unknown version-needed entry version {vn_version}")
        library = string(vn_file, "version-needed file name")
        versions = []
        aux = offset + vn_aux
        for j in range(min(vn_cnt, _MAX_VERNEED)):
            _hash, _flags, _other, vna_name, vna_next = struct.unpack(
                f"{end}IHHII", r.read(aux, 16, f"version-needed aux entry {i}.{j}")
            )
            versions.append(string(vna_name, "version name"))
            if vna_next == 0:
                break
            aux += vna_next
        needs.append(VersionNeed(library, tuple(versions)))
        if vn_next == 0:
            break
        offset += vn_next
    return needs
