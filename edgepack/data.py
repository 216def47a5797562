"""Calibration and validation data: load, check against the model's IO signature, batch.

A ``DataSpec`` names either a file (``.npz`` keyed by public input names, plus the labels
key; ``.npy`` for one-input models) or a generator ``module:function`` importable from the
project root. Everything is checked before any pass runs: every input present, shapes
fit the signature (the batch axis first and free, dynamic axes free), dtypes castable,
the same number of samples everywhere, finite values. Each failure is a ``DataError``
whose ``where`` is the config field and whose message names the file and the key.
"""

from __future__ import annotations

import hashlib
import importlib
import io
import sys
import zipfile
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType
from typing import Any

import numpy as np

from .config import CalibrationSpec, DataSpec
from .errors import DataError
from .model.base import Batch
from .model.loader import brief
from .runtime.signature import IOSignature, TensorSpec

_NPY_MAGIC = b"\x93NUMPY"


@dataclass(frozen=True, eq=False)  # arrays have no single truth value: compare by identity
class Dataset:
    """Validated inputs (public names, cast to the signature's dtypes) and optional labels."""

    inputs: Batch
    labels: np.ndarray | None
    digest: str  # sha256: of the file's bytes, or of the generated arrays
    size: int = -1  # number of samples; filled from the inputs when omitted
    source: str = ""  # the file, or "generator module:function", for messages and provenance

    def __post_init__(self) -> None:
        sizes = {len(a) for a in self.inputs.values()}
        if self.labels is not None:
            sizes.add(len(self.labels))
        if len(sizes) > 1:
            raise DataError(
                f"{self.source or 'dataset'}: arrays hold different sample counts {sorted(sizes)}"
            )
        actual = sizes.pop() if sizes else 0
        if self.size == -1:
            object.__setattr__(self, "size", actual)
        elif self.size != actual:
            raise DataError(f"{self.source or 'dataset'}: size {self.size} but the arrays hold {actual}")

    def batches(self, batch_size: int) -> Iterator[Batch]:
        """The inputs in consecutive batches of at most ``batch_size`` samples, in order."""
        if batch_size < 1:
            raise ValueError(f"batch_size must be at least 1, got {batch_size}")
        for start in range(0, self.size, batch_size):
            yield {name: arr[start : start + batch_size] for name, arr in self.inputs.items()}

    def label_batches(self, batch_size: int) -> Iterator[np.ndarray]:
        """The labels in the same batches as ``batches``; nothing when there are no labels."""
        if self.labels is None:
            return
        for start in range(0, self.size, batch_size):
            yield self.labels[start : start + batch_size]


def load_dataset(
    spec: DataSpec,
    root: Path,
    signature: IOSignature,
    where: str,
    *,
    classes: Sequence[str] | None = None,
) -> Dataset:
    """Load the data ``spec`` names and check it against ``signature`` (public names).

    ``root`` is the project directory (relative paths and generator modules resolve there);
    ``where`` names the spec in the config, e.g. ``"edgepack.yaml: calibration"``; errors
    point at its field (``...calibration.path``, ``.generator``, ``.labels``).

    ``classes`` (the config's ``model.classes``) lets labels be class names: they are mapped
    to class ids, and an unknown name is refused. A ``CalibrationSpec`` (the config's
    ``calibration``) refuses constant or near-constant float inputs unless
    ``allow_constant`` is set: see ``check_not_constant``.
    """
    base = _spec_where(where)
    if spec.path is not None:
        path = Path(spec.path)
        path = path if path.is_absolute() else Path(root) / path
        field_where = f"{base}.path"
        arrays, digest = _read_file(path, spec, signature, field_where)
        source = str(path)
    else:
        assert spec.generator is not None  # DataSpec holds exactly one of path and generator
        field_where = f"{base}.generator"
        source = f"generator {spec.generator}"
        arrays = _run_generator(spec.generator, Path(root), signature, spec, field_where)
        digest = ""
    inputs, labels = _select(arrays, spec, signature, source, field_where, f"{base}.labels")
    inputs, labels = _validate(inputs, labels, signature, source, field_where, f"{base}.labels")
    if spec.samples is not None:
        inputs = {name: arr[: spec.samples] for name, arr in inputs.items()}
        labels = labels[: spec.samples] if labels is not None else None
    if labels is not None:
        # The digest stays that of the labels as written (names or ids): the file's, or below.
        written = labels
        labels = label_ids(labels, classes, source, f"{base}.labels")
        if classes is not None:
            _check_class_scores(signature, classes, f"{base}.labels")
        if not digest:
            digest = _arrays_digest(inputs, written)
    if isinstance(spec, CalibrationSpec) and not spec.allow_constant:
        check_not_constant(inputs, source, base)
    if not digest:
        digest = _arrays_digest(inputs, labels)
    return Dataset(inputs=inputs, labels=labels, digest=digest, source=source)


def _spec_where(where: str) -> str:
    # Accept the spec ("edgepack.yaml: calibration") or one of its fields.
    for suffix in (".path", ".generator", ".labels", ".samples"):
        if where.endswith(suffix):
            return where[: -len(suffix)]
    return where


# -- files ----------------------------------------------------------------------------


def _read_file(
    path: Path, spec: DataSpec, signature: IOSignature, where: str
) -> tuple[dict[str, np.ndarray], str]:
    if not path.exists():
        raise DataError(f"data file not found: {path}", where=where)
    if not path.is_file():
        raise DataError(f"{path}: not a file", where=where)
    suffix = path.suffix.lower()
    if suffix not in (".npz", ".npy"):
        raise DataError(f"{path}: expected an .npz or .npy file", where=where)
    data = path.read_bytes()
    digest = hashlib.sha256(data).hexdigest()
    if suffix == ".npy":
        if len(signature.inputs) != 1:
            raise DataError(
                f"{path}: a .npy file holds one array but the model takes {len(signature.inputs)} inputs "
                f"({', '.join(signature.input_names)}); use an .npz keyed by input name",
                where=where,
            )
        if spec.labels is not None:
            raise DataError(
                f"{path}: a .npy file holds no labels; use an .npz with a {spec.labels!r} key", where=where
            )
        return {signature.inputs[0].name: _load_npy(path, data, where)}, digest
    return _load_npz(path, data, where), digest


def _load_npy(path: Path, data: bytes, where: str) -> np.ndarray:
    if not data.startswith(_NPY_MAGIC):
        # Without the magic numpy would try to unpickle the bytes; say what is wrong instead.
        raise DataError(f"{path}: not a valid .npy file", where=where)
    try:
        arr = np.load(io.BytesIO(data), allow_pickle=False)
    except ValueError as e:
        if "pickle" in str(e).lower():
            raise DataError(
                f"{path}: holds Python objects (pickled); only numeric arrays are read", where=where
            ) from e
        raise DataError(f"{path}: not a valid .npy file ({brief(e)})", where=where) from e
    except (OSError, EOFError) as e:
        raise DataError(f"{path}: not a valid .npy file ({brief(e)})", where=where) from e
    if not isinstance(arr, np.ndarray):
        raise DataError(f"{path}: not a valid .npy file", where=where)
    return arr


def _load_npz(path: Path, data: bytes, where: str) -> dict[str, np.ndarray]:
    if not zipfile.is_zipfile(io.BytesIO(data)):
        raise DataError(f"{path}: not an npz file (an .npz is a zip of .npy arrays)", where=where)
    arrays: dict[str, np.ndarray] = {}
    try:
        with np.load(io.BytesIO(data), allow_pickle=False) as npz:
            for key in npz.files:
                try:
                    arrays[key] = npz[key]
                except ValueError as e:
                    if "pickle" in str(e).lower():
                        raise DataError(
                            f"{path}: array {key!r} holds Python objects (pickled); "
                            "only numeric arrays are read",
                            where=where,
                        ) from e
                    raise DataError(f"{path}: array {key!r} is damaged ({brief(e)})", where=where) from e
    except DataError:
        raise
    except (OSError, ValueError, EOFError, zipfile.BadZipFile, KeyError) as e:
        raise DataError(f"{path}: not a readable npz file ({brief(e)})", where=where) from e
    return arrays


# -- generators -----------------------------------------------------------------------


def _run_generator(
    target: str, root: Path, signature: IOSignature, spec: DataSpec, where: str
) -> dict[str, np.ndarray]:
    module_name, _, function_name = target.partition(":")
    with _project_imports(root):
        try:
            module = importlib.import_module(module_name)
        except Exception as e:
            raise DataError(
                f"generator {target}: cannot import module {module_name!r} from {root} ({brief(e)})",
                where=where,
            ) from e
        function = getattr(module, function_name, None)
        if not callable(function):
            raise DataError(
                f"generator {target}: module {module_name!r} has no function {function_name!r}", where=where
            )
        # Consume inside the block: a generator runs its body (and its imports) lazily.
        try:
            produced = function()
            batches = _collect(produced, target, signature, spec, where)
        except DataError:
            raise
        except Exception as e:
            raise DataError(f"generator {target} raised {brief(e)}", where=where) from e
    return _concatenate(batches, target, where)


class _project_imports:
    """The project root first on ``sys.path``, and a clean slate for the project's modules.

    A module of the same name loaded from elsewhere (another project's ``data.py``) is set
    aside while the project's is imported, and put back afterwards; the project's own
    modules are dropped again, so every build imports its project's code afresh.
    Only top-level names the root itself holds are touched, never installed packages
    (a virtualenv inside the project stays out of it).
    """

    def __init__(self, root: Path) -> None:
        self.root = Path(root).resolve()

    def __enter__(self) -> None:
        self.saved_path = list(sys.path)
        self.saved_modules = dict(sys.modules)
        # Top-level names the root can provide (modules and packages), listed once.
        try:
            entries = list(self.root.iterdir())
        except OSError:
            entries = []
        self.names = {p.stem for p in entries if p.suffix == ".py"} | {p.name for p in entries if p.is_dir()}
        sys.path.insert(0, str(self.root))
        importlib.invalidate_caches()
        for name, module in list(sys.modules.items()):
            if self._root_holds(name) and not self._from_root(name, module):
                del sys.modules[name]

    def __exit__(self, *exc: object) -> None:
        sys.path[:] = self.saved_path
        for name, module in list(sys.modules.items()):
            if (
                self._root_holds(name)
                and self._from_root(name, module)
                and self.saved_modules.get(name) is not module
            ):
                del sys.modules[name]
        for name, module in self.saved_modules.items():
            sys.modules.setdefault(name, module)

    def _root_holds(self, name: str) -> bool:
        return name.partition(".")[0] in self.names

    def _from_root(self, name: str, module: ModuleType) -> bool:
        file = getattr(module, "__file__", None)
        if not file:
            return False
        try:
            parts = Path(file).resolve().relative_to(self.root).parts
        except (OSError, ValueError):
            return False
        top = name.partition(".")[0]
        return bool(parts) and parts[0] in (top, f"{top}.py")


def _collect(
    produced: Any, target: str, signature: IOSignature, spec: DataSpec, where: str
) -> list[dict[str, np.ndarray]]:
    if produced is None:
        raise DataError(
            f"generator {target} returned nothing; return or yield arrays or dicts of arrays", where=where
        )
    items: Iterable[Any] = [produced] if isinstance(produced, np.ndarray | Mapping) else produced
    if not hasattr(items, "__iter__"):
        raise DataError(
            f"generator {target} returned {type(produced).__name__}; expected arrays or dicts of arrays",
            where=where,
        )
    batches: list[dict[str, np.ndarray]] = []
    count = 0
    for i, item in enumerate(items):
        if isinstance(item, Mapping):
            batch = {str(k): _as_array(v, target, i, str(k), where) for k, v in item.items()}
        elif isinstance(item, np.ndarray | list | tuple):
            if len(signature.inputs) != 1:
                raise DataError(
                    f"generator {target}: batch {i} is an array but the model takes "
                    f"{len(signature.inputs)} inputs ({', '.join(signature.input_names)}); "
                    "yield dicts keyed by input name",
                    where=where,
                )
            batch = {signature.inputs[0].name: _as_array(item, target, i, "array", where)}
        else:
            raise DataError(
                f"generator {target}: batch {i} is {type(item).__name__}; "
                "expected an array or a dict of arrays",
                where=where,
            )
        if batches and set(batch) != set(batches[0]):
            raise DataError(
                f"generator {target}: batch {i} has keys {', '.join(sorted(batch))} but batch 0 had "
                f"{', '.join(sorted(batches[0]))}",
                where=where,
            )
        batches.append(batch)
        sizes = [len(a) for a in batch.values() if a.ndim]
        count += min(sizes) if sizes else 0
        if spec.samples is not None and count >= spec.samples:
            break  # enough: an endless generator stops here
    if not batches:
        raise DataError(f"generator {target} yielded no batches", where=where)
    return batches


def _as_array(value: Any, target: str, i: int, key: str, where: str) -> np.ndarray:
    try:
        arr = np.asarray(value)
    except Exception as e:
        raise DataError(
            f"generator {target}: batch {i} {key!r} is not an array ({brief(e)})", where=where
        ) from e
    if arr.dtype == object:
        raise DataError(
            f"generator {target}: batch {i} {key!r} holds Python objects, not numbers", where=where
        )
    return arr


def _concatenate(batches: list[dict[str, np.ndarray]], target: str, where: str) -> dict[str, np.ndarray]:
    out: dict[str, np.ndarray] = {}
    for key in batches[0]:
        parts = [b[key] for b in batches]
        try:
            out[key] = parts[0] if len(parts) == 1 else np.concatenate(parts, axis=0)
        except ValueError as e:
            shapes = sorted({str(p.shape) for p in parts})
            raise DataError(
                f"generator {target}: batches of {key!r} do not stack (shapes {', '.join(shapes)})",
                where=where,
            ) from e
    return out


# -- selection and validation ---------------------------------------------------------


def _select(
    arrays: dict[str, np.ndarray],
    spec: DataSpec,
    signature: IOSignature,
    source: str,
    where: str,
    labels_where: str,
) -> tuple[dict[str, np.ndarray], np.ndarray | None]:
    labels: np.ndarray | None = None
    if spec.labels is not None:
        if spec.labels not in arrays:
            raise DataError(
                f"{source}: missing labels key {spec.labels!r} (has: {_keys(arrays)})", where=labels_where
            )
        labels = arrays[spec.labels]
    candidates = {k: v for k, v in arrays.items() if k != spec.labels}
    inputs: dict[str, np.ndarray] = {}
    missing = [name for name in signature.input_names if name not in candidates]
    if missing and len(signature.inputs) == 1 and len(candidates) == 1:
        # One-input model, one array: its key need not match the input name.
        inputs[signature.inputs[0].name] = next(iter(candidates.values()))
    elif missing:
        which = ", ".join(repr(m) for m in missing)
        raise DataError(f"{source}: missing key {which} (has: {_keys(arrays)})", where=where)
    else:
        inputs = {name: candidates[name] for name in signature.input_names}
    return inputs, labels


def _validate(
    inputs: dict[str, np.ndarray],
    labels: np.ndarray | None,
    signature: IOSignature,
    source: str,
    where: str,
    labels_where: str,
) -> tuple[dict[str, np.ndarray], np.ndarray | None]:
    checked: dict[str, np.ndarray] = {}
    for spec in signature.inputs:
        checked[spec.name] = _check_input(inputs[spec.name], spec, source, where)
    counts = {name: len(arr) for name, arr in checked.items()}
    if len(set(counts.values())) > 1:
        shown = ", ".join(f"{name} {n}" for name, n in counts.items())
        raise DataError(f"{source}: inputs hold different numbers of samples ({shown})", where=where)
    n = next(iter(counts.values())) if counts else 0
    if n == 0:
        raise DataError(f"{source}: holds no samples", where=where)
    if labels is not None:
        labels = _check_labels(labels, n, source, labels_where)
    return checked, labels


def _check_input(arr: np.ndarray, spec: TensorSpec, source: str, where: str) -> np.ndarray:
    name = spec.name
    expected = tuple(spec.shape)
    # Axis 0 is the batch axis whatever the model fixed it to; other axes must fit unless dynamic.
    fits = arr.ndim == len(expected) and all(
        d is None or d == s for d, s in zip(expected[1:], arr.shape[1:], strict=True)
    )
    if not fits:
        raise DataError(
            f"{source}: {name!r} has shape {tuple(arr.shape)} which does not match {_shape_text(expected)} "
            "(batch axis first)",
            where=where,
        )
    target = np.dtype(spec.dtype)
    if not _castable(arr.dtype, target):
        raise DataError(
            f"{source}: {name!r} has dtype {arr.dtype} which cannot be cast to {target}", where=where
        )
    if arr.dtype.kind in "fc":
        _check_finite(arr, f"{source}: {name!r}", where)
    with np.errstate(over="ignore", invalid="ignore"):  # overflow shows as inf, refused below
        cast = arr.astype(target, copy=False)
    if target.kind in "iub" and arr.dtype != target and not np.array_equal(cast, arr):
        raise DataError(f"{source}: {name!r} has values that do not fit {target}", where=where)
    if target.kind == "f" and arr.dtype.kind == "f" and arr.dtype.itemsize > target.itemsize:
        _check_finite(cast, f"{source}: {name!r} (as {target})", where)  # float64 -> float16 can overflow
    return np.ascontiguousarray(cast)


def _check_labels(labels: np.ndarray, n: int, source: str, where: str) -> np.ndarray:
    if labels.ndim == 0:
        raise DataError(f"{source}: labels are a scalar, expected one per sample", where=where)
    if labels.dtype.kind not in "biufUS":
        raise DataError(
            f"{source}: labels have dtype {labels.dtype}, expected class ids or class names", where=where
        )
    if len(labels) != n:
        raise DataError(
            f"{source}: labels count {len(labels)} differs from the {n} input samples", where=where
        )
    if labels.dtype.kind == "f":
        _check_finite(labels, f"{source}: labels", where)
    return labels


# -- labels as class names -----------------------------------------------------------


def label_ids(
    labels: np.ndarray, classes: Sequence[str] | None, source: str, where: str | None = None
) -> np.ndarray:
    """Labels as the fidelity gate takes them: class names mapped to ids through ``classes``.

    Numeric labels (ids, or one-hot rows) pass through, checked against ``classes`` when it
    is given. Names need ``classes``; a name it does not list is a ``DataError`` naming it.
    """
    labels = np.asarray(labels)
    if labels.dtype.kind in "US":
        return _names_to_ids(labels, classes, source, where)
    if classes is None:
        return labels
    k = len(classes)
    if labels.ndim == 2 and labels.shape[1] > 1:
        if labels.shape[1] != k:
            raise DataError(
                f"{source}: one-hot labels have {labels.shape[1]} columns "
                f"but model.classes lists {k} classes",
                where=where,
            )
        return labels
    ids = labels.reshape(len(labels), -1)[:, 0] if labels.ndim == 2 else labels
    if ids.size and (ids.min() < 0 or ids.max() >= k):
        bad = ids[(ids < 0) | (ids >= k)][0]
        raise DataError(
            f"{source}: label {_fmt_number(float(bad))} is not a class id of model.classes (0..{k - 1})",
            where=where,
        )
    return labels


def _names_to_ids(
    labels: np.ndarray, classes: Sequence[str] | None, source: str, where: str | None
) -> np.ndarray:
    if labels.ndim == 2 and labels.shape[1] == 1:
        labels = labels[:, 0]
    if labels.ndim != 1:
        raise DataError(
            f"{source}: class-name labels must hold one name per sample, got shape {labels.shape}",
            where=where,
        )
    names = [_label_text(v, source, where) for v in labels.tolist()]
    if classes is None:
        shown = ", ".join(repr(n) for n in dict.fromkeys(names[:3]))
        raise DataError(
            f"{source}: labels are class names ({shown}, ...) but the config lists no model.classes "
            "to map them to class ids",
            where=where,
        )
    index = {name: i for i, name in enumerate(classes)}
    unknown = [n for n in dict.fromkeys(names) if n not in index]
    if unknown:
        shown = ", ".join(repr(n) for n in unknown[:5])
        if len(unknown) > 5:
            shown += f" and {len(unknown) - 5} more"
        verb = "label {} is not a class" if len(unknown) == 1 else "labels {} are not classes"
        known = ", ".join(classes[:20]) + (", ..." if len(classes) > 20 else "")
        raise DataError(f"{source}: {verb.format(shown)} in model.classes ({known})", where=where)
    return np.array([index[n] for n in names], dtype=np.int64)


def _label_text(value: Any, source: str, where: str | None) -> str:
    if isinstance(value, bytes):
        try:
            return value.decode("utf-8")
        except UnicodeDecodeError as e:
            raise DataError(f"{source}: label {value!r} is not UTF-8 text", where=where) from e
    return str(value)


def _check_class_scores(signature: IOSignature, classes: Sequence[str], where: str) -> None:
    # Accuracy is measured on an output with one score per class: say so now, not after a conversion.
    k = len(classes)
    for out in signature.outputs:
        if len(out.shape) == 2 and out.shape[1] in (k, None):
            return
    shapes = ", ".join(f"{o.name} {_shape_text(tuple(o.shape))}" for o in signature.outputs)
    raise DataError(
        f"model.classes lists {k} classes but no model output has {k} class scores ({shapes})", where=where
    )


# -- constant calibration data --------------------------------------------------------

# A value range this small relative to the values' magnitude is one value (float32 noise).
_CONSTANT_RTOL = 1e-6
# Samples that differ, at every position, by less than this share of the input's value
# range are copies of one sample (plus noise): they calibrate the ranges of one input only.
_IDENTICAL_RTOL = 1e-3


def check_not_constant(inputs: Mapping[str, np.ndarray], source: str, where: str) -> None:
    """Refuse calibration inputs that are constant, or whose samples are (nearly) identical.

    int8 calibration measures activation ranges on these samples; on one value (zeros, a
    fill) or one repeated sample the ranges fit nothing a real request holds, and the
    converter accepts it without a word. Only float inputs are checked: integer inputs
    (token ids, masks) are not calibrated, and a mask of ones is ordinary.
    """
    for name, arr in inputs.items():
        if arr.dtype.kind != "f" or arr.size == 0:
            continue
        low, high = float(arr.min()), float(arr.max())
        spread = high - low
        n = len(arr)
        if spread <= _CONSTANT_RTOL * max(abs(low), abs(high)):
            what = f"input {name!r} is constant"
        elif n > 1:
            per_position = arr.max(axis=0).astype(np.float64) - arr.min(axis=0).astype(np.float64)
            largest = float(per_position.max())
            if largest > _IDENTICAL_RTOL * spread:
                continue
            what = (
                f"input {name!r} holds {n} identical samples"
                if largest == 0
                else f"input {name!r} holds {n} nearly identical samples (they differ by at most "
                f"{_fmt_number(largest)} in a value range of {_fmt_number(spread)})"
            )
        else:
            continue
        std = float(np.std(arr, dtype=np.float64))
        raise DataError(
            f"{source}: {what} (min {_fmt_number(low)}, max {_fmt_number(high)}, std {_fmt_number(std)}, "
            f"samples {n}); int8 ranges calibrated on it fit no real input. Use representative data, "
            "or set calibration.allow_constant: true to calibrate on it anyway",
            where=where,
        )


def _fmt_number(value: float) -> str:
    return f"{value:.4g}"


def _check_finite(arr: np.ndarray, what: str, where: str) -> None:
    finite = np.isfinite(arr)
    if finite.all():
        return
    nan = np.isnan(arr)
    bad = np.argwhere(~finite)[0]
    sample = int(bad[0]) if len(bad) else 0
    kind = "NaN" if nan.any() else "infinite"
    count = int(nan.sum()) if nan.any() else int((~finite).sum())
    raise DataError(f"{what} has {count} {kind} values (first in sample {sample})", where=where)


def _castable(source: np.dtype, target: np.dtype) -> bool:
    if source.kind not in "biuf":
        return False  # strings, objects, complex, datetimes
    if target.kind == "f":
        return True  # ints and bools widen to float; wider floats narrow (checked finite after)
    if target.kind in "iu":
        return source.kind in "biu"  # no silent float -> int truncation
    if target.kind == "b":
        return source.kind == "b"
    return bool(np.can_cast(source, target, casting="same_kind"))


def _shape_text(shape: tuple[int | None, ...]) -> str:
    inner = ", ".join("None" if d is None else str(d) for d in shape)
    return f"({inner},)" if len(shape) == 1 else f"({inner})"


def _keys(arrays: Mapping[str, Any]) -> str:
    return ", ".join(sorted(arrays)) or "no arrays"


def _arrays_digest(inputs: Mapping[str, np.ndarray], labels: np.ndarray | None) -> str:
    h = hashlib.sha256()
    items = sorted(inputs.items())
    if labels is not None:
        items.append(("\0labels", labels))
    for name, arr in items:
        arr = np.ascontiguousarray(arr)
        h.update(f"{name}\0{arr.dtype.str}\0{arr.shape}\0".encode())
        h.update(arr.tobytes())
    return h.hexdigest()
