"""A corpus of tampered and hostile bundles, each refused by ``edgepack device install`` with exit 4
and a reason, while the active version and every one of its files stay byte-for-byte the same."""

from __future__ import annotations

import gzip
import hashlib
import io
import json
import os
import shutil
import tarfile
import unicodedata
import zipfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pytest
from click.testing import CliRunner

from edgepack.cli.main import cli
from edgepack.runtime.device.installer import install_bundle, status
from edgepack.runtime.trust.public_keys import load_public_keys

from .bundles import (
    Member,
    file_info,
    pack_tree,
    set_manifest,
    sign_tree,
    small_tree,
    special_info,
    tar_bytes,
    tree_members,
    write_tar_gz,
)
from .conftest import DeviceBundles

pytestmark = pytest.mark.slow

GOOD_VERSION = "2.0.0"  # above the active 1.0.0: only the hostile part can refuse these


@dataclass(frozen=True)
class Corpus:
    root: Path  # a device root with the real 1.0.0 bundle active
    pub: Path
    tree: Path  # a signed small tree at GOOD_VERSION
    work: Path
    bundles: DeviceBundles

    def fresh_tree(self, name: str) -> Path:
        dest = self.work / "trees" / name
        shutil.copytree(self.tree, dest)
        return dest


@pytest.fixture(scope="module")
def corpus(device_bundles: DeviceBundles, tmp_path_factory: pytest.TempPathFactory) -> Corpus:
    work = tmp_path_factory.mktemp("hostile")
    root = work / "root"
    install_bundle(root, device_bundles.v1, load_public_keys([device_bundles.pub]), _small_python())
    tree = small_tree(device_bundles.v1, work / "good", version=GOOD_VERSION)
    sign_tree(tree, device_bundles.key)
    return Corpus(root=root, pub=device_bundles.pub, tree=tree, work=work, bundles=device_bundles)


def _small_python() -> object:
    """The real 1.0.0 is installed once here with its own CPython 3.12 health check."""
    from edgepack.invoke.lambda_base import find_python
    from edgepack.runtime.device.installer import InstallOptions

    return InstallOptions(python=(str(find_python("python3.12", "x86_64").path),))


def _snapshot(root: Path) -> dict[str, str]:
    """Every file under the root but the journal (which records the refusals), by content."""
    seen = {"active": os.readlink(root / "active"), "floor": (root / "version-floor.json").read_text()}
    for path in sorted((root / "slots").rglob("*")):
        rel = path.relative_to(root).as_posix()
        st = path.lstat()
        seen[rel] = f"{st.st_mode:o}:" + (
            hashlib.sha256(path.read_bytes()).hexdigest() if path.is_file() else ""
        )
    return seen


# -- the cases: each returns the hostile bundle; the second value is a word the refusal names --

Case = Callable[[Corpus, Path], Path]
CASES: dict[str, tuple[Case, str]] = {}


def case(name: str, reason: str) -> Callable[[Case], Case]:
    def register(fn: Case) -> Case:
        CASES[name] = (fn, reason)
        return fn

    return register


def _edit(c: Corpus, out: Path, edit: Callable[[list[Member]], list[Member]], *, resign: bool = True) -> Path:
    return write_tar_gz(out, edit(tree_members(c.tree)))


def _flip_in(rel: str) -> Case:
    def make(c: Corpus, out: Path) -> Path:
        tree = c.fresh_tree(f"flip-{rel.replace('/', '_')}")
        data = bytearray((tree / rel).read_bytes())
        data[len(data) // 2] ^= 0x01
        (tree / rel).write_bytes(bytes(data))
        return pack_tree(tree, out)

    return make


FLIPPED = [
    "edgepack.json",
    "predict.py",
    "model/model.bin",
    "model/model.xml",
    "sample.npz",
    "edgepack_user_hooks.py",
    "edgepack_runtime/__init__.py",
    "edgepack_runtime/predictor.py",
    "edgepack_runtime/health.py",
    "edgepack_runtime/trust/errors.py",
    "edgepack_runtime/device/installer.py",
]
for _rel in FLIPPED:
    CASES[f"flipped byte in {_rel}"] = (_flip_in(_rel), "does not match the attested")


@case("flipped byte in the attestation's signature", "signature")
def _flip_signature(c: Corpus, out: Path) -> Path:
    tree = c.fresh_tree("flip-sig")
    env = json.loads((tree / "attestation.dsse.json").read_text())
    sig = env["signatures"][0]["sig"]
    env["signatures"][0]["sig"] = ("A" if sig[0] != "A" else "B") + sig[1:]
    (tree / "attestation.dsse.json").write_text(json.dumps(env))
    return pack_tree(tree, out)


@case("flipped byte in the attestation's payload", "signature")
def _flip_payload(c: Corpus, out: Path) -> Path:
    tree = c.fresh_tree("flip-payload")
    env = json.loads((tree / "attestation.dsse.json").read_text())
    p = env["payload"]
    env["payload"] = p[:100] + ("A" if p[100] != "A" else "B") + p[101:]
    (tree / "attestation.dsse.json").write_text(json.dumps(env))
    return pack_tree(tree, out)


@case("added file", "not")
def _added(c: Corpus, out: Path) -> Path:
    return _edit(c, out, lambda m: [*m, (file_info("evil.py", b"import os\n"), b"import os\n")])


@case("removed file", "missing")
def _removed(c: Corpus, out: Path) -> Path:
    return _edit(c, out, lambda m: [x for x in m if x[0].name != "edgepack_runtime/health.py"])


@case("manifest swapped in from another build", "does not match the attested")
def _swapped_manifest(c: Corpus, out: Path) -> Path:
    with tarfile.open(c.bundles.v2) as t:
        member = t.extractfile("edgepack.json")
        assert member is not None
        other = member.read()
    return _edit(
        c,
        out,
        lambda m: [(file_info(i.name, other), other) if i.name == "edgepack.json" else (i, d) for i, d in m],
    )


@case("attestation swapped in from another build", "")
def _swapped_attestation(c: Corpus, out: Path) -> Path:
    with tarfile.open(c.bundles.v2) as t:
        member = t.extractfile("attestation.dsse.json")
        assert member is not None
        other = member.read()
    return _edit(
        c,
        out,
        lambda m: [
            (file_info(i.name, other), other) if i.name == "attestation.dsse.json" else (i, d) for i, d in m
        ],
    )


@case("signed by another key", "signature")
def _other_key(c: Corpus, out: Path) -> Path:
    tree = c.fresh_tree("other-key")
    sign_tree(tree, c.bundles.other_key)
    return pack_tree(tree, out)


@case("downgrade, validly signed", "floor")
def _downgrade(c: Corpus, out: Path) -> Path:
    tree = c.fresh_tree("downgrade")
    set_manifest(tree, version="0.9.0")
    sign_tree(tree, c.bundles.key)
    return pack_tree(tree, out)


@case("same version as the floor, other contents", "floor")
def _same_version(c: Corpus, out: Path) -> Path:
    tree = c.fresh_tree("same-version")
    set_manifest(tree, version="1.0.0")
    sign_tree(tree, c.bundles.key)
    return pack_tree(tree, out)


@case("another project", "")
def _other_project(c: Corpus, out: Path) -> Path:
    tree = c.fresh_tree("other-project")
    set_manifest(tree, name="intruder")
    sign_tree(tree, c.bundles.key)
    return pack_tree(tree, out)


def _with(members: Callable[[], list[Member]]) -> Case:
    return lambda c, out: _edit(c, out, lambda m: [*m, *members()])


_EVIL = b"print('pwned')\n"
CASES["path traversal"] = (_with(lambda: [(file_info("../../evil.py", _EVIL), _EVIL)]), "")
CASES["path traversal inside a directory"] = (
    _with(lambda: [(file_info("model/../../evil.py", _EVIL), _EVIL)]),
    "",
)
CASES["absolute path"] = (_with(lambda: [(file_info("/tmp/edgepack-evil.py", _EVIL), _EVIL)]), "")
CASES["symlink escaping the slot"] = (
    _with(lambda: [(special_info("escape", tarfile.SYMTYPE, linkname="/etc/passwd"), None)]),
    "",
)
CASES["symlink inside the slot"] = (
    _with(lambda: [(special_info("model/alias.bin", tarfile.SYMTYPE, linkname="model.bin"), None)]),
    "",
)
CASES["symlinked directory then a file through it"] = (
    _with(
        lambda: [
            (special_info("up", tarfile.SYMTYPE, linkname=".."), None),
            (file_info("up/evil.py", _EVIL), _EVIL),
        ]
    ),
    "",
)
CASES["hardlink escaping the slot"] = (
    _with(lambda: [(special_info("passwd", tarfile.LNKTYPE, linkname="/etc/passwd"), None)]),
    "",
)
CASES["hardlink to a listed file"] = (
    _with(lambda: [(special_info("copy.py", tarfile.LNKTYPE, linkname="predict.py"), None)]),
    "",
)
CASES["character device node"] = (_with(lambda: [(special_info("null", tarfile.CHRTYPE), None)]), "")
CASES["block device node"] = (_with(lambda: [(special_info("disk", tarfile.BLKTYPE), None)]), "")
CASES["fifo"] = (_with(lambda: [(special_info("pipe", tarfile.FIFOTYPE), None)]), "")


def _mode(name: str, mode: int) -> Case:
    def make(c: Corpus, out: Path) -> Path:
        def edit(members: list[Member]) -> list[Member]:
            for info, _ in members:
                if info.name == name:
                    info.mode = mode
            return members

        return _edit(c, out, edit)

    return make


CASES["setuid predict.py"] = (_mode("predict.py", 0o4755), "")
CASES["setgid runtime module"] = (_mode("edgepack_runtime/predictor.py", 0o2755), "")
CASES["0777 model"] = (_mode("model/model.bin", 0o777), "")
CASES["sticky world-writable directory"] = (
    _with(lambda: [(special_info("spool", tarfile.DIRTYPE, mode=0o2777), None)]),
    "",
)


@case("member listed twice, second copy hostile", "")
def _twice(c: Corpus, out: Path) -> Path:
    return _edit(c, out, lambda m: [*m, (file_info("predict.py", _EVIL, 0o755), _EVIL)])


@case("case twins", "")
def _case_twins(c: Corpus, out: Path) -> Path:
    tree = c.fresh_tree("case-twins")
    (tree / "Predict.py").write_bytes(_EVIL)
    sign_tree(tree, c.bundles.key, raw=True)
    return pack_tree(tree, out)


@case("Unicode normalisation twins", "")
def _nfc_twins(c: Corpus, out: Path) -> Path:
    tree = c.fresh_tree("nfc-twins")
    (tree / unicodedata.normalize("NFC", "café.py")).write_bytes(b"a = 1\n")
    (tree / unicodedata.normalize("NFD", "café.py")).write_bytes(_EVIL)
    sign_tree(tree, c.bundles.key, raw=True)
    return pack_tree(tree, out)


@case("bidi control in a signed name", "")
def _bidi(c: Corpus, out: Path) -> Path:
    tree = c.fresh_tree("bidi")
    (tree / "model" / "model\u202egnp.py").write_bytes(_EVIL)
    sign_tree(tree, c.bundles.key, raw=True)
    return pack_tree(tree, out)


@case("size bomb: 256 MiB of zeros in an unlisted member", "")
def _bomb(c: Corpus, out: Path) -> Path:
    zeros = bytes(256 << 20)
    return _edit(c, out, lambda m: [*m, (file_info("bomb.bin", zeros), zeros)])


@case("member larger than the signed file", "does not match the attested")
def _larger(c: Corpus, out: Path) -> Path:
    def edit(members: list[Member]) -> list[Member]:
        return [
            (file_info(i.name, d + bytes(1 << 20), i.mode), d + bytes(1 << 20))
            if i.name == "model/model.bin" and d is not None
            else (i, d)
            for i, d in members
        ]

    return _edit(c, out, edit)


@case("truncated archive", "")
def _truncated(c: Corpus, out: Path) -> Path:
    good = pack_tree(c.tree, out.with_name("whole.tar.gz"))
    data = good.read_bytes()
    out.write_bytes(data[: len(data) * 2 // 3])
    return out


@case("trailing gzip member", "")
def _trailing(c: Corpus, out: Path) -> Path:
    good = pack_tree(c.tree, out.with_name("good-for-trailing.tar.gz")).read_bytes()
    hostile = gzip.compress(tar_bytes([(file_info("predict.py", _EVIL, 0o755), _EVIL)]), mtime=0)
    out.write_bytes(good + hostile)
    return out


@case("data prepended to the gzip stream", "")
def _prepended(c: Corpus, out: Path) -> Path:
    good = pack_tree(c.tree, out.with_name("good-for-prepend.tar.gz")).read_bytes()
    out.write_bytes(b"#!/bin/sh\necho pwned\n" + good)
    return out


@case("polyglot: hostile tar.gz followed by the signed bundle", "")
def _polyglot(c: Corpus, out: Path) -> Path:
    good = pack_tree(c.tree, out.with_name("good-for-polyglot.tar.gz")).read_bytes()
    hostile = gzip.compress(tar_bytes([(file_info("predict.py", _EVIL, 0o755), _EVIL)]), mtime=0)
    out.write_bytes(hostile + good)
    return out


@case("a zip named .tar.gz", "")
def _zip(c: Corpus, out: Path) -> Path:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as z:
        for info, data in tree_members(c.tree):
            z.writestr(info.name, data or b"")
    out.write_bytes(buffer.getvalue())
    return out


@case("attestation not the first member", "")
def _attestation_last(c: Corpus, out: Path) -> Path:
    return _edit(c, out, lambda m: [*m[1:], m[0]])


@case("empty file", "")
def _empty(c: Corpus, out: Path) -> Path:
    out.write_bytes(b"")
    return out


@case("no attestation at all", "")
def _unsigned(c: Corpus, out: Path) -> Path:
    return _edit(c, out, lambda m: [x for x in m if x[0].name != "attestation.dsse.json"])


def test_the_corpus_is_large_enough() -> None:
    assert len(CASES) >= 30


@pytest.mark.parametrize("name", list(CASES))
def test_hostile_bundle_is_refused_and_nothing_changes(corpus: Corpus, name: str, tmp_path: Path) -> None:
    make, reason = CASES[name]
    bundle = make(corpus, tmp_path / "hostile.bundle.tar.gz")
    before = _snapshot(corpus.root)
    result = CliRunner().invoke(
        cli, ["device", "install", str(bundle), "--root", str(corpus.root), "--trust", str(corpus.pub)]
    )
    assert result.exit_code == 4, (result.output, result.exception)
    line = result.output.strip().splitlines()[-1]
    assert line.startswith("edgepack: error:"), result.output
    assert reason.lower() in line.lower(), line
    assert _snapshot(corpus.root) == before
    assert sorted(os.listdir(corpus.root)) == [
        ".lock",
        "active",
        "journal.jsonl",
        "slots",
        "version-floor.json",
    ]
    assert not os.path.lexists("/tmp/edgepack-evil.py")
    last = status(corpus.root)["journal"][-1]
    # Refused by verification, never by running it (a health check would have run hostile code).
    assert last["outcome"] in ("refused", "refused-downgrade") and last["reason"]
