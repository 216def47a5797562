"""Which pass chains a project's targets may run: checked from the config alone, before
anything is loaded or converted."""

from __future__ import annotations

from .config import Project
from .errors import ConfigError
from .variants import target_thresholds

_BACKEND_FORMAT = {"litert": "tflite", "onnxruntime": "onnx", "openvino": "openvino"}


def check_pass_chains(project: Project) -> None:
    """Check every variant's passes exist, take the format they are given, parse their
    configs, and end with a model the target's backend runs, before anything runs."""
    from .passes import get_pass

    for profile in project.targets:
        target_thresholds(project, profile)  # a bad per-target threshold is refused before any work
        runs = _BACKEND_FORMAT[profile.backend]
        for vi, variant in enumerate(profile.variants):
            fmt: str | None = profile.source_format  # load_target resolved it (model.format or the path)
            where = f"target {profile.name}: variants.{vi}({variant.name})"
            for pi, spec in enumerate(variant.passes):
                p = get_pass(spec.name)
                p.parse_config(spec.config, f"{where}.passes.{pi}")
                if fmt not in p.accepts:
                    raise ConfigError(
                        f"a {fmt} model has no path to this target's {profile.backend} runtime: "
                        f"pass {spec.name} takes {', '.join(sorted(p.accepts))} models",
                        where=f"{where}.passes.{pi}",
                    )
                fmt = p.produces
            if fmt != runs:
                raise ConfigError(
                    f"variant {variant.name} ends with a {fmt} model; "
                    f"the target's {profile.backend} runtime runs {runs} models",
                    where=where,
                )
