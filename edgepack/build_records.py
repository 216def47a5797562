"""What a target's manifest and attestation record about how it was built."""

from __future__ import annotations

from typing import Any

from . import __version__
from .build_inputs import BuildInputs
from .cache import sha256_file
from .targets import TargetProfile


def trt_cache_record(profile: TargetProfile, model_sha256: str) -> dict[str, Any]:
    """How the device keys its TensorRT engine cache, so no cache serves another model's engine.

    The TensorRT version and the GPU's compute capability are only known on the device,
    which completes the key at load time (``trt_cache.engine_cache_key``)."""
    from .runtime.trt_cache import precision_from_trt_options

    for provider in profile.runtime_settings.get("providers") or []:
        options = provider.get("options") or {}
        if provider.get("name") == "TensorrtExecutionProvider" and options.get("trt_engine_cache_enable"):
            return {
                "trt_engine_cache": {
                    "model_sha256": model_sha256,
                    "precision": profile.runtime_settings.get("precision")
                    or precision_from_trt_options(options),
                    "trt_version": "detected on the device",
                    "compute_capability": "detected on the device",
                    "key": "sha256 over model_sha256, trt_version, compute_capability, precision",
                    "base_dir": options.get("trt_engine_cache_path"),
                }
            }
    return {}


def provenance(shared: BuildInputs, profile: TargetProfile, vendored: Any) -> Any:
    from .signing.attestation import Provenance

    project = shared.project
    data = {}
    if shared.calibration is not None:
        data["calibration"] = shared.calibration.digest
    if shared.validation is not None:
        data["validation"] = shared.validation.digest
    return Provenance(
        project=project.name,
        version=project.version,
        target=profile.name,
        model_name=project.model_path.name,
        model_sha256=shared.model_sha256,
        config_sha256=sha256_file(project.config_path),
        data_sha256=data,
        packages=[p.to_dict() for p in vendored.packages],
        edgepack_version=__version__,
        epoch=shared.epoch,
    )
