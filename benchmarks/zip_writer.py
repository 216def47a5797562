"""Lambda zip packaging: deflate level and threads vs time and size (issue 14, part 3).

Two trees:

- ``lambda``: the sample's real Lambda tree, unzipped from ``--artifact`` (default
  ``dist/digits-1.0.0-lambda-x86_64.zip``; built with ``edgepack build samples/digits
  --target lambda-x86_64`` into a temporary directory, with a throwaway key, when it is
  missing);
- ``large``: numpy, numpy.libs and onnxruntime (with their dist-info) copied from this
  venv's site-packages, ~130 MB.

On each tree: today's writer (zipfile, deflate level 9, one thread: the baseline), then
edgepack's writer at levels 1, 3, 5, 6, 9 with one worker and with ``default_workers()``.
Every configuration runs ``--repeat`` times, interleaved, and the fastest run counts.
Ratios are against the baseline measured in the same run (speed-up = baseline time /
time; size = bytes / baseline bytes - 1). Issue 14's target: >= 2.5x faster, <= +1.0 %.

    .venv/bin/python benchmarks/zip_writer.py [--repeat 2] [--artifact ZIP] [--large-only]
"""

from __future__ import annotations

import argparse
import os
import platform
import shutil
import stat
import sys
import tempfile
import time
import zipfile
from collections.abc import Callable
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from sample_artifact import build_sample  # noqa: E402

from edgepack.packaging import archive  # noqa: E402
from edgepack.packaging.archive import default_workers, file_mode, iter_tree, write_zip  # noqa: E402

LEVELS = (1, 3, 5, 6, 9)
TARGET_SPEEDUP = 2.5
TARGET_SIZE = 0.01
EPOCH = 1700000000


def legacy_write_zip(src_dir: Path, dest: Path, epoch: int) -> None:
    """edgepack's writer before issue 14: zipfile, deflate level 9, one entry after another."""
    date_time = archive._zip_date_time(epoch)
    with open(dest, "wb") as raw, zipfile.ZipFile(raw, "w", zipfile.ZIP_DEFLATED) as zf:
        for name, path in iter_tree(src_dir):
            st = path.stat()
            info = zipfile.ZipInfo(name, date_time)
            info.create_system = 3
            info.external_attr = (stat.S_IFREG | file_mode(path, st.st_mode)) << 16
            info.compress_type = zipfile.ZIP_DEFLATED
            # ``compress_level`` from Python 3.13, ``_compresslevel`` before.
            setattr(info, "compress_level" if hasattr(info, "compress_level") else "_compresslevel", 9)
            info.file_size = st.st_size
            with open(path, "rb") as src, zf.open(info, "w") as out:
                shutil.copyfileobj(src, out, 1 << 20)


def _lambda_tree(work: Path, artifact: Path | None) -> Path:
    artifact = artifact or REPO / "dist" / "digits-1.0.0-lambda-x86_64.zip"
    if not artifact.exists():
        artifact, _ = build_sample(work, "lambda-x86_64")
    tree = work / "lambda"
    with zipfile.ZipFile(artifact) as zf:
        zf.extractall(tree)
    return tree


def _large_tree(work: Path) -> Path:
    import numpy
    import onnxruntime

    site = Path(numpy.__file__).parent.parent
    assert Path(onnxruntime.__file__).parent.parent == site
    tree = work / "large"
    tree.mkdir()
    for entry in sorted(site.iterdir()):
        name = entry.name
        if name in ("numpy", "numpy.libs", "onnxruntime") or (
            name.endswith(".dist-info") and name.split("-")[0] in ("numpy", "onnxruntime")
        ):
            shutil.copytree(entry, tree / name, ignore=shutil.ignore_patterns("__pycache__"))
    return tree


def _tree_size(tree: Path) -> tuple[int, int]:
    files = list(iter_tree(tree))
    return len(files), sum(p.stat().st_size for _, p in files)


def _stored(path: Path) -> int:
    with zipfile.ZipFile(path) as zf:
        return sum(1 for i in zf.infolist() if i.compress_type == zipfile.ZIP_STORED)


def _measure(tree: Path, out: Path, repeat: int) -> list[tuple[str, int, int, float, int, int]]:
    workers = default_workers()
    configs: list[tuple[str, int, int, Callable[[Path], None]]] = [
        ("zipfile (today)", 9, 1, lambda dest: legacy_write_zip(tree, dest, EPOCH))
    ]
    for level in LEVELS:
        for n in sorted({1, workers}):
            configs.append(
                (
                    "edgepack",
                    level,
                    n,
                    lambda dest, level=level, n=n: write_zip(tree, dest, EPOCH, level=level, workers=n),
                )
            )
    best = [float("inf")] * len(configs)
    sizes = [0] * len(configs)
    stored = [0] * len(configs)
    for r in range(repeat):
        for i, (writer, level, n, write) in enumerate(configs):
            dest = out / f"{i}.zip"
            start = time.perf_counter()
            write(dest)
            took = time.perf_counter() - start
            best[i] = min(best[i], took)
            sizes[i] = dest.stat().st_size
            stored[i] = _stored(dest)
            print(
                f"  run {r + 1}/{repeat}: {writer} level {level} x{n}: {took:.2f} s",
                file=sys.stderr,
                flush=True,
            )
            dest.unlink()
    return [(c[0], c[1], c[2], best[i], sizes[i], stored[i]) for i, c in enumerate(configs)]


def _table(name: str, files: int, usize: int, rows: list[tuple[str, int, int, float, int, int]]) -> None:
    base_t, base_s = rows[0][3], rows[0][4]
    print(f"\n### {name}: {files} files, {usize / 1e6:.2f} MB\n")
    print("| writer | level | threads | s | speed-up | MB | size vs today | stored entries | target met |")
    print("|---|---|---|---|---|---|---|---|---|")
    for writer, level, n, t, size, stored in rows:
        speedup = base_t / t
        grow = size / base_s - 1
        met = (
            "—"
            if writer != "edgepack"
            else ("yes" if speedup >= TARGET_SPEEDUP and grow <= TARGET_SIZE else "no")
        )
        print(
            f"| {writer} | {level} | {n} | {t:.2f} | {speedup:.2f}x | {size / 1e6:.2f} | {grow * 100:+.2f} % "
            f"| {stored} | {met} |"
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--repeat", type=int, default=2)
    parser.add_argument("--artifact", type=Path, help="a built lambda zip to take the tree from")
    parser.add_argument("--large-only", action="store_true")
    parser.add_argument("--lambda-only", action="store_true")
    args = parser.parse_args()

    print(f"# Lambda zip packaging, {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}")
    print(
        f"\n{platform.processor() or platform.machine()}, {os.cpu_count()} CPUs "
        f"(default_workers() = {default_workers()}), load average {os.getloadavg()[0]:.2f} at start; "
        f"Python {platform.python_version()}, zlib {__import__('zlib').ZLIB_RUNTIME_VERSION}; "
        f"chunk {archive.CHUNK >> 20} MiB, store below 1/{archive.STORE_BELOW} saved; "
        f"fastest of {args.repeat} interleaved runs"
    )
    with tempfile.TemporaryDirectory(prefix="edgepack-bench-packaging-") as tmp:
        work = Path(tmp)
        out = work / "out"
        out.mkdir()
        trees: list[tuple[str, Path]] = []
        if not args.large_only:
            trees.append(("sample lambda-x86_64 tree", _lambda_tree(work, args.artifact)))
        if not args.lambda_only:
            trees.append(("numpy + onnxruntime site-packages", _large_tree(work)))
        for name, tree in trees:
            files, usize = _tree_size(tree)
            print(f"{name}: {files} files, {usize / 1e6:.1f} MB", file=sys.stderr, flush=True)
            _table(name, files, usize, _measure(tree, out, args.repeat))
    print(f"\nload average {os.getloadavg()[0]:.2f} at the end")


if __name__ == "__main__":
    main()
