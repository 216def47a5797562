"""Device bundles for the installer tests: real builds of the sample, and hostile ones made from them.

Real bundles come from ``edgepack.build`` (intel-openvino runs natively here, rpi-tflite
under qemu). Hostile bundles are written tar by tar with ``tarfile`` (so every kind of
member an attacker can put in a tar is possible), and re-signed with the test key where
the case needs a valid signature, so that only the hostile part can be what refuses them.
"""

from __future__ import annotations

import gzip
import io
import json
import os
import shutil
import tarfile
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path

import yaml

from edgepack.build import build
from edgepack.runtime.manifest import ATTESTATION_FILE, MANIFEST_FILE

EPOCH = 1_700_000_000
X86_TARGET = "intel-openvino"
ARM_TARGET = "rpi-tflite"
# Left out of "small" trees: the vendored packages (what makes a real bundle large).
_VENDORED = ("numpy", "numpy.libs", "openvino", "openvino.libs", "ai_edge_litert")

# A health check that needs no packages: the small bundles' predict.py (the installer, not the
# model, is what the kill campaign and the hostile corpus exercise).
HEALTHY_PREDICT = 'import json, sys\nprint(json.dumps({"ok": True, "max_abs_error": 0.0, "reason": ""}))\n'


@dataclass(frozen=True)
class Project:
    path: Path
    key: Path  # private key (PEM)
    pub: Path


def make_project(sample_dir: Path, dest: Path, version: str, key_from: Path | None = None) -> Project:
    """A copy of the sample with its version set, signed by a fresh key (or the one in ``key_from``)."""
    from edgepack.signing.keys import generate_keypair

    shutil.copytree(sample_dir, dest, ignore=shutil.ignore_patterns("keys", "__pycache__"))
    if key_from is None:
        generate_keypair(dest / "keys" / "dev")
    else:
        (dest / "keys").mkdir()
        for name in ("dev.key", "dev.pub"):
            shutil.copy2(key_from / name, dest / "keys" / name)
    config = dest / "edgepack.yaml"
    data = yaml.safe_load(config.read_text())
    data["version"] = version
    config.write_text(yaml.safe_dump(data))
    return Project(dest, dest / "keys" / "dev.key", dest / "keys" / "dev.pub")


def build_bundles(project: Project, out: Path, targets: list[str]) -> dict[str, Path]:
    result = build(project.path, out, targets, epoch=EPOCH)
    assert result.ok, [r.error for r in result.results]
    version = yaml.safe_load((project.path / "edgepack.yaml").read_text())["version"]
    return {t: out / f"digits-{version}-{t}.bundle.tar.gz" for t in targets}


def unpack(bundle: Path, dest: Path) -> Path:
    with tarfile.open(bundle) as t:
        t.extractall(dest, filter="data")
    return dest


def small_tree(bundle: Path, dest: Path, *, version: str, name: str = "digits", padding: int = 0) -> Path:
    """A real bundle's tree without its vendored packages, predict.py a package-free health check.

    ``padding`` adds that many 64 KiB files of incompressible bytes (so that unpacking takes
    long enough for a kill to land in any step).
    """
    unpack(bundle, dest)
    for entry in list(dest.iterdir()):
        if entry.name.startswith(_VENDORED) or entry.name.endswith(".dist-info"):
            shutil.rmtree(entry) if entry.is_dir() else entry.unlink()
    (dest / "predict.py").write_text(HEALTHY_PREDICT)
    for i in range(padding):
        pad = dest / "padding" / f"{i:04d}.bin"
        pad.parent.mkdir(exist_ok=True)
        pad.write_bytes(os.urandom(64 << 10))
    set_manifest(dest, version=version, name=name)
    return dest


def set_manifest(tree: Path, **fields: str) -> None:
    manifest = json.loads((tree / MANIFEST_FILE).read_text())
    manifest.update(fields)
    (tree / MANIFEST_FILE).write_text(json.dumps(manifest, indent=2, sort_keys=True) + "\n")


def sign_tree(tree: Path, key: Path, *, raw: bool = False) -> None:
    """(Re-)sign ``tree`` with the private ``key``, as a build would.

    ``raw``: hash and sign every file whatever its name (a build refuses unsafe names; an
    attacker holding a key does not), so that only the reader's name rules can refuse it.
    """
    import hashlib

    from edgepack.config import SigningSpec
    from edgepack.runtime.trust.statement import PAYLOAD_TYPE
    from edgepack.signing.attestation import (
        Provenance,
        attest_tree,
        build_statement,
        canonical_json,
        write_envelope,
    )
    from edgepack.signing.dsse import sign_envelope
    from edgepack.signing.keys import load_signer

    (tree / ATTESTATION_FILE).unlink(missing_ok=True)
    for path in tree.rglob("*"):
        if path.is_file():
            os.chmod(path, 0o755 if os.access(path, os.X_OK) else 0o644)
        elif path.is_dir():
            os.chmod(path, 0o755)
    manifest = json.loads((tree / MANIFEST_FILE).read_text())
    provenance = Provenance(
        project=str(manifest["name"]),
        version=str(manifest["version"]),
        target=str(manifest["target"]["name"]),
        model_name="model",
        model_sha256="0" * 64,
        config_sha256="0" * 64,
        epoch=EPOCH,
    )
    signer = load_signer(SigningSpec(key=str(key)), tree)
    if not raw:
        attest_tree(tree, signer, provenance)
        return
    subjects, modes = {}, {}
    for path in tree.rglob("*"):
        if path.is_file():
            name = path.relative_to(tree).as_posix()
            subjects[name] = hashlib.sha256(path.read_bytes()).hexdigest()
            modes[name] = 0o755 if os.access(path, os.X_OK) else 0o644
    statement = build_statement(subjects, provenance, modes)
    write_envelope(tree, sign_envelope(canonical_json(statement), PAYLOAD_TYPE, signer))


Member = tuple[tarfile.TarInfo, bytes | None]


def tree_members(tree: Path) -> list[Member]:
    """The tree as tar members, attestation first, as ``write_bundle`` orders them."""
    files = sorted(p for p in tree.rglob("*") if p.is_file())
    files.sort(key=lambda p: p.relative_to(tree).as_posix() != ATTESTATION_FILE)
    members: list[Member] = []
    for path in files:
        data = path.read_bytes()
        info = file_info(
            path.relative_to(tree).as_posix(), data, 0o755 if os.access(path, os.X_OK) else 0o644
        )
        members.append((info, data))
    return members


def file_info(name: str, data: bytes, mode: int = 0o644) -> tarfile.TarInfo:
    info = tarfile.TarInfo(name)
    info.size = len(data)
    info.mode = mode
    info.mtime = EPOCH
    return info


def special_info(name: str, kind: bytes, *, linkname: str = "", mode: int = 0o644) -> tarfile.TarInfo:
    info = tarfile.TarInfo(name)
    info.type = kind
    info.linkname = linkname
    info.mode = mode
    info.mtime = EPOCH
    if kind in (tarfile.CHRTYPE, tarfile.BLKTYPE):
        info.devmajor, info.devminor = 1, 3
    return info


def tar_bytes(members: Iterable[Member]) -> bytes:
    raw = io.BytesIO()
    with tarfile.open(fileobj=raw, mode="w", format=tarfile.PAX_FORMAT) as tar:
        for info, data in members:
            tar.addfile(info, io.BytesIO(data) if data is not None else None)
    return raw.getvalue()


def write_tar_gz(dest: Path, members: Iterable[Member]) -> Path:
    dest.write_bytes(gzip.compress(tar_bytes(members), compresslevel=1, mtime=0))
    return dest


def pack_tree(tree: Path, dest: Path, edit: Callable[[list[Member]], list[Member]] | None = None) -> Path:
    members = tree_members(tree)
    return write_tar_gz(dest, edit(members) if edit else members)
