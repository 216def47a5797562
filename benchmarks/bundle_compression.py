"""Device bundle compression: gzip (today's writer, edgepack's parallel writer) vs zstd (issue 14).

The input is the uncompressed tar of the sample's ``intel-openvino`` bundle (``--bundle``,
default ``dist/digits-1.0.0-intel-openvino.bundle.tar.gz``; built with ``edgepack build
samples/digits --target intel-openvino`` into a temporary directory, with a throwaway key,
when it is missing). On it, in one run:

- today's writer (the baseline): ``gzip.GzipFile``, level 9, one thread;
- edgepack's ``write_gzip`` (one gzip member, 1 MiB chunks deflated in parallel) at levels
  1, 6 and 9, with ``default_workers()`` threads, and level 6 with one;
- zstd (the ``zstandard`` package, libzstd's multi-threaded mode) at ``--zstd-levels``.

For each: size, compression time, and the device side's decompression time three ways: in
Python, streaming, as the device's reader does it (64 KiB reads, at most 1 MiB out per call;
``zlib.decompressobj`` for gzip, ``zstandard``'s decompressobj for zstd), with the command-line
tool (``gzip -dc`` / ``zstd -dc`` to /dev/null) and as a full ``tar -x`` into a temporary
directory (``tar -xzf`` / ``tar --zstd -xf``, so disk writes included). Every measurement runs
``--repeat`` times, interleaved, and the median counts; ratios are against the baseline
measured in the same run. Also checked: each output unpacks to the input tar, and gives the
same bytes with one thread as with ``default_workers()``; ``write_bundle`` on the unpacked
tree rebuilds the input tar exactly.

    .venv/bin/python benchmarks/bundle_compression.py [--repeat 3] [--bundle PATH] [--zstd-levels 3,9]
"""

from __future__ import annotations

import argparse
import functools
import gzip
import io
import os
import platform
import shutil
import statistics
import subprocess
import sys
import tarfile
import tempfile
import time
import zlib
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

import zstandard  # noqa: E402
from sample_artifact import build_sample  # noqa: E402

from edgepack.packaging.archive import default_workers, write_gzip  # noqa: E402
from edgepack.packaging.bundle import write_bundle  # noqa: E402

BUNDLE = "digits-1.0.0-intel-openvino.bundle.tar.gz"
READ = 1 << 16  # what the device's reader reads at a time
OUT = 1 << 20  # and the most it inflates per call


@dataclass
class Config:
    name: str
    level: int
    threads: int
    suffix: str
    compress: Callable[[bytes, int], bytes]
    times: list[float] = field(default_factory=list)
    decompress: dict[str, list[float]] = field(default_factory=dict)
    size: int = 0
    same_any_threads: str = "—"


def legacy_gzip(data: bytes, level: int) -> bytes:
    """``write_bundle``'s compression before issue 14."""
    out = io.BytesIO()
    with gzip.GzipFile(filename="", mode="wb", fileobj=out, mtime=0, compresslevel=level) as gz:
        gz.write(data)
    return out.getvalue()


def parallel_gzip(threads: int) -> Callable[[bytes, int], bytes]:
    def compress(data: bytes, level: int) -> bytes:
        out = io.BytesIO()
        write_gzip(data, out, level=level, workers=threads)
        return out.getvalue()

    return compress


def zstd(threads: int) -> Callable[[bytes, int], bytes]:
    def compress(data: bytes, level: int) -> bytes:
        return zstandard.ZstdCompressor(level=level, threads=threads).compress(data)

    return compress


def py_gunzip(path: Path) -> int:
    inflater = zlib.decompressobj(31)
    total, tail = 0, b""
    with open(path, "rb") as f:
        while not inflater.eof:
            tail = tail or f.read(READ)
            total += len(inflater.decompress(tail, OUT))
            tail = inflater.unconsumed_tail
    return total


def py_unzstd(path: Path) -> int:
    total = 0
    with open(path, "rb") as f, zstandard.ZstdDecompressor().stream_reader(f, read_size=READ) as r:
        while block := r.read(OUT):
            total += len(block)
    return total


def _run(cmd: list[str]) -> None:
    subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL)


def decoders(suffix: str, work: Path) -> dict[str, Callable[[Path], object]]:
    def untar(flag: str) -> Callable[[Path], object]:
        def extract(path: Path) -> None:
            dest = Path(tempfile.mkdtemp(dir=work))
            _run(["tar", flag, "-xf", str(path), "-C", str(dest)])
            shutil.rmtree(dest)

        return extract

    if suffix == "gz":
        return {
            "python": py_gunzip,
            "cli": lambda p: _run(["gzip", "-dc", str(p)]),
            "tar -x": untar("-z"),
        }
    tools: dict[str, Callable[[Path], object]] = {"python": py_unzstd}
    if shutil.which("zstd"):
        tools["cli"] = lambda p: _run(["zstd", "-qdc", str(p)])
        tools["tar -x"] = untar("--zstd")
    return tools


def _timed(fn: Callable[[], object]) -> float:
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def configs(zstd_levels: list[int]) -> list[Config]:
    n = default_workers()
    rows = [Config("gzip (today)", 9, 1, "gz", legacy_gzip)]
    rows += [Config("gzip edgepack", 6, 1, "gz", parallel_gzip(1))]
    rows += [Config("gzip edgepack", level, n, "gz", parallel_gzip(n)) for level in (1, 6, 9)]
    rows += [Config("zstd", level, n, "zst", zstd(n)) for level in zstd_levels]
    return rows


def check_outputs(tar: bytes, rows: list[Config], work: Path) -> None:
    """Each output unpacks to ``tar``; 1 thread and N threads give the same bytes."""
    for c in rows:
        out = (work / f"{c.name}-{c.level}-{c.threads}.{c.suffix}").read_bytes()
        back = gzip.decompress(out) if c.suffix == "gz" else zstandard.ZstdDecompressor().decompress(out)
        assert back == tar, f"{c.name} level {c.level} does not unpack to the input"
        if c.name != "gzip (today)":
            other = parallel_gzip(1) if c.suffix == "gz" else zstd(1)
            c.same_any_threads = "yes" if other(tar, c.level) == out else "no"


def measure(tar: bytes, rows: list[Config], work: Path, repeat: int) -> None:
    for r in range(repeat):
        for c in rows:
            path = work / f"{c.name}-{c.level}-{c.threads}.{c.suffix}"
            start = time.perf_counter()
            data = c.compress(tar, c.level)
            c.times.append(time.perf_counter() - start)
            path.write_bytes(data)
            c.size = len(data)
            for tool, fn in decoders(c.suffix, work).items():
                c.decompress.setdefault(tool, []).append(_timed(functools.partial(fn, path)))
            print(
                f"  run {r + 1}/{repeat}: {c.name} {c.level} x{c.threads}: {c.times[-1]:.2f} s, "
                + ", ".join(f"{t} {v[-1]:.2f} s" for t, v in c.decompress.items()),
                file=sys.stderr,
                flush=True,
            )


def table(rows: list[Config]) -> None:
    base = rows[0]
    base_t = statistics.median(base.times)
    base_d = {t: statistics.median(v) for t, v in base.decompress.items()}
    print(
        "| format | level | threads | MB | size vs today | compress s | speed-up "
        "| python decompress s (x today) | gzip -dc / zstd -dc s (x today) | tar -x s (x today) "
        "| same bytes, 1 and N threads |"
    )
    print("|---|---|---|---|---|---|---|---|---|---|---|")
    for c in rows:
        t = statistics.median(c.times)
        cells = []
        for tool in ("python", "cli", "tar -x"):
            if tool not in c.decompress:
                cells.append("—")
                continue
            d = statistics.median(c.decompress[tool])
            cells.append(f"{d:.2f} ({d / base_d[tool]:.2f})")
        print(
            f"| {c.name} | {c.level} | {c.threads} | {c.size / 1e6:.2f} | {(c.size / base.size - 1) * 100:+.1f} % "
            f"| {t:.2f} | {base_t / t:.2f}x | {' | '.join(cells)} | {c.same_any_threads} |"
        )


def check_write_bundle(tar: bytes, work: Path) -> float:
    """``write_bundle`` on the unpacked tree rebuilds ``tar``; returns its time."""
    tree = work / "tree"
    with tarfile.open(fileobj=io.BytesIO(tar)) as tf:
        epoch = int(tf.getmembers()[0].mtime)
        tf.extractall(tree, filter="tar")
    dest = work / "rebuilt.tar.gz"
    took = _timed(lambda: write_bundle(tree, dest, epoch))
    assert gzip.decompress(dest.read_bytes()) == tar, "write_bundle does not rebuild the bundle's tar"
    shutil.rmtree(tree)
    return took


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--bundle", type=Path, help="a built .bundle.tar.gz to take the tar from")
    parser.add_argument("--zstd-levels", default="3,9", help="comma-separated (19 takes minutes)")
    args = parser.parse_args()
    zstd_levels = [int(x) for x in args.zstd_levels.split(",")]

    print(f"# Device bundle compression, {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}")
    zstd_cli = subprocess.run(["zstd", "--version"], capture_output=True, text=True).stdout.strip()
    print(
        f"\n{platform.processor() or platform.machine()}, {os.cpu_count()} CPUs "
        f"(default_workers() = {default_workers()}), load average {os.getloadavg()[0]:.2f} at start; "
        f"Python {platform.python_version()}, zlib {zlib.ZLIB_RUNTIME_VERSION}, "
        f"zstandard {zstandard.__version__} (libzstd {zstandard.ZSTD_VERSION}), {zstd_cli or 'no zstd CLI'}; "
        f"median of {args.repeat} interleaved runs"
    )
    with tempfile.TemporaryDirectory(prefix="edgepack-bench-bundle-") as tmp:
        work = Path(tmp)
        bundle = args.bundle or REPO / "dist" / BUNDLE
        if not bundle.exists():
            bundle, _ = build_sample(work, "intel-openvino")
        tar = gzip.decompress(bundle.read_bytes())
        print(f"\ninput: the tar of {bundle.name}, {len(tar) / 1e6:.2f} MB\n")
        rows = configs(zstd_levels)
        measure(tar, rows, work, args.repeat)
        check_outputs(tar, rows, work)
        rebuilt = check_write_bundle(tar, work)
        table(rows)
        print(
            f"\nwrite_bundle (tar + gzip level 6, {default_workers()} threads) on the unpacked tree: "
            f"{rebuilt:.2f} s, the input tar byte for byte"
        )
    print(f"\nload average {os.getloadavg()[0]:.2f} at the end")


if __name__ == "__main__":
    main()
