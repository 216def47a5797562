"""OCI image layouts: deterministic layers and JSON, atomic writes, and real tools reading them.

skopeo copy checks every blob against its digest (skopeo inspect does not), umoci unpack
applies the layers, and podman + runc run the image on the host network.
"""

from __future__ import annotations

import gzip
import hashlib
import json
import os
import shutil
import stat
import subprocess
import tarfile
from pathlib import Path

import pytest

from edgepack.container_base import BaseImage
from edgepack.errors import PackagingError
from edgepack.packaging.oci import (
    MEDIA_LAYER_GZIP,
    MEDIA_MANIFEST,
    REF_NAME,
    Healthcheck,
    ImageConfig,
    ImageResult,
    LayerFile,
    LayerSpec,
    blob_path,
    manifest_digest,
    read_layout,
    write_image_layout,
)
from tests.container_fixtures import Podman

EPOCH = 1_700_000_000
SCRIPT = b"import sys\nprint('hello from edgepack', sys.version_info[:2])\n"


def _sources(root: Path, model: bytes = b"weights-v1" * 1000) -> Path:
    (root / "app" / "pkg").mkdir(parents=True)
    (root / "app" / "main.py").write_bytes(SCRIPT)
    (root / "app" / "pkg" / "__init__.py").write_bytes(b"")
    tool = root / "app" / "run.sh"
    tool.write_bytes(b"#!/bin/sh\nexec python3 /opt/app/main.py\n")
    tool.chmod(0o700)  # odd source modes are normalized
    (root / "app" / "pkg" / "_native.cpython-311-x86_64-linux-gnu.so").write_bytes(b"\x7fELF" + bytes(64))
    (root / "model").mkdir()
    (root / "model" / "model.bin").write_bytes(model)
    return root


def _layers(root: Path) -> list[LayerSpec]:
    return [
        LayerSpec.from_tree("app", root / "app", "/opt/app"),
        LayerSpec("model", (LayerFile("/opt/model/model.bin", source=root / "model" / "model.bin"),)),
        LayerSpec("etc", (LayerFile("etc/edgepack/settings.json", data=b'{"a": 1}'),)),
    ]


CONFIG = ImageConfig(
    entrypoint=("python3", "/opt/app/main.py"),
    env={"PYTHONUNBUFFERED": "1"},
    exposed_ports=("8080",),
    working_dir="/opt/app",
    user="10001",
    labels={"dev.edgepack.target": "container-cpu"},
    stop_signal="SIGTERM",
    healthcheck=Healthcheck(test=("CMD", "python3", "-c", "pass"), interval_s=10, timeout_s=3, retries=2),
    architecture="x86_64",
    title="digits",
    version="1.2.3",
    revision="abc123",
    source="https://example.com/digits",
)


def _write(dest: Path, root: Path, base: BaseImage | None = None, tag: str = "v1") -> ImageResult:
    return write_image_layout(dest, base=base, layers=_layers(root), config=CONFIG, tag=tag, epoch=EPOCH)


def _layer_members(layout: Path, digest: str) -> list[tarfile.TarInfo]:
    with tarfile.open(blob_path(layout, digest), mode="r:gz") as tar:
        return tar.getmembers()


# -- the layout itself ----------------------------------------------------------------


def test_layout_structure_and_config(tmp_path: Path) -> None:
    root = _sources(tmp_path / "src")
    result = _write(tmp_path / "img", root)
    layout = tmp_path / "img"
    assert json.loads((layout / "oci-layout").read_text()) == {"imageLayoutVersion": "1.0.0"}
    index, manifest, config = read_layout(layout, "v1")
    assert index["manifests"][0]["annotations"] == {REF_NAME: "v1"}
    assert index["manifests"][0]["mediaType"] == MEDIA_MANIFEST
    assert manifest_digest(layout, "v1") == result.manifest_digest
    assert manifest["mediaType"] == MEDIA_MANIFEST
    assert manifest["annotations"]["org.opencontainers.image.created"] == "2023-11-14T22:13:20Z"
    assert manifest["annotations"]["org.opencontainers.image.revision"] == "abc123"
    assert [d["mediaType"] for d in manifest["layers"]] == [MEDIA_LAYER_GZIP] * 3
    assert [d["annotations"]["dev.edgepack.layer"] for d in manifest["layers"]] == ["app", "model", "etc"]
    assert config["architecture"] == "amd64" and config["os"] == "linux"
    assert config["created"] == "2023-11-14T22:13:20Z"
    assert len(config["history"]) == 3
    run = config["config"]
    assert run["Entrypoint"] == ["python3", "/opt/app/main.py"]
    assert run["Env"] == ["PYTHONUNBUFFERED=1"]
    assert run["ExposedPorts"] == {"8080/tcp": {}}
    assert run["WorkingDir"] == "/opt/app" and run["User"] == "10001" and run["StopSignal"] == "SIGTERM"
    assert run["Healthcheck"] == {
        "Test": ["CMD", "python3", "-c", "pass"],
        "Interval": 10_000_000_000,
        "Timeout": 3_000_000_000,
        "Retries": 2,
        "StartPeriod": 0,
    }
    labels = run["Labels"]
    assert labels["org.opencontainers.image.title"] == "digits"
    assert labels["org.opencontainers.image.version"] == "1.2.3"
    assert labels["org.opencontainers.image.source"] == "https://example.com/digits"
    assert labels["dev.edgepack.target"] == "container-cpu"
    # diff_ids are the sha256 of the uncompressed tars; blobs are named by their own digest.
    for desc, diff_id in zip(manifest["layers"], config["rootfs"]["diff_ids"], strict=True):
        blob = blob_path(layout, desc["digest"]).read_bytes()
        assert f"sha256:{hashlib.sha256(blob).hexdigest()}" == desc["digest"] and len(blob) == desc["size"]
        assert f"sha256:{hashlib.sha256(gzip.decompress(blob)).hexdigest()}" == diff_id
    # Canonical JSON: sorted keys, no whitespace.
    raw = (layout / "index.json").read_bytes()
    assert raw == json.dumps(json.loads(raw), sort_keys=True, separators=(",", ":")).encode()


def test_layer_tars_are_normalized(tmp_path: Path) -> None:
    root = _sources(tmp_path / "src")
    _write(tmp_path / "img", root)
    _, manifest, _ = read_layout(tmp_path / "img")
    blob = blob_path(tmp_path / "img", manifest["layers"][0]["digest"]).read_bytes()
    assert blob[:4] == b"\x1f\x8b\x08\x00"  # gzip, deflate, no FNAME flag
    assert blob[4:8] == b"\0\0\0\0"  # header mtime 0
    members = _layer_members(tmp_path / "img", manifest["layers"][0]["digest"])
    names = [m.name for m in members]
    assert names == sorted(names)
    assert names[:3] == ["opt", "opt/app", "opt/app/main.py"]  # parent directories are explicit
    for m in members:
        assert (m.uid, m.gid, m.uname, m.gname, m.mtime) == (0, 0, "", "", EPOCH)
    modes = {m.name: (m.type, m.mode) for m in members}
    assert modes["opt/app"] == (tarfile.DIRTYPE, 0o755)
    assert modes["opt/app/main.py"] == (tarfile.REGTYPE, 0o644)
    assert modes["opt/app/run.sh"] == (tarfile.REGTYPE, 0o755)
    assert modes["opt/app/pkg/_native.cpython-311-x86_64-linux-gnu.so"][1] == 0o755
    with tarfile.open(blob_path(tmp_path / "img", manifest["layers"][0]["digest"]), mode="r:gz") as tar:
        assert tar.format == tarfile.PAX_FORMAT


def test_two_writes_are_byte_identical(tmp_path: Path) -> None:
    a = _write(tmp_path / "a", _sources(tmp_path / "src-a"))
    b = _write(tmp_path / "b", _sources(tmp_path / "src-b"))  # other paths on disk, other mtimes
    assert a.manifest_digest == b.manifest_digest
    files_a = sorted(p.relative_to(tmp_path / "a") for p in (tmp_path / "a").rglob("*"))
    files_b = sorted(p.relative_to(tmp_path / "b") for p in (tmp_path / "b").rglob("*"))
    assert files_a == files_b
    for rel in files_a:
        if (tmp_path / "a" / rel).is_file():
            assert (tmp_path / "a" / rel).read_bytes() == (tmp_path / "b" / rel).read_bytes(), rel


def test_a_model_change_changes_only_the_model_layer(tmp_path: Path) -> None:
    before = _write(tmp_path / "a", _sources(tmp_path / "src-a"))
    after = _write(tmp_path / "b", _sources(tmp_path / "src-b", model=b"weights-v2" * 1000))
    old = {layer.name: layer for layer in before.layers}
    new = {layer.name: layer for layer in after.layers}
    assert new["model"].digest != old["model"].digest
    assert new["model"].diff_id != old["model"].diff_id
    for name in ("app", "etc"):
        assert (new[name].digest, new[name].diff_id) == (old[name].digest, old[name].diff_id)
    assert after.manifest_digest != before.manifest_digest


def test_replaces_an_existing_layout(tmp_path: Path) -> None:
    root = _sources(tmp_path / "src")
    (tmp_path / "img").mkdir()
    (tmp_path / "img" / "stale").write_text("old")
    _write(tmp_path / "img", root)
    assert not (tmp_path / "img" / "stale").exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["img", "src"]


def test_a_failed_write_leaves_nothing_behind(tmp_path: Path) -> None:
    root = _sources(tmp_path / "src")
    layers = [*_layers(root), LayerSpec("broken", (LayerFile("opt/x", source=tmp_path / "missing"),))]
    with pytest.raises(PackagingError, match="missing"):
        write_image_layout(tmp_path / "img", base=None, layers=layers, config=CONFIG, tag="v1", epoch=EPOCH)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["src"]
    # An existing image stays as it was.
    good = _write(tmp_path / "img", root)
    with pytest.raises(PackagingError):
        write_image_layout(tmp_path / "img", base=None, layers=layers, config=CONFIG, tag="v1", epoch=EPOCH)
    assert manifest_digest(tmp_path / "img", "v1") == good.manifest_digest
    assert sorted(p.name for p in tmp_path.iterdir()) == ["img", "src"]


@pytest.mark.parametrize(
    ("files", "message"),
    [
        ((LayerFile("../etc/passwd", data=b""),), "unsafe path"),
        ((LayerFile("a/./b", data=b""),), "unsafe path"),
        ((LayerFile("a", data=b""), LayerFile("/a", data=b"")), "listed twice"),
        ((LayerFile("a", data=b""), LayerFile("a/b", data=b"")), "both a file and a directory"),
        ((LayerFile("a"),), "exactly one of source or data"),
    ],
    ids=["dotdot", "dot", "twice", "file-and-dir", "no-content"],
)
def test_bad_layer_entries_are_refused(tmp_path: Path, files: tuple[LayerFile, ...], message: str) -> None:
    with pytest.raises(PackagingError, match=message):
        write_image_layout(
            tmp_path / "img", base=None, layers=[LayerSpec("x", files)], config=CONFIG, tag="v1", epoch=EPOCH
        )
    assert not (tmp_path / "img").exists()


def test_without_a_base_the_architecture_is_required(tmp_path: Path) -> None:
    with pytest.raises(PackagingError, match="architecture"):
        write_image_layout(tmp_path / "img", base=None, layers=[], config=ImageConfig(), tag="v1", epoch=0)


def test_from_tree_refuses_symlinks(tmp_path: Path) -> None:
    root = _sources(tmp_path / "src")
    (root / "app" / "link").symlink_to("main.py")
    with pytest.raises(PackagingError, match="symlinks"):
        LayerSpec.from_tree("app", root / "app", "/opt/app")


# -- real tools ------------------------------------------------------------------------


def _need(*tools: str) -> None:
    missing = [t for t in tools if shutil.which(t) is None]
    if missing:
        pytest.skip(f"{', '.join(missing)} not installed")


def _run(cmd: list[str], timeout: float = 300) -> subprocess.CompletedProcess[str]:
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, stdin=subprocess.DEVNULL)
    assert done.returncode == 0, f"{' '.join(cmd)}: {done.stderr[-2000:]}"
    return done


def test_skopeo_copies_an_image_without_base(tmp_path: Path) -> None:
    _need("skopeo")
    result = _write(tmp_path / "img", _sources(tmp_path / "src"))
    _run(["skopeo", "copy", "--quiet", f"oci:{tmp_path / 'img'}:v1", f"oci:{tmp_path / 'copy'}:v1"])
    # Same compression and bytes: skopeo keeps the manifest as written.
    assert manifest_digest(tmp_path / "copy", "v1") == result.manifest_digest


def test_skopeo_refuses_a_corrupted_blob(tmp_path: Path) -> None:
    _need("skopeo")
    _write(tmp_path / "img", _sources(tmp_path / "src"))
    _, manifest, _ = read_layout(tmp_path / "img")
    blob = blob_path(tmp_path / "img", manifest["layers"][1]["digest"])
    data = bytearray(blob.read_bytes())
    data[-12] ^= 0xFF  # inside the deflate stream's tail
    blob.write_bytes(bytes(data))
    done = subprocess.run(
        ["skopeo", "copy", "--quiet", f"oci:{tmp_path / 'img'}:v1", f"oci:{tmp_path / 'copy'}:v1"],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode != 0  # proves the copy above checks digests


@pytest.fixture(scope="module")
def image_on_base(tmp_path_factory: pytest.TempPathFactory, debian_base_image: BaseImage) -> Path:
    work = tmp_path_factory.mktemp("image-on-base")
    root = _sources(work / "src")
    config = ImageConfig(entrypoint=("python3", "/opt/app/main.py"), title="demo", version="1")
    write_image_layout(
        work / "img", base=debian_base_image, layers=_layers(root), config=config, tag="v1", epoch=EPOCH
    )
    return work / "img"


def test_an_image_on_the_debian_base(image_on_base: Path, debian_base_image: BaseImage) -> None:
    _, manifest, config = read_layout(image_on_base, "v1")
    base_layers = list(debian_base_image.layers)
    assert [d["digest"] for d in manifest["layers"][: len(base_layers)]] == [d["digest"] for d in base_layers]
    assert config["rootfs"]["diff_ids"][: len(base_layers)] == list(debian_base_image.diff_ids)
    assert len(config["rootfs"]["diff_ids"]) == len(base_layers) + 3
    assert len(config["history"]) == len(debian_base_image.config["history"]) + 3
    assert (
        manifest["annotations"]["org.opencontainers.image.base.digest"] == debian_base_image.manifest_digest
    )
    run = config["config"]
    assert "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin" in run["Env"]  # inherited
    assert run["Entrypoint"] == ["python3", "/opt/app/main.py"] and "Cmd" not in run
    for desc in base_layers:
        copied = blob_path(image_on_base, desc["digest"]).read_bytes()
        assert copied == blob_path(debian_base_image.layout, desc["digest"]).read_bytes()


def test_skopeo_and_umoci_read_the_image_on_base(image_on_base: Path, tmp_path: Path) -> None:
    _need("skopeo", "umoci")
    _run(["skopeo", "copy", "--quiet", f"oci:{image_on_base}:v1", f"oci:{tmp_path / 'copy'}:v1"])
    _run(["umoci", "unpack", "--image", f"{image_on_base}:v1", str(tmp_path / "bundle")])
    rootfs = tmp_path / "bundle" / "rootfs"
    assert (rootfs / "opt" / "app" / "main.py").read_bytes() == SCRIPT
    assert (rootfs / "opt" / "model" / "model.bin").read_bytes() == b"weights-v1" * 1000
    assert (rootfs / "etc" / "edgepack" / "settings.json").read_bytes() == b'{"a": 1}'
    assert stat.S_IMODE((rootfs / "opt" / "app" / "main.py").stat().st_mode) == 0o644
    assert stat.S_IMODE((rootfs / "opt" / "app" / "run.sh").stat().st_mode) == 0o755
    assert stat.S_IMODE((rootfs / "opt" / "app").stat().st_mode) == 0o755
    assert (rootfs / "usr" / "bin" / "python3.11").is_file()  # the base's layer is under ours
    assert os.readlink(rootfs / "usr" / "bin" / "python3") == "python3.11"
    assert stat.S_IMODE((rootfs / "tmp").stat().st_mode) == 0o1777
    assert "app:x:10001:10001:" in (rootfs / "etc" / "passwd").read_text()
    assert not list((rootfs / "dev").iterdir())  # no device nodes in a layer


@pytest.mark.slow
def test_podman_runs_the_image(image_on_base: Path, podman: Podman) -> None:
    done = podman.run(image_on_base, "v1")
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.strip() == "hello from edgepack (3, 11)"
    # As the base's unprivileged user, with another entrypoint.
    code = "import os, pwd; print(os.getuid(), pwd.getpwuid(os.getuid()).pw_name)"
    done = podman.run(image_on_base, "v1", ["-c", code], options=["--user", "app", "--entrypoint", "python3"])
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.strip() == "10001 app"
