"""Target profiles: data in ``targets/*.yaml``, validated into typed models.

A profile names the passes to run (as variants tried in order), the backend and
runtime packages with the platform they are vendored for, the wrapper template set,
the packager and the limits. The config may override some fields per target.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from .errors import ConfigError
from .lambda_runtimes import LAMBDA_RUNTIMES
from .resources import targets_dir

Arch = Literal["x86_64", "aarch64"]


class _Frozen(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class PassSpec(_Frozen):
    name: str
    config: dict[str, Any] = Field(default_factory=dict)


class Variant(_Frozen):
    """One way to optimize the model; variants are tried in order until one passes the gate."""

    name: str
    passes: list[PassSpec]


SourceFormat = Literal["keras", "savedmodel", "onnx", "tflite"]
Backend = Literal["litert", "onnxruntime", "openvino"]


class SourcePlan(_Frozen):
    """How a target takes models of one source format, where that differs from its default plan.

    The fields given replace the profile's own (an ONNX model on Lambda runs on ONNX Runtime,
    with its own variants, packages and trim rules); fields not given keep the profile's."""

    backend: Backend | None = None
    variants: list[Variant] | None = Field(default=None, min_length=1)
    runtime_packages: list[str] | None = None
    runtime_settings: dict[str, Any] | None = None
    trim: list[str] | None = None
    note: str = ""


class Limits(_Frozen):
    zipped_bytes: int | None = None
    unzipped_bytes: int | None = None


class Resources(_Frozen):
    cpu: str = Field(pattern=r"^[0-9]+(\.[0-9]+)?m?$")
    memory: str = Field(pattern=r"^[0-9]+(Ki|Mi|Gi)$")


class ResourceSpec(_Frozen):
    requests: Resources = Field(default_factory=lambda: Resources(cpu="1", memory="512Mi"))
    limits: Resources = Field(default_factory=lambda: Resources(cpu="2", memory="1Gi"))


class ContainerSpec(_Frozen):
    """How a container target's image serves: its port, user and Kubernetes resources."""

    port: int = Field(default=8080, ge=1, le=65535)
    user: str = Field(default="10001:10001", pattern=r"^[0-9]+(:[0-9]+)?$")
    resources: ResourceSpec = Field(default_factory=ResourceSpec)


class TargetProfile(_Frozen):
    name: str
    description: str = ""
    kind: Literal["lambda", "container", "device"]
    arch: Arch
    python: str = Field(default="3.12", pattern=r"^3\.\d+$")
    lambda_runtime: str | None = None
    glibc: str | None = Field(default=None, pattern=r"^2\.\d+$")  # newest glibc the target has
    backend: Backend
    variants: list[Variant] = Field(min_length=1)
    # Plans for source formats the default plan does not take (see SourcePlan).
    sources: dict[SourceFormat, SourcePlan] = Field(default_factory=dict)
    # What load_target resolved: the model's source format and the plan it took
    # ("default" or "sources.<format>"); recorded in the manifest and the summary.
    source_format: SourceFormat | None = None
    plan: str = "default"
    # Fidelity thresholds for this target, merged over the project's validation.thresholds.
    thresholds: dict[str, float | None] = Field(default_factory=dict)
    runtime_packages: list[str] = Field(default_factory=list)
    # Packages the device itself provides (e.g. Jetson's GPU build of ONNX Runtime): not vendored,
    # recorded in the manifest as a requirement.
    device_packages: list[str] = Field(default_factory=list)
    runtime_settings: dict[str, Any] = Field(default_factory=dict)
    templates: str
    packager: Literal["lambda-zip", "lambda-image", "oci-image", "ota-bundle"]
    limits: Limits = Field(default_factory=Limits)
    container: ContainerSpec | None = None  # kind: container only
    trim: list[str] = Field(default_factory=list)  # glob patterns, relative to the vendored root

    @model_validator(mode="after")
    def _lambda_runtime_fixes_python(self) -> TargetProfile:
        if self.kind == "lambda":
            if self.lambda_runtime is None:
                raise ValueError("lambda targets need lambda_runtime")
            if self.lambda_runtime not in LAMBDA_RUNTIMES:
                raise ValueError(
                    f"lambda_runtime {self.lambda_runtime!r} is not a Python runtime Lambda offers "
                    f"({', '.join(LAMBDA_RUNTIMES)})"
                )
            python = self.lambda_runtime.removeprefix("python")
            glibc = LAMBDA_RUNTIMES[self.lambda_runtime]
            if self.python != python or self.glibc != glibc:
                # Lambda's runtime decides the interpreter and the OS: derive, don't trust.
                object.__setattr__(self, "python", python)
                object.__setattr__(self, "glibc", glibc)
        elif self.glibc is None:
            raise ValueError("non-lambda targets need glibc (the newest glibc the target OS has)")
        return self

    @property
    def python_tag(self) -> str:
        return "cp" + self.python.replace(".", "")

    @property
    def glibc_version(self) -> tuple[int, int]:
        assert self.glibc is not None
        major, minor = self.glibc.split(".")
        return int(major), int(minor)

    @property
    def platform_tags(self) -> list[str]:
        """Every manylinux tag the target accepts, newest first (pip does not widen them itself)."""
        _, max_minor = self.glibc_version
        tags = [f"manylinux_2_{minor}_{self.arch}" for minor in range(max_minor, 16, -1)]
        tags.append(f"manylinux2014_{self.arch}")
        return tags


# Fields a project may override per target. Everything else defines what the target *is*.
OVERRIDABLE = frozenset(
    {
        "lambda_runtime",
        "python",
        "glibc",
        "variants",
        "runtime_packages",
        "runtime_settings",
        "limits",
        "container",
        "trim",
        "thresholds",
        "sources",
    }
)

_NAME_RE = re.compile(r"^[a-z0-9][a-z0-9_.-]*$")


def available_targets() -> list[str]:
    return sorted(p.stem for p in targets_dir().glob("*.yaml"))


def _read_profile(name: str) -> dict[str, Any]:
    if not _NAME_RE.match(name):
        raise ConfigError(f"invalid target name {name!r}")
    path = targets_dir() / f"{name}.yaml"
    if not path.is_file():
        raise ConfigError(f"unknown target {name!r}; available: {', '.join(available_targets())}")
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except yaml.YAMLError as e:
        raise ConfigError(f"not valid YAML: {e}", where=str(path)) from e
    if not isinstance(data, dict):
        raise ConfigError("a target profile must be a mapping", where=str(path))
    return data


def _validation_message(e: ValidationError, where: str) -> ConfigError:
    err = e.errors()[0]
    loc = ".".join(str(p) for p in err["loc"])
    msg = err["msg"].removeprefix("Value error, ")
    return ConfigError(msg, where=f"{where}: {loc}" if loc else where)


def load_target(
    name: str,
    overrides: dict[str, Any] | None = None,
    where: str = "",
    source_format: str | None = None,
) -> TargetProfile:
    """Load a shipped profile, take its plan for the model's source format, then apply the
    project's overrides (dicts merge, lists replace; a variant given by name is the plan's own)."""
    data = _read_profile(name)
    origin = str(targets_dir() / f"{name}.yaml")
    for key, value in (overrides or {}).items():
        if key not in OVERRIDABLE:
            raise ConfigError(
                f"field {key!r} cannot be overridden (allowed: {', '.join(sorted(OVERRIDABLE))})",
                where=where or origin,
            )
        if key == "sources" and isinstance(value, dict):
            shipped = data.get(key) or {}
            merged = {fmt: {**shipped.get(fmt, {}), **(plan or {})} for fmt, plan in value.items()}
            data[key] = {**shipped, **merged}
    plan = (data.get("sources") or {}).get(source_format) if source_format else None
    if isinstance(plan, dict):
        for key in ("backend", "variants", "runtime_packages", "runtime_settings", "trim"):
            if plan.get(key) is not None:
                data[key] = plan[key]
        data["plan"] = f"sources.{source_format}"
    if source_format is not None:
        data["source_format"] = source_format
    for key, value in (overrides or {}).items():
        if key == "sources":
            continue
        if key == "variants" and isinstance(value, list):
            value = _resolve_variant_refs(value, data.get("variants") or [], where or origin)
        if isinstance(value, dict) and isinstance(data.get(key), dict):
            data[key] = {**data[key], **value}
        else:
            data[key] = value
        origin = where or origin
    try:
        return TargetProfile.model_validate(data)
    except ValidationError as e:
        raise _validation_message(e, origin) from e


def _resolve_variant_refs(variants: list[Any], planned: list[Any], where: str) -> list[Any]:
    """A variant list may name the plan's own variants (to reorder, drop or extend the chain
    without restating them) beside full ``{name, passes}`` entries."""
    by_name = {v.get("name"): v for v in planned if isinstance(v, dict)}
    resolved = []
    for i, item in enumerate(variants):
        if isinstance(item, str):
            if item not in by_name:
                raise ConfigError(
                    f"no variant {item!r} in this target's plan (has: {', '.join(map(str, by_name))})",
                    where=f"{where}.variants.{i}",
                )
            resolved.append(by_name[item])
        else:
            resolved.append(item)
    return resolved


def profile_path(name: str) -> Path:
    return targets_dir() / f"{name}.yaml"
