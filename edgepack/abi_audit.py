"""ABI audit: does every native file and wheel in a tree fit the target platform?

Installers pick wheels by their tags; the audit checks what actually landed in the
tree, independently of how it got there:

- every ELF file (found by its magic, not its name) is 64-bit, for the target's machine,
  and needs no ``GLIBC_x.y`` symbol version newer than the target's glibc (the versions
  the dynamic loader checks, from the dynamic segment's version-needed table);
- every ``*.dist-info/WHEEL`` has at least one ``Tag:`` that the target accepts.

All problems are collected, then one :class:`~edgepack.errors.AbiAuditError` names
them (relative paths first); a clean tree gives an :class:`AuditReport`.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass, field
from pathlib import Path

from .elf import ELF_MAGIC, MACHINES, ElfError, VersionNeed, read_elf
from .errors import AbiAuditError

_MANYLINUX_LEGACY = {"manylinux1": (2, 5), "manylinux2010": (2, 12), "manylinux2014": (2, 17)}
_MANYLINUX_RE = re.compile(r"^manylinux_(\d+)_(\d+)_(.+)$")
_PYTHON_RE = re.compile(r"^3\.(\d+)$")
_SHOWN_PROBLEMS = 5


@dataclass(frozen=True)
class AuditedFile:
    path: str  # relative to the audited root, POSIX separators
    machine: str
    max_glibc: str | None  # newest GLIBC_x.y the file needs, None if it needs none


@dataclass(frozen=True)
class AuditedWheel:
    dist_info: str  # e.g. "numpy-2.4.6.dist-info"
    tags: tuple[str, ...]


@dataclass
class AuditReport:
    root: Path
    arch: str
    glibc: str
    python: str | None
    elf_files: list[AuditedFile] = field(default_factory=list)
    wheels: list[AuditedWheel] = field(default_factory=list)
    skipped: int = 0  # regular files that are not ELF

    @property
    def max_glibc(self) -> str | None:
        """Newest glibc any file in the tree needs."""
        seen = [f.max_glibc for f in self.elf_files if f.max_glibc]
        return max(seen, key=_version_tuple) if seen else None

    def to_dict(self) -> dict[str, object]:
        return {
            "arch": self.arch,
            "glibc": self.glibc,
            "python": self.python,
            "elf_files": len(self.elf_files),
            "wheels": len(self.wheels),
            "max_glibc": self.max_glibc,
            "files": {f.path: f.max_glibc for f in self.elf_files},
        }


def _version_tuple(text: str) -> tuple[int, ...]:
    return tuple(int(p) for p in text.split("."))


def _glibc_tuple(glibc: str) -> tuple[int, int]:
    m = re.fullmatch(r"(\d+)\.(\d+)", glibc)
    if m is None:
        raise AbiAuditError(f"invalid glibc version {glibc!r} (expected e.g. '2.34')")
    return int(m.group(1)), int(m.group(2))


def audit_tree(root: Path, arch: str, glibc: str, *, python: str | None = None) -> AuditReport:
    """Check every ELF file and wheel tag under ``root`` against the target.

    ``arch`` is ``x86_64`` or ``aarch64``; ``glibc`` the newest glibc the target has
    (e.g. ``"2.34"``); ``python`` (e.g. ``"3.12"``), when given, must match the CPython
    of version-specific wheels. Raises :class:`AbiAuditError` listing every mismatch,
    each naming the file relative to ``root``.
    """
    root = Path(root)
    if arch not in MACHINES:
        raise AbiAuditError(f"unknown architecture {arch!r}")
    ceiling = _glibc_tuple(glibc)
    minor: int | None = None
    if python is not None:
        m = _PYTHON_RE.match(python)
        if m is None:
            raise AbiAuditError(f"invalid python version {python!r} (expected e.g. '3.12')")
        minor = int(m.group(1))

    report = AuditReport(root=root, arch=arch, glibc=glibc, python=python)
    problems: list[str] = []
    for path in _walk_files(root):
        rel = path.relative_to(root).as_posix()
        if path.name == "WHEEL" and path.parent.name.endswith(".dist-info"):
            problems += _audit_wheel_file(path, rel, arch, ceiling, minor, report)
        elif _has_elf_magic(path):
            problems += _audit_elf(path, rel, arch, ceiling, report)
        else:
            report.skipped += 1
    if problems:
        shown = "; ".join(problems[:_SHOWN_PROBLEMS])
        more = f" (and {len(problems) - _SHOWN_PROBLEMS} more)" if len(problems) > _SHOWN_PROBLEMS else ""
        raise AbiAuditError(f"{shown}{more}", where=f"ABI audit for {arch}, glibc <= {glibc}")
    return report


def _walk_files(root: Path) -> list[Path]:
    # Symlinks are not followed: what they point at inside the tree is audited on its own.
    files = []
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames.sort()
        for name in sorted(filenames):
            p = Path(dirpath) / name
            if not p.is_symlink() and p.is_file():
                files.append(p)
    return files


def _has_elf_magic(path: Path) -> bool:
    try:
        with open(path, "rb") as f:
            return f.read(4) == ELF_MAGIC
    except OSError as e:
        raise AbiAuditError(f"cannot read: {e.strerror}", where=str(path)) from e


def _audit_elf(path: Path, rel: str, arch: str, ceiling: tuple[int, int], report: AuditReport) -> list[str]:
    try:
        info = read_elf(path)
    except ElfError as e:
        return [f"{rel}: malformed ELF file ({e})"]
    except OSError as e:
        return [f"{rel}: cannot read ({e.strerror})"]
    if info is None:  # raced with a writer; not ELF any more
        return []
    problems = []
    if info.machine != MACHINES[arch]:
        problems.append(f"{rel}: ELF machine {info.machine_name}, target is {arch}")
    if info.elf_class != 64:
        problems.append(f"{rel}: {info.elf_class}-bit ELF, target is 64-bit {arch}")
    newest = info.max_glibc
    if newest is not None and newest[:2] > ceiling:
        shown = ".".join(map(str, newest))
        problems.append(
            f"{rel}: needs GLIBC_{shown}, newer than the target's glibc {ceiling[0]}.{ceiling[1]}"
            f" (from {_library_needing(info.version_needs, newest)})"
        )
    report.elf_files.append(
        AuditedFile(
            path=rel,
            machine=info.machine_name,
            max_glibc=".".join(map(str, newest)) if newest is not None else None,
        )
    )
    return problems


def _library_needing(needs: tuple[VersionNeed, ...], version: tuple[int, ...]) -> str:
    name = "GLIBC_" + ".".join(map(str, version))
    return next((n.library for n in needs if name in n.versions), "glibc")


def _audit_wheel_file(
    path: Path, rel: str, arch: str, ceiling: tuple[int, int], minor: int | None, report: AuditReport
) -> list[str]:
    try:
        text = path.read_text(encoding="utf-8", errors="replace")
    except OSError as e:
        return [f"{rel}: cannot read ({e.strerror})"]
    tags = tuple(
        line.split(":", 1)[1].strip() for line in text.splitlines() if line.lower().startswith("tag:")
    )
    report.wheels.append(AuditedWheel(dist_info=path.parent.name, tags=tags))
    if not tags:
        return [f"{rel}: no Tag lines"]
    # A wheel's tags are alternatives (a compressed tag set): one that fits is enough.
    reasons = []
    for tag in tags:
        reason = tag_problem(tag, arch, ceiling, minor)
        if reason is None:
            return []
        reasons.append(reason)
    return [f"{rel}: {reasons[0]}" if len(reasons) == 1 else f"{rel}: no tag fits ({'; '.join(reasons)})"]


def tag_problem(tag: str, arch: str, ceiling: tuple[int, int], python_minor: int | None) -> str | None:
    """Why one wheel tag (``interpreter-abi-platform``) does not fit the target, or None if it does."""
    parts = tag.split("-")
    if len(parts) != 3:
        return f"malformed tag {tag!r}"
    interpreter, abi, platform = parts
    reason = _interpreter_problem(tag, interpreter, abi, python_minor)
    return reason or _platform_problem(tag, platform, arch, ceiling)


def _interpreter_problem(tag: str, interpreter: str, abi: str, minor: int | None) -> str | None:
    target = f"python3.{minor}" if minor is not None else "CPython 3"
    reasons = []
    for interp in interpreter.split("."):  # e.g. "py2.py3": one that fits is enough
        m = re.fullmatch(r"(py|cp)(\d)(\d*)", interp)
        if m is None:
            reasons.append(f"tag {tag} is for interpreter {interp}, target is {target}")
            continue
        kind, major, digits = m.group(1), int(m.group(2)), m.group(3)
        tag_minor = int(digits) if digits else None
        if major != 3:
            reasons.append(f"tag {tag} is for Python {major}, target is {target}")
        elif minor is None or (kind == "py" and tag_minor is None):
            return None
        elif tag_minor is None:
            reasons.append(f"tag {tag} names no CPython minor version")
        elif kind == "py" or abi == "abi3":
            # py3X and the stable ABI (cp3X-abi3) run on 3.X and every later version.
            if tag_minor <= minor:
                return None
            reasons.append(f"tag {tag} needs Python >= 3.{tag_minor}, target is {target}")
        elif tag_minor == minor:
            return None
        else:
            reasons.append(f"tag {tag} is for {interp}, target is {target}")
    return reasons[0] if reasons else None


def _platform_problem(tag: str, platform: str, arch: str, ceiling: tuple[int, int]) -> str | None:
    reasons = []
    for plat in platform.split("."):  # compressed platforms: one that fits is enough
        reason = _one_platform_problem(tag, plat, arch, ceiling)
        if reason is None:
            return None
        reasons.append(reason)
    return reasons[0]


def parse_platform(plat: str) -> tuple[str, tuple[int, int]] | None:
    """``manylinux_2_27_x86_64`` -> ``("x86_64", (2, 27))``; legacy aliases too; else None."""
    for alias, glibc in _MANYLINUX_LEGACY.items():
        if plat.startswith(alias + "_"):
            return plat[len(alias) + 1 :], glibc
    m = _MANYLINUX_RE.match(plat)
    if m is None:
        return None
    return m.group(3), (int(m.group(1)), int(m.group(2)))


def _one_platform_problem(tag: str, plat: str, arch: str, ceiling: tuple[int, int]) -> str | None:
    if plat == "any":
        return None
    parsed = parse_platform(plat)
    if parsed is None:
        return f"tag {tag} has platform {plat}, not a manylinux platform for {arch}"
    plat_arch, needs = parsed
    if plat_arch != arch:
        return f"tag {tag} is for {plat_arch}, target is {arch}"
    if needs > ceiling:
        have = f"{ceiling[0]}.{ceiling[1]}"
        return f"tag {tag} needs glibc {needs[0]}.{needs[1]}, newer than the target's {have}"
    return None
