"""Base images: reading layouts and archives, finding their Python and glibc, and the Debian base."""

from __future__ import annotations

import gzip
import hashlib
import json
import shutil
import subprocess
import tarfile
from pathlib import Path

import pytest
from click.testing import CliRunner

from edgepack.cli.main import cli
from edgepack.container_base import (
    BaseImage,
    BaseImageError,
    build_base_image,
    load_base_image,
    resolve_suite,
)
from edgepack.errors import EXIT_BAD_INPUT
from edgepack.packaging.oci import (
    MEDIA_LAYER_ZSTD,
    REF_NAME,
    ImageConfig,
    LayerFile,
    LayerSpec,
    blob_path,
    canonical_json,
    manifest_digest,
    read_layout,
    write_image_layout,
)

EPOCH = 1_700_000_000
LIBC = b"\x7fELF...GNU C Library (Debian GLIBC 2.36-9+deb12u4) stable release version 2.36.\n..."
DPKG_STATUS = (
    b"Package: zlib1g\nVersion: 1:1.2.13\n\n"
    b"Package: libc6\nStatus: install ok installed\nVersion: 2.31-13+deb11u5\nArchitecture: arm64\n"
)


def _fake_root(*extra: LayerFile, python: str = "3.12", prefix: str = "usr/local") -> LayerSpec:
    files = [
        LayerFile(f"{prefix}/bin/python{python}", data=b"\x7fELF", mode=0o755),
        LayerFile(f"{prefix}/lib/python{python}/os.py", data=b""),
        LayerFile("lib/x86_64-linux-gnu/libc.so.6", data=LIBC, mode=0o755),
        *extra,
    ]
    return LayerSpec("root", tuple(files))


def _image(dest: Path, *layers: LayerSpec, tag: str = "base", arch: str = "x86_64") -> Path:
    write_image_layout(
        dest, base=None, layers=list(layers), config=ImageConfig(architecture=arch), tag=tag, epoch=EPOCH
    )
    return dest


def test_finds_python_glibc_and_arch(tmp_path: Path) -> None:
    base = load_base_image(_image(tmp_path / "img", _fake_root(), arch="aarch64"))
    assert (base.python, base.abi_tag, base.python_executable) == (
        "3.12",
        "cp312",
        "/usr/local/bin/python3.12",
    )
    assert base.glibc == "2.36"  # from the version string inside libc.so.6
    assert base.arch == "aarch64" and base.os == "linux"
    assert base.tag == "base"
    assert base.manifest_digest == manifest_digest(tmp_path / "img", "base")
    assert len(base.layers) == len(base.diff_ids) == 1


def test_dpkg_status_and_libc_file_names_give_glibc(tmp_path: Path) -> None:
    dpkg = _fake_root(LayerFile("var/lib/dpkg/status", data=DPKG_STATUS))
    assert load_base_image(_image(tmp_path / "a", dpkg)).glibc == "2.31"
    old = LayerSpec(
        "old",
        (
            LayerFile("usr/bin/python3.9", data=b""),
            LayerFile("usr/lib/python3.9/os.py", data=b""),
            LayerFile("lib/x86_64-linux-gnu/libc-2.28.so", data=b""),
        ),
    )
    base = load_base_image(_image(tmp_path / "b", old))
    assert (base.python, base.glibc, base.python_executable) == ("3.9", "2.28", "/usr/bin/python3.9")


def test_python_needs_its_standard_library_and_prefers_usr_local(tmp_path: Path) -> None:
    debian_too = _fake_root(
        LayerFile("usr/bin/python3.11", data=b""),
        LayerFile("usr/lib/python3.11/os.py", data=b""),
        LayerFile("usr/bin/python3.13", data=b""),  # no standard library: not a usable Python
    )
    base = load_base_image(_image(tmp_path / "img", debian_too))
    assert (base.python, base.python_executable) == ("3.12", "/usr/local/bin/python3.12")


def test_an_upper_layer_whiteout_removes_the_python(tmp_path: Path) -> None:
    gone = LayerSpec("rm", (LayerFile("usr/local/bin/.wh.python3.12", data=b""),))
    with pytest.raises(BaseImageError, match="no Python in the image"):
        load_base_image(_image(tmp_path / "img", _fake_root(), gone))
    assert load_base_image(tmp_path / "img", require_python=False).python is None
    opaque = LayerSpec("opq", (LayerFile("usr/local/lib/.wh..wh..opq", data=b""),))
    with pytest.raises(BaseImageError, match="no Python"):
        load_base_image(_image(tmp_path / "img2", _fake_root(), opaque))


def test_reads_an_oci_archive(tmp_path: Path) -> None:
    layout = _image(tmp_path / "img", _fake_root())
    archive = tmp_path / "base.tar"
    with tarfile.open(archive, "w") as tar:
        for path in sorted(layout.rglob("*")):
            tar.add(path, arcname=path.relative_to(layout).as_posix(), recursive=False)
    base = load_base_image(archive)
    assert base.python == "3.12"
    assert base.manifest_digest == manifest_digest(layout, "base")
    assert load_base_image(archive).layout == base.layout  # unpacked once, into the cache


def test_reads_a_docker_archive(tmp_path: Path) -> None:
    layout = _image(tmp_path / "img", _fake_root())
    _, manifest, config = read_layout(layout)
    src = tmp_path / "docker"
    src.mkdir()
    config_bytes = canonical_json(config)
    (src / "config.json").write_bytes(config_bytes)
    names = []
    for i, desc in enumerate(manifest["layers"]):
        (src / f"layer{i}.tar").write_bytes(gzip.decompress(blob_path(layout, desc["digest"]).read_bytes()))
        names.append(f"layer{i}.tar")
    entry = [{"Config": "config.json", "RepoTags": ["example/base:1"], "Layers": names}]
    (src / "manifest.json").write_text(json.dumps(entry))
    archive = tmp_path / "docker.tar"
    with tarfile.open(archive, "w") as tar:
        for path in sorted(src.iterdir()):
            tar.add(path, arcname=path.name)
    base = load_base_image(archive, "example/base:1")
    assert (base.python, base.glibc, base.arch) == ("3.12", "2.36", "x86_64")
    assert base.diff_ids == tuple(config["rootfs"]["diff_ids"])
    # Its uncompressed layers are copied as they are into an image built on it.
    result = write_image_layout(
        tmp_path / "out",
        base=base,
        layers=[LayerSpec("app", (LayerFile("app/x", data=b"x"),))],
        config=ImageConfig(),
        tag="v1",
        epoch=EPOCH,
    )
    assert result.layers[0].from_base and result.layers[0].digest == result.layers[0].diff_id


# -- bad input: one clear error each ----------------------------------------------------


def _retag(layout: Path, manifests: list[dict[str, object]]) -> None:
    index = json.loads((layout / "index.json").read_text())
    index["manifests"] = manifests
    (layout / "index.json").write_bytes(canonical_json(index))


def _with_layer_media_type(layout: Path, media_type: str) -> None:
    index, manifest, _ = read_layout(layout)
    manifest["layers"][0]["mediaType"] = media_type
    data = canonical_json(manifest)
    digest = hashlib.sha256(data).hexdigest()
    (layout / "blobs" / "sha256" / digest).write_bytes(data)
    desc = {**index["manifests"][0], "digest": f"sha256:{digest}", "size": len(data)}
    _retag(layout, [desc])


def test_bad_inputs_give_one_clear_error(tmp_path: Path) -> None:
    def refused(path: Path, tag: str | None = None) -> str:
        with pytest.raises(BaseImageError) as info:
            load_base_image(path, tag)
        assert info.value.exit_code == EXIT_BAD_INPUT
        return info.value.hint()

    assert "no such file" in refused(tmp_path / "missing")
    (tmp_path / "empty").mkdir()
    assert (
        refused(tmp_path / "empty")
        == f"{tmp_path / 'empty'}: not an OCI image layout (no readable oci-layout file)"
    )
    (tmp_path / "notes.txt").write_text("hello")
    assert "not an OCI image layout directory, OCI archive or Docker archive" in refused(
        tmp_path / "notes.txt"
    )
    with tarfile.open(tmp_path / "other.tar", "w") as tar:
        tar.add(tmp_path / "notes.txt", arcname="notes.txt")
    assert "neither an OCI archive" in refused(tmp_path / "other.tar")

    layout = _image(tmp_path / "img", _fake_root())
    assert "no image tagged 'nope' (tags: base)" in refused(layout, "nope")
    desc = json.loads((layout / "index.json").read_text())["manifests"][0]
    _retag(layout, [desc, {**desc, "annotations": {REF_NAME: "other"}}])
    hint = refused(layout)
    assert "holds 2 images (base, other); name a tag" in hint and str(layout) in hint
    assert load_base_image(layout, "other").python == "3.12"

    bare = _image(tmp_path / "bare", LayerSpec("etc", (LayerFile("etc/hostname", data=b"x"),)))
    assert refused(bare).startswith(f"{bare}: no Python in the image")

    zstd = _image(tmp_path / "zstd", _fake_root())
    _with_layer_media_type(zstd, MEDIA_LAYER_ZSTD)
    assert "unsupported media type 'application/vnd.oci.image.layer.v1.tar+zstd'" in refused(zstd)
    foreign = _image(tmp_path / "foreign", _fake_root())
    _with_layer_media_type(foreign, "application/vnd.docker.image.rootfs.foreign.diff.tar.gzip")
    assert "unsupported media type" in refused(foreign)

    lost = _image(tmp_path / "lost", _fake_root())
    _, manifest, _ = read_layout(lost)
    blob_path(lost, manifest["layers"][0]["digest"]).unlink()
    assert "is missing" in refused(lost)


def test_suite_and_python_fill_each_other() -> None:
    assert resolve_suite(None, None) == ("bookworm", "3.11")
    assert resolve_suite(None, "3.13") == ("trixie", "3.13")
    with pytest.raises(BaseImageError, match="ships Python 3.11, not 3.13"):
        resolve_suite("bookworm", "3.13")
    with pytest.raises(BaseImageError, match="Python 3.12"):
        resolve_suite(None, "3.12")


# -- the Debian base (mmdebstrap, cached per session) -----------------------------------


def test_the_debian_base_image(debian_base_image: BaseImage) -> None:
    base = debian_base_image
    assert (base.python, base.abi_tag, base.python_executable) == ("3.11", "cp311", "/usr/bin/python3.11")
    assert base.glibc == "2.36"
    assert base.arch == "x86_64" and base.tag == "base"
    assert len(base.layers) == 1
    assert 15e6 < base.size < 60e6


def test_build_base_image_reuses_the_cache_and_is_deterministic(
    debian_base_image: BaseImage, tmp_path: Path
) -> None:
    base = build_base_image(tmp_path / "out", suite="bookworm")  # same key as the fixture: a copy
    assert base.manifest_digest == debian_base_image.manifest_digest
    assert base.layout == tmp_path / "out"
    assert (tmp_path / "out" / "index.json").read_bytes() == (
        debian_base_image.layout / "index.json"
    ).read_bytes()


def test_skopeo_copies_the_debian_base_to_an_oci_archive(
    debian_base_image: BaseImage, tmp_path: Path
) -> None:
    if shutil.which("skopeo") is None:
        pytest.skip("skopeo not installed")
    archive = tmp_path / "base.tar"
    done = subprocess.run(
        ["skopeo", "copy", "--quiet", f"oci:{debian_base_image.layout}:base", f"oci-archive:{archive}:base"],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stderr
    base = load_base_image(archive)
    assert (base.python, base.glibc) == ("3.11", "2.36")
    assert base.diff_ids == debian_base_image.diff_ids


def test_cli_base_image(debian_base_image: BaseImage, tmp_path: Path) -> None:
    result = CliRunner().invoke(cli, ["base-image", "--out", str(tmp_path / "base")], catch_exceptions=False)
    assert result.exit_code == 0, result.output
    assert "python   3.11 (cp311, /usr/bin/python3.11)" in result.output
    assert debian_base_image.manifest_digest in result.output
    assert manifest_digest(tmp_path / "base", "base") == debian_base_image.manifest_digest


def test_cli_base_image_refuses_a_python_debian_lacks(tmp_path: Path) -> None:
    result = CliRunner().invoke(cli, ["base-image", "--out", str(tmp_path / "b"), "--python", "3.12"])
    assert result.exit_code == EXIT_BAD_INPUT
    assert "no Debian release edgepack knows ships Python 3.12" in result.output
    assert not (tmp_path / "b").exists()
