"""What Lambda's managed Python runtime provides, rebuilt on this host.

A Lambda ``python3.12`` execution environment has CPython 3.12 (``/var/lang``), the
runtime interface client awslambdaric with its bootstrap (``/var/runtime``), and
boto3/botocore; the function's code is ``/var/task``. Here:

- the interpreter is a real CPython of the artifact's version and architecture found
  on this host (``find_python``): never another version, never the host's venv. For an
  aarch64 artifact on an x86_64 host it is Debian's aarch64 CPython run under qemu
  user-mode emulation (``emulated_python``, see ``emulation``);
- awslambdaric + boto3 are installed for *that* interpreter (cp312 wheels for
  python3.12, the target's manylinux tags and architecture) into a cached "runtime
  base" directory (``ensure_runtime_base``), which plays ``/var/runtime``;
- ``bootstrap.py`` in that directory does what ``/var/runtime/bootstrap.py`` in
  Lambda's images does: task root first on ``sys.path``, its ``.pth`` files honoured,
  ``PYTHONPATH`` defaulted to the runtime dir for child processes, then
  ``awslambdaric`` runs the handler.
"""

from __future__ import annotations

import functools
import hashlib
import json
import os
import platform
import shutil
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path

from ..cache import BuildCache
from ..errors import InvokeError, PlatformError
from ..lambda_runtimes import LAMBDA_RUNTIMES
from .emulation import Emulated, aarch64_python, compile_bytecode

CACHE_NAMESPACE = "lambda-base"

# What the base holds, pinned so that a cached base is reproducible. Lambda updates
# its runtime's copies now and then; a function that needs a given boto3 vendors it
# (the task root comes first on sys.path, as on Lambda).
RUNTIME_BASE_PACKAGES: tuple[str, ...] = ("awslambdaric==4.2.2", "boto3==1.44.5")

BASE_INFO_FILE = "edgepack-lambda-base.json"
BOOTSTRAP_FILE = "bootstrap.py"

# Mirrors /var/runtime/bootstrap.py of Lambda's Python images (it runs as a script, so
# its own directory, the runtime dir, is already sys.path[0]). The interpreter runs
# with -S: its own site-packages stay out, as the runtime dir stands in for Lambda's.
BOOTSTRAP_SOURCE = '''\
"""Lambda Python runtime bootstrap, as in /var/runtime/bootstrap.py (edgepack local invoke)."""
import os
import site
import sys

import awslambdaric.__main__ as awslambdaricmain


def main():
    # Python runs with -S (so that the host interpreter's own site-packages and .pth hooks
    # stay out); give back the builtins the site module would have added.
    for name in ("setquit", "setcopyright", "sethelper"):
        getattr(site, name, lambda: None)()
    task_root = os.environ["LAMBDA_TASK_ROOT"]
    # The function's code comes first, before the runtime and the standard library.
    sys.path.insert(0, task_root)
    # The task root is a site directory on Lambda: its .pth files are honoured.
    site.addsitedir(task_root)
    if "PYTHONPATH" not in os.environ:
        os.environ["PYTHONPATH"] = os.environ["LAMBDA_RUNTIME_DIR"]
    awslambdaricmain.main([task_root, os.environ["_HANDLER"]])


if __name__ == "__main__":
    main()
'''

_PROBE = (
    "import json, platform, sys; "
    "print(json.dumps({'executable': sys.executable, 'version': list(sys.version_info[:3]), "
    "'implementation': sys.implementation.name, 'machine': platform.machine()}))"
)


def normalize_arch(machine: str) -> str:
    """``x86_64`` or ``aarch64`` for the spellings platforms use (amd64, arm64, ...)."""
    m = machine.lower()
    return {"amd64": "x86_64", "x64": "x86_64", "arm64": "aarch64", "armv8": "aarch64"}.get(m, m)


def host_arch() -> str:
    return normalize_arch(platform.machine())


def host_glibc() -> tuple[int, int] | None:
    """The host's glibc version, or None when the C library is not glibc."""
    try:
        text = os.confstr("CS_GNU_LIBC_VERSION") or ""
    except (ValueError, OSError):
        return None
    name, _, version = text.partition(" ")
    if name != "glibc":
        return None
    major, _, minor = version.partition(".")
    try:
        return int(major), int(minor.split(".")[0])
    except ValueError:
        return None


@dataclass(frozen=True)
class Interpreter:
    """A CPython found on this host, as it describes itself."""

    path: Path  # its sys.executable: the real binary, never a pyenv shim
    version: tuple[int, int, int]
    machine: str  # normalized arch
    # Set for an interpreter of another architecture, run under qemu user-mode emulation.
    emulation: Emulated | None = None

    @property
    def minor(self) -> str:
        return f"{self.version[0]}.{self.version[1]}"

    def command(self) -> list[str]:
        """What starts this interpreter (its arguments follow)."""
        if self.emulation is None:
            return [str(self.path)]
        return [*self.emulation.prefix(), str(self.path)]


@functools.lru_cache(maxsize=64)
def _probe(candidate: str) -> Interpreter | None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("PYTHON") and k != "VIRTUAL_ENV"}
    try:
        out = subprocess.run(
            [candidate, "-I", "-S", "-c", _PROBE], capture_output=True, text=True, timeout=30, env=env
        )
    except (OSError, subprocess.TimeoutExpired):
        return None
    if out.returncode != 0:
        return None  # e.g. a pyenv shim for a version that is installed but not selected
    try:
        info = json.loads(out.stdout.strip().splitlines()[-1])
    except (ValueError, IndexError):
        return None
    if info.get("implementation") != "cpython" or not info.get("executable"):
        return None
    major, minor, micro = (int(v) for v in info["version"])
    return Interpreter(Path(info["executable"]), (major, minor, micro), normalize_arch(info["machine"]))


def _candidates(version: str) -> list[str]:
    name = f"python{version}"
    found: list[str] = []
    on_path = shutil.which(name)
    if on_path:
        found.append(on_path)
    # pyenv puts shims on PATH that refuse versions not selected; its installs still count.
    pyenv_root = Path(os.environ.get("PYENV_ROOT") or Path.home() / ".pyenv")
    found += [str(p) for p in sorted((pyenv_root / "versions").glob(f"{version}.*/bin/{name}"), reverse=True)]
    # Interpreters installed by `uv python install`.
    uv_root = os.environ.get("UV_PYTHON_INSTALL_DIR")
    if uv_root is None:
        data_home = os.environ.get("XDG_DATA_HOME") or str(Path.home() / ".local" / "share")
        uv_root = str(Path(data_home) / "uv" / "python")
    found += [
        str(p) for p in sorted(Path(uv_root).glob(f"cpython-{version}.*-linux-*/bin/{name}"), reverse=True)
    ]
    return found


def find_python(lambda_runtime: str, arch: str, explicit: str | None = None) -> Interpreter:
    """The host CPython that runs ``lambda_runtime`` (e.g. ``python3.12``) for ``arch``.

    ``explicit`` (a path or command name) replaces the search but must still be the
    right version and architecture. Raises ``PlatformError`` when none fits: running
    the function with another Python would not be what Lambda runs.
    """
    version = lambda_runtime.removeprefix("python")
    if explicit is not None:
        resolved = shutil.which(explicit) or explicit
        interp = _probe(resolved)
        if interp is None:
            raise PlatformError(f"python={explicit!r} is not a CPython interpreter that runs here")
        if interp.minor != version or interp.machine != arch:
            raise PlatformError(
                f"python={explicit!r} is CPython {interp.minor} for {interp.machine}; "
                f"the artifact needs {lambda_runtime} for {arch}"
            )
        return interp
    seen: set[Path] = set()
    for candidate in _candidates(version):
        interp = _probe(candidate)
        if interp is None or interp.path in seen:
            continue
        seen.add(interp.path)
        if interp.minor == version and interp.machine == arch:
            return interp
    raise PlatformError(
        f"the artifact runs on Lambda {lambda_runtime}, but no python{version} interpreter for {arch} "
        f"was found on this host (looked on PATH, in pyenv and uv installs): install CPython {version} "
        f"or pass python=/path/to/python{version}"
    )


def emulated_python(
    lambda_runtime: str, arch: str, explicit: str | None = None, *, cache: BuildCache | None = None
) -> Interpreter:
    """The aarch64 CPython that runs ``lambda_runtime`` on this x86_64 host under qemu.

    Debian's interpreter (bookworm's 3.11, trixie's 3.13), provisioned and cached by
    ``emulation.aarch64_python``. ``explicit`` cannot name another one: refused.
    """
    if explicit is not None:
        raise PlatformError(
            f"python={explicit!r} cannot run a Lambda {lambda_runtime} {arch} artifact on this "
            f"{host_arch()} host: the {arch} interpreter is Debian's, run under qemu; leave python unset"
        )
    emulated = aarch64_python(lambda_runtime.removeprefix("python"), cache)
    return Interpreter(path=emulated.python, version=emulated.version, machine=arch, emulation=emulated)


def _base_key(interp: Interpreter, arch: str, glibc: str, packages: tuple[str, ...]) -> str:
    parts: dict[str, object] = {}
    if interp.emulation is not None:
        # Installed for the target's tags from this host, compiled under emulation.
        parts["built"] = "cross+qemu"
    return BuildCache.key(
        python=interp.minor,
        arch=arch,
        glibc=glibc,
        packages=list(packages),
        bootstrap=hashlib.sha256(BOOTSTRAP_SOURCE.encode()).hexdigest(),
        **parts,
    )


# The glibc ceilings uv's --python-platform can name (as in vendoring.py).
_UV_GLIBC_MINORS = frozenset({17, 28, *range(31, 41)})


def _cross_installer_command(interp: Interpreter, arch: str, glibc: str, dest: Path) -> list[str]:
    """Install for an interpreter this host cannot run natively: the host's Python only hosts
    the installer; the target's version and platform tags decide the wheels. No bytecode
    here (it would be the host's version): ``ensure_runtime_base`` compiles with the target."""
    minor_max = int(glibc.split(".")[1])
    uv = _find_uv()
    if uv is not None:
        # uv names only some glibc ceilings: the newest it can name at or below the target's
        # (Lambda python3.11 has glibc 2.26: manylinux_2_17, never a wheel too new for it).
        nameable = max(m for m in _UV_GLIBC_MINORS if m <= minor_max)
        return [
            uv, "pip", "install", "--quiet", "--no-config", "--target", str(dest),
            "--python", sys.executable, "--python-version", interp.minor,
            "--python-platform", f"{arch}-manylinux_2_{nameable}", "--only-binary", ":all:",
        ]  # fmt: skip
    tags = [f"manylinux_2_{m}_{arch}" for m in range(minor_max, 16, -1)] + [f"manylinux2014_{arch}"]
    cmd = [
        sys.executable, "-m", "pip", "install", "--quiet", "--no-warn-script-location", "--no-compile",
        "--disable-pip-version-check", "--target", str(dest),
        "--only-binary=:all:", "--implementation", "cp", "--python-version", interp.minor,
    ]  # fmt: skip
    for tag in tags:
        cmd += ["--platform", tag]
    return cmd


def _installer_command(interp: Interpreter, arch: str, glibc: str, dest: Path) -> list[str]:
    if interp.emulation is not None:
        return _cross_installer_command(interp, arch, glibc, dest)
    uv = _find_uv()
    if uv is not None:
        # uv widens manylinux_2_34 to every older tag itself, but names only some ceilings:
        # take the newest it can name at or below the target's (python3.11: 2.26 -> 2_17).
        nameable = max(m for m in _UV_GLIBC_MINORS if m <= int(glibc.split(".")[1]))
        return [
            uv, "pip", "install", "--quiet", "--no-config", "--target", str(dest),
            "--python", str(interp.path), "--python-platform", f"{arch}-manylinux_2_{nameable}",
            "--only-binary", ":all:", "--compile-bytecode",
        ]  # fmt: skip
    # pip does not widen manylinux tags itself: list every one the target accepts.
    minor_max = int(glibc.split(".")[1])
    tags = [f"manylinux_2_{m}_{arch}" for m in range(minor_max, 16, -1)] + [f"manylinux2014_{arch}"]
    cmd = [
        str(interp.path),
        "-m",
        "pip",
        "install",
        "--quiet",
        "--no-warn-script-location",
        "--target",
        str(dest),
    ]
    cmd += ["--only-binary=:all:", "--implementation", "cp", "--python-version", interp.minor]
    for tag in tags:
        cmd += ["--platform", tag]
    return cmd


def _find_uv() -> str | None:
    try:
        from uv import find_uv_bin

        return str(find_uv_bin())
    except (ImportError, FileNotFoundError):
        pass
    beside = Path(sys.executable).parent / "uv"
    if beside.is_file():
        return str(beside)
    return shutil.which("uv")


def _installed_versions(root: Path) -> dict[str, str]:
    versions: dict[str, str] = {}
    for info in sorted(root.glob("*.dist-info")):
        name, _, version = info.name.removesuffix(".dist-info").partition("-")
        versions[name.lower().replace("_", "-")] = version
    return versions


def ensure_runtime_base(
    interp: Interpreter,
    lambda_runtime: str,
    arch: str,
    *,
    cache: BuildCache | None = None,
    packages: tuple[str, ...] = RUNTIME_BASE_PACKAGES,
) -> Path:
    """The cached directory holding awslambdaric + boto3 for ``interp`` and the bootstrap.

    Built once per (Python version, arch, glibc, package pins) from the package registry
    with wheels only for the target's platform, then reused from the build cache. For
    an emulated interpreter (aarch64 on x86_64) the wheels are the aarch64 manylinux
    ones, installed from this host, and byte-compiled by the emulated interpreter.
    """
    glibc = LAMBDA_RUNTIMES[lambda_runtime]
    cache = cache or BuildCache.default()
    key = _base_key(interp, arch, glibc, packages)
    cached = cache.get_dir(CACHE_NAMESPACE, key)
    if cached is not None and (cached / BOOTSTRAP_FILE).is_file():
        return cached
    with tempfile.TemporaryDirectory(prefix="edgepack-lambda-base-") as tmp:
        dest = Path(tmp) / "base"
        cmd = [*_installer_command(interp, arch, glibc, dest), *packages]
        env = {k: v for k, v in os.environ.items() if not k.startswith("PYTHON") and k != "VIRTUAL_ENV"}
        try:
            done = subprocess.run(cmd, capture_output=True, text=True, timeout=600, env=env)
        except (OSError, subprocess.TimeoutExpired) as e:
            raise InvokeError(f"cannot install the Lambda runtime base for {lambda_runtime}: {e}") from e
        if done.returncode != 0:
            tail = " ".join((done.stderr or done.stdout).strip().splitlines()[-3:])
            raise InvokeError(
                f"cannot install the Lambda runtime base ({', '.join(packages)}) for {lambda_runtime} "
                f"{arch}: {tail}"
            )
        # Console scripts point at this host's interpreter path; Lambda's runtime dir has none.
        shutil.rmtree(dest / "bin", ignore_errors=True)
        if interp.emulation is not None:
            # As uv's --compile-bytecode does natively (Lambda's runtime dir is compiled too).
            compile_bytecode(interp.emulation, [dest])
        (dest / BOOTSTRAP_FILE).write_text(BOOTSTRAP_SOURCE, encoding="utf-8")
        info = {
            "lambda_runtime": lambda_runtime,
            "python": interp.minor,
            "arch": arch,
            "glibc": glibc,
            "requested": list(packages),
            "installed": _installed_versions(dest),
        }
        (dest / BASE_INFO_FILE).write_text(
            json.dumps(info, indent=2, sort_keys=True) + "\n", encoding="utf-8"
        )
        return cache.put_dir(CACHE_NAMESPACE, key, dest)
