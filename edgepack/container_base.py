"""Base images for container targets: read one the user gives, or build one from Debian.

A base is read from an OCI image layout directory, an OCI archive (a tar of a layout,
as ``skopeo copy ... oci-archive:FILE`` writes) or a Docker archive (``docker save``).
Its layers are then read once to find what edgepack must vendor for: the CPython
(``usr/local/bin/python3.X`` or ``usr/bin/python3.X`` with its standard library beside
it; its version gives the ABI tag ``cp3XY``), the glibc (``libc6`` in dpkg's status,
a ``libc-2.NN.so`` file name, or the version string inside ``libc.so.6``), and the
architecture (the image config's).

Without a registry, a base comes from Debian packages: ``mmdebstrap --variant=extract``
unpacks CPython and the few libraries native wheels need (nothing is configured, no
maintainer script runs), extract hooks add what those scripts would have (the
``python3`` link, ``/etc/passwd`` with root and an unprivileged ``app`` user, uid
10001), and the root filesystem becomes a one-layer OCI layout, re-tarred sorted with
fixed mtimes. The Debian mirror is live, so the layout is cached by suite, architecture,
package list, Python version and epoch (build cache namespace ``oci-base``): the same
list is built once (about 8 s) and then reused.
"""

from __future__ import annotations

import hashlib
import json
import platform
import re
import shutil
import subprocess
import tarfile
import tempfile
import zlib
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .cache import BuildCache
from .errors import BadInputError, PackagingError, PlatformError
from .packaging.archive import source_date_epoch
from .packaging.oci import (
    DOCKER_CONFIG,
    DOCKER_LAYER_TAR,
    DOCKER_MANIFEST,
    DOCKER_MANIFEST_LIST,
    LAYER_MEDIA_TYPES,
    MEDIA_CONFIG,
    MEDIA_INDEX,
    MEDIA_LAYER_TAR,
    MEDIA_LAYER_ZSTD,
    MEDIA_MANIFEST,
    REF_NAME,
    ImageConfig,
    TarLayer,
    blob_path,
    canonical_json,
    manifest_descriptor,
    member_path,
    read_blob_json,
    replace_dir,
    write_image_layout,
)
from .runtime.hashing import sha256_file

CACHE_NAMESPACE = "oci-base"
ARCHIVE_NAMESPACE = "oci-archive"
# Bump when what a cached base holds (or how it is made) changes.
_LAYOUT = "edgepack.oci-base/v1"
BASE_TAG = "base"
APP_USER = "app"
APP_UID = 10001
MMDEBSTRAP_TIMEOUT_S = 900

# The CPython each Debian release ships.
DEBIAN_PYTHON: dict[str, str] = {"bookworm": "3.11", "trixie": "3.13"}
DEFAULT_SUITE = "bookworm"
# What a base holds besides CPython: libstdc++/libgcc for numpy and other native wheels,
# the files a process expects to find (passwd, services, zoneinfo, CA roots, mime types).
BASE_PACKAGES: tuple[str, ...] = (
    "libstdc++6", "libgcc-s1", "base-files", "base-passwd", "netbase", "tzdata", "ca-certificates",
    "media-types",
)  # fmt: skip

# OCI (GOARCH) names -> the machine names edgepack's targets use; Debian's are OCI's.
ARCH_FROM_OCI: dict[str, str] = {"amd64": "x86_64", "arm64": "aarch64", "arm": "armv7l", "386": "i686"}
DEB_ARCH: dict[str, str] = {"x86_64": "amd64", "aarch64": "arm64", "amd64": "amd64", "arm64": "arm64"}

_PYTHON_BIN_RE = re.compile(r"^(usr/local/bin|usr/bin|bin)/python(3\.\d+)$")
_PYTHON3_RE = re.compile(r"^(usr/local/bin|usr/bin|bin)/python3$")
_STDLIB_RE = re.compile(r"^(usr/local/lib|usr/lib)/python(3\.\d+)/os\.py$")
_LIBC_NAME_RE = re.compile(r"^(?:usr/)?lib(?:64|32)?/(?:[^/]+/)?libc-(\d+\.\d+)\.so$")
_LIBC_SO_RE = re.compile(r"^(?:usr/)?lib(?:64|32)?/(?:[^/]+/)?libc\.so\.6$")
_LIBC_VERSION_RE = re.compile(rb"GNU C Library [^\n]*? version (\d+\.\d+)")
_DPKG_STATUS = ("var/lib/dpkg/status", "var/lib/dpkg/status.d/libc6")
_MAX_SCAN_FILE = 16 << 20


class BaseImageError(BadInputError):
    """A base image is missing, malformed, or not one edgepack can build on."""


@dataclass(frozen=True)
class BaseImage:
    """A base image in an OCI layout, and what edgepack found inside it."""

    layout: Path  # the OCI image layout directory holding its blobs
    tag: str | None  # its ref.name in that layout
    manifest_digest: str
    manifest: dict[str, Any]
    config: dict[str, Any]
    layers: tuple[dict[str, Any], ...]  # the manifest's layer descriptors
    diff_ids: tuple[str, ...]
    arch: str  # x86_64 | aarch64 (or the OCI name when edgepack has no other for it)
    os: str
    python: str | None  # "3.11"
    python_executable: str | None  # "/usr/bin/python3.11", inside the image
    glibc: str | None  # "2.36"

    @property
    def abi_tag(self) -> str | None:
        """The CPython ABI tag wheels must carry (``cp311``), or None without a Python."""
        return f"cp{self.python.replace('.', '')}" if self.python else None

    @property
    def size(self) -> int:
        """Compressed bytes of its layers."""
        return sum(int(desc.get("size", 0)) for desc in self.layers)


# -- reading a base --------------------------------------------------------------------


def load_base_image(
    path: Path, tag: str | None = None, *, require_python: bool = True, cache: BuildCache | None = None
) -> BaseImage:
    """Read the base image at ``path``: an OCI layout directory, an OCI archive or a Docker archive.

    ``tag`` picks an image when the layout holds several. Archives are unpacked once into the
    build cache (keyed by their digest). Raises ``BaseImageError`` (exit 2) naming the file and
    what is wrong: not a layout, tag not found, several images and no tag, an unsupported media
    type, or (with ``require_python``) no CPython in the image.
    """
    path = Path(path)
    if not path.exists():
        raise BaseImageError(f"{path}: no such file or directory")
    if path.is_dir():
        layout = path
    elif tarfile.is_tarfile(path):
        layout = _unpack_archive(path, cache or BuildCache.default())
    else:
        raise BaseImageError(f"{path}: not an OCI image layout directory, OCI archive or Docker archive")
    return _load_layout(layout, tag, require_python=require_python, shown=path)


def _load_layout(layout: Path, tag: str | None, *, require_python: bool, shown: Path) -> BaseImage:
    marker = layout / "oci-layout"
    try:
        version = json.loads(marker.read_bytes()).get("imageLayoutVersion")
    except (OSError, ValueError, AttributeError) as e:
        raise BaseImageError(f"{shown}: not an OCI image layout (no readable oci-layout file)") from e
    if not isinstance(version, str) or not version.startswith("1."):
        raise BaseImageError(f"{shown}: unsupported OCI image layout version {version!r}")
    try:
        desc = manifest_descriptor(layout, tag)
        desc = _resolve_platform(layout, desc, shown)
        manifest_type = desc.get("mediaType")
        if manifest_type not in (MEDIA_MANIFEST, DOCKER_MANIFEST):
            raise BaseImageError(f"{shown}: unsupported manifest media type {manifest_type!r}")
        manifest = read_blob_json(layout, str(desc["digest"]))
        config_desc = manifest.get("config") or {}
        if config_desc.get("mediaType") not in (MEDIA_CONFIG, DOCKER_CONFIG):
            raise BaseImageError(f"{shown}: unsupported config media type {config_desc.get('mediaType')!r}")
        config = read_blob_json(layout, str(config_desc.get("digest")))
    except PackagingError as e:
        raise BaseImageError(e.message) from e
    layers = tuple(dict(d) for d in manifest.get("layers") or [])
    for d in layers:
        media_type = d.get("mediaType")
        if media_type not in LAYER_MEDIA_TYPES:
            why = (
                " (zstd layers need Python 3.14's compression.zstd)" if media_type == MEDIA_LAYER_ZSTD else ""
            )
            raise BaseImageError(
                f"{shown}: layer {d.get('digest')} has unsupported media type {media_type!r}{why}"
            )
        try:
            blob = blob_path(layout, str(d.get("digest")))
        except PackagingError as e:
            raise BaseImageError(e.message) from e
        if not blob.is_file():
            raise BaseImageError(f"{shown}: layer blob {d.get('digest')} is missing")
    diff_ids = tuple(str(x) for x in (config.get("rootfs") or {}).get("diff_ids") or [])
    if len(diff_ids) != len(layers):
        raise BaseImageError(
            f"{shown}: the config lists {len(diff_ids)} diff_ids for the manifest's {len(layers)} layers"
        )
    oci_arch = str(config.get("architecture") or "")
    found = _scan_layers(layout, layers, shown)
    python, executable = found.python()
    if require_python and python is None:
        raise BaseImageError(
            f"{shown}: no Python in the image (looked for usr/local/bin/python3.X and usr/bin/python3.X "
            "with their standard library)"
        )
    return BaseImage(
        layout=layout,
        tag=str((desc.get("annotations") or {}).get(REF_NAME) or tag or "") or None,
        manifest_digest=str(desc["digest"]),
        manifest=manifest,
        config=config,
        layers=layers,
        diff_ids=diff_ids,
        arch=ARCH_FROM_OCI.get(oci_arch, oci_arch),
        os=str(config.get("os") or ""),
        python=python,
        python_executable=executable,
        glibc=found.glibc(),
    )


def _resolve_platform(layout: Path, desc: dict[str, Any], shown: Path) -> dict[str, Any]:
    """A multi-platform image index inside the layout: the host's platform, or its only one."""
    if desc.get("mediaType") not in (MEDIA_INDEX, DOCKER_MANIFEST_LIST):
        return desc
    nested = read_blob_json(layout, str(desc["digest"])).get("manifests") or []
    host = DEB_ARCH.get(platform.machine(), platform.machine())
    for_host = [m for m in nested if (m.get("platform") or {}).get("architecture") == host]
    chosen = nested if len(nested) == 1 else for_host
    if len(chosen) != 1:
        raise BaseImageError(f"{shown}: a multi-platform index with no single {host} image in it")
    return {**chosen[0], "annotations": desc.get("annotations") or {}}


class _Findings:
    """What the layers hold at the paths that matter, after whiteouts (upper layers win)."""

    def __init__(self) -> None:
        self.entries: dict[str, tuple[str, str]] = {}  # path -> (kind, value)

    def apply(self, layer: dict[str, tuple[str, str]], whiteouts: list[str]) -> None:
        for wh in whiteouts:
            directory, _, name = wh.rpartition("/")
            if name == ".wh..wh..opq":
                gone = [p for p in self.entries if p.startswith(f"{directory}/")]
            else:
                target = f"{directory}/{name[4:]}" if directory else name[4:]
                gone = [p for p in self.entries if p == target or p.startswith(f"{target}/")]
            for p in gone:
                del self.entries[p]
        self.entries.update(layer)

    def python(self) -> tuple[str | None, str | None]:
        stdlib = {(p.split("/python")[0], v) for p, (k, v) in self.entries.items() if k == "stdlib"}
        found: list[tuple[int, tuple[int, ...], str, str]] = []
        for p, (kind, version) in self.entries.items():
            if kind != "python":
                continue
            bindir = p.rsplit("/", 1)[0]
            libdir = "usr/local/lib" if bindir == "usr/local/bin" else "usr/lib"
            if (libdir, version) not in stdlib:
                continue
            link = self.entries.get(f"{bindir}/python3")
            is_default = link is not None and link[1].rsplit("/", 1)[-1] == f"python{version}"
            # usr/local first (python:3.X images keep Debian's own python3 there too), then the
            # one python3 points to, then the newest.
            rank = (int(bindir == "usr/local/bin") * 2 + int(is_default), tuple(map(int, version.split("."))))
            found.append((rank[0], rank[1], version, p))
        if not found:
            return None, None
        _, _, version, p = max(found)
        return version, f"/{p}"

    def glibc(self) -> str | None:
        by_kind: dict[str, str] = {}
        for kind, value in self.entries.values():
            if kind in ("dpkg-libc6", "libc-name", "libc-string"):
                by_kind.setdefault(kind, value)
        for kind in ("dpkg-libc6", "libc-name", "libc-string"):
            if kind in by_kind:
                return by_kind[kind]
        return None


def _scan_layers(layout: Path, layers: Sequence[dict[str, Any]], shown: Path) -> _Findings:
    findings = _Findings()
    for desc in layers:
        digest = str(desc.get("digest"))
        this: dict[str, tuple[str, str]] = {}
        whiteouts: list[str] = []
        try:
            with _open_layer(blob_path(layout, digest), str(desc.get("mediaType"))) as tar:
                for member in tar:
                    name = member_path(member.name)
                    if name.rsplit("/", 1)[-1].startswith(".wh."):
                        whiteouts.append(name)
                        continue
                    _note(tar, member, name, this)
        except (OSError, EOFError, zlib.error, tarfile.TarError) as e:
            raise BaseImageError(f"{shown}: layer {digest} is not a readable tar: {e}") from e
        findings.apply(this, whiteouts)
    return findings


def _open_layer(path: Path, media_type: str) -> tarfile.TarFile:
    compressed = media_type not in (MEDIA_LAYER_TAR, DOCKER_LAYER_TAR)
    return tarfile.open(path, mode="r|gz" if compressed else "r|")


def _note(tar: tarfile.TarFile, member: tarfile.TarInfo, name: str, out: dict[str, tuple[str, str]]) -> None:
    if m := _PYTHON_BIN_RE.match(name):
        if member.isfile() or member.issym() or member.islnk():
            out[name] = ("python", m.group(2))
    elif _PYTHON3_RE.match(name):
        out[name] = ("link", member.linkname if member.issym() else "")
    elif m := _STDLIB_RE.match(name):
        out[name] = ("stdlib", m.group(2))
    elif m := _LIBC_NAME_RE.match(name):
        out[name] = ("libc-name", m.group(1))
    elif _LIBC_SO_RE.match(name):
        if member.issym():
            if m := re.search(r"libc-(\d+\.\d+)\.so$", member.linkname):
                out[name] = ("libc-name", m.group(1))
        elif member.isfile() and member.size <= _MAX_SCAN_FILE:
            found = _LIBC_VERSION_RE.search(_read(tar, member))
            if found:
                out[name] = ("libc-string", found.group(1).decode())
    elif name in _DPKG_STATUS and member.isfile() and member.size <= _MAX_SCAN_FILE:
        version = _dpkg_version(_read(tar, member).decode("utf-8", "replace"), "libc6")
        if version:
            out[name] = ("dpkg-libc6", version)


def _read(tar: tarfile.TarFile, member: tarfile.TarInfo) -> bytes:
    f = tar.extractfile(member)
    return f.read() if f is not None else b""


def _dpkg_version(status: str, package: str) -> str | None:
    """``2.36`` from the ``Version: 2.36-9+deb12u4`` of ``package``'s stanza."""
    for stanza in status.split("\n\n"):
        fields = dict(
            line.split(":", 1) for line in stanza.splitlines() if ":" in line and not line.startswith(" ")
        )
        if fields.get("Package", "").strip() != package or "Version" not in fields:
            continue
        if m := re.match(r"(?:\d+:)?(\d+\.\d+)", fields["Version"].strip()):
            return m.group(1)
    return None


def _unpack_archive(path: Path, cache: BuildCache) -> Path:
    """An OCI or Docker archive, unpacked once into the cache as an OCI layout."""
    digest = sha256_file(path)
    key = cache.key(layout=_LAYOUT, archive=digest)
    entry = cache.get_dir(ARCHIVE_NAMESPACE, key)
    if entry is not None and (entry / "layout" / "oci-layout").is_file():
        return entry / "layout"
    with tempfile.TemporaryDirectory(prefix="edgepack-base-archive-") as tmp:
        staging = Path(tmp) / "entry"
        raw = Path(tmp) / "raw"
        try:
            with tarfile.open(path) as tar:
                tar.extractall(raw, filter="data")
        except (OSError, tarfile.TarError, EOFError, zlib.error) as e:
            raise BaseImageError(f"{path}: cannot unpack the archive: {e}") from e
        if (raw / "oci-layout").is_file():
            shutil.copytree(raw, staging / "layout")
        elif (raw / "manifest.json").is_file():
            _docker_to_oci(raw, staging / "layout", path)
        else:
            raise BaseImageError(
                f"{path}: a tar, but neither an OCI archive (no oci-layout) nor a Docker archive "
                "(no manifest.json)"
            )
        return cache.put_dir(ARCHIVE_NAMESPACE, key, staging) / "layout"


def _docker_to_oci(raw: Path, layout: Path, shown: Path) -> None:
    """``docker save``'s archive (manifest.json, config, uncompressed layer tars) as an OCI layout.

    The bytes stay as they are: the config is Docker's (a superset of OCI's), the layers are
    uncompressed tars whose digests are their diff_ids."""
    try:
        entries = json.loads((raw / "manifest.json").read_bytes())
    except (OSError, ValueError) as e:
        raise BaseImageError(f"{shown}: manifest.json is not JSON: {e}") from e
    if not isinstance(entries, list) or not entries:
        raise BaseImageError(f"{shown}: manifest.json lists no images")
    blobs = layout / "blobs" / "sha256"
    blobs.mkdir(parents=True)
    index_manifests = []
    for i, image in enumerate(entries):
        try:
            config_file = raw / image["Config"]
            layer_files = [raw / name for name in image["Layers"]]
        except (KeyError, TypeError) as e:
            raise BaseImageError(f"{shown}: manifest.json entry {i} lacks Config or Layers") from e
        descs = []
        for f in [config_file, *layer_files]:
            if not f.resolve().is_relative_to(raw.resolve()) or not f.is_file():
                raise BaseImageError(f"{shown}: {f.relative_to(raw)} is missing from the archive")
            digest = sha256_file(f)
            shutil.copyfile(f, blobs / digest)
            descs.append({"digest": f"sha256:{digest}", "size": f.stat().st_size})
        manifest = {
            "schemaVersion": 2,
            "mediaType": MEDIA_MANIFEST,
            "config": {"mediaType": MEDIA_CONFIG, **descs[0]},
            "layers": [{"mediaType": MEDIA_LAYER_TAR, **d} for d in descs[1:]],
        }
        data = canonical_json(manifest)
        digest = hashlib.sha256(data).hexdigest()
        (blobs / digest).write_bytes(data)
        tags = image.get("RepoTags") or [None]
        for tag in tags:
            desc: dict[str, Any] = {
                "mediaType": MEDIA_MANIFEST,
                "digest": f"sha256:{digest}",
                "size": len(data),
            }
            if tag:
                desc["annotations"] = {REF_NAME: tag}
            index_manifests.append(desc)
    index = {"schemaVersion": 2, "mediaType": MEDIA_INDEX, "manifests": index_manifests}
    (layout / "index.json").write_bytes(canonical_json(index))
    (layout / "oci-layout").write_bytes(canonical_json({"imageLayoutVersion": "1.0.0"}))


# -- building one from Debian ----------------------------------------------------------


def default_packages(python: str) -> tuple[str, ...]:
    """The Debian packages of a base with CPython ``python`` (``"3.11"``)."""
    return (f"python{python}-minimal", f"libpython{python}-stdlib", *BASE_PACKAGES)


def resolve_suite(suite: str | None, python: str | None) -> tuple[str, str]:
    """``(suite, python)``, each filled from the other; refuses a pair Debian does not ship."""
    if suite is None:
        if python is None:
            suite = DEFAULT_SUITE
        else:
            found = [s for s, v in DEBIAN_PYTHON.items() if v == python]
            if not found:
                have = ", ".join(f"{s} has {v}" for s, v in DEBIAN_PYTHON.items())
                raise BaseImageError(f"no Debian release edgepack knows ships Python {python} ({have})")
            suite = found[0]
    shipped = DEBIAN_PYTHON.get(suite)
    if shipped is None:
        raise BaseImageError(f"unknown Debian suite {suite!r} (known: {', '.join(DEBIAN_PYTHON)})")
    if python is not None and python != shipped:
        raise BaseImageError(f"Debian {suite} ships Python {shipped}, not {python}")
    return suite, shipped


def _hook_script(python: str) -> str:
    """Run by mmdebstrap after unpacking, with the root as $1: what maintainer scripts would do."""
    return f"""set -e
root="$1"
ln -sf python{python} "$root/usr/bin/python3"
for d in bin sbin lib lib64; do
  if [ ! -e "$root/$d" ] && [ ! -L "$root/$d" ] && [ -d "$root/usr/$d" ]; then ln -s "usr/$d" "$root/$d"; fi
done
if [ -f "$root/usr/share/base-passwd/passwd.master" ]; then
  cp "$root/usr/share/base-passwd/passwd.master" "$root/etc/passwd"
  cp "$root/usr/share/base-passwd/group.master" "$root/etc/group"
else
  echo 'root:x:0:0:root:/root:/bin/sh' > "$root/etc/passwd"
  echo 'root:x:0:' > "$root/etc/group"
fi
echo '{APP_USER}:x:{APP_UID}:{APP_UID}:edgepack app:/home/{APP_USER}:/usr/sbin/nologin' >> "$root/etc/passwd"
echo '{APP_USER}:x:{APP_UID}:' >> "$root/etc/group"
mkdir -p "$root/home/{APP_USER}"
chown {APP_UID}:{APP_UID} "$root/home/{APP_USER}"
"""


def cached_base_image(
    *,
    suite: str | None = None,
    python: str | None = None,
    arch: str | None = None,
    packages: Sequence[str] | None = None,
    include: Sequence[str] = (),
    epoch: int | None = None,
    tag: str = BASE_TAG,
    cache: BuildCache | None = None,
) -> BaseImage:
    """The Debian base image, from the build cache (built there first when missing).

    The layout lives in the cache: read it, never write into it. See :func:`build_base_image`.
    """
    suite, python = resolve_suite(suite, python)
    deb_arch = DEB_ARCH.get(arch or platform.machine())
    if deb_arch is None:
        raise BaseImageError(f"unsupported architecture {arch or platform.machine()!r} (x86_64 or aarch64)")
    wanted = sorted(set(packages if packages is not None else default_packages(python)) | set(include))
    epoch = source_date_epoch() if epoch is None else epoch
    cache = cache or BuildCache.default()
    hook = _hook_script(python)
    key = cache.key(
        layout=_LAYOUT, suite=suite, arch=deb_arch, packages=wanted, python=python, epoch=epoch, tag=tag,
        hook=hashlib.sha256(hook.encode()).hexdigest(),
    )  # fmt: skip
    entry = cache.get_dir(CACHE_NAMESPACE, key)
    if entry is None or not (entry / "layout" / "index.json").is_file():
        entry = _build(cache, key, suite, python, deb_arch, wanted, epoch, tag, hook)
    return load_base_image(entry / "layout", tag)


def build_base_image(
    dest: Path,
    *,
    suite: str | None = None,
    python: str | None = None,
    arch: str | None = None,
    packages: Sequence[str] | None = None,
    include: Sequence[str] = (),
    epoch: int | None = None,
    tag: str = BASE_TAG,
    cache: BuildCache | None = None,
) -> BaseImage:
    """Write a Debian base image as an OCI layout at ``dest`` (replacing it) and return it.

    ``suite`` and ``python`` fill each other in (bookworm: 3.11, trixie: 3.13; default
    bookworm). ``packages`` replaces :func:`default_packages`; ``include`` adds to it. ``arch``:
    x86_64 or aarch64 (default: this host's). ``epoch`` stamps every file (default
    ``SOURCE_DATE_EPOCH``). Built with mmdebstrap from the live Debian mirror once per
    (suite, arch, package list, Python, epoch, tag) and then copied from the build cache.
    Raises ``PlatformError`` without mmdebstrap, ``PackagingError`` when it fails.
    """
    base = cached_base_image(
        suite=suite, python=python, arch=arch, packages=packages, include=include, epoch=epoch, tag=tag,
        cache=cache,
    )  # fmt: skip
    dest = Path(dest)
    dest.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{dest.name}.", suffix=".tmp", dir=dest.parent))
    try:
        shutil.copytree(base.layout, tmp, dirs_exist_ok=True)
        replace_dir(tmp, dest)
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)
    return load_base_image(dest, tag)


def _build(
    cache: BuildCache,
    key: str,
    suite: str,
    python: str,
    deb_arch: str,
    packages: list[str],
    epoch: int,
    tag: str,
    hook: str,
) -> Path:
    with tempfile.TemporaryDirectory(prefix="edgepack-oci-base-") as tmp:
        rootfs = Path(tmp) / "rootfs.tar"
        _mmdebstrap(deb_arch, suite, packages, hook, rootfs)
        staging = Path(tmp) / "entry"
        staging.mkdir()
        config = ImageConfig(
            architecture=deb_arch,
            env={"PATH": "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin", "LANG": "C.UTF-8"},
            cmd=("python3",),
            title=f"edgepack base: Debian {suite} python{python}",
            labels={"dev.edgepack.base.packages": ",".join(packages), "dev.edgepack.base.suite": suite},
        )
        write_image_layout(
            staging / "layout",
            base=None,
            layers=[TarLayer(f"debian-{suite}", rootfs)],
            config=config,
            tag=tag,
            epoch=epoch,
        )
        built = load_base_image(staging / "layout", tag, require_python=False)
        if built.python != python:
            raise PackagingError(
                f"Debian {suite} {deb_arch} ({', '.join(packages)}) unpacked without a usable python{python} "
                f"(found {built.python or 'none'})"
            )
        info = {
            "suite": suite, "arch": deb_arch, "packages": packages, "python": python, "glibc": built.glibc,
            "manifest_digest": built.manifest_digest, "tag": tag, "epoch": epoch,
        }  # fmt: skip
        (staging / "info.json").write_text(
            json.dumps(info, indent=2, sort_keys=True) + "\n", encoding="utf-8"
        )
        return cache.put_dir(CACHE_NAMESPACE, key, staging)


def _mmdebstrap(deb_arch: str, suite: str, packages: list[str], hook: str, out: Path) -> None:
    exe = shutil.which("mmdebstrap")
    if exe is None:
        raise PlatformError(
            f"building a Debian {suite} base image needs mmdebstrap, which is not installed: "
            "apt-get install mmdebstrap (or pass a base image)"
        )
    cmd = [
        exe, "--quiet", "--variant=extract", f"--arch={deb_arch}", f"--include={','.join(packages)}",
        f"--extract-hook={hook}", suite, str(out),
    ]  # fmt: skip
    try:
        # Its own session: mmdebstrap signals its whole process group when it cleans up.
        done = subprocess.run(
            cmd, capture_output=True, text=True, timeout=MMDEBSTRAP_TIMEOUT_S, stdin=subprocess.DEVNULL,
            start_new_session=True,
        )  # fmt: skip
    except (OSError, subprocess.TimeoutExpired) as e:
        raise PackagingError(f"mmdebstrap did not finish for Debian {suite} {deb_arch}: {e}") from e
    if done.returncode != 0 or not out.is_file():
        tail = " ".join((done.stderr or done.stdout).strip().splitlines()[-3:])
        raise PackagingError(
            f"mmdebstrap could not unpack Debian {suite} {deb_arch} ({', '.join(packages)}) from the "
            f"Debian mirror: {tail or f'exit status {done.returncode}'}"
        )
