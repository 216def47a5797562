"""``edgepack.yaml``: the file as written, and the build resolved from it.

``ProjectFile`` mirrors the YAML (unknown keys rejected, errors name the field path).
``Project`` is the resolved form with paths made absolute and target profiles loaded;
only ``Project`` travels downstream.
"""

from __future__ import annotations

import difflib
import re
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from .backend_settings import check_runtime_settings
from .errors import ConfigError
from .hooks_check import check_hooks
from .targets import TargetProfile, load_target, profile_path

CONFIG_FILE = "edgepack.yaml"
_VERSION_RE = re.compile(r"^\d+(\.\d+){0,3}$")


class _Strict(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class ModelSpec(_Strict):
    path: str = Field(description="model file or SavedModel directory, relative to the project")
    format: Literal["keras", "savedmodel", "onnx", "tflite"] | None = Field(
        default=None, description="inferred from the path when omitted"
    )
    inputs: list[str] | None = Field(
        default=None, description="names for the model's inputs, in order (renames them everywhere)"
    )
    outputs: list[str] | None = Field(default=None, description="names for the model's outputs, in order")
    classes: list[str] | None = Field(
        default=None,
        min_length=1,
        description="class names in the order of the model's class scores; validation labels may then "
        "be these names",
    )

    @field_validator("classes")
    @classmethod
    def _unique_classes(cls, v: list[str] | None) -> list[str] | None:
        if v is None:
            return v
        if any(not name.strip() for name in v):
            raise ValueError("class names must not be empty")
        repeated = sorted({name for name in v if v.count(name) > 1})
        if repeated:
            raise ValueError(f"class names must be unique: {', '.join(map(repr, repeated))} repeated")
        return v


class DataSpec(_Strict):
    path: str | None = Field(default=None, description=".npz (arrays keyed by input name) or .npy file")
    generator: str | None = Field(default=None, description="'module:function' yielding input batches")
    labels: str | None = Field(default=None, description="key of the label array in the .npz")
    samples: int | None = Field(default=None, gt=0, description="use at most this many samples")

    @field_validator("generator")
    @classmethod
    def _module_function(cls, v: str | None) -> str | None:
        if v is not None and not re.match(r"^[A-Za-z_][\w.]*:[A-Za-z_]\w*$", v):
            raise ValueError("expected 'module:function'")
        return v

    @model_validator(mode="after")
    def _one_source(self) -> DataSpec:
        if (self.path is None) == (self.generator is None):
            raise ValueError("give exactly one of path or generator")
        return self


class CalibrationSpec(DataSpec):
    """Calibration data: a ``DataSpec`` that refuses constant data unless told otherwise."""

    allow_constant: bool = Field(
        default=False,
        description="accept calibration data that is constant or whose samples are (nearly) identical; "
        "int8 ranges calibrated on it fit nothing else, so this is refused by default",
    )


class Thresholds(_Strict):
    """Fidelity gate; every threshold given must hold for a variant to ship."""

    min_top1_agreement: float | None = Field(default=0.98, ge=0, le=1)
    max_accuracy_drop: float | None = Field(default=0.01, ge=0, le=1)
    min_cosine_similarity: float | None = Field(default=0.99, ge=-1, le=1)
    max_abs_error: float | None = Field(default=None, ge=0)
    max_mean_abs_error: float | None = Field(default=None, ge=0)


class ValidationSpec(DataSpec):
    thresholds: Thresholds = Field(default_factory=Thresholds)


class TargetSpec(_Strict):
    name: str
    overrides: dict[str, Any] = Field(default_factory=dict)


class SigningSpec(_Strict):
    key: str | None = Field(default=None, description="Ed25519 private key file (PEM)")
    kms_key_id: str | None = Field(default=None, description="AWS KMS key id or ARN (ECC_NIST_P256)")

    @model_validator(mode="after")
    def _one_key(self) -> SigningSpec:
        if (self.key is None) == (self.kms_key_id is None):
            raise ValueError("give exactly one of key or kms_key_id")
        return self


class TelemetrySpec(_Strict):
    enabled: bool = True
    namespace: str = Field(default="edgepack", pattern=r"^[A-Za-z0-9_./#:-]{1,255}$")
    service: str | None = None


class ContainerProjectSpec(_Strict):
    base_image: str | None = Field(
        default=None,
        description="base image for container targets: an OCI layout directory or OCI archive "
        "(e.g. written by `edgepack base-image`), relative to the project; `--base-image` overrides it",
    )
    tag: str | None = Field(
        default=None,
        pattern=r"^[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}$",
        description="image tag (default: the project's version)",
    )


class FunctionSpec(_Strict):
    """How Lambda runs the function: recorded in the manifest of Lambda artifacts, read by
    ``edgepack deploy lambda`` and the rendered serverless.yml / SAM template."""

    name: str | None = Field(
        default=None,
        pattern=r"^[A-Za-z0-9_-]{1,64}$",
        description="Lambda function name (default: the project name)",
    )
    memory_mb: int = Field(default=1024, ge=128, le=10240)
    timeout_s: int = Field(default=10, ge=1, le=900)
    environment: dict[str, str] = Field(default_factory=dict)
    snapstart: bool = Field(
        default=False,
        description="SnapStart on published versions (python3.12+); the model is warmed before the snapshot",
    )
    url_auth: Literal["AWS_IAM", "NONE"] = Field(
        default="AWS_IAM", description="function URL auth; NONE lets anyone on the internet call it"
    )
    package: Literal["zip", "image"] = Field(
        default="zip",
        description="image: Lambda's container-image form (an OCI image whose entrypoint is awslambdaric, "
        "up to 10 GB) for functions too big for a zip; needs a base image",
    )
    image_repository: str | None = Field(
        default=None,
        pattern=r"^[0-9]{12}\.dkr\.ecr\.[a-z0-9-]+\.amazonaws\.com/[a-z0-9][a-z0-9._/-]*$",
        description="ECR repository the image form is pushed to; the deploy files name it",
    )
    layer: bool = Field(
        default=False,
        description="put the vendored runtime packages in a Lambda layer zip of their own, so a "
        "model-only redeploy uploads only the small function zip",
    )

    @model_validator(mode="after")
    def _image_form_alone(self) -> FunctionSpec:
        if self.package == "image" and (self.layer or self.snapstart):
            raise ValueError("package: image takes neither layer nor snapstart (zips only)")
        return self

    @field_validator("environment")
    @classmethod
    def _environment_names(cls, v: dict[str, str]) -> dict[str, str]:
        for key in v:
            if not re.fullmatch(r"[A-Za-z][A-Za-z0-9_]*", key) or key.startswith("AWS_"):
                raise ValueError(f"{key!r} is not a Lambda environment variable name you may set")
        return v


class ProjectFile(_Strict):
    """``edgepack.yaml`` exactly as written."""

    name: str = Field(pattern=r"^[a-z0-9][a-z0-9-]{0,62}$")
    version: str = Field(description="monotonic release version, e.g. 1.4.0; devices refuse to go down")
    model: ModelSpec
    calibration: CalibrationSpec | None = None
    validation: ValidationSpec | None = None
    targets: list[str | TargetSpec] = Field(min_length=1)
    signing: SigningSpec | None = None
    telemetry: TelemetrySpec = Field(default_factory=TelemetrySpec)
    hooks: str | None = Field(default=None, description="Python file or module of user hooks, packaged in")
    container: ContainerProjectSpec = Field(default_factory=ContainerProjectSpec)
    function: FunctionSpec = Field(default_factory=FunctionSpec)

    @field_validator("version")
    @classmethod
    def _numeric_version(cls, v: str) -> str:
        if not _VERSION_RE.match(v):
            raise ValueError("expected a numeric version like 1.4.0")
        return v


@dataclass(frozen=True)
class Project:
    """The resolved project: absolute paths, loaded target profiles."""

    root: Path
    config_path: Path
    file: ProjectFile
    targets: tuple[TargetProfile, ...]

    @property
    def name(self) -> str:
        return self.file.name

    @property
    def version(self) -> str:
        return self.file.version

    @property
    def model_path(self) -> Path:
        return self.resolve(self.file.model.path)

    @property
    def classes(self) -> tuple[str, ...] | None:
        """The model's class names (``model.classes``), in score order; ``None`` when not given."""
        classes = self.file.model.classes
        return tuple(classes) if classes is not None else None

    def resolve(self, relative: str) -> Path:
        return (self.root / relative).resolve()

    def target(self, name: str) -> TargetProfile:
        for t in self.targets:
            if t.name == name:
                return t
        raise ConfigError(f"target {name!r} is not in the project (has: {', '.join(self.target_names)})")

    @property
    def target_names(self) -> tuple[str, ...]:
        return tuple(t.name for t in self.targets)


def version_key(version: str) -> tuple[int, ...]:
    """Comparable form of a project version (1.10.0 > 1.9.0)."""
    parts = [int(p) for p in version.split(".")]
    return tuple(parts + [0] * (4 - len(parts)))


def _field_error(e: ValidationError, where: str, sep: str = ": ") -> ConfigError:
    # In a union (e.g. a target as a name or a mapping) the deepest error is the informative one.
    err = max(e.errors(), key=lambda x: len(x["loc"]))
    loc = ".".join(str(p) for p in err["loc"] if not (isinstance(p, str) and p in {"str", "TargetSpec"}))
    msg = err["msg"].removeprefix("Value error, ")
    if err["type"] == "extra_forbidden":
        msg = "unknown field"
    elif err["type"] == "missing":
        msg = "required field is missing"
    return ConfigError(msg, where=f"{where}{sep}{loc}" if loc else where)


def merge_thresholds(base: Thresholds, override: Mapping[str, Any], where: str) -> Thresholds:
    """``base`` with the thresholds ``override`` gives replaced (``null`` turns one off).

    ``where`` names the override in the config, e.g.
    ``"edgepack.yaml: targets.rpi-tflite.overrides.thresholds"``; a bad value or unknown
    key raises ``ConfigError`` naming ``<where>.<field>``.
    """
    if not isinstance(override, Mapping):
        raise ConfigError(
            f"expected a mapping of thresholds ({', '.join(Thresholds.model_fields)})", where=where
        )
    unknown = [k for k in override if k not in Thresholds.model_fields]
    if unknown:
        close = difflib.get_close_matches(str(unknown[0]), list(Thresholds.model_fields), n=1)
        hint = f"; did you mean {close[0]!r}?" if close else f" (known: {', '.join(Thresholds.model_fields)})"
        raise ConfigError(f"unknown field{hint}", where=f"{where}.{unknown[0]}")
    try:
        return Thresholds.model_validate({**base.model_dump(), **override})
    except ValidationError as e:
        raise _field_error(e, where, sep=".") from e


def parse_project_file(text: str, where: str) -> ProjectFile:
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as e:
        mark = getattr(e, "problem_mark", None)
        line = f" (line {mark.line + 1})" if mark is not None else ""
        raise ConfigError(f"not valid YAML{line}", where=where) from e
    if not isinstance(data, dict):
        raise ConfigError("expected a mapping at the top level", where=where)
    try:
        return ProjectFile.model_validate(data)
    except ValidationError as e:
        raise _field_error(e, where) from e


def load_project(path: Path | str, only_targets: list[str] | None = None) -> Project:
    """Read and resolve ``edgepack.yaml`` (``path`` may be the file or the project directory)."""
    path = Path(path)
    config_path = path / CONFIG_FILE if path.is_dir() else path
    if not config_path.is_file():
        raise ConfigError(f"no {CONFIG_FILE} found", where=str(path))
    where = str(config_path)
    project_file = parse_project_file(config_path.read_text(encoding="utf-8"), where)

    specs = [TargetSpec(name=t) if isinstance(t, str) else t for t in project_file.targets]
    seen: set[str] = set()
    for i, spec in enumerate(specs):
        if spec.name in seen:
            raise ConfigError(f"target {spec.name!r} listed twice", where=f"{where}: targets.{i}")
        seen.add(spec.name)
    if only_targets:
        by_name = {s.name: s for s in specs}
        # A target named on the command line but not in the file is built with its profile's defaults.
        specs = [by_name.get(n, TargetSpec(name=n)) for n in only_targets]
    root = config_path.parent.resolve()
    model_path = (root / project_file.model.path).resolve()
    if not model_path.exists():
        raise ConfigError(f"model file not found: {model_path}", where=f"{where}: model.path")
    # A profile may plan differently per source format (an ONNX model runs on ONNX Runtime).
    source_format = project_file.model.format or _source_format(model_path, where)
    targets = tuple(
        load_target(
            s.name, s.overrides, where=f"{where}: targets.{s.name}.overrides", source_format=source_format
        )
        for s in specs
    )
    for spec, profile in zip(specs, targets, strict=True):
        _check_runtime_settings(spec, profile, where)
    project = Project(root=root, config_path=config_path.resolve(), file=project_file, targets=targets)
    if not project.model_path.exists():
        raise ConfigError(f"model file not found: {project.model_path}", where=f"{where}: model.path")
    if project_file.hooks is not None:
        check_hooks(project.resolve(project_file.hooks), f"{where}: hooks")
    return project


def _check_runtime_settings(spec: TargetSpec, profile: TargetProfile, where: str) -> None:
    """Check a target's runtime_settings against its backend, blaming the file that set them.

    The project's own settings (its overrides) are checked alone first, against the project
    file; what is left wrong after the merge came from the shipped profile. Every field of
    the settings models is optional, so a partial override checks on its own.
    """
    override_where = f"{where}: targets.{spec.name}.overrides"
    plan = getattr(profile, "plan", "default")  # "default" or "sources.<format>"
    written = [(spec.overrides.get("runtime_settings"), f"{override_where}.runtime_settings")]
    if plan != "default":
        sources = spec.overrides.get("sources")
        source = sources.get(plan.removeprefix("sources.")) if isinstance(sources, Mapping) else None
        if isinstance(source, Mapping):
            written.append((source.get("runtime_settings"), f"{override_where}.{plan}.runtime_settings"))
    for settings, settings_where in written:
        if isinstance(settings, Mapping):
            check_runtime_settings(profile.backend, settings, settings_where)
    shipped_where = _profile_settings_where(profile.name, plan)
    check_runtime_settings(profile.backend, profile.runtime_settings, shipped_where)


def _profile_settings_where(name: str, plan: str) -> str:
    path = profile_path(name)
    field_path = "runtime_settings"
    if plan != "default":
        try:
            raw = yaml.safe_load(path.read_text(encoding="utf-8"))
            source = raw["sources"][plan.removeprefix("sources.")]
            if isinstance(source, Mapping) and source.get("runtime_settings") is not None:
                field_path = f"{plan}.runtime_settings"
        except (OSError, yaml.YAMLError, KeyError, TypeError):
            pass  # the profile loaded a moment ago; name the top-level field if it cannot be read now
    return f"{path}: {field_path}"


def _source_format(model_path: Path, where: str) -> str:
    from .errors import ModelError
    from .model.loader import infer_format

    try:
        return infer_format(model_path)
    except ModelError as e:
        raise ConfigError(e.message, where=f"{where}: model.path") from e
