"""The project's hooks file, checked when the config loads.

A hooks file is imported only inside the artifact, on Lambda or on a device; a syntax
error there would surface after a full build, as a failed init check or a device that
rolls back. Compiling it here (without running it: the build must not execute user code
to validate a config) refuses it before any conversion, naming the file and line.
"""

from __future__ import annotations

import warnings
from pathlib import Path

from .errors import ConfigError


def check_hooks(path: Path, where: str) -> None:
    """Refuse a hooks file that is missing, not ``.py`` or does not compile.

    ``path`` is the file as resolved from the project; ``where`` names the config field
    (``"edgepack.yaml: hooks"``). A syntax error reads ``<path>:<line>: SyntaxError: <msg>``
    with the project's real path, as Python itself would print it.
    """
    path = Path(path)
    if not path.exists():
        raise ConfigError(f"hooks file not found: {path}", where=where)
    if not path.is_file():
        raise ConfigError(f"{path}: hooks must be a .py file, not a directory", where=where)
    if path.suffix != ".py":
        raise ConfigError(f"{path}: hooks must be a .py file", where=where)
    try:
        source = path.read_bytes()
    except OSError as e:
        raise ConfigError(f"{path}: cannot read the hooks file ({e.strerror or e})", where=where) from e
    try:
        with warnings.catch_warnings():
            # SyntaxWarnings (an invalid escape sequence) are the user's business, not a refusal.
            warnings.simplefilter("ignore")
            compile(source, str(path), "exec", dont_inherit=True)
    except SyntaxError as e:  # IndentationError and TabError too
        line = f":{e.lineno}" if e.lineno else ""
        raise ConfigError(f"{e.filename or path}{line}: {type(e).__name__}: {e.msg}", where=where) from e
    except ValueError as e:  # e.g. "source code string cannot contain null bytes"
        raise ConfigError(f"{path}: not Python source ({e})", where=where) from e
