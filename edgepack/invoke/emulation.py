"""An aarch64 CPython on an x86_64 host: Debian's interpreter under qemu user-mode emulation.

Lambda arm64 runs the function on Graviton; this host has no aarch64 CPU. What it can
do faithfully is run the same aarch64 machine code under ``qemu-aarch64`` (user mode:
the host kernel, the guest's binaries). The pieces come from Debian, unpacked with
``mmdebstrap --variant=extract`` (nothing is installed, no maintainer scripts run):

- the interpreter: an arm64 root with ``python3.X-minimal`` and ``libpython3.X-stdlib``
  (plus libstdc++/libgcc for native wheels), from the Debian release that ships that
  version: bookworm for 3.11, trixie for 3.13. No Debian release ships an aarch64
  CPython 3.12, so Lambda ``python3.12`` arm64 cannot be emulated here;
- the emulator: ``qemu-aarch64`` from trixie's ``qemu-user`` (qemu 10, a static
  x86_64 binary). Bookworm's qemu 7.2 segfaults inside ai-edge-litert >= 2.2.

Both are cached in the build cache (namespace ``debian-root``, keyed by architecture,
suite and package list): the Debian mirror is live, so the first use needs the network
and mmdebstrap, later ones neither. The root's standard library is byte-compiled once
with the emulated interpreter itself, as Lambda's images ship it compiled: otherwise
every cold start would compile it again under emulation.

Emulation is about 10-50x slower than native (a pure-Python loop ran 18x slower here,
imports about 7x): right for checking that the artifact loads and answers correctly,
never for latency figures.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import tarfile
import tempfile
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

from ..cache import BuildCache
from ..errors import InvokeError, PlatformError

CACHE_NAMESPACE = "debian-root"
# Bump when what an entry holds (or how it is prepared) changes.
_LAYOUT = "edgepack.debian-root/v1"
INFO_FILE = "edgepack-debian-root.json"

# The Debian release that ships each aarch64 CPython version Lambda also runs.
DEBIAN_SUITES: dict[str, str] = {"3.11": "bookworm", "3.13": "trixie"}
QEMU_SUITE = "trixie"  # qemu 10.0; bookworm's 7.2 segfaults inside ai-edge-litert >= 2.2
QEMU_PACKAGE = "qemu-user"
QEMU_BINARY = "qemu-aarch64"
QEMU_ROOT_PATH = f"usr/bin/{QEMU_BINARY}"

MMDEBSTRAP_TIMEOUT_S = 900
_COMPILE_TIMEOUT_S = 900
_PROBE_TIMEOUT_S = 120
_MAX_COMPILE_WORKERS = 8

_PROBE = (
    "import json, platform, sys; "
    "print(json.dumps({'version': list(sys.version_info[:3]), 'implementation': sys.implementation.name, "
    "'machine': platform.machine()}))"
)


@dataclass(frozen=True)
class Emulated:
    """An aarch64 CPython that runs here: ``qemu -L root python``."""

    qemu: Path  # the static x86_64 qemu-aarch64
    root: Path  # the aarch64 Debian root: its loader, libc and the interpreter's libraries
    python: Path  # root/usr/bin/python3.X
    version: tuple[int, int, int]

    @property
    def minor(self) -> str:
        return f"{self.version[0]}.{self.version[1]}"

    def prefix(self) -> list[str]:
        """What comes before the interpreter's path on a command line."""
        return [str(self.qemu), "-L", str(self.root)]

    def command(self) -> list[str]:
        """The command that starts the interpreter (arguments follow)."""
        return [*self.prefix(), str(self.python)]


def can_emulate(arch: str, host: str) -> bool:
    """Whether an ``arch`` artifact runs on a ``host`` machine under emulation here."""
    return arch == "aarch64" and host == "x86_64"


def check_emulated_runtime(lambda_runtime: str) -> None:
    """Refuse a Lambda runtime with no aarch64 CPython in Debian (before anything starts)."""
    version = lambda_runtime.removeprefix("python")
    if version in DEBIAN_SUITES:
        return
    releases = ", ".join(f"{suite} has {v}" for v, suite in DEBIAN_SUITES.items())
    # Only the newest: python3.11 runs on Amazon Linux 2 (glibc 2.26), under the glibc that
    # ai-edge-litert and onnxruntime wheels need, so suggesting it would trade one failure for another.
    suggestion = f"python{max(DEBIAN_SUITES, key=lambda v: tuple(map(int, v.split('.'))))}"
    if version == "3.12":
        why = "no Debian release ships an aarch64 CPython 3.12"
    else:
        why = f"no Debian release edgepack uses ships an aarch64 CPython {version}"
    raise PlatformError(
        f"Lambda {lambda_runtime} on arm64 (aarch64) cannot be run on this x86_64 host: local invoke "
        f"emulates aarch64 with Debian's CPython under qemu, and {why} ({releases}); set the target's "
        f"lambda_runtime to {suggestion} to invoke it here"
    )


def aarch64_python(version: str, cache: BuildCache | None = None) -> Emulated:
    """An aarch64 CPython ``version`` (``"3.11"`` or ``"3.13"``) and the qemu that runs it.

    Built once with mmdebstrap (a few seconds, plus about 20 s to byte-compile the
    standard library under emulation) and then taken from ``cache``. Raises
    ``PlatformError`` for a version Debian does not ship for aarch64, or when
    mmdebstrap is needed and missing; ``InvokeError`` when it fails.
    """
    check_emulated_runtime(f"python{version}")
    cache = cache or BuildCache.default()
    qemu = qemu_aarch64(cache)
    suite = DEBIAN_SUITES[version]
    packages = [f"python{version}-minimal", f"libpython{version}-stdlib", "libstdc++6", "libgcc-s1"]
    key = cache.key(layout=_LAYOUT, arch="arm64", suite=suite, packages=sorted(packages))
    root = cache.get_dir(CACHE_NAMESPACE, key)
    if root is None or not (root / INFO_FILE).is_file():
        root = _build_python_root(cache, key, qemu, version, suite, packages)
    info = json.loads((root / INFO_FILE).read_text(encoding="utf-8"))
    major, minor, micro = (int(v) for v in info["python"]["version"])
    return Emulated(
        qemu=qemu, root=root, python=root / "usr" / "bin" / f"python{version}", version=(major, minor, micro)
    )


def qemu_aarch64(cache: BuildCache | None = None) -> Path:
    """The static ``qemu-aarch64`` from Debian trixie's ``qemu-user`` (qemu 10), cached.

    Only that one binary is kept (the package unpacks to about 450 MB of emulators).
    """
    cache = cache or BuildCache.default()
    key = cache.key(
        layout=_LAYOUT, arch="amd64", suite=QEMU_SUITE, packages=[QEMU_PACKAGE], keep=QEMU_ROOT_PATH
    )
    cached = cache.get_dir(CACHE_NAMESPACE, key)
    if cached is not None and (cached / QEMU_ROOT_PATH).is_file():
        return cached / QEMU_ROOT_PATH
    with tempfile.TemporaryDirectory(prefix="edgepack-qemu-") as tmp:
        staging = Path(tmp) / "root"
        wanted = f"./{QEMU_ROOT_PATH}"

        def keep(archive: tarfile.TarFile) -> None:
            for member in archive:
                if member.name in (wanted, QEMU_ROOT_PATH) and member.isfile():
                    archive.extract(member, staging, filter="tar")

        _mmdebstrap("amd64", QEMU_SUITE, [QEMU_PACKAGE], keep)
        binary = staging / QEMU_ROOT_PATH
        if not binary.is_file():
            raise InvokeError(f"Debian {QEMU_SUITE}'s {QEMU_PACKAGE} unpacked without {QEMU_ROOT_PATH}")
        version = _run([str(binary), "--version"], what="qemu-aarch64 --version", timeout=60)
        _write_info(
            staging,
            {
                "arch": "amd64",
                "suite": QEMU_SUITE,
                "packages": [QEMU_PACKAGE],
                "qemu": version.strip().splitlines()[0] if version.strip() else "",
            },
        )
        entry = cache.put_dir(CACHE_NAMESPACE, key, staging)
    return entry / QEMU_ROOT_PATH


def _build_python_root(
    cache: BuildCache, key: str, qemu: Path, version: str, suite: str, packages: list[str]
) -> Path:
    with tempfile.TemporaryDirectory(prefix="edgepack-debian-") as tmp:
        root = Path(tmp) / "root"
        root.mkdir()

        def unpack(archive: tarfile.TarFile) -> None:
            archive.extractall(root, filter=_root_member)

        _mmdebstrap("arm64", suite, packages, unpack)
        # The extract variant runs no maintainer scripts: trixie's root then lacks the
        # merged-/usr links that the loader path (/lib/ld-linux-aarch64.so.1) needs.
        for link in ("lib", "bin"):
            if not os.path.lexists(root / link):
                (root / link).symlink_to(f"usr/{link}")
        python = root / "usr" / "bin" / f"python{version}"
        if not python.is_file():
            raise InvokeError(f"Debian {suite} arm64 unpacked without usr/bin/python{version}")
        emulated = Emulated(qemu=qemu, root=root, python=python, version=(0, 0, 0))
        probe = _probe(emulated)
        if probe.get("machine") != "aarch64" or probe.get("implementation") != "cpython":
            raise InvokeError(
                f"python{version} from Debian {suite} arm64 under qemu describes itself as {probe}"
            )
        reported = probe.get("version")
        got = ".".join(str(v) for v in reported[:2]) if isinstance(reported, list) else repr(reported)
        if got != version:
            raise InvokeError(f"python{version} from Debian {suite} arm64 is CPython {got}")
        # Lambda's images ship the standard library compiled; compiling it at every cold start
        # under emulation would add seconds to each Init Duration.
        compile_bytecode(emulated, [root / "usr" / "lib" / f"python{version}"])
        _write_info(
            root,
            {"arch": "arm64", "suite": suite, "packages": sorted(packages), "python": probe},
        )
        return cache.put_dir(CACHE_NAMESPACE, key, root)


def _root_member(member: tarfile.TarInfo, dest: str) -> tarfile.TarInfo | None:
    """Unpack files, directories and links; leave out /dev (device nodes) and /tmp: mounts on
    Lambda, and under ``qemu -L`` the host's own are used when the root has none."""
    name = member.name.removeprefix("./")
    if name.split("/", 1)[0] in ("dev", "tmp"):
        return None
    if not (member.isfile() or member.isdir() or member.issym() or member.islnk()):
        return None
    return tarfile.tar_filter(member, dest)


def compile_bytecode(emulated: Emulated, paths: Sequence[Path]) -> None:
    """Byte-compile every ``.py`` under ``paths`` with the emulated interpreter itself.

    Several emulated compilers run side by side (compileall's own workers need a
    forkserver, which does not work under qemu). Files that do not compile (test data
    written for Python 2) are skipped, as Debian's py3compile skips them.
    """
    files = sorted(str(p) for base in paths for p in base.rglob("*.py") if p.is_file())
    if not files:
        return
    workers = max(1, min(_MAX_COMPILE_WORKERS, os.cpu_count() or 1, len(files) // 50 or 1))
    chunks = [files[i::workers] for i in range(workers)]
    env = _clean_env()
    procs: list[tuple[subprocess.Popen[bytes], bytes]] = []
    try:
        for chunk in chunks:
            proc = subprocess.Popen(
                [*emulated.command(), "-S", "-m", "compileall", "-q", "-i", "-"],
                stdin=subprocess.PIPE,
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
                env=env,
                start_new_session=True,
            )
            procs.append((proc, "\n".join(chunk).encode() + b"\n"))
        for proc, listing in procs:
            try:
                proc.communicate(listing, timeout=_COMPILE_TIMEOUT_S)
            except subprocess.TimeoutExpired as e:
                raise InvokeError(f"byte-compiling under qemu took over {_COMPILE_TIMEOUT_S} s") from e
    finally:
        for proc, _ in procs:
            if proc.poll() is None:
                proc.kill()
                proc.wait()


def _probe(emulated: Emulated) -> dict[str, object]:
    out = _run(
        [*emulated.command(), "-I", "-S", "-c", _PROBE], what="python under qemu", timeout=_PROBE_TIMEOUT_S
    )
    try:
        info = json.loads(out.strip().splitlines()[-1])
    except (ValueError, IndexError) as e:
        raise InvokeError(f"python under qemu printed no description of itself: {out[-300:]!r}") from e
    if not isinstance(info, dict):
        raise InvokeError(f"python under qemu printed {info!r}")
    return info


def _mmdebstrap(
    arch: str, suite: str, packages: list[str], consume: Callable[[tarfile.TarFile], None]
) -> None:
    """Run ``mmdebstrap --variant=extract`` and hand its tar output (streamed) to ``consume``."""
    exe = shutil.which("mmdebstrap")
    if exe is None:
        raise PlatformError(
            f"running aarch64 Lambda artifacts here needs Debian {suite} {arch} packages "
            f"({', '.join(packages)}) unpacked by mmdebstrap, which is not installed: "
            "apt-get install mmdebstrap"
        )
    cmd = [
        exe, "--quiet", f"--arch={arch}", "--variant=extract", f"--include={','.join(packages)}", suite, "-",
    ]  # fmt: skip
    with tempfile.TemporaryFile() as err:
        # Its own session: mmdebstrap signals its whole process group when it cleans up.
        proc = subprocess.Popen(
            cmd, stdout=subprocess.PIPE, stderr=err, stdin=subprocess.DEVNULL, start_new_session=True
        )
        assert proc.stdout is not None
        failure: BaseException | None = None
        try:
            with tarfile.open(fileobj=proc.stdout, mode="r|") as archive:
                consume(archive)
            proc.stdout.read()  # drain what is left, so that mmdebstrap finishes normally
        except (tarfile.TarError, OSError) as e:
            failure = e
        finally:
            proc.stdout.close()
            try:
                proc.wait(timeout=MMDEBSTRAP_TIMEOUT_S)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        err.seek(0)
        tail = " ".join(err.read().decode("utf-8", "replace").strip().splitlines()[-3:])
    if proc.returncode != 0 or failure is not None:
        detail = tail or str(failure) or f"exit status {proc.returncode}"
        raise InvokeError(
            f"mmdebstrap could not unpack Debian {suite} {arch} ({', '.join(packages)}) "
            f"from the Debian mirror: {detail}"
        )


def _run(cmd: list[str], *, what: str, timeout: float) -> str:
    try:
        done = subprocess.run(
            cmd, capture_output=True, text=True, timeout=timeout, env=_clean_env(), start_new_session=True
        )
    except (OSError, subprocess.TimeoutExpired) as e:
        raise InvokeError(f"{what} did not run: {e}") from e
    if done.returncode != 0:
        tail = " ".join((done.stderr or done.stdout).strip().splitlines()[-3:])
        raise InvokeError(f"{what} failed with exit status {done.returncode}: {tail}")
    return done.stdout


def _clean_env() -> dict[str, str]:
    drop = ("VIRTUAL_ENV", "SOURCE_DATE_EPOCH")  # SOURCE_DATE_EPOCH would make hash-checked .pyc files
    return {k: v for k, v in os.environ.items() if not k.startswith(("PYTHON", "QEMU_")) and k not in drop}


def _write_info(root: Path, info: dict[str, object]) -> None:
    (root / INFO_FILE).write_text(json.dumps(info, indent=2, sort_keys=True) + "\n", encoding="utf-8")


def read_info(root: Path) -> dict[str, object]:
    """What a cached root (or the qemu entry) says about itself."""
    data = json.loads((root / INFO_FILE).read_text(encoding="utf-8"))
    return data if isinstance(data, dict) else {}
