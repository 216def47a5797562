"""Precompiled bytecode for what a Lambda function imports during init.

Lambda's task root is read-only, so Python cannot cache bytecode there: every cold
start compiles each module it imports from source (on the sample, 0.32 s of init
instead of 0.14 s). Compiling every module would add about 11 MB to the sample's
81 MB of runtime packages, so the build runs the function's init once, under the
target's own Python version (natively, or under qemu for arm64), and compiles exactly
the modules that init imported from the artifact (under qemu, init only lists them and a
native interpreter of the same version compiles them, when the host has one: bytecode does
not depend on the architecture). The ``.pyc`` files use unchecked
hashes: no timestamps, so builds stay reproducible, and Python does not re-validate
them against the sources at import.

Running init at build time is also a check: a function that cannot start under its
own runtime's Python fails the build here, not on its first invocation.
"""

from __future__ import annotations

import json
import os
import subprocess
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .cache import BuildCache
from .errors import PackagingError, PlatformError
from .targets import TargetProfile

_MARK = "EDGEPACK-BYTECODE "
_NATIVE_TIMEOUT_S = 120
_EMULATED_TIMEOUT_S = 900  # qemu user-mode runs Python 10-50x slower

# The scripts below run with the artifact root as argv[1], the handler module as argv[2],
# the result marker as argv[3] and a JSON list of layer directories (Lambda's /opt/python,
# after the task root on sys.path) as argv[4].
_ROOTS = """
import importlib, importlib.util, json, os, py_compile, sys
root = os.path.realpath(sys.argv[1])
roots = [root] + [os.path.realpath(p) for p in json.loads(sys.argv[4])]
"""
# In the target's interpreter: import the handler (Lambda's init), list what it imported
# from the artifact and its layers.
_IMPORT = """
sys.path[0:0] = roots
importlib.import_module(sys.argv[2])
imported = []
for name, module in sorted(sys.modules.items()):
    path = getattr(module, "__file__", None)
    if path and path.endswith(".py"):
        path = os.path.realpath(path)
        if any(path.startswith(r + os.sep) for r in roots):
            imported.append(path)
"""
_LIST = _ROOTS + _IMPORT + """
print(sys.argv[3] + json.dumps(imported), flush=True)
"""
# Compile the imported modules: in the same interpreter, or in a native one of the same
# version that reads the list on stdin (bytecode is the same on every architecture, and
# compiling under qemu took most of an emulated init check).
_COMPILE = """
compiled = []
for path in imported:
    home = next(r for r in roots if path.startswith(r + os.sep))
    cfile = importlib.util.cache_from_source(path)
    py_compile.compile(
        path, cfile=cfile, dfile=os.path.relpath(path, home), doraise=True,
        invalidation_mode=py_compile.PycInvalidationMode.UNCHECKED_HASH,
    )
    compiled.append(os.path.relpath(cfile, root))  # a layer's as ../<layer dir>/...
print(sys.argv[3] + json.dumps(sorted(compiled)), flush=True)
"""
_TRACE = _ROOTS + _IMPORT + _COMPILE
_COMPILE_LISTED = _ROOTS + "imported = json.load(sys.stdin)\n" + _COMPILE


@dataclass(frozen=True)
class BytecodeReport:
    compiled: list[str] = field(default_factory=list)  # .pyc paths relative to the artifact root
    interpreter: str = ""  # e.g. "CPython 3.12.1 (x86_64)" or "... under qemu"
    skipped: str = ""  # why nothing was compiled, when nothing was

    def to_dict(self) -> dict[str, Any]:
        if self.skipped:
            return {"precompiled": False, "reason": self.skipped}
        return {"precompiled": True, "interpreter": self.interpreter, "files": len(self.compiled)}


def _interpreter(profile: TargetProfile, cache: BuildCache) -> Any:
    from .invoke.emulation import can_emulate
    from .invoke.lambda_base import emulated_python, find_python, host_arch

    runtime = profile.lambda_runtime or f"python{profile.python}"
    if profile.arch == host_arch():
        return find_python(runtime, profile.arch)
    if can_emulate(profile.arch, host_arch()):
        return emulated_python(runtime, profile.arch, cache=cache)
    raise PlatformError(f"no way to run {profile.arch} code on this {host_arch()} host")


def precompile_init_modules(
    root: Path,
    profile: TargetProfile,
    entrypoint: str,
    cache: BuildCache,
    progress: Callable[[str], None] = lambda _m: None,
    layers: Sequence[Path] = (),
) -> BytecodeReport:
    """Run the function's init under the target's Python and compile the modules it imported.

    ``layers`` are directories Lambda puts on ``sys.path`` after the task root (a layer's
    ``/opt/python``): init imports from them too, and their modules are compiled in place.

    When no interpreter of the target's version (and architecture) can run here, nothing
    is compiled and the report says why. When init itself fails, the build fails.
    """
    try:
        interp = _interpreter(profile, cache)
    except PlatformError as e:
        progress(f"[{profile.name}] no bytecode precompiled: {e.hint()}")
        return BytecodeReport(skipped=e.hint())
    emulated = interp.emulation is not None
    where = f"{'qemu ' if emulated else ''}python{interp.minor} ({interp.machine})"
    progress(f"[{profile.name}] running the function's init under {where} to precompile its imports")
    module = entrypoint.rpartition(".")[0]
    args = [str(root.resolve()), module, _MARK, json.dumps([str(Path(p).resolve()) for p in layers])]
    compiler = _native_compiler(profile) if emulated else None
    timeout = _EMULATED_TIMEOUT_S if emulated else _NATIVE_TIMEOUT_S
    result = _run(interp, _LIST if compiler else _TRACE, args, root, timeout, where, profile)
    version = ".".join(map(str, interp.version))
    described = f"CPython {version} ({interp.machine}{', under qemu' if emulated else ''})"
    if compiler is None:
        return BytecodeReport(compiled=result, interpreter=described)
    native = f"python{compiler.minor} ({compiler.machine})"
    compiled = _run(compiler, _COMPILE_LISTED, args, root, _NATIVE_TIMEOUT_S, native, profile, stdin=result)
    native_version = ".".join(map(str, compiler.version))
    return BytecodeReport(
        compiled=compiled,
        interpreter=f"{described}; compiled by CPython {native_version} ({compiler.machine})",
    )


def _native_compiler(profile: TargetProfile) -> Any:
    """A native interpreter of the target's Python version, when this host has one."""
    from .invoke.lambda_base import find_python, host_arch

    try:
        return find_python(profile.lambda_runtime or f"python{profile.python}", host_arch())
    except PlatformError:  # none installed: the emulated interpreter compiles, only slower
        return None


def _run(
    interp: Any,
    script: str,
    args: list[str],
    root: Path,
    timeout: float,
    where: str,
    profile: TargetProfile,
    stdin: list[str] | None = None,
) -> list[str]:
    """Run one of the scripts above; its marked last line, as JSON."""
    env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "LANG": "C.UTF-8", "TZ": "UTC"}
    try:
        proc = subprocess.run(
            [*interp.command(), "-I", "-S", "-B", "-c", script, *args],
            input=json.dumps(stdin) if stdin is not None else None,
            capture_output=True,
            text=True,
            env=env,
            cwd=root.resolve(),
            timeout=timeout,
        )
    except subprocess.TimeoutExpired as e:
        raise PackagingError(
            f"the function's init did not finish under {where}", where=f"target {profile.name}"
        ) from e
    lines = [line for line in proc.stdout.splitlines() if line.startswith(_MARK)]
    if proc.returncode != 0 or not lines:
        detail = (proc.stderr.strip().splitlines() or ["no output"])[-1]
        raise PackagingError(
            f"the function fails to initialise under its own runtime ({where}): {detail}",
            where=f"target {profile.name}",
        )
    return list(json.loads(lines[-1][len(_MARK) :]))
