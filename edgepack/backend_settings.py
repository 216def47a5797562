"""``runtime_settings`` typed per backend, checked when the config loads.

Each runtime backend (``edgepack/runtime/backends/``) reads its own settings at model
load time, on the device or in Lambda, and refuses unknown ones there. That is too late
for a typo in ``edgepack.yaml``: these models mirror what each backend accepts so that
``thread: 2`` is refused by ``edgepack build`` before any conversion, naming the field.

The runtime keeps its own checks (it ships without pydantic and must not trust a
manifest blindly); keep the two in step when a backend learns a new setting.
"""

from __future__ import annotations

import difflib
from collections.abc import Mapping
from typing import Annotated, Any, Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    StrictBool,
    StrictInt,
    StrictStr,
    ValidationError,
    field_validator,
)

from .errors import ConfigError


class _Settings(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


PositiveInt = Annotated[StrictInt, Field(gt=0)]
Threads = Annotated[StrictInt, Field(ge=0, description="0 = the library decides")]


class BatchingSettings(_Settings):
    """``edgepack/runtime/batching.py``: the HTTP server's dynamic batcher, for any backend."""

    max_batch_size: Annotated[StrictInt, Field(ge=1, le=4096)]
    max_queue_delay_ms: Annotated[float, Field(ge=0, le=1000, allow_inf_nan=False)]
    max_concurrent_batches: Annotated[StrictInt, Field(ge=1, le=64)] = 1


class _BackendSettings(_Settings):
    # Opt-in dynamic batching of concurrent requests (server adapters); the backend never sees it.
    batching: BatchingSettings | None = None


class LiteRTSettings(_BackendSettings):
    """``edgepack/runtime/backends/litert.py``: the TFLite interpreter's options."""

    # num_threads; LiteRT takes no 0 (its default is used when the setting is absent).
    threads: PositiveInt | None = None


# Execution providers ONNX Runtime ships (1.2x); a name close to one of these but not equal
# is a typo (the runtime would drop it with a warning and fall back to the CPU).
ONNX_PROVIDERS = (
    "CPUExecutionProvider",
    "CUDAExecutionProvider",
    "TensorrtExecutionProvider",
    "NvTensorRTRTXExecutionProvider",
    "OpenVINOExecutionProvider",
    "DmlExecutionProvider",
    "CoreMLExecutionProvider",
    "ROCMExecutionProvider",
    "MIGraphXExecutionProvider",
    "QNNExecutionProvider",
    "XnnpackExecutionProvider",
    "NnapiExecutionProvider",
    "ACLExecutionProvider",
    "ArmNNExecutionProvider",
    "DnnlExecutionProvider",
    "CANNExecutionProvider",
    "VitisAIExecutionProvider",
    "AzureExecutionProvider",
    "WebGpuExecutionProvider",
)
_OPT_LEVELS = ("disable", "basic", "extended", "all")


_EP = "ExecutionProvider"


def _provider_name(name: str) -> str:
    if name in ONNX_PROVIDERS:
        return name
    if name.endswith(_EP):
        # Compare what precedes the common suffix, or every name looks alike.
        heads = {p.removesuffix(_EP).lower(): p for p in ONNX_PROVIDERS}
        close = difflib.get_close_matches(name.removesuffix(_EP).lower(), heads, n=1, cutoff=0.75)
        if close:
            raise ValueError(f"unknown execution provider {name!r}; did you mean {heads[close[0]]!r}?")
        return name  # a provider newer than this list: the runtime drops it if its build lacks it
    close = difflib.get_close_matches(name, ONNX_PROVIDERS, n=1, cutoff=0.85)
    if close:
        raise ValueError(f"unknown execution provider {name!r}; did you mean {close[0]!r}?")
    raise ValueError(
        f"{name!r} is not an ONNX Runtime execution provider name "
        "(e.g. TensorrtExecutionProvider, CUDAExecutionProvider, CPUExecutionProvider)"
    )


class ProviderSpec(_Settings):
    """One execution provider in the chain: its name and provider options (strings to ORT)."""

    name: StrictStr
    options: dict[StrictStr, Any] = Field(default_factory=dict)

    @field_validator("name")
    @classmethod
    def _known_name(cls, v: str) -> str:
        return _provider_name(v)

    @field_validator("options")
    @classmethod
    def _scalars(cls, v: dict[str, Any]) -> dict[str, Any]:
        for key, value in v.items():
            # ONNX Runtime takes provider options as strings: only scalars convert faithfully.
            if not isinstance(value, bool | int | float | str):
                raise ValueError(f"option {key!r} must be a string, number or boolean, got {value!r}")
        return v


class OnnxRuntimeSettings(_BackendSettings):
    """``edgepack/runtime/backends/onnxruntime.py``: provider chain, threads, graph optimization."""

    # Tried in order; each "Name" or {name, options}. CPUExecutionProvider always ends the chain.
    providers: list[ProviderSpec] | None = None
    # What the TensorRT engine cache key records, e.g. fp16+int8 (default: from the TRT flags).
    precision: StrictStr | None = None
    threads: Threads | None = None  # intra_op_num_threads
    graph_optimization_level: StrictStr = "all"

    @field_validator("providers", mode="before")
    @classmethod
    def _names_as_specs(cls, v: Any) -> Any:
        # A bare name is short for {name: Name}, as the runtime reads it.
        if isinstance(v, list):
            return [{"name": entry} if isinstance(entry, str) else entry for entry in v]
        return v

    @field_validator("graph_optimization_level")
    @classmethod
    def _level(cls, v: str) -> str:
        if v.lower() not in _OPT_LEVELS:  # the runtime reads it case-insensitively
            raise ValueError(f"expected one of {', '.join(_OPT_LEVELS)}, got {v!r}")
        return v


_HINTS = ("LATENCY", "THROUGHPUT", "CUMULATIVE_THROUGHPUT")
_DEVICES = ("AUTO", "MULTI", "HETERO", "BATCH", "CPU", "GPU", "NPU")


class OpenVinoSettings(_BackendSettings):
    """``edgepack/runtime/backends/openvino.py``: device, precision, hint, cache, threads, batch."""

    # CPU, GPU, GPU.1, NPU, AUTO, or a virtual device such as AUTO:NPU,GPU,CPU.
    device: StrictStr = "AUTO"
    device_fallback: StrictBool = True
    # null leaves the device's default (bf16 on AMX CPUs, f16 on GPUs).
    inference_precision: Literal["f32", "f16", "bf16"] | None = "f32"
    performance_hint: StrictStr | None = None
    cache_dir: StrictStr | None = None
    threads: Threads | None = None  # INFERENCE_NUM_THREADS
    # dynamic: a static leading axis is made dynamic; keep: as the model has it; or a fixed batch.
    batch: Any = "dynamic"

    @field_validator("device")
    @classmethod
    def _device(cls, v: str) -> str:
        base, _, rest = v.strip().upper().partition(":")
        for part in [base, *(p for p in rest.split(",") if p)]:
            if part.split(".")[0] not in _DEVICES:
                raise ValueError(f"unknown OpenVINO device {part!r}; expected one of {', '.join(_DEVICES)}")
        return v

    @field_validator("batch")
    @classmethod
    def _batch(cls, v: Any) -> Any:
        fixed = isinstance(v, int) and not isinstance(v, bool) and v > 0
        if not (v is None or v in ("dynamic", "keep") or fixed):
            raise ValueError(f"expected 'dynamic', 'keep' or a positive integer, got {v!r}")
        return v

    @field_validator("performance_hint")
    @classmethod
    def _hint(cls, v: str | None) -> str | None:
        if v is not None and v.upper() not in _HINTS:  # the runtime reads it case-insensitively
            raise ValueError(f"expected one of {', '.join(_HINTS)}, got {v!r}")
        return v


SETTINGS_MODELS: dict[str, type[_Settings]] = {
    "litert": LiteRTSettings,
    "onnxruntime": OnnxRuntimeSettings,
    "openvino": OpenVinoSettings,
}


def parse_runtime_settings(backend: str, settings: Mapping[str, Any], where: str) -> BaseModel:
    """``settings`` as ``backend``'s typed model; ``ConfigError`` naming the field otherwise.

    ``where`` names the settings, e.g.
    ``"edgepack.yaml: targets.lambda-x86_64.overrides.runtime_settings"``; an error appends
    the field path: ``....runtime_settings.thread: unknown field; did you mean 'threads'?``.
    """
    model = SETTINGS_MODELS.get(backend)
    if model is None:
        raise ConfigError(f"unknown runtime backend {backend!r} (known: {', '.join(SETTINGS_MODELS)})")
    if not isinstance(settings, Mapping):
        raise ConfigError(f"expected a mapping of {backend} settings", where=where)
    try:
        return model.model_validate(dict(settings))
    except ValidationError as e:
        raise _settings_error(e, model, where) from e


def check_runtime_settings(backend: str, settings: Mapping[str, Any], where: str) -> None:
    """Refuse settings ``backend`` does not take or values it would refuse at load time."""
    parse_runtime_settings(backend, settings, where)


def _settings_error(e: ValidationError, model: type[BaseModel], where: str) -> ConfigError:
    err = e.errors()[0]
    loc = list(err["loc"])
    path = ".".join(str(p) for p in loc)
    msg = err["msg"].removeprefix("Value error, ")
    if err["type"] == "extra_forbidden":
        # The unknown key sits in the top model or in a provider entry.
        fields = (ProviderSpec if len(loc) > 1 and loc[0] == "providers" else model).model_fields
        msg = "unknown field" + _did_you_mean(str(loc[-1]), list(fields))
    elif err["type"] == "missing":
        msg = "required field is missing"
    return ConfigError(msg, where=f"{where}.{path}" if path else where)


def _did_you_mean(word: str, choices: list[str]) -> str:
    close = difflib.get_close_matches(word, choices, n=1, cutoff=0.6)
    known = f" (known: {', '.join(choices)})"
    return f"; did you mean {close[0]!r}?{known}" if close else known
