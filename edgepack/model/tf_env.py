"""Import TensorFlow and Keras quietly, or say which extra to install.

TensorFlow prints its C++ log lines (oneDNN notices, absl's "before InitializeLog"
banner) while its shared libraries load. ``TF_CPP_MIN_LOG_LEVEL=3`` and
``GLOG_minloglevel=2`` silence what TF logs after start-up; the banner printed from a
static initializer ignores both (TF 2.21), so the first import also runs with the
process's stderr pointed at a temporary file. What was written there is replayed
when the import fails, so a broken installation still explains itself. Setting
``TF_CPP_MIN_LOG_LEVEL`` below 1 yourself keeps every line.
"""

from __future__ import annotations

import contextlib
import importlib
import os
import sys
import tempfile
from collections.abc import Iterator
from types import ModuleType

from ..errors import BackendMissingError


def _set_quiet_env() -> None:
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    os.environ.setdefault("GLOG_minloglevel", "2")


def wants_quiet() -> bool:
    """False when the user asked for TF's logs (``TF_CPP_MIN_LOG_LEVEL`` below 1)."""
    try:
        return int(os.environ.get("TF_CPP_MIN_LOG_LEVEL", "3")) >= 1
    except ValueError:
        return True


@contextlib.contextmanager
def quiet_native_stderr() -> Iterator[None]:
    """Point file descriptor 2 at a temporary file for the block; replay it if the block raises.

    For native libraries that print on load (TensorFlow, LiteRT's "Created XNNPACK delegate").
    Not for long blocks: other threads' stderr is held back too.
    """
    try:
        sys.stderr.flush()
        saved = os.dup(2)
    except (OSError, ValueError):  # no usable fd 2 (embedded interpreters): just import
        yield
        return
    with tempfile.TemporaryFile() as sink:
        os.dup2(sink.fileno(), 2)
        try:
            yield
        except BaseException:
            os.dup2(saved, 2)
            sink.seek(0)
            os.write(2, sink.read())
            raise
        finally:
            os.dup2(saved, 2)
            os.close(saved)


def _import_quietly(module: str) -> ModuleType:
    _set_quiet_env()
    if module in sys.modules:
        return sys.modules[module]
    if not wants_quiet():
        return importlib.import_module(module)
    with quiet_native_stderr():
        return importlib.import_module(module)


def import_tensorflow() -> ModuleType:
    """Return the ``tensorflow`` module, imported with its log spam silenced.

    Raises ``BackendMissingError`` naming the ``tensorflow`` extra when it is not installed.
    """
    try:
        return _import_quietly("tensorflow")
    except ImportError as e:
        raise BackendMissingError("tensorflow", "tensorflow") from e


def import_keras() -> ModuleType:
    """Return the ``keras`` module (Keras 3 on TensorFlow), imported like ``import_tensorflow``."""
    import_tensorflow()  # Keras 3 picks its backend at import; make sure TF loads quietly first
    try:
        return _import_quietly("keras")
    except ImportError as e:
        raise BackendMissingError("keras", "tensorflow") from e
