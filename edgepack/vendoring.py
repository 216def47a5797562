"""Vendoring: install a target's runtime packages for the target's platform, without Docker.

The installer is told the target's interpreter (``cp`` + the profile's Python), its
platform (every manylinux tag up to the glibc ceiling) and to take wheels only, and
installs into a plain directory from a clean environment (never checked against the
build's own venv). uv does it when it is installed and can express the ceiling
(``--python-platform aarch64-manylinux_2_34``): it resolves first into a PEP 751 lock,
which records each wheel's file name and sha256, then installs exactly those files
with their hashes required. Otherwise pip does it, listing every tag (it does not widen
``manylinux_2_28`` to lower tags itself) and reporting the files it chose.

The installed tree is cached in the build cache (namespace ``vendor``) by requirements,
platform tags, Python, implementation and installer version, so a rebuild copies it
from the cache and touches no network. The profile's ``trim`` globs are applied while
copying into the destination, so only vendored paths are ever trimmed, and what was
left out is reported.

When no wheel fits, :class:`~edgepack.errors.PlatformError` names the package, the
runtime, the glibc ceiling and the newest platform tag the package ships.
"""

from __future__ import annotations

import functools
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import threading
import tomllib
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from email.parser import HeaderParser
from pathlib import Path
from typing import Any

from packaging.markers import Marker
from packaging.requirements import InvalidRequirement, Requirement
from packaging.utils import InvalidWheelFilename, canonicalize_name, parse_wheel_filename

from .abi_audit import parse_platform, tag_problem
from .cache import BuildCache, sha256_file
from .errors import BackendMissingError, ConfigError, PackagingError, PlatformError
from .targets import TargetProfile

CACHE_NAMESPACE = "vendor"
IMPLEMENTATION = "cp"
INSTALLER_ENV = "EDGEPACK_VENDOR_INSTALLER"  # "uv" or "pip" to force one; unset: uv when it can
_LAYOUT = "edgepack.vendor/v1"  # bump when what a cache entry holds changes
_REPORT_FILE = "vendor.json"
_TREE_DIR = "tree"
_TIMEOUT_S = 1800

# The glibc ceilings uv's --python-platform can name (each means "this glibc or older").
_UV_GLIBC_MINORS = frozenset({17, 28, *range(31, 41)})
_UV_MIN_VERSION = (0, 6, 15)  # PEP 751 lock output (pip compile --format pylock.toml)

Progress = Callable[[str], None]


def _quiet(_message: str) -> None:
    """Default progress sink: say nothing."""


@dataclass(frozen=True)
class VendoredPackage:
    """One installed distribution, as its ``.dist-info`` and the installer describe it."""

    name: str
    version: str
    wheel: str  # the wheel's file name
    sha256: str  # of the wheel file when the installer reports it, else of the RECORD
    tags: tuple[str, ...] = ()  # the ``Tag:`` lines of its WHEEL file

    def to_dict(self) -> dict[str, Any]:
        return {**asdict(self), "tags": list(self.tags)}


@dataclass(frozen=True)
class VendorReport:
    packages: list[VendoredPackage]
    trimmed: list[str]  # paths relative to ``dest`` the trim rules left out, sorted
    installer: str = ""  # e.g. "uv 0.13.9"
    from_cache: bool = False
    installed_bytes: int = 0  # the whole installed tree, before trimming
    vendored_bytes: int = 0  # what was copied into ``dest``
    cache_key: str = ""
    platform_tags: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["packages"] = [p.to_dict() for p in self.packages]
        return data


def vendor(
    profile: TargetProfile, dest: Path, cache: BuildCache, progress: Progress = _quiet
) -> VendorReport:
    """Install ``profile.runtime_packages`` for the profile's platform into ``dest``.

    Files already in ``dest`` are kept (vendored files of the same path replace them);
    ``profile.trim`` applies to vendored paths only. Raises :class:`ConfigError` for a
    requirement that does not parse or a package the index does not know, and
    :class:`PlatformError` when a package has no wheel for the target.
    """
    dest = Path(dest)
    requirements = _parse_requirements(profile)
    trim = [TrimRule.parse(p, profile.name) for p in profile.trim]
    if not requirements:
        dest.mkdir(parents=True, exist_ok=True)
        return VendorReport(packages=[], trimmed=[], platform_tags=list(profile.platform_tags))

    installed = _installed(profile, requirements, cache, progress)
    trimmed, installed_bytes, vendored_bytes = copy_trimmed(installed.entry / _TREE_DIR, dest, trim)
    if trimmed:
        progress(
            f"[{profile.name}] trimmed {len(trimmed)} paths: {_mb(installed_bytes)} -> {_mb(vendored_bytes)}"
        )
    return VendorReport(
        packages=installed.packages,
        trimmed=trimmed,
        installer=installed.installer.describe(),
        from_cache=installed.from_cache,
        installed_bytes=installed_bytes,
        vendored_bytes=vendored_bytes,
        cache_key=installed.key,
        platform_tags=list(profile.platform_tags),
    )


def prefetch_packages(profile: TargetProfile, cache: BuildCache) -> None:
    """Put the target's runtime packages in the build cache ahead of need, so the install
    overlaps other work; the vendoring stage then copies them from there."""
    requirements = _parse_requirements(profile)
    if requirements:
        _installed(profile, requirements, cache, _quiet)


@dataclass(frozen=True)
class _Installed:
    entry: Path
    packages: list[VendoredPackage]
    from_cache: bool
    key: str
    installer: _Installer


_KEY_LOCKS: dict[str, threading.Lock] = {}
_KEY_LOCKS_GUARD = threading.Lock()


def _installed(
    profile: TargetProfile, requirements: list[Requirement], cache: BuildCache, progress: Progress
) -> _Installed:
    """The cache entry holding ``requirements`` installed for the profile's platform, made
    once per key even when a prefetch and the vendoring stage ask at the same time."""
    installer = choose_installer(profile)
    key = cache.key(
        layout=_LAYOUT,
        requirements=sorted(str(r) for r in requirements),
        platform_tags=list(profile.platform_tags),
        python=profile.python,
        implementation=IMPLEMENTATION,
        installer=installer.describe(),
    )
    with _KEY_LOCKS_GUARD:
        lock = _KEY_LOCKS.setdefault(key, threading.Lock())
    with lock:
        entry = cache.get_dir(CACHE_NAMESPACE, key)
        packages = _load_entry(entry) if entry is not None else None
        from_cache = packages is not None
        if entry is None or packages is None:
            if entry is not None:  # unreadable entry (interrupted by hand?): rebuild it
                shutil.rmtree(entry, ignore_errors=True)
            progress(
                f"[{profile.name}] installing {len(requirements)} runtime packages for "
                f"{_describe_target(profile)} with {installer.describe()}"
            )
            with tempfile.TemporaryDirectory(prefix="edgepack-vendor-") as tmp:
                work = Path(tmp)
                staged = work / "entry"
                tree = staged / _TREE_DIR
                tree.mkdir(parents=True)
                sources = installer.install(requirements, profile, tree, work)
                packages = _describe_tree(tree, sources)
                (staged / _REPORT_FILE).write_text(
                    json.dumps({"packages": [p.to_dict() for p in packages]}, indent=1, sort_keys=True),
                    encoding="utf-8",
                )
                entry = cache.put_dir(CACHE_NAMESPACE, key, staged)
        else:
            progress(f"[{profile.name}] runtime packages from the build cache ({key[:12]})")
    return _Installed(entry, packages, from_cache, key, installer)


def _mb(n: int) -> str:
    return f"{n / 1e6:.1f} MB"


def _describe_target(profile: TargetProfile) -> str:
    runtime = f"Lambda {profile.lambda_runtime}" if profile.lambda_runtime else f"python{profile.python}"
    return f"{runtime} on {profile.arch} with glibc <= {profile.glibc}"


def _parse_requirements(profile: TargetProfile) -> list[Requirement]:
    parsed = []
    for i, text in enumerate(profile.runtime_packages):
        try:
            req = Requirement(text)
        except InvalidRequirement as e:
            raise ConfigError(
                f"invalid requirement {text!r}: {e}", where=f"target {profile.name}: runtime_packages[{i}]"
            ) from e
        if req.url:
            raise ConfigError(
                f"{text!r}: runtime packages come from the package index by name and version, not a URL",
                where=f"target {profile.name}: runtime_packages[{i}]",
            )
        parsed.append(req)
    return parsed


# -- the installed tree --------------------------------------------------------------


@dataclass(frozen=True)
class _WheelSource:
    """A wheel file the installer chose: its name and sha256."""

    filename: str
    sha256: str

    @property
    def tags(self) -> frozenset[str]:
        try:
            return frozenset(str(t) for t in parse_wheel_filename(self.filename)[3])
        except InvalidWheelFilename:
            return frozenset()


def _read_headers(path: Path) -> Any:
    return HeaderParser().parsestr(path.read_text(encoding="utf-8", errors="replace"))


def _describe_tree(tree: Path, sources: Mapping[str, list[_WheelSource]]) -> list[VendoredPackage]:
    """Every ``*.dist-info`` in ``tree``, matched with the wheel file it came from."""
    packages = []
    for info in sorted(tree.glob("*.dist-info")):
        metadata, wheel = info / "METADATA", info / "WHEEL"
        if not metadata.is_file() or not wheel.is_file():
            raise PackagingError(f"{info.name} has no METADATA or WHEEL file", where=str(tree))
        meta = _read_headers(metadata)
        name, version = str(meta["Name"] or ""), str(meta["Version"] or "")
        tags = tuple(str(t).strip() for t in (_read_headers(wheel).get_all("Tag") or []))
        candidates = sources.get(canonicalize_name(name), [])
        source = next((s for s in candidates if s.tags == frozenset(tags)), None)
        if source is None and len(candidates) == 1:
            source = candidates[0]
        if source is not None:
            filename, digest = source.filename, source.sha256
        else:  # the installer did not say: name the wheel from its tags, digest what was installed
            filename = _wheel_filename(name, version, tags)
            record = info / "RECORD"
            digest = sha256_file(record) if record.is_file() else ""
        packages.append(VendoredPackage(name, version, filename, digest, tags))
    return sorted(packages, key=lambda p: canonicalize_name(p.name))


def _wheel_filename(name: str, version: str, tags: Sequence[str]) -> str:
    parts = [t.split("-") for t in tags if t.count("-") == 2] or [["py3", "none", "any"]]
    compressed = "-".join(".".join(sorted({p[i] for p in parts})) for i in range(3))
    return f"{re.sub(r'[-_.]+', '_', name)}-{version}-{compressed}.whl"


def _load_entry(entry: Path) -> list[VendoredPackage] | None:
    try:
        data = json.loads((entry / _REPORT_FILE).read_text(encoding="utf-8"))
        if not (entry / _TREE_DIR).is_dir():
            return None
        return [
            VendoredPackage(p["name"], p["version"], p["wheel"], p["sha256"], tuple(p.get("tags", ())))
            for p in data["packages"]
        ]
    except (OSError, ValueError, KeyError, TypeError):
        return None


# -- trimming ------------------------------------------------------------------------


@dataclass(frozen=True)
class TrimRule:
    """A glob relative to the vendored root: ``*``, ``?`` and ``[...]`` within one path
    segment, ``**`` for any number of segments (``**/tests`` matches ``numpy/tests``
    and ``tests``). A matching directory is left out whole."""

    pattern: str
    regex: re.Pattern[str]

    @classmethod
    def parse(cls, pattern: str, target: str = "") -> TrimRule:
        parts = pattern.strip().strip("/").split("/")
        if not pattern.strip() or pattern.startswith("/") or any(p in ("", ".", "..") for p in parts):
            raise ConfigError(
                f"trim pattern {pattern!r} must be a relative glob", where=f"target {target}: trim"
            )
        below = parts[-1] == "**" and len(parts) > 1  # "dir/**": "dir" and everything below it
        if below:
            parts = parts[:-1]
        rx = "".join("(?:[^/]+/)*" if part == "**" else _segment_regex(part) + "/" for part in parts[:-1])
        rx += ".+" if parts[-1] == "**" else _segment_regex(parts[-1])
        return cls(pattern=pattern, regex=re.compile(rx + ("(?:/.*)?" if below else "") + r"\Z"))

    def matches(self, relpath: str) -> bool:
        return self.regex.match(relpath) is not None


def _segment_regex(segment: str) -> str:
    out, i = [], 0
    while i < len(segment):
        c = segment[i]
        if c == "*":
            out.append("[^/]*")
        elif c == "?":
            out.append("[^/]")
        elif c == "[" and "]" in segment[i + 2 :]:
            j = segment.index("]", i + 2)
            body = segment[i + 1 : j]
            out.append("[" + ("^" + body[1:] if body.startswith("!") else body).replace("\\", "\\\\") + "]")
            i = j
        else:
            out.append(re.escape(c))
        i += 1
    return "".join(out)


def copy_trimmed(src: Path, dest: Path, rules: Iterable[TrimRule]) -> tuple[list[str], int, int]:
    """Copy (hard-link) ``src`` into ``dest`` leaving out what ``rules`` match.

    Returns the left-out paths (relative, sorted; a directory stands for its contents),
    the bytes under ``src`` and the bytes copied.
    """
    rules = list(rules)
    trimmed: list[str] = []
    total = kept = 0

    def matched(rel: str) -> bool:
        return any(r.matches(rel) for r in rules)

    for dirpath, dirnames, filenames in os.walk(src):
        here = Path(dirpath)
        rel_dir = here.relative_to(src).as_posix()
        prefix = "" if rel_dir == "." else rel_dir + "/"
        (dest / prefix).mkdir(parents=True, exist_ok=True)
        for name in sorted(dirnames):
            rel = prefix + name
            if matched(rel):
                dirnames.remove(name)
                trimmed.append(rel)
                total += tree_bytes(here / name)
        for name in sorted(filenames):
            rel, path = prefix + name, here / name
            size = path.lstat().st_size
            total += size
            if matched(rel):
                trimmed.append(rel)
                continue
            target = dest / rel
            if target.is_symlink() or target.is_file():
                target.unlink()
            if path.is_symlink():
                target.symlink_to(os.readlink(path))
            else:
                _link_or_copy(path, target)
            kept += size
    return sorted(trimmed), total, kept


def _link_or_copy(path: Path, target: Path) -> None:
    """A hard link to the cached file where the filesystem allows (the build only reads
    vendored files, writes new ones beside them and normalises modes, the same for every
    build), else a copy."""
    try:
        os.link(path, target)
    except OSError:
        shutil.copyfile(path, target)
        shutil.copymode(path, target)


def tree_bytes(path: Path) -> int:
    """Bytes in the files under ``path`` (what the tree is unzipped)."""
    return sum(p.lstat().st_size for p in path.rglob("*") if p.is_file() or p.is_symlink())


# -- installers ----------------------------------------------------------------------


class _Installer:
    name: str
    version: str

    def describe(self) -> str:
        return f"{self.name} {self.version}"

    def install(
        self, requirements: list[Requirement], profile: TargetProfile, tree: Path, work: Path
    ) -> dict[str, list[_WheelSource]]:
        raise NotImplementedError


def _run(cmd: list[str], what: str, env: Mapping[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    try:
        return subprocess.run(
            cmd, capture_output=True, text=True, timeout=_TIMEOUT_S, env=dict(env or os.environ), check=False
        )
    except subprocess.TimeoutExpired as e:
        raise PackagingError(f"{what} did not finish in {_TIMEOUT_S} s") from e
    except OSError as e:
        raise PackagingError(f"cannot run {what}: {e}") from e


def _last_lines(proc: subprocess.CompletedProcess[str], n: int = 3) -> str:
    """The installer's first error line and its last line (uv puts the cause there), one line."""
    lines = [ln.strip() for ln in (proc.stderr + "\n" + proc.stdout).splitlines() if ln.strip()]
    useful = [ln for ln in lines if not ln.lower().startswith(("warning", "hint:"))] or lines
    errors = [ln for ln in useful if ln.lower().startswith("error")]
    if errors and errors[0] != useful[-1]:
        return f"{errors[0]} ... {useful[-1]}"
    return " ".join(useful[-n:])


def _requirements_file(requirements: list[Requirement], path: Path) -> Path:
    path.write_text("".join(f"{r}\n" for r in requirements), encoding="utf-8")
    return path


def _version_tuple(text: str) -> tuple[int, ...]:
    return tuple(int(x) for x in re.findall(r"\d+", text)[:3])


def find_uv() -> str | None:
    """The uv binary beside this interpreter (a venv's ``bin/``), from the ``uv`` package, or on PATH."""
    beside = Path(sys.executable).parent / "uv"
    if beside.is_file() and os.access(beside, os.X_OK):
        return str(beside)
    try:
        from uv import find_uv_bin  # the PyPI package that ships the binary

        return str(find_uv_bin())
    except (ImportError, FileNotFoundError):
        pass
    return shutil.which("uv")


# Asked once per process: a cache hit then starts no process at all.
@functools.cache
def _uv_version(exe: str) -> str | None:
    proc = _run([exe, "--version"], "uv --version")
    m = re.search(r"\d+\.\d+\.\d+", proc.stdout)
    return m.group(0) if proc.returncode == 0 and m else None


@functools.cache
def _pip_version(python: str) -> str | None:
    proc = _run([python, "-m", "pip", "--version"], "pip --version")
    m = re.search(r"pip (\d+(?:\.\d+)+)", proc.stdout)
    return m.group(1) if proc.returncode == 0 and m else None


class _Uv(_Installer):
    name = "uv"

    def __init__(self, exe: str, version: str) -> None:
        self.exe = exe
        self.version = version

    @classmethod
    def find(cls) -> _Uv | None:
        exe = find_uv()
        version = _uv_version(exe) if exe is not None else None
        if exe is None or version is None or _version_tuple(version) < _UV_MIN_VERSION:
            return None
        return cls(exe, version)

    def _env(self) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if k not in ("VIRTUAL_ENV", "PYTHONPATH", "PYTHONHOME")}
        env.update({"UV_PYTHON_DOWNLOADS": "never", "UV_NO_PROGRESS": "1"})
        return env

    def _common(self, profile: TargetProfile) -> list[str]:
        # The build's interpreter only hosts uv's resolver: --python-version and
        # --python-platform decide what is resolved and installed.
        return [
            "--python", sys.executable, "--python-version", profile.python,
            "--python-platform", uv_platform(profile), "--only-binary", ":all:",
        ]  # fmt: skip

    def lock(
        self, requirements: list[Requirement], profile: TargetProfile, work: Path
    ) -> list[dict[str, Any]]:
        """Resolve for the target into a PEP 751 lock: every package with its wheels and hashes."""
        reqs = _requirements_file(requirements, work / "requirements.in")
        lock = work / "lock" / "pylock.toml"
        lock.parent.mkdir(exist_ok=True)
        cmd = [self.exe, "pip", "compile", "--quiet", "--format", "pylock.toml", *self._common(profile)]
        proc = _run([*cmd, "-o", str(lock), str(reqs)], "uv pip compile", self._env())
        if proc.returncode != 0:
            raise _no_wheel_error(requirements, profile, proc)
        packages: list[dict[str, Any]] = tomllib.loads(lock.read_text(encoding="utf-8")).get("packages", [])
        return packages

    def install(
        self, requirements: list[Requirement], profile: TargetProfile, tree: Path, work: Path
    ) -> dict[str, list[_WheelSource]]:
        locked = self.lock(requirements, profile, work)
        sources: dict[str, list[_WheelSource]] = {}
        lines = []
        for pkg in locked:
            wheels = [w for w in (_lock_wheel(x) for x in pkg.get("wheels", [])) if w is not None]
            if "version" not in pkg or not wheels:
                raise PlatformError(
                    f"{pkg.get('name')} resolved to no wheel file for {_describe_target(profile)}",
                    where=f"target {profile.name}: runtime_packages",
                )
            sources[canonicalize_name(pkg["name"])] = wheels
            hashes = " ".join(f"--hash=sha256:{w.sha256}" for w in wheels)
            lines.append(f"{pkg['name']}=={pkg['version']} {hashes}\n")
        pinned = work / "pinned.txt"
        pinned.write_text("".join(lines), encoding="utf-8")
        # Exactly the locked files: no second resolution, every download checked against its hash.
        cmd = [self.exe, "pip", "install", "--quiet", "--target", str(tree), "--no-deps", "--require-hashes"]
        proc = _run([*cmd, *self._common(profile), "-r", str(pinned)], "uv pip install", self._env())
        if proc.returncode != 0:
            raise PackagingError(f"uv could not install the locked runtime packages: {_last_lines(proc)}")
        (tree / ".lock").unlink(missing_ok=True)  # uv's lock file for --target, not a package file
        return sources


def uv_platform(profile: TargetProfile) -> str:
    """uv's name for "this architecture, this glibc or older"."""
    major, minor = profile.glibc_version
    return f"{profile.arch}-manylinux_{major}_{minor}"


def _lock_wheel(wheel: Mapping[str, Any]) -> _WheelSource | None:
    ref = wheel.get("name") or wheel.get("url") or wheel.get("path") or ""
    filename = str(ref).rsplit("/", 1)[-1].split("#", 1)[0]
    digest = (wheel.get("hashes") or {}).get("sha256")
    if not filename.endswith(".whl") or not digest:
        return None
    return _WheelSource(filename, str(digest))


class _Pip(_Installer):
    name = "pip"

    def __init__(self, version: str) -> None:
        self.version = version

    @classmethod
    def find(cls) -> _Pip:
        version = _pip_version(sys.executable)
        if version is None:
            raise BackendMissingError("pip (or uv)", "dev")
        return cls(version)

    def install(
        self, requirements: list[Requirement], profile: TargetProfile, tree: Path, work: Path
    ) -> dict[str, list[_WheelSource]]:
        # A bare venv to run pip against: pip then checks the new tree against nothing,
        # not against the build's venv (whose packages have nothing to do with the target).
        clean = work / "clean-env"
        proc = _run([sys.executable, "-m", "venv", "--without-pip", str(clean)], "python -m venv")
        if proc.returncode != 0:
            raise PackagingError(f"cannot create a clean environment for pip: {_last_lines(proc)}")
        report = work / "pip-report.json"
        cmd = [
            sys.executable, "-m", "pip", "--python", str(clean / "bin" / "python"), "install",
            "--target", str(tree), "--no-compile", "--no-input", "--progress-bar", "off",
            "--disable-pip-version-check", "--report", str(report),
            "--only-binary=:all:", "--implementation", IMPLEMENTATION, "--python-version", profile.python,
        ]  # fmt: skip
        for tag in profile.platform_tags:  # pip does not widen tags: list every one, newest first
            cmd += ["--platform", tag]
        reqs = _requirements_file(requirements, work / "requirements.txt")
        env = {k: v for k, v in os.environ.items() if k not in ("VIRTUAL_ENV", "PYTHONPATH", "PYTHONHOME")}
        proc = _run([*cmd, "-r", str(reqs)], "pip install", env)
        if proc.returncode != 0:
            raise _no_wheel_error(requirements, profile, proc)
        sources: dict[str, list[_WheelSource]] = {}
        for item in json.loads(report.read_text(encoding="utf-8")).get("install", []):
            info = item.get("download_info") or {}
            filename = str(info.get("url", "")).rsplit("/", 1)[-1].split("#", 1)[0]
            digest = ((info.get("archive_info") or {}).get("hashes") or {}).get("sha256", "")
            name = (item.get("metadata") or {}).get("name", "")
            if filename and name:
                sources.setdefault(canonicalize_name(name), []).append(_WheelSource(filename, digest))
        return sources


def choose_installer(profile: TargetProfile) -> _Installer:
    """uv when it is installed and can name the target's glibc ceiling, else pip.

    ``EDGEPACK_VENDOR_INSTALLER=pip|uv`` forces one.
    """
    forced = os.environ.get(INSTALLER_ENV, "").strip().lower()
    if forced not in ("", "uv", "pip"):
        raise ConfigError(f"{INSTALLER_ENV} must be 'uv' or 'pip', not {forced!r}")
    if forced != "pip":
        uv = _Uv.find()
        if uv is not None and profile.glibc_version[1] in _UV_GLIBC_MINORS:
            return uv
        if forced == "uv":
            if uv is None:
                raise BackendMissingError(f"uv >= {'.'.join(map(str, _UV_MIN_VERSION))}", "dev")
            raise PlatformError(f"uv cannot target glibc {profile.glibc}; unset {INSTALLER_ENV} to use pip")
    return _Pip.find()


# -- when no wheel fits --------------------------------------------------------------

_NOT_FOUND_UV = re.compile(r"Because ([A-Za-z0-9][A-Za-z0-9._-]*) was not found in the package registry")
_NO_MATCH_PIP = re.compile(r"No matching distribution found for (\S+)")
_RESOLUTION_FAILED = re.compile(
    r"No solution found|No matching distribution|Could not find a version|ResolutionImpossible"
    r"|not found in the package registry|conflicting dependencies"
)


def _no_wheel_error(
    requirements: list[Requirement], profile: TargetProfile, proc: subprocess.CompletedProcess[str]
) -> Exception:
    """Turn an installer's failure into one line naming the package that has no wheel."""
    where = f"target {profile.name}: runtime_packages"
    output = proc.stderr + "\n" + proc.stdout
    if not _RESOLUTION_FAILED.search(output):  # the network, the disk, the installer itself
        return PackagingError(f"cannot install the runtime packages: {_last_lines(proc)}", where=where)
    unknown = _NOT_FOUND_UV.search(output)
    if unknown:
        return ConfigError(f"package {unknown.group(1)!r} was not found in the package index", where=where)
    try:
        culprit = _diagnose(requirements, profile)
    except ConfigError as e:
        return e
    if culprit is not None:
        return PlatformError(culprit, where=where)
    m = _NO_MATCH_PIP.search(output)
    if m:
        return PlatformError(
            f"{m.group(1)} has no wheel for {_describe_target(profile)} (pip found none that fits)",
            where=where,
        )
    return PlatformError(
        f"cannot install {', '.join(map(str, requirements))} for {_describe_target(profile)}: "
        f"{_last_lines(proc)}",
        where=where,
    )


def _diagnose(requirements: list[Requirement], profile: TargetProfile) -> str | None:
    """Resolve for every platform, then name a package none of whose wheels fits the target.

    Needs uv (a universal resolution lists every wheel of each chosen version); without it
    returns None and the caller falls back to the installer's own message.
    """
    uv = _Uv.find()
    if uv is None:
        return None
    with tempfile.TemporaryDirectory(prefix="edgepack-diagnose-") as tmp:
        work = Path(tmp)
        reqs = _requirements_file(requirements, work / "requirements.in")
        lock = work / "pylock.toml"
        cmd = [
            uv.exe, "pip", "compile", "--quiet", "--universal", "--format", "pylock.toml",
            "--python", sys.executable, "--python-version", profile.python, "--only-binary", ":all:",
            "-o", str(lock), str(reqs),
        ]  # fmt: skip
        proc = _run(cmd, "uv pip compile --universal", uv._env())
        if proc.returncode != 0:
            unknown = _NOT_FOUND_UV.search(proc.stderr + proc.stdout)
            if unknown:
                raise ConfigError(
                    f"package {unknown.group(1)!r} was not found in the package index",
                    where=f"target {profile.name}: runtime_packages",
                )
            return None
        locked = tomllib.loads(lock.read_text(encoding="utf-8")).get("packages", [])
    env = _marker_environment(profile)
    ceiling = profile.glibc_version
    minor = int(profile.python.split(".")[1])
    for pkg in locked:
        marker = pkg.get("marker")
        if marker and not Marker(marker).evaluate(env):
            continue
        wheels = [w for w in (_lock_wheel(x) for x in pkg.get("wheels", [])) if w is not None]
        if any(not _wheel_problem(w, profile.arch, ceiling, minor) for w in wheels):
            continue
        newest = _newest_platform(wheels, profile.arch, minor)
        shipped = (
            f"newest it ships: {newest}"
            if newest
            else f"it ships no {profile.arch} wheel for python{profile.python}"
        )
        package = f"{pkg['name']}=={pkg.get('version', '?')}"
        return f"{package} has no wheel for {_describe_target(profile)} ({shipped})"
    return None


def _wheel_problem(wheel: _WheelSource, arch: str, ceiling: tuple[int, int], minor: int) -> str | None:
    problems = [tag_problem(t, arch, ceiling, minor) for t in wheel.tags] or ["unparsable file name"]
    return None if any(p is None for p in problems) else problems[0]


def _newest_platform(wheels: list[_WheelSource], arch: str, minor: int) -> str | None:
    """The newest manylinux tag for ``arch`` among wheels that fit the Python version."""
    best: tuple[tuple[int, int], str] | None = None
    for wheel in wheels:
        for tag in wheel.tags:
            # With an unlimited glibc, only the interpreter and the architecture must fit.
            if tag_problem(tag, arch, (99, 99), minor) is not None:
                continue
            platform = tag.rsplit("-", 1)[1]
            parsed = parse_platform(platform)
            if parsed is not None and (best is None or parsed[1] > best[0]):
                best = (parsed[1], platform)
    return best[1] if best else None


def _marker_environment(profile: TargetProfile) -> dict[str, str]:
    full = f"{profile.python}.0"
    return {
        "python_version": profile.python,
        "python_full_version": full,
        "implementation_name": "cpython",
        "implementation_version": full,
        "platform_python_implementation": "CPython",
        "platform_machine": profile.arch,
        "platform_system": "Linux",
        "sys_platform": "linux",
        "os_name": "posix",
    }
