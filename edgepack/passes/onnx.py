"""ONNX passes: ``onnx-convert`` (tf2onnx), ``onnx-quantize`` (ORT int8), ``onnx-float16``.

Frameworks (tensorflow, tf2onnx, onnx, onnxruntime, onnxconverter-common) are imported
inside the functions that need them, so importing this module is cheap. Converter
keyword arguments are built in one translator per backend (``to_quantize_kwargs``,
``to_float16_kwargs``), so what a config means for the converter is in one place.
"""

from __future__ import annotations

import contextlib
import dataclasses
import inspect
import logging
import re
import time
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Annotated, Any, ClassVar, Literal

import numpy as np
from pydantic import Field

from ..errors import BackendMissingError, DataError, ModelError, PassError, UnsupportedOpError
from ..model.base import Batch, ModelArtifact, ModelFormat
from .base import Pass, PassConfig, PassContext
from .converter_errors import converter_error, first_line
from .tf_trace import tf_function_for

logger = logging.getLogger("edgepack.passes")

ONNX_FILE = "model.onnx"

# ONNX domains whose operators ONNX Runtime implements besides the standard ones.
_ORT_DOMAINS = frozenset({"", "ai.onnx", "ai.onnx.ml", "com.microsoft", "com.microsoft.nchwc"})


# -- framework imports --------------------------------------------------------------


def _import_onnx() -> Any:
    try:
        import onnx
    except ImportError as e:
        raise BackendMissingError("onnx", "onnx") from e
    return onnx


# -- ONNX graph helpers -------------------------------------------------------------


def canonicalize_names(proto: Any) -> None:
    """Rename generated node and tensor names by position, so one model converts to the same bytes.

    tf2onnx numbers the names it makes up from a process-wide counter (``const_axes__23``
    in one run, ``__24`` in the next) and orders initializers by those names, which would
    make builds irreproducible and give one model several digests (and TensorRT
    engine-cache keys). Tensors are renamed in order of first use by the (stable) node
    list, and initializers sorted by their new names. Graph inputs and outputs keep
    their names; graphs with subgraphs (If/Loop) are left as they are.
    """
    graph = proto.graph
    if any(attr.type in (5, 10) for node in graph.node for attr in node.attribute):  # GRAPH, GRAPHS
        return
    initializers = {t.name for t in graph.initializer}
    keep = {i.name for i in graph.input if i.name not in initializers} | {o.name for o in graph.output}
    mapping: dict[str, str] = {}

    def rename(name: str) -> str:
        if not name or name in keep:
            return name
        return mapping.setdefault(name, f"t{len(mapping)}")

    for i, node in enumerate(graph.node):
        node.name = f"{node.op_type}_{i}"
        node.input[:] = [rename(n) for n in node.input]
        node.output[:] = [rename(n) for n in node.output]
    for info in list(graph.input) + list(graph.value_info):
        info.name = rename(info.name)
    graph.doc_string = ""  # "converted from b'__inference_serve_240'": a counter again
    # Symbolic dimensions are numbered from the same counter (``unk__40``): name them by
    # first appearance, the leading (batch) axis "batch".
    dims: dict[str, str] = {}
    for info in list(graph.input) + list(graph.output) + list(graph.value_info):
        for axis, dim in enumerate(info.type.tensor_type.shape.dim):
            if dim.dim_param:
                if dim.dim_param not in dims:
                    taken = "batch" in dims.values()
                    dims[dim.dim_param] = "batch" if axis == 0 and not taken else f"dim{len(dims)}"
                dim.dim_param = dims[dim.dim_param]
    for tensor in graph.initializer:
        tensor.name = rename(tensor.name)  # unused initializers get names after every used one
    ordered = sorted(graph.initializer, key=lambda t: int(t.name[1:]) if t.name in mapping.values() else -1)
    copies = []
    for tensor in ordered:
        clone = type(tensor)()
        clone.CopyFrom(tensor)
        copies.append(clone)
    del graph.initializer[:]
    graph.initializer.extend(copies)


def _canonicalize_file(path: Path) -> dict[str, str]:
    """Canonicalize a model file in place; returns old node name -> new node name."""
    import onnx

    proto = onnx.load(str(path))
    before = [n.name for n in proto.graph.node]
    canonicalize_names(proto)
    onnx.save(proto, str(path))
    return {old: n.name for old, n in zip(before, proto.graph.node, strict=True) if old}


def unknown_ops(proto: Any) -> list[str]:
    """Operators in an ONNX model that neither the ONNX standard nor ONNX Runtime define.

    tf2onnx does not fail on a TensorFlow op it cannot map: it logs and leaves the op in
    the graph under its TensorFlow name. This finds those (and custom-domain ops).
    """
    import onnx.defs

    local_functions = {(f.domain, f.name) for f in proto.functions}
    found: list[str] = []

    def visit(graph: Any) -> None:
        for node in graph.node:
            domain = node.domain or ""
            if (domain, node.op_type) in local_functions:
                pass
            elif domain in ("", "ai.onnx", "ai.onnx.ml"):
                if not onnx.defs.has(node.op_type, domain):
                    found.append(node.op_type)
            elif domain not in _ORT_DOMAINS:
                found.append(f"{domain}.{node.op_type}")
            for attr in node.attribute:
                if attr.g is not None and attr.g.node:
                    visit(attr.g)
                for sub in attr.graphs:
                    visit(sub)

    visit(proto.graph)
    return list(dict.fromkeys(found))


_ORT_OP_PATTERNS = (
    re.compile(r"(?:Fatal error: )?([\w.]+):(\w+)\(-?\d+\) is not a registered function/op"),
    re.compile(r"Could not find an implementation for (\w+)\(\d+\) node"),
    re.compile(r"No Op registered for (\w+) with domain_version"),
)


def op_from_ort_error(message: str) -> str | None:
    """The operator an ONNX Runtime error names, if it names one."""
    for pattern in _ORT_OP_PATTERNS:
        m = pattern.search(message)
        if m:
            groups = [g for g in m.groups() if g]
            return ".".join(groups)
    return None


def rename_outputs(proto: Any, names: tuple[str, ...]) -> bool:
    """Rename the graph outputs, by position, to ``names``; False when a name is taken.

    Renames every reference (node inputs/outputs, value_info), so the graph stays valid.
    """
    graph = proto.graph
    current = [o.name for o in graph.output]
    if len(current) != len(names):
        return False
    if current == list(names):
        return True
    taken = {i.name for i in graph.input} | {i.name for i in graph.initializer}
    for node in graph.node:
        taken.update(node.output)
    taken -= set(current)
    if any(n in taken for n in names) or len(set(names)) != len(names):
        return False
    if any(o in {i.name for i in graph.input} for o in current):
        return False  # an input wired straight to an output: renaming would rename the input
    mapping = dict(zip(current, names, strict=True))
    for node in graph.node:
        node.output[:] = [mapping.get(n, n) for n in node.output]
        node.input[:] = [mapping.get(n, n) for n in node.input]
    for vi in graph.value_info:
        if vi.name in mapping:
            vi.name = mapping[vi.name]
    for out in graph.output:
        out.name = mapping[out.name]
    return True


def _native_io(model: ModelArtifact) -> tuple[tuple[str, ...], tuple[str, ...]]:
    return (
        model.native_inputs or model.signature.input_names,
        model.native_outputs or model.signature.output_names,
    )


def _file_size(path: Path) -> int:
    return path.stat().st_size


# -- onnx-convert -------------------------------------------------------------------


class OnnxConvertConfig(PassConfig):
    opset: int = Field(
        default=17,
        ge=13,
        le=18,
        description="ONNX opset to emit (13+: per-channel QDQ needs it; tf2onnx 1.17 stops at 18)",
    )


class OnnxConvert(Pass):
    """Keras / SavedModel -> ONNX with tf2onnx; an ONNX model passes through (copied)."""

    name: ClassVar[str] = "onnx-convert"
    config_model: ClassVar[type[PassConfig]] = OnnxConvertConfig
    accepts: ClassVar[frozenset[ModelFormat]] = frozenset({"keras", "savedmodel", "onnx"})
    produces: ClassVar[ModelFormat] = "onnx"

    def run(self, model: ModelArtifact, config: PassConfig, ctx: PassContext) -> ModelArtifact:
        assert isinstance(config, OnnxConvertConfig)
        onnx = _import_onnx()
        out = ctx.work_dir / ONNX_FILE
        if model.format == "onnx":
            try:
                proto = onnx.load(str(model.path))
            except Exception as e:
                raise ModelError(f"not a readable ONNX model: {first_line(e)}", where=str(model.path)) from e
            bad = unknown_ops(proto)
            if bad:
                raise UnsupportedOpError(bad[0], ctx.target, "not an ONNX or ONNX Runtime operator")
            # One self-contained file, even when the source kept weights as external data.
            onnx.save(proto, str(out))
            return ModelArtifact(
                path=out,
                format="onnx",
                signature=model.signature,
                precision=model.precision,
                native_inputs=model.native_inputs,
                native_outputs=model.native_outputs,
                details={**model.details, "onnx_opset": _opset(proto), "converter": "passthrough"},
            )
        if model.format not in ("keras", "savedmodel"):
            raise PassError(f"onnx-convert cannot take a {model.format} model", where=ctx.target)
        ctx.progress(f"converting {model.path.name} to ONNX (tf2onnx, opset {config.opset})")
        started = time.perf_counter()
        fn, specs = tf_function_for(model)  # imports TensorFlow quietly before tf2onnx does
        try:
            import tf2onnx
        except ImportError as e:
            raise BackendMissingError("tf2onnx", "onnx") from e
        try:
            proto, _ = tf2onnx.convert.from_function(fn, input_signature=specs, opset=config.opset)
        except (ModelError, PassError):
            raise
        except Exception as e:
            raise converter_error(e, _tf_op_from_error(str(e)), ctx.target, "tf2onnx") from e
        bad = unknown_ops(proto)
        if bad:
            raise UnsupportedOpError(bad[0], ctx.target, "tf2onnx has no ONNX mapping for it")

        # Inputs carry the TensorSpec (public) names unless tf2onnx had to sanitize one.
        graph_inputs = tuple(
            i.name for i in proto.graph.input if i.name not in {t.name for t in proto.graph.initializer}
        )
        native_inputs = () if graph_inputs == model.signature.input_names else graph_inputs
        tool_names = tuple(o.name for o in proto.graph.output)
        native_outputs: tuple[str, ...] = ()
        if not rename_outputs(proto, model.signature.output_names):
            native_outputs = tool_names  # names taken inside the graph: keep them, record the map
        canonicalize_names(proto)
        onnx.save(proto, str(out))
        return ModelArtifact(
            path=out,
            format="onnx",
            signature=model.signature,
            precision="fp32",
            native_inputs=native_inputs,
            native_outputs=native_outputs,
            details={
                "converter": f"tf2onnx {tf2onnx.__version__}",
                "onnx_opset": config.opset,
                "conversion_seconds": round(time.perf_counter() - started, 3),
            },
        )


def _opset(proto: Any) -> int | None:
    for imp in proto.opset_import:
        if imp.domain in ("", "ai.onnx"):
            return int(imp.version)
    return None


_TF_OP_RE = re.compile(r"Tensorflow op \[[^:\]]*: (\w+)\] is not supported|Unsupported ops?: .*?'(\w+)'")


def _tf_op_from_error(message: str) -> str | None:
    m = _TF_OP_RE.search(message)
    if not m:
        return None
    return next(g for g in m.groups() if g)


# -- onnx-quantize ------------------------------------------------------------------

QuantTypeName = Literal["QInt8", "QUInt8"]


class OnnxQuantizeConfig(PassConfig):
    mode: Literal["dynamic", "static"] = Field(
        default="static",
        description="dynamic: int8 weights, activations quantized at run time; "
        "static: int8 weights and activations from calibration, QDQ format (what TensorRT reads)",
    )
    per_channel: bool = Field(default=True, description="one scale per output channel of each weight")
    reduce_range: bool = Field(
        default=False,
        description="7-bit weights: avoids int16 overflow in VPMADDUBSW on x86 CPUs without VNNI",
    )
    op_types_to_quantize: Annotated[list[str], Field(min_length=1)] | Literal["all"] = Field(
        default_factory=lambda: ["Conv", "MatMul", "Gemm"],
        description="operator types to quantize, or 'all' (every op type ONNX Runtime can quantize "
        "in this mode); int8 over every op can destroy accuracy",
    )
    calibrate_method: Literal["MinMax", "Entropy", "Percentile"] = Field(
        default="MinMax", description="how static mode turns calibration ranges into scales"
    )
    activation_type: QuantTypeName = Field(default="QInt8", description="activation integer type (static)")
    weight_type: QuantTypeName = Field(default="QInt8", description="weight integer type")
    activation_symmetric: bool = Field(
        default=False,
        description="zero point 0 for activations (static); TensorRT accepts only symmetric QDQ",
    )
    calibration_batch_size: int = Field(default=32, gt=0, description="samples per calibration run")
    preprocess: bool = Field(
        default=True, description="run ORT quant_pre_process (shape inference + graph optimisation) first"
    )
    accuracy_control: bool = Field(
        default=False,
        description="when full int8 fails the fidelity gate, keep the nodes int8 hurts most in float "
        "(ranked on the validation data), adding one at a time until the gate passes",
    )
    max_float_nodes: int = Field(
        default=8,
        ge=0,
        description="accuracy_control: at most this many nodes stay float; past it the pass fails "
        "and the build tries its next variant",
    )


def to_quantize_kwargs(config: OnnxQuantizeConfig) -> dict[str, Any]:
    """The one place an ``onnx-quantize`` config becomes ``onnxruntime.quantization`` kwargs."""
    from onnxruntime.quantization import CalibrationMethod, QuantFormat, QuantType

    kwargs: dict[str, Any] = {
        # None is ORT's own "every op type this mode can quantize".
        "op_types_to_quantize": None
        if config.op_types_to_quantize == "all"
        else list(config.op_types_to_quantize),
        "per_channel": config.per_channel,
        "reduce_range": config.reduce_range,
        "weight_type": QuantType[config.weight_type],
    }
    if config.mode == "static":
        kwargs.update(
            quant_format=QuantFormat.QDQ,
            activation_type=QuantType[config.activation_type],
            calibrate_method=CalibrationMethod[config.calibrate_method],
            calibration_providers=["CPUExecutionProvider"],
            extra_options={"ActivationSymmetric": config.activation_symmetric},
        )
    return kwargs


def calibration_reader(
    batches: Callable[[], Iterator[Batch]],
    public_inputs: tuple[str, ...],
    native_inputs: tuple[str, ...],
    dtypes: dict[str, Any],
    batch_size: int,
) -> Any:
    """An ORT ``CalibrationDataReader`` over the context's calibration batches.

    Batches arrive keyed by public input names; ORT wants the names inside the file,
    in the file's dtypes, in runs of ``batch_size`` samples.
    """
    from onnxruntime.quantization import CalibrationDataReader

    class _Reader(CalibrationDataReader):
        def __init__(self) -> None:
            self._feeds = self._generate()

        def _generate(self) -> Iterator[dict[str, np.ndarray]]:
            for batch in batches():
                missing = [n for n in public_inputs if n not in batch]
                if missing:
                    raise DataError(f"calibration batch lacks input {missing[0]!r}")
                size = len(batch[public_inputs[0]])
                for start in range(0, size, batch_size):
                    yield {
                        native: np.ascontiguousarray(
                            batch[public][start : start + batch_size], dtype=dtypes[native]
                        )
                        for public, native in zip(public_inputs, native_inputs, strict=True)
                    }

        def get_next(self) -> dict[str, np.ndarray] | None:
            return next(self._feeds, None)

        def rewind(self) -> None:
            self._feeds = self._generate()

    return _Reader()


class NodeQuantizer:
    """Runs ONNX Runtime's quantizer on one (pre-processed) model as often as accuracy control
    needs: the whole model, one node alone, or all but some nodes.

    Static mode calibrates once: the first run saves the calibrated ranges (ORT's
    ``calibration_cache_path``, present in onnxruntime 1.32) and later runs reuse them, so every
    candidate is quantized with the same scales and costs no calibration pass. An older
    onnxruntime without it calibrates again on each run (same data, same ranges, only slower).
    """

    def __init__(
        self,
        model: ModelArtifact,
        source: Path,
        config: OnnxQuantizeConfig,
        ctx: PassContext,
        quantize_dynamic: Any,
        quantize_static: Any,
    ) -> None:
        self.model = model
        self.source = source  # the model ORT quantizes (pre-processed when that worked)
        self.config = config
        self.ctx = ctx
        self._dynamic = quantize_dynamic
        self._static = quantize_static
        self._kwargs = to_quantize_kwargs(config)
        self._cache: Path | None = None
        if (
            config.mode == "static"
            and "calibration_cache_path" in inspect.signature(quantize_static).parameters
        ):
            self._cache = ctx.work_dir / "calibration-ranges.json"
        self.calibration_samples = 0

    def candidates(self) -> list[tuple[str, str]]:
        """(name, op type) of every node the config quantizes, in graph order."""
        import onnx

        types = quantizable_op_types(self.config)
        proto = onnx.load(str(self.source), load_external_data=False)
        return [(n.name, n.op_type) for n in proto.graph.node if n.name and n.op_type in types]

    def write(
        self, out: Path, *, only: Sequence[str] | None = None, exclude: Sequence[str] = ()
    ) -> dict[str, str]:
        """Quantize into ``out`` (canonical names); returns source node name -> name in ``out``."""
        kwargs = dict(self._kwargs)
        if only is not None:
            kwargs["nodes_to_quantize"] = list(only)
        if exclude:
            kwargs["nodes_to_exclude"] = list(exclude)
        try:
            if self.config.mode == "dynamic":
                self._dynamic(self.source, out, **kwargs)
            elif self._cache is not None and self._cache.is_file():
                self._static(self.source, out, None, calibration_cache_path=self._cache, **kwargs)
            else:
                if self._cache is not None:
                    kwargs["calibration_cache_path"] = self._cache
                self._static(self.source, out, self._reader(), **kwargs)
        except (DataError, ModelError, PassError):
            raise
        except Exception as e:
            op = op_from_ort_error(str(e))
            raise converter_error(e, op, self.ctx.target, "ONNX Runtime quantization") from e
        return _canonicalize_file(out)

    def close(self) -> None:
        if self._cache is not None:
            self._cache.unlink(missing_ok=True)

    def _reader(self) -> Any:
        assert self.ctx.calibration is not None
        native_in, _ = _native_io(self.model)
        batches = self.ctx.calibration

        def counted() -> Iterator[Batch]:
            self.calibration_samples = 0
            for batch in batches():
                self.calibration_samples += len(next(iter(batch.values()))) if batch else 0
                yield batch

        return calibration_reader(
            counted,
            self.model.signature.input_names,
            native_in,
            _onnx_input_dtypes(self.source),
            self.config.calibration_batch_size,
        )


def quantizable_op_types(config: OnnxQuantizeConfig) -> frozenset[str]:
    """The op types ``config`` quantizes: its list, or for "all" ORT's registry for the mode."""
    if config.op_types_to_quantize != "all":
        return frozenset(config.op_types_to_quantize)
    from onnxruntime.quantization.registry import IntegerOpsRegistry, QDQRegistry, QLinearOpsRegistry

    if config.mode == "dynamic":
        return frozenset(IntegerOpsRegistry)
    return frozenset(QLinearOpsRegistry) | frozenset(QDQRegistry)


class OnnxQuantize(Pass):
    """ONNX Runtime int8 quantization: dynamic, or static in QDQ format with calibration."""

    name: ClassVar[str] = "onnx-quantize"
    config_model: ClassVar[type[PassConfig]] = OnnxQuantizeConfig
    accepts: ClassVar[frozenset[ModelFormat]] = frozenset({"onnx"})
    produces: ClassVar[ModelFormat] = "onnx"
    needs_calibration: ClassVar[bool] = True

    def requires_calibration(self, config: PassConfig) -> bool:
        assert isinstance(config, OnnxQuantizeConfig)
        return config.mode == "static"

    def run(self, model: ModelArtifact, config: PassConfig, ctx: PassContext) -> ModelArtifact:
        assert isinstance(config, OnnxQuantizeConfig)
        if model.format != "onnx":
            raise PassError(f"onnx-quantize takes an ONNX model, got {model.format}", where=ctx.target)
        if config.mode == "static" and ctx.calibration is None:
            raise DataError(
                f"target {ctx.target}: onnx-quantize static needs calibration data "
                "(set calibration: in edgepack.yaml)"
            )
        try:
            from onnxruntime.quantization import quantize_dynamic, quantize_static
        except ImportError as e:
            raise BackendMissingError("onnxruntime", "onnx") from e

        started = time.perf_counter()
        # ORT's pre-processing and calibration write scratch models to the working directory:
        # run them inside this pass's own, with every path made absolute first.
        ctx = dataclasses.replace(ctx, work_dir=ctx.work_dir.resolve())
        model = dataclasses.replace(model, path=model.path.resolve())
        with contextlib.chdir(ctx.work_dir):
            return self._quantize(model, config, ctx, quantize_dynamic, quantize_static, started)

    def requires_validation(self, config: PassConfig) -> bool:
        assert isinstance(config, OnnxQuantizeConfig)
        return config.accuracy_control

    def _quantize(
        self,
        model: ModelArtifact,
        config: OnnxQuantizeConfig,
        ctx: PassContext,
        quantize_dynamic: Any,
        quantize_static: Any,
        started: float,
    ) -> ModelArtifact:
        if config.accuracy_control and (ctx.gate is None or ctx.validation is None):
            raise DataError(
                f"target {ctx.target}: onnx-quantize accuracy_control needs validation data "
                "(set validation: in edgepack.yaml)"
            )
        source, preprocess_note = self._preprocess(model.path, config, ctx)
        source = _one_dimensional_gemm_bias(source, model.path, ctx.work_dir)
        out = ctx.work_dir / ONNX_FILE
        ctx.progress(f"quantizing {model.path.name} (ONNX Runtime {config.mode} int8)")
        quantizer = NodeQuantizer(model, source, config, ctx, quantize_dynamic, quantize_static)
        try:
            quantizer.write(out)
            details: dict[str, Any] = {
                "quantization": {
                    "tool": "onnxruntime",
                    "mode": config.mode,
                    "format": "QDQ" if config.mode == "static" else "QOperator",
                    "per_channel": config.per_channel,
                    "reduce_range": config.reduce_range,
                    "op_types": config.op_types_to_quantize
                    if isinstance(config.op_types_to_quantize, str)
                    else list(config.op_types_to_quantize),
                    "weight_type": config.weight_type,
                },
                "preprocess": preprocess_note,
                "size_bytes_before": _file_size(model.path),
            }
            if config.mode == "static":
                details["quantization"].update(
                    activation_type=config.activation_type,
                    activation_symmetric=config.activation_symmetric,
                    calibrate_method=config.calibrate_method,
                    calibration_samples=quantizer.calibration_samples,
                )
            result = ModelArtifact(
                path=out,
                format="onnx",
                signature=model.signature,
                precision="int8" if config.mode == "static" else "dynamic",
                native_inputs=model.native_inputs,
                native_outputs=model.native_outputs,
                details={**_carried(model.details), **details},
            )
            if config.accuracy_control:
                from .onnx_mixed import keep_sensitive_nodes_in_float

                result = keep_sensitive_nodes_in_float(result, model, quantizer, config, ctx)
        finally:
            quantizer.close()
            if source != model.path:
                source.unlink(missing_ok=True)
        seconds = round(time.perf_counter() - started, 3)
        return dataclasses.replace(result, details={**result.details, "quantization_seconds": seconds})

    @staticmethod
    def _preprocess(path: Path, config: OnnxQuantizeConfig, ctx: PassContext) -> tuple[Path, str]:
        """ORT's recommended pre-processing; its failure is not fatal (the raw model still quantizes)."""
        if not config.preprocess:
            return path, "skipped"
        from onnxruntime.quantization.shape_inference import quant_pre_process

        pre = ctx.work_dir / "preprocessed.onnx"
        try:
            quant_pre_process(str(path), str(pre))
        except Exception as e:
            # Known on real models: "Incomplete symbolic shape inference". Quantize the
            # unprocessed model instead and say so in the manifest.
            pre.unlink(missing_ok=True)
            note = f"failed, quantized the unprocessed model: {first_line(e)}"
            logger.warning("onnx-quantize (%s): quant_pre_process %s", ctx.target, note)
            return path, note
        return pre, "ok"


def _one_dimensional_gemm_bias(source: Path, original: Path, work_dir: Path) -> Path:
    """Gemm biases of shape (1, N) as (N,): the same broadcast, and the shape ORT's per-channel
    bias check handles (with (1, N) it fails: "truth value of an array ... is ambiguous";
    skl2onnx writes such biases, and quant_pre_process fuses them into Gemm)."""
    import onnx
    from onnx import numpy_helper

    proto = onnx.load(str(source))
    initializers = {t.name: t for t in proto.graph.initializer}
    changed = False
    for node in proto.graph.node:
        if node.op_type != "Gemm" or len(node.input) < 3 or node.input[2] not in initializers:
            continue
        bias = initializers[node.input[2]]
        if len(bias.dims) == 2 and bias.dims[0] == 1:
            flat = numpy_helper.from_array(numpy_helper.to_array(bias).reshape(-1), bias.name)
            bias.CopyFrom(flat)
            changed = True
    if not changed:
        return source
    out = work_dir / "gemm-bias-1d.onnx"
    onnx.save(proto, str(out))
    if source != original:
        source.unlink(missing_ok=True)
    return out


def _onnx_input_dtypes(path: Path) -> dict[str, Any]:
    import onnx
    from onnx.helper import tensor_dtype_to_np_dtype

    proto = onnx.load(str(path), load_external_data=False)
    inits = {i.name for i in proto.graph.initializer}
    return {
        i.name: tensor_dtype_to_np_dtype(i.type.tensor_type.elem_type)
        for i in proto.graph.input
        if i.name not in inits
    }


def _carried(details: Any) -> dict[str, Any]:
    """Facts of the input model that still describe the output (converter, opset)."""
    keep = ("converter", "onnx_opset", "conversion_seconds")
    return {k: details[k] for k in keep if k in details}


# -- onnx-float16 -------------------------------------------------------------------


class OnnxFloat16Config(PassConfig):
    keep_io_types: bool = Field(
        default=True, description="keep float32 inputs and outputs (casts inside the graph)"
    )
    op_block_list: list[str] | None = Field(
        default=None, description="operator types to keep in float32 (converter default list when unset)"
    )


def to_float16_kwargs(config: OnnxFloat16Config) -> dict[str, Any]:
    """The one place an ``onnx-float16`` config becomes onnxconverter-common kwargs."""
    kwargs: dict[str, Any] = {"keep_io_types": config.keep_io_types}
    if config.op_block_list is not None:
        kwargs["op_block_list"] = list(config.op_block_list)
    return kwargs


class OnnxFloat16(Pass):
    """float32 -> float16 weights and compute with onnxconverter-common."""

    name: ClassVar[str] = "onnx-float16"
    config_model: ClassVar[type[PassConfig]] = OnnxFloat16Config
    accepts: ClassVar[frozenset[ModelFormat]] = frozenset({"onnx"})
    produces: ClassVar[ModelFormat] = "onnx"

    def run(self, model: ModelArtifact, config: PassConfig, ctx: PassContext) -> ModelArtifact:
        assert isinstance(config, OnnxFloat16Config)
        if model.format != "onnx":
            raise PassError(f"onnx-float16 takes an ONNX model, got {model.format}", where=ctx.target)
        onnx = _import_onnx()
        try:
            from onnxconverter_common import float16
        except ImportError as e:
            raise BackendMissingError("onnxconverter_common", "onnx") from e
        started = time.perf_counter()
        ctx.progress(f"converting {model.path.name} to float16")
        proto = onnx.load(str(model.path))
        try:
            converted = float16.convert_float_to_float16(proto, **to_float16_kwargs(config))
        except Exception as e:
            raise PassError(f"float16 conversion failed: {first_line(e)}", where=ctx.target) from e
        out = ctx.work_dir / ONNX_FILE
        canonicalize_names(converted)
        onnx.save(converted, str(out))
        return ModelArtifact(
            path=out,
            format="onnx",
            signature=model.signature,
            precision="fp16",
            native_inputs=model.native_inputs,
            native_outputs=model.native_outputs,
            details={
                **_carried(model.details),
                # With keep_io_types false the file's float IO is float16: the backend's
                # signature says so and callers' float32 arrays are cast on the way in.
                "float16": {"keep_io_types": config.keep_io_types, "op_block_list": config.op_block_list},
                "size_bytes_before": _file_size(model.path),
                "float16_seconds": round(time.perf_counter() - started, 3),
            },
        )
