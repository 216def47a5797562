"""OCI image layouts written without a container daemon, byte for byte reproducible.

An image here is a directory in the OCI image layout (``oci-layout``, ``index.json``,
``blobs/sha256/...``) that ``skopeo copy oci:DIR:TAG ...``, ``umoci`` and ``podman run
oci:DIR:TAG`` read. It is a base image's layers (copied as they are: same compressed
bytes, same digests) followed by our own layers, one per :class:`LayerSpec` or
:class:`TarLayer`, so that the caller decides what changes together: a model-only
change rewrites only the model layer's blob, and every other digest stays put.

Each layer we write is a deterministic tar: entries sorted by path, PAX format, owned
by 0:0 with empty user/group names, every mtime the build epoch (``SOURCE_DATE_EPOCH``),
parent directories listed explicitly, modes 0644 (files) and 0755 (directories,
executables and shared objects). The tar is built in memory and hashed (its sha256 is the
``diff_id`` the config lists), then gzipped on every core as one member (level 6, header
mtime 0, no file name; the same bytes for any thread count) and hashed again for the
blob's digest.

Config, manifest and index are canonical JSON (sorted keys, no whitespace): the same
inputs and epoch give the same manifest digest. The layout is written in a temporary
directory beside ``dest`` and renamed into place; a failure leaves nothing behind.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import shutil
import stat
import tarfile
import tempfile
from collections.abc import Callable, Iterator, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any, Protocol

from ..errors import PackagingError
from .archive import check_relpath, file_mode, iter_tree, write_gzip

if TYPE_CHECKING:
    from ..container_base import BaseImage

OCI_LAYOUT_VERSION = "1.0.0"
MEDIA_INDEX = "application/vnd.oci.image.index.v1+json"
MEDIA_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
MEDIA_CONFIG = "application/vnd.oci.image.config.v1+json"
MEDIA_LAYER_GZIP = "application/vnd.oci.image.layer.v1.tar+gzip"
MEDIA_LAYER_TAR = "application/vnd.oci.image.layer.v1.tar"
MEDIA_LAYER_ZSTD = "application/vnd.oci.image.layer.v1.tar+zstd"
# Docker schema 2 names for the same things (a base may come from ``docker save``).
DOCKER_MANIFEST = "application/vnd.docker.distribution.manifest.v2+json"
DOCKER_MANIFEST_LIST = "application/vnd.docker.distribution.manifest.list.v2+json"
DOCKER_CONFIG = "application/vnd.docker.container.image.v1+json"
DOCKER_LAYER_GZIP = "application/vnd.docker.image.rootfs.diff.tar.gzip"
DOCKER_LAYER_TAR = "application/vnd.docker.image.rootfs.diff.tar"

# Base layer media types we copy (and can read, for detecting the base's Python).
LAYER_MEDIA_TYPES = frozenset({MEDIA_LAYER_GZIP, MEDIA_LAYER_TAR, DOCKER_LAYER_GZIP, DOCKER_LAYER_TAR})
REF_NAME = "org.opencontainers.image.ref.name"
LAYER_NAME_ANNOTATION = "dev.edgepack.layer"
GZIP_LEVEL = 6  # as for zips and bundles: measured in benchmarks/zip_writer.py and bundle_compression.py
_CHUNK = 1 << 20

# Python's / Debian's machine names -> OCI's (GOARCH) names.
OCI_ARCH: dict[str, str] = {"x86_64": "amd64", "aarch64": "arm64", "amd64": "amd64", "arm64": "arm64"}


def canonical_json(value: Any) -> bytes:
    """Sorted keys, no whitespace, UTF-8: the same value always gives the same bytes."""
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode("utf-8")


def rfc3339(epoch: int) -> str:
    return datetime.fromtimestamp(epoch, tz=UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


# -- what goes into the image ---------------------------------------------------------


@dataclass(frozen=True)
class LayerFile:
    """One file in a layer: ``dest`` is its path in the image (``/app/x.py`` or ``app/x.py``).

    Its bytes come from ``source`` (a file on disk, read while the layer is written) or
    ``data``. ``mode`` None: 0755 when the source is executable or a shared object, else 0644.
    """

    dest: str
    source: Path | None = None
    data: bytes | None = None
    mode: int | None = None


@dataclass(frozen=True)
class LayerSpec:
    """A set of files that change together (runtime, vendored packages, model ...).

    ``name`` is recorded in the image history and as an annotation on the layer's
    descriptor, so a reader can tell which layer holds what.
    """

    name: str
    files: tuple[LayerFile, ...] = ()

    @classmethod
    def from_tree(cls, name: str, source: Path, dest: str) -> LayerSpec:
        """Every regular file under ``source``, placed under the image directory ``dest``.

        Symlinks and special files are refused (as in every edgepack artifact)."""
        source = Path(source)
        if not source.is_dir():
            raise PackagingError(f"{source}: layer {name!r} source is not a directory")
        base = _image_path(dest, allow_root=True)
        files = tuple(
            LayerFile(dest=f"{base}/{rel}" if base else rel, source=path) for rel, path in iter_tree(source)
        )
        return cls(name=name, files=files)

    def __add__(self, other: LayerSpec) -> LayerSpec:
        return LayerSpec(name=self.name, files=self.files + other.files)

    def tar_entries(self, epoch: int) -> Iterator[TarEntry]:
        by_path: dict[str, LayerFile] = {}
        for f in self.files:
            path = _image_path(f.dest)
            if path in by_path:
                raise PackagingError(f"layer {self.name!r}: {path!r} is listed twice")
            if (f.source is None) == (f.data is None):
                raise PackagingError(f"layer {self.name!r}: {path!r} needs exactly one of source or data")
            by_path[path] = f
        dirs = {"/".join(p.split("/")[:i]) for p in by_path for i in range(1, p.count("/") + 1)}
        clash = sorted(dirs & by_path.keys())
        if clash:
            raise PackagingError(f"layer {self.name!r}: {clash[0]!r} is both a file and a directory")
        for path in sorted(dirs | by_path.keys()):
            info = _info(path, epoch)
            if path in dirs:
                info.type = tarfile.DIRTYPE
                info.mode = 0o755
                yield info, None
                continue
            f = by_path[path]
            if f.data is not None:
                data = f.data
                info.size = len(data)
                info.mode = 0o644 if f.mode is None else f.mode & 0o777
                yield info, _bytes_opener(data)
                continue
            assert f.source is not None
            try:
                st = os.stat(f.source)
            except OSError as e:
                raise PackagingError(f"layer {self.name!r}: cannot read {f.source}: {e}") from e
            if not stat.S_ISREG(st.st_mode):
                raise PackagingError(f"layer {self.name!r}: {f.source} is not a regular file")
            info.size = st.st_size
            info.mode = file_mode(f.source, st.st_mode) if f.mode is None else f.mode & 0o777
            yield info, _file_opener(f.source)


@dataclass(frozen=True)
class TarLayer:
    """A layer made from an existing root filesystem tar (mmdebstrap's output), re-written
    sorted with every mtime the epoch and user/group names dropped.

    Modes and numeric owners are kept (``/tmp`` stays 1777). Device nodes, fifos and
    sockets are left out (runtimes mount ``/dev``), as is everything below the
    directories in ``empty_dirs`` (the directories themselves stay).
    """

    name: str
    source: Path
    empty_dirs: tuple[str, ...] = ("dev", "proc", "sys")

    def tar_entries(self, epoch: int) -> Iterator[TarEntry]:
        try:
            tar = tarfile.open(self.source, mode="r:*")  # noqa: SIM115  # closed by the with below
        except (OSError, tarfile.TarError) as e:
            raise PackagingError(f"{self.source}: not a readable tar: {e}") from e
        with tar:
            members: dict[str, tarfile.TarInfo] = {}
            for m in tar.getmembers():
                path = member_path(m.name)
                if not path or not (m.isfile() or m.isdir() or m.issym() or m.islnk()):
                    continue
                check_relpath(path, PackagingError)
                if any(path.startswith(d + "/") for d in self.empty_dirs):
                    continue
                members[path] = m
            # A hard link must come after the file it names; in sorted order the first
            # name of each group carries the bytes and the others link to it.
            first_of: dict[str, str] = {}
            groups: dict[str, list[str]] = {}
            for path, m in members.items():
                if m.islnk():
                    target = _link_target(m)
                    if target not in members:
                        raise PackagingError(f"{self.source}: {path!r} is a hard link to missing {target!r}")
                    groups.setdefault(target, [target]).append(path)
            for names in groups.values():
                names.sort()
                for other in names[1:]:
                    first_of[other] = names[0]
            for path in sorted(members):
                m = members[path]
                info = _info(path, epoch)
                info.mode = m.mode & 0o7777
                info.uid, info.gid = m.uid, m.gid
                if path in first_of:
                    info.type = tarfile.LNKTYPE
                    info.linkname = first_of[path]
                    yield info, None
                elif m.isdir():
                    info.type = tarfile.DIRTYPE
                    yield info, None
                elif m.issym():
                    info.type = tarfile.SYMTYPE
                    info.linkname = m.linkname
                    yield info, None
                else:  # a regular file, or the first name of a hard-link group
                    info.size = m.size if m.isfile() else members[_link_target(m)].size
                    yield info, _member_opener(tar, m)


def member_path(name: str) -> str:
    """A tar member's name as a relative path: ``./usr/bin/x`` -> ``usr/bin/x``; the root -> ""."""
    path = name.strip("/")
    while path.startswith("./"):
        path = path[2:].lstrip("/")
    return "" if path == "." else path


def _link_target(m: tarfile.TarInfo) -> str:
    return member_path(m.linkname)


TarEntry = tuple[tarfile.TarInfo, Callable[[], IO[bytes]] | None]


class Layer(Protocol):
    """Anything that yields a layer's tar entries, sorted, stamped with ``epoch``."""

    @property
    def name(self) -> str: ...

    def tar_entries(self, epoch: int) -> Iterator[TarEntry]: ...


@dataclass(frozen=True)
class Healthcheck:
    """Docker's HEALTHCHECK (an extension of the OCI config that podman honours).

    ``test``: ``("CMD", "python3", "-c", "...")`` or ``("CMD-SHELL", "...")``."""

    test: tuple[str, ...]
    interval_s: float = 30.0
    timeout_s: float = 30.0
    retries: int = 3
    start_period_s: float = 0.0

    def to_json(self) -> dict[str, Any]:
        ns = 1_000_000_000
        return {
            "Test": list(self.test),
            "Interval": int(self.interval_s * ns),
            "Timeout": int(self.timeout_s * ns),
            "Retries": self.retries,
            "StartPeriod": int(self.start_period_s * ns),
        }


@dataclass(frozen=True)
class ImageConfig:
    """How the image runs, and what it says about itself.

    Unset fields are inherited from the base (``env`` is merged key by key, ``labels``
    too). ``architecture`` is required without a base and must match the base's with one.
    ``title``/``version``/``revision``/``source`` become ``org.opencontainers.image.*``
    labels and manifest annotations, with ``created`` taken from the epoch.
    """

    entrypoint: tuple[str, ...] | None = None
    cmd: tuple[str, ...] | None = None
    env: Mapping[str, str] = field(default_factory=dict)
    exposed_ports: tuple[str, ...] = ()  # "8080/tcp" ("8080" means tcp)
    working_dir: str | None = None
    user: str | None = None
    labels: Mapping[str, str] = field(default_factory=dict)
    stop_signal: str | None = None
    healthcheck: Healthcheck | None = None
    architecture: str | None = None  # x86_64 | aarch64 (or OCI's amd64 | arm64)
    os: str = "linux"
    title: str | None = None
    version: str | None = None
    revision: str | None = None
    source: str | None = None


@dataclass(frozen=True)
class LayerResult:
    name: str  # the LayerSpec's name, or "base" for a base layer
    digest: str  # sha256:... of the blob (compressed)
    diff_id: str  # sha256:... of the uncompressed tar
    size: int  # blob bytes
    uncompressed_size: int | None  # None for base layers (not re-read)
    media_type: str
    from_base: bool


@dataclass(frozen=True)
class ImageResult:
    path: Path
    tag: str
    manifest_digest: str
    config_digest: str
    manifest_size: int
    config_size: int
    layers: tuple[LayerResult, ...]

    @property
    def size(self) -> int:
        """Bytes of every blob the image references (layers, config, manifest)."""
        return self.manifest_size + self.config_size + sum(layer.size for layer in self.layers)


# -- writing ---------------------------------------------------------------------------


def write_image_layout(
    dest: Path,
    *,
    base: BaseImage | None,
    layers: Sequence[Layer],
    config: ImageConfig,
    tag: str,
    epoch: int,
    workers: int | None = None,
) -> ImageResult:
    """Write an OCI image layout at ``dest`` (replacing what is there) and return its digests.

    The image is ``base``'s layers followed by ``layers`` in order; index.json names the
    manifest ``tag``. ``workers`` layers are compressed at once (zlib and sha256 release
    the GIL); default: one per CPU. Raises ``PackagingError`` (and leaves ``dest`` as it was)
    when a file cannot be read, a path is unsafe, or a base blob does not match its digest.
    """
    dest = Path(dest)
    _check_tag(tag)
    arch = _architecture(base, config)
    dest.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{dest.name}.", suffix=".tmp", dir=dest.parent))
    try:
        blobs = tmp / "blobs" / "sha256"
        blobs.mkdir(parents=True)
        results: list[LayerResult] = []
        base_history: list[dict[str, Any]] = []
        base_config: dict[str, Any] = {}
        if base is not None:
            base_config = dict(base.config.get("config") or {})
            base_history = list(base.config.get("history") or [])
            for desc, diff_id in zip(base.layers, base.diff_ids, strict=True):
                results.append(_copy_base_blob(base.layout, desc, diff_id, blobs))
        n = workers or min(len(layers), os.cpu_count() or 1) or 1
        if n > 1 and len(layers) > 1:
            with ThreadPoolExecutor(max_workers=n) as pool:
                ours = list(pool.map(lambda layer: _write_layer(layer, epoch, blobs), layers))
        else:
            ours = [_write_layer(layer, epoch, blobs) for layer in layers]
        results.extend(ours)

        created = rfc3339(epoch)
        history = base_history + [
            {"created": created, "created_by": f"edgepack: layer {layer.name}", "comment": "edgepack"}
            for layer in layers
        ]
        image_config: dict[str, Any] = {
            "architecture": arch,
            "os": config.os,
            "created": created,
            "config": _runtime_config(base_config, config, created),
            "rootfs": {"type": "layers", "diff_ids": [r.diff_id for r in results]},
            "history": history,
        }
        if base is not None and base.config.get("variant"):
            image_config["variant"] = base.config["variant"]
        config_desc = _put_json(blobs, image_config, MEDIA_CONFIG)
        annotations = _oci_annotations(config, created)
        if base is not None:
            annotations["org.opencontainers.image.base.digest"] = base.manifest_digest
            if base.tag:
                annotations["org.opencontainers.image.base.name"] = base.tag
        manifest = {
            "schemaVersion": 2,
            "mediaType": MEDIA_MANIFEST,
            "config": config_desc,
            "layers": [_layer_descriptor(r) for r in results],
            "annotations": annotations,
        }
        manifest_desc = _put_json(blobs, manifest, MEDIA_MANIFEST)
        platform = {"architecture": arch, "os": config.os}
        if "variant" in image_config:
            platform["variant"] = image_config["variant"]
        index = {
            "schemaVersion": 2,
            "mediaType": MEDIA_INDEX,
            "manifests": [{**manifest_desc, "platform": platform, "annotations": {REF_NAME: tag}}],
        }
        (tmp / "index.json").write_bytes(canonical_json(index))
        (tmp / "oci-layout").write_bytes(canonical_json({"imageLayoutVersion": OCI_LAYOUT_VERSION}))
        os.chmod(tmp, 0o755)
        replace_dir(tmp, dest)
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)
    return ImageResult(
        path=dest,
        tag=tag,
        manifest_digest=manifest_desc["digest"],
        config_digest=config_desc["digest"],
        manifest_size=manifest_desc["size"],
        config_size=config_desc["size"],
        layers=tuple(results),
    )


class _Sink:
    """A write-only file object that hashes and counts what passes through it."""

    def __init__(self, out: IO[bytes] | None) -> None:
        self.out = out
        self.sha = hashlib.sha256()
        self.size = 0

    def write(self, data: bytes) -> int:
        self.sha.update(data)
        self.size += len(data)
        if self.out is not None:
            self.out.write(data)
        return len(data)

    def tell(self) -> int:
        return self.size

    def flush(self) -> None:
        if self.out is not None:
            self.out.flush()


def _write_layer(layer: Layer, epoch: int, blobs: Path) -> LayerResult:
    """Tar and hash in memory, then gzip on every core (one member, the same bytes for any
    thread count) and hash; the blob lands at its digest's name."""
    fd, tmp_name = tempfile.mkstemp(prefix=".layer-", dir=blobs)
    tmp = Path(tmp_name)
    try:
        buffer = io.BytesIO()
        plain = _Sink(buffer)
        pax = tarfile.PAX_FORMAT
        with tarfile.TarFile(fileobj=plain, mode="w", format=pax, copybufsize=_CHUNK) as tar:  # type: ignore[arg-type]
            for info, opener in layer.tar_entries(epoch):
                if opener is None:
                    tar.addfile(info)
                    continue
                with opener() as src:
                    tar.addfile(info, src)
        with os.fdopen(fd, "wb", buffering=_CHUNK) as raw:
            compressed = _Sink(raw)
            write_gzip(buffer.getbuffer(), compressed, level=GZIP_LEVEL)  # type: ignore[arg-type]
        digest = compressed.sha.hexdigest()
        os.chmod(tmp, 0o644)
        os.replace(tmp, blobs / digest)
    except (OSError, tarfile.TarError) as e:
        raise PackagingError(f"layer {layer.name!r}: cannot write it: {e}") from e
    finally:
        tmp.unlink(missing_ok=True)
    return LayerResult(
        name=layer.name,
        digest=f"sha256:{digest}",
        diff_id=f"sha256:{plain.sha.hexdigest()}",
        size=compressed.size,
        uncompressed_size=plain.size,
        media_type=MEDIA_LAYER_GZIP,
        from_base=False,
    )


def _copy_base_blob(layout: Path, desc: Mapping[str, Any], diff_id: str, blobs: Path) -> LayerResult:
    media_type = desc.get("mediaType", "")
    digest = str(desc.get("digest", ""))
    if media_type not in LAYER_MEDIA_TYPES:
        raise PackagingError(f"{layout}: base layer {digest} has unsupported media type {media_type!r}")
    src = blob_path(layout, digest)
    algo, _, hexdigest = digest.partition(":")
    # Docker's names for the same bytes are rewritten to OCI's (an OCI manifest may not mix them).
    oci_names = {DOCKER_LAYER_GZIP: MEDIA_LAYER_GZIP, DOCKER_LAYER_TAR: MEDIA_LAYER_TAR}
    oci_type = oci_names.get(media_type, media_type)
    sha = hashlib.sha256()
    target = blobs / hexdigest
    fd, tmp_name = tempfile.mkstemp(prefix=".base-", dir=blobs)
    try:
        with os.fdopen(fd, "wb") as out, open(src, "rb") as f:
            while block := f.read(_CHUNK):
                sha.update(block)
                out.write(block)
        if algo != "sha256" or sha.hexdigest() != hexdigest:
            raise PackagingError(f"{src}: base blob does not match its digest {digest}")
        os.chmod(tmp_name, 0o644)
        os.replace(tmp_name, target)
    except OSError as e:
        raise PackagingError(f"{src}: cannot copy base layer: {e}") from e
    finally:
        Path(tmp_name).unlink(missing_ok=True)
    return LayerResult(
        name="base",
        digest=digest,
        diff_id=diff_id,
        size=target.stat().st_size,
        uncompressed_size=None,
        media_type=oci_type,
        from_base=True,
    )


def _layer_descriptor(r: LayerResult) -> dict[str, Any]:
    desc: dict[str, Any] = {"mediaType": r.media_type, "digest": r.digest, "size": r.size}
    if not r.from_base:
        desc["annotations"] = {LAYER_NAME_ANNOTATION: r.name}
    return desc


def _put_json(blobs: Path, value: Any, media_type: str) -> dict[str, Any]:
    data = canonical_json(value)
    digest = hashlib.sha256(data).hexdigest()
    path = blobs / digest
    path.write_bytes(data)
    os.chmod(path, 0o644)
    return {"mediaType": media_type, "digest": f"sha256:{digest}", "size": len(data)}


def _runtime_config(base: Mapping[str, Any], config: ImageConfig, created: str) -> dict[str, Any]:
    out: dict[str, Any] = {k: v for k, v in base.items() if v not in (None, [], {}, "")}
    env: dict[str, str] = {}
    for item in base.get("Env") or []:
        key, _, value = str(item).partition("=")
        env[key] = value
    env.update(config.env)
    if env:
        out["Env"] = [f"{k}={v}" for k, v in env.items()]
    if config.entrypoint is not None:
        out["Entrypoint"] = list(config.entrypoint)
        # As Docker does: a new entrypoint drops the base's Cmd unless one is given.
        if config.cmd is None:
            out.pop("Cmd", None)
    if config.cmd is not None:
        out["Cmd"] = list(config.cmd)
    if config.exposed_ports:
        ports = dict(base.get("ExposedPorts") or {})
        for port in config.exposed_ports:
            ports[port if "/" in str(port) else f"{port}/tcp"] = {}
        out["ExposedPorts"] = ports
    settings: tuple[tuple[str, str | None], ...] = (
        ("WorkingDir", config.working_dir),
        ("User", config.user),
        ("StopSignal", config.stop_signal),
    )
    for key, setting in settings:
        if setting is not None:
            out[key] = setting
    if config.healthcheck is not None:
        out["Healthcheck"] = config.healthcheck.to_json()
    labels = dict(base.get("Labels") or {})
    labels.update(_oci_annotations(config, created))
    labels.update(config.labels)
    if labels:
        out["Labels"] = labels
    return out


def _oci_annotations(config: ImageConfig, created: str) -> dict[str, str]:
    out = {"org.opencontainers.image.created": created}
    for key, value in (
        ("title", config.title),
        ("version", config.version),
        ("revision", config.revision),
        ("source", config.source),
    ):
        if value:
            out[f"org.opencontainers.image.{key}"] = value
    return out


def _architecture(base: BaseImage | None, config: ImageConfig) -> str:
    wanted = OCI_ARCH.get(config.architecture, config.architecture) if config.architecture else None
    if base is None:
        if wanted is None:
            raise PackagingError("an image without a base needs ImageConfig.architecture")
        return wanted
    have = str(base.config.get("architecture", ""))
    if wanted is not None and wanted != have:
        raise PackagingError(f"{base.layout}: the base image is {have}, the image was asked for {wanted}")
    return have


def _check_tag(tag: str) -> None:
    # OCI's ref.name grammar, simplified: what skopeo's oci:DIR:TAG reference accepts.
    if not tag or len(tag) > 128 or not all(c.isalnum() or c in "._-:/@+" for c in tag) or tag[0] in ".-":
        raise PackagingError(f"{tag!r}: not a valid image tag")


def replace_dir(tmp: Path, dest: Path) -> None:
    """Rename ``tmp`` to ``dest``; an existing ``dest`` is moved aside first and removed after."""
    if not dest.exists() and not dest.is_symlink():
        os.rename(tmp, dest)
        return
    if dest.is_symlink() or not dest.is_dir():
        raise PackagingError(f"{dest}: exists and is not a directory; refusing to replace it")
    old = Path(tempfile.mkdtemp(prefix=f".{dest.name}.", suffix=".old", dir=dest.parent))
    os.rmdir(old)
    os.rename(dest, old)
    try:
        os.rename(tmp, dest)
    except OSError:
        os.rename(old, dest)
        raise
    shutil.rmtree(old, ignore_errors=True)


def _image_path(dest: str, *, allow_root: bool = False) -> str:
    path = dest.strip()
    path = path[1:] if path.startswith("/") else path
    path = path.rstrip("/") if path != "/" else ""
    if not path and allow_root:
        return ""
    return check_relpath(path, PackagingError)


def _info(path: str, epoch: int) -> tarfile.TarInfo:
    info = tarfile.TarInfo(path)
    info.mtime = epoch
    info.uid = info.gid = 0
    info.uname = info.gname = ""
    return info


def _file_opener(path: Path) -> Callable[[], IO[bytes]]:
    return lambda: open(path, "rb")


def _bytes_opener(data: bytes) -> Callable[[], IO[bytes]]:
    import io

    return lambda: io.BytesIO(data)


def _member_opener(tar: tarfile.TarFile, member: tarfile.TarInfo) -> Callable[[], IO[bytes]]:
    def opener() -> IO[bytes]:
        f = tar.extractfile(member)
        if f is None:
            raise PackagingError(f"{member.name}: no data in the source tar")
        return f

    return opener


# -- reading ---------------------------------------------------------------------------


def blob_path(layout: Path, digest: str) -> Path:
    """Where ``digest`` (``sha256:<hex>``) lives in ``layout``; refuses malformed digests."""
    algo, _, hexdigest = digest.partition(":")
    if algo != "sha256" or len(hexdigest) != 64 or not all(c in "0123456789abcdef" for c in hexdigest):
        raise PackagingError(f"{layout}: malformed or unsupported digest {digest!r}")
    return Path(layout) / "blobs" / "sha256" / hexdigest


def read_blob_json(layout: Path, digest: str) -> dict[str, Any]:
    """A JSON blob, checked against its digest."""
    path = blob_path(layout, digest)
    try:
        data = path.read_bytes()
    except OSError as e:
        raise PackagingError(f"{layout}: blob {digest} is missing: {e}") from e
    if f"sha256:{hashlib.sha256(data).hexdigest()}" != digest:
        raise PackagingError(f"{path}: blob does not match its digest {digest}")
    try:
        value = json.loads(data)
    except ValueError as e:
        raise PackagingError(f"{path}: not JSON: {e}") from e
    if not isinstance(value, dict):
        raise PackagingError(f"{path}: not a JSON object")
    return value


def read_index(layout: Path) -> dict[str, Any]:
    layout = Path(layout)
    try:
        index = json.loads((layout / "index.json").read_bytes())
    except (OSError, ValueError) as e:
        raise PackagingError(f"{layout}: not an OCI image layout (index.json: {e})") from e
    if not isinstance(index, dict) or not isinstance(index.get("manifests"), list):
        raise PackagingError(f"{layout}/index.json: no manifests list")
    return index


def manifest_descriptor(layout: Path, tag: str | None = None) -> dict[str, Any]:
    """index.json's descriptor for ``tag`` (or its only one when ``tag`` is None)."""
    manifests = read_index(layout)["manifests"]
    if tag is None:
        if len(manifests) != 1:
            tags = [str((m.get("annotations") or {}).get(REF_NAME)) for m in manifests]
            raise PackagingError(f"{layout}: holds {len(manifests)} images ({', '.join(tags)}); name a tag")
        return dict(manifests[0])
    found = [m for m in manifests if (m.get("annotations") or {}).get(REF_NAME) == tag]
    if not found:
        tags = sorted(str((m.get("annotations") or {}).get(REF_NAME)) for m in manifests)
        raise PackagingError(f"{layout}: no image tagged {tag!r} (tags: {', '.join(tags) or 'none'})")
    return dict(found[0])


def manifest_digest(layout: Path, tag: str | None = None) -> str:
    """The manifest digest (``sha256:...``) index.json gives for ``tag``."""
    return str(manifest_descriptor(layout, tag)["digest"])


def read_layout(
    layout: Path, tag: str | None = None
) -> tuple[dict[str, Any], dict[str, Any], dict[str, Any]]:
    """``(index, manifest, config)`` of the image tagged ``tag`` (digests checked)."""
    index = read_index(layout)
    desc = manifest_descriptor(layout, tag)
    manifest = read_blob_json(layout, str(desc["digest"]))
    config = read_blob_json(layout, str(manifest["config"]["digest"]))
    return index, manifest, config
