"""LiteRT (TFLite) backend: ``ai_edge_litert``, else ``tflite_runtime`` on devices that have it.

Names come from the ``serving_default`` signature when the model has one (the keys the
converter wrote, e.g. ``image`` / ``output_0``), else from the tensor names. Batches of any
size run when the batch axis is dynamic or fixed at 1: the input is resized, and tensors
reallocated, only when the shape changes from the previous call. A model fixed at batch 1
whose graph cannot be resized (a Reshape with the batch baked in) is run one row at a
time instead; the switch is made once and reported by ``describe()``.
"""

from __future__ import annotations

import sys
import threading
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import BackendUnavailableError, BadRequestError, InferenceError, ModelLoadError
from ..signature import IOSignature, Quantization, TensorSpec

SIGNATURE_KEY = "serving_default"
SETTINGS = ("threads",)


def _import_interpreter() -> tuple[Any, str]:
    """The ``Interpreter`` class and the distribution that provides it."""
    try:
        from ai_edge_litert.interpreter import Interpreter as LiteRTInterpreter

        return LiteRTInterpreter, "ai-edge-litert"
    except ImportError as e:
        litert_error = e
    try:
        from tflite_runtime.interpreter import Interpreter as TFLiteRuntimeInterpreter

        return TFLiteRuntimeInterpreter, "tflite-runtime"
    except ImportError as e:
        tflite_runtime_error = e
    raise BackendUnavailableError(
        "the litert backend needs ai-edge-litert (import ai_edge_litert) or tflite-runtime "
        f"(import tflite_runtime), and neither imports: {litert_error}; {tflite_runtime_error}"
    )


def _library_version(dist: str) -> str:
    # The package's own __version__ first: importing importlib.metadata costs ~20 ms of
    # every cold start.
    module = sys.modules.get(dist.replace("-", "_"))
    found = getattr(module, "__version__", None)
    if isinstance(found, str):
        return found
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version(dist)
    except PackageNotFoundError:  # vendored without its .dist-info
        return "unknown"


def _threads(settings: Mapping[str, Any]) -> int | None:
    unknown = sorted(set(settings) - set(SETTINGS))
    if unknown:
        raise ModelLoadError(f"unknown litert setting {unknown[0]!r}; known: {', '.join(SETTINGS)}")
    threads = settings.get("threads")
    if threads is None:
        return None
    if isinstance(threads, bool) or not isinstance(threads, int) or threads < 1:
        raise ModelLoadError(f"litert setting 'threads' must be a positive integer, got {threads!r}")
    return threads


@dataclass(frozen=True)
class _Tensor:
    spec: TensorSpec
    index: int  # tensor index in the interpreter
    declared: tuple[int, ...]  # shape_signature: -1 for a dynamic axis
    initial: tuple[int, ...]  # the shape the interpreter allocates at load


def _tensor(name: str, details: Mapping[str, Any]) -> _Tensor:
    initial = tuple(int(d) for d in details["shape"])
    declared = tuple(int(d) for d in details.get("shape_signature", ())) or initial
    dtype = np.dtype(details["dtype"])
    scale, zero_point = details.get("quantization", (0.0, 0))
    quantization = None
    if dtype.kind in "iu" and scale:
        quantization = Quantization(scale=float(scale), zero_point=int(zero_point))
    spec = TensorSpec(
        name=name,
        dtype=dtype.name,
        shape=tuple(None if d < 0 else d for d in declared),
        quantization=quantization,
    )
    return _Tensor(spec=spec, index=int(details["index"]), declared=declared, initial=initial)


class LiteRTBackend:
    """A loaded ``.tflite`` model. Calls are serialised: an interpreter is not thread-safe."""

    name = "litert"

    def __init__(self, interpreter: Any, *, library: str, threads: int | None, path: Path) -> None:
        self._interpreter = interpreter
        self._library = library
        self._threads = threads
        self._path = path
        self._lock = threading.Lock()
        self._runner: Any = None  # a SignatureRunner, only for signatures outside subgraph 0
        self._signature_key: str | None = None

        if SIGNATURE_KEY in interpreter.get_signature_list():
            runner = interpreter.get_signature_runner(SIGNATURE_KEY)
            ins = [_tensor(n, d) for n, d in runner.get_input_details().items()]
            outs = [_tensor(n, d) for n, d in runner.get_output_details().items()]
            self._signature_key = SIGNATURE_KEY
            # The interpreter's own calls act on subgraph 0; drive it directly (to resize and
            # reallocate only on a shape change) when the signature is that subgraph.
            main_ins = {int(d["index"]) for d in interpreter.get_input_details()}
            main_outs = {int(d["index"]) for d in interpreter.get_output_details()}
            if {t.index for t in ins} != main_ins or {t.index for t in outs} != main_outs:
                self._runner = runner
        else:
            ins = [_tensor(d["name"], d) for d in interpreter.get_input_details()]
            outs = [_tensor(d["name"], d) for d in interpreter.get_output_details()]
        self._inputs = {t.spec.name: t for t in ins}
        self._outputs = {t.spec.name: t for t in outs}
        self.signature = IOSignature(inputs=tuple(t.spec for t in ins), outputs=tuple(t.spec for t in outs))
        # Shapes the interpreter is allocated for now; resize only when a request differs.
        self._allocated = {t.spec.name: t.initial for t in ins}
        self._split_batch = False

    # -- Backend protocol -------------------------------------------------------------

    def run(self, feeds: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        """Run one batch; ``feeds`` hold every input, in the model's own dtypes."""
        self._check(feeds)
        with self._lock:
            if self._runner is not None:
                return {k: np.asarray(v) for k, v in self._runner(**feeds).items()}
            batch = _batch_size(feeds)
            if self._split_batch and batch > 1:
                return self._run_rows(feeds, batch)
            try:
                self._allocate({name: arr.shape for name, arr in feeds.items()})
            except RuntimeError as e:
                if batch > 1 and self._batch_fixed_at_one():
                    self._split_batch = True
                    return self._run_rows(feeds, batch)
                raise InferenceError(
                    f"{self._path.name}: cannot allocate tensors for shapes "
                    f"{ {n: a.shape for n, a in feeds.items()} }: {e}"
                ) from e
            return self._invoke(feeds)

    def describe(self) -> dict[str, Any]:
        """What runs: the library and version, threads, signature used and batching mode."""
        return {
            "backend": self.name,
            "library": self._library,
            "threads": self._threads,
            "signature_key": self._signature_key,
            "batching": "rows" if self._split_batch else "resize",
        }

    # -- internals --------------------------------------------------------------------

    def _check(self, feeds: Mapping[str, np.ndarray]) -> None:
        if set(feeds) != set(self._inputs):
            raise BadRequestError(f"model inputs are {sorted(self._inputs)}, got {sorted(feeds)}")
        for name, arr in feeds.items():
            tensor = self._inputs[name]
            if arr.dtype != np.dtype(tensor.spec.dtype):
                raise BadRequestError(
                    f"model input {name!r}: dtype {arr.dtype.name} is not the model's {tensor.spec.dtype}"
                )
            declared = tensor.declared
            fits = arr.ndim == len(declared) and all(
                d < 0 or d == n or (axis == 0 and d == 1)
                for axis, (d, n) in enumerate(zip(declared, arr.shape, strict=True))
            )
            if not fits:
                raise BadRequestError(
                    f"model input {name!r}: shape {tuple(arr.shape)} does not fit {tensor.spec.shape}"
                )

    def _batch_fixed_at_one(self) -> bool:
        return all(t.declared[:1] == (1,) for t in self._inputs.values())

    def _allocate(self, shapes: Mapping[str, tuple[int, ...]]) -> None:
        changed = False
        for name, shape in shapes.items():
            if self._allocated[name] != shape:
                self._interpreter.resize_tensor_input(self._inputs[name].index, list(shape), strict=False)
                self._allocated[name] = tuple(shape)
                changed = True
        if changed:
            try:
                self._interpreter.allocate_tensors()
            except RuntimeError:
                # Leave the interpreter allocated for the model's own shapes, usable again.
                self._allocate({n: t.initial for n, t in self._inputs.items()})
                raise

    def _invoke(self, feeds: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
        for name, arr in feeds.items():
            self._interpreter.set_tensor(self._inputs[name].index, np.ascontiguousarray(arr))
        self._interpreter.invoke()
        # get_tensor returns a copy, safe to hand out after the next invoke.
        return {name: self._interpreter.get_tensor(t.index) for name, t in self._outputs.items()}

    def _run_rows(self, feeds: Mapping[str, np.ndarray], batch: int) -> dict[str, np.ndarray]:
        self._allocate({name: (1, *arr.shape[1:]) for name, arr in feeds.items()})
        rows = [self._invoke({n: a[i : i + 1] for n, a in feeds.items()}) for i in range(batch)]
        return {name: np.concatenate([r[name] for r in rows], axis=0) for name in self._outputs}


def _batch_size(feeds: Mapping[str, np.ndarray]) -> int:
    for arr in feeds.values():
        if arr.ndim:
            return int(arr.shape[0])
    return 1


def load(path: Path, settings: Mapping[str, Any]) -> LiteRTBackend:
    """Load a ``.tflite`` file; ``settings``: ``threads`` (``num_threads``, default: library's)."""
    path = Path(path)
    threads = _threads(settings)
    interpreter_cls, dist = _import_interpreter()
    library = f"{dist} {_library_version(dist)}"
    if not path.is_file():
        raise ModelLoadError(f"model file {path} does not exist")
    try:
        interpreter = interpreter_cls(model_path=str(path), num_threads=threads)
        interpreter.allocate_tensors()
    except (ValueError, RuntimeError) as e:
        raise ModelLoadError(f"{path}: {library} cannot load the model: {e}") from e
    return LiteRTBackend(interpreter, library=library, threads=threads, path=path)
