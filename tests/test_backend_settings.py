"""runtime_settings typed per backend: typos and bad values refused when the config loads."""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

import pytest
import yaml
from click.testing import CliRunner

from edgepack.backend_settings import SETTINGS_MODELS, check_runtime_settings, parse_runtime_settings
from edgepack.config import load_project
from edgepack.errors import EXIT_BAD_INPUT, ConfigError
from edgepack.runtime.backends import litert, onnxruntime, openvino
from edgepack.targets import available_targets, profile_path

WHERE = "edgepack.yaml: targets.lambda-x86_64.overrides.runtime_settings"


def refused(backend: str, settings: dict[str, Any]) -> str:
    with pytest.raises(ConfigError) as info:
        check_runtime_settings(backend, settings, WHERE)
    assert info.value.exit_code == EXIT_BAD_INPUT
    hint = info.value.hint()
    assert "\n" not in hint
    return hint


def _shipped_settings() -> list[tuple[str, str, dict[str, Any]]]:
    """(where, backend, settings) of every shipped profile and every per-format plan in it."""
    found = []
    for name in available_targets():
        raw = yaml.safe_load(profile_path(name).read_text())
        found.append((name, raw["backend"], raw.get("runtime_settings") or {}))
        for fmt, plan in (raw.get("sources") or {}).items():
            backend = plan.get("backend") or raw["backend"]
            settings = plan.get("runtime_settings")
            if settings is None:
                settings = raw.get("runtime_settings") or {}
            found.append((f"{name} sources.{fmt}", backend, settings))
    return found


@pytest.mark.parametrize(("where", "backend", "settings"), _shipped_settings(), ids=lambda v: str(v)[:40])
def test_every_shipped_profile_passes(where: str, backend: str, settings: dict[str, Any]) -> None:
    check_runtime_settings(backend, settings, where)


@pytest.mark.parametrize(
    ("backend", "runtime"),
    [("litert", litert.SETTINGS), ("onnxruntime", onnxruntime.SETTINGS), ("openvino", openvino.SETTINGS)],
)
def test_models_take_what_each_runtime_backend_takes(backend: str, runtime: Any) -> None:
    """The build-side models and the runtime's own lists of settings stay in step
    (``batching`` is the server's dynamic batcher, read by runtime/batching.py, for every backend)."""
    assert set(SETTINGS_MODELS[backend].model_fields) == set(runtime) | {"batching"}


@pytest.mark.parametrize(
    ("batching", "field"),
    [
        ({"max_batch_size": 0, "max_queue_delay_ms": 2}, "batching.max_batch_size"),
        ({"max_batch_size": 8, "max_queue_delay_ms": -1}, "batching.max_queue_delay_ms"),
        ({"max_batch_size": 8, "max_queue_delay_ms": 2, "max_delay": 1}, "batching.max_delay"),
        ({"max_batch_size": "8", "max_queue_delay_ms": 2}, "batching.max_batch_size"),
    ],
)
def test_bad_batching_settings_are_refused_naming_the_field(batching: dict[str, Any], field: str) -> None:
    with pytest.raises(ConfigError) as excinfo:
        check_runtime_settings("onnxruntime", {"batching": batching}, "runtime_settings")
    assert excinfo.value.hint().startswith(f"runtime_settings.{field}:")


def test_batching_settings_the_build_accepts_load_in_the_runtime() -> None:
    from edgepack.runtime.batching import parse_batching

    settings = {"max_batch_size": 16, "max_queue_delay_ms": 2.5, "max_concurrent_batches": 2}
    check_runtime_settings("litert", {"batching": settings}, "runtime_settings")
    assert parse_batching(settings).max_batch_size == 16


@pytest.mark.parametrize(
    ("backend", "settings"),
    [
        ("litert", {}),
        ("litert", {"threads": 4}),
        ("onnxruntime", {"providers": ["CPUExecutionProvider"], "threads": 0}),
        (
            "onnxruntime",
            {
                "providers": [
                    {
                        "name": "TensorrtExecutionProvider",
                        "options": {"trt_fp16_enable": True, "device_id": 0},
                    },
                    "CUDAExecutionProvider",
                    {"name": "CPUExecutionProvider"},
                ],
                "precision": "fp16+int8",
                "graph_optimization_level": "EXTENDED",
            },
        ),
        # A provider newer than edgepack's list is let through: the runtime drops what it lacks.
        ("onnxruntime", {"providers": ["SomeFutureExecutionProvider"]}),
        (
            "openvino",
            {
                "device": "AUTO:NPU,GPU.1,CPU",
                "device_fallback": False,
                "inference_precision": None,
                "performance_hint": "throughput",
                "cache_dir": "/var/cache/x",
                "threads": 2,
                "batch": 8,
            },
        ),
        ("openvino", {"batch": "keep"}),
    ],
)
def test_good_settings_pass(backend: str, settings: dict[str, Any]) -> None:
    check_runtime_settings(backend, settings, WHERE)


@pytest.mark.parametrize(
    ("backend", "settings", "field", "message"),
    [
        ("litert", {"thread": 2}, "thread", "unknown field; did you mean 'threads'?"),
        ("litert", {"threads": 0}, "threads", "greater than 0"),
        ("litert", {"threads": True}, "threads", "valid integer"),
        ("litert", {"threads": "2"}, "threads", "valid integer"),
        ("onnxruntime", {"threads": -1}, "threads", "greater than or equal to 0"),
        ("onnxruntime", {"provider": ["CPUExecutionProvider"]}, "provider", "did you mean 'providers'?"),
        ("onnxruntime", {"providers": "CPUExecutionProvider"}, "providers", "valid list"),
        (
            "onnxruntime",
            {"providers": ["CPUExecutionProvider", "CUDAExecutionProvder"]},
            "providers.1.name",
            "did you mean 'CUDAExecutionProvider'?",
        ),
        (
            "onnxruntime",
            {"providers": [{"name": "TensorRTExecutionProvider"}]},
            "providers.0.name",
            "did you mean 'TensorrtExecutionProvider'?",
        ),
        (
            "onnxruntime",
            {"providers": ["cuda"]},
            "providers.0.name",
            "not an ONNX Runtime execution provider",
        ),
        (
            "onnxruntime",
            {"providers": [{"name": "CPUExecutionProvider", "option": {}}]},
            "providers.0.option",
            "did you mean 'options'?",
        ),
        (
            "onnxruntime",
            {"providers": [{"name": "CUDAExecutionProvider", "options": {"device_id": [0]}}]},
            "providers.0.options",
            "string, number or boolean",
        ),
        ("onnxruntime", {"providers": [{"options": {}}]}, "providers.0.name", "required field is missing"),
        ("onnxruntime", {"graph_optimization_level": "max"}, "graph_optimization_level", "disable, basic"),
        ("openvino", {"device": "TPU"}, "device", "unknown OpenVINO device 'TPU'"),
        ("openvino", {"device": "AUTO:NPU,TPU"}, "device", "unknown OpenVINO device 'TPU'"),
        ("openvino", {"inference_precision": "fp16"}, "inference_precision", "'f32', 'f16' or 'bf16'"),
        ("openvino", {"performance_hint": "fast"}, "performance_hint", "LATENCY, THROUGHPUT"),
        ("openvino", {"batch": 0}, "batch", "'dynamic', 'keep' or a positive integer"),
        ("openvino", {"cachedir": "/tmp"}, "cachedir", "did you mean 'cache_dir'?"),
        ("openvino", {"device_fallback": "no"}, "device_fallback", "valid boolean"),
    ],
)
def test_bad_settings_name_the_field(
    backend: str, settings: dict[str, Any], field: str, message: str
) -> None:
    hint = refused(backend, settings)
    assert hint.startswith(f"{WHERE}.{field}: "), hint
    assert message in hint


def test_settings_of_another_backend_are_unknown() -> None:
    hint = refused("litert", {"providers": ["CPUExecutionProvider"]})
    assert hint.startswith(f"{WHERE}.providers: unknown field")
    assert "(known: batching, threads)" in hint


def test_not_a_mapping() -> None:
    with pytest.raises(ConfigError, match="expected a mapping of litert settings"):
        check_runtime_settings("litert", [1], WHERE)  # type: ignore[arg-type]


def test_parse_returns_the_typed_settings() -> None:
    settings = parse_runtime_settings("openvino", {"device": "GPU"}, WHERE)
    assert settings.model_dump()["device"] == "GPU"
    assert settings.model_dump()["inference_precision"] == "f32"


# -- through the config and the CLI ---------------------------------------------------


def _override(project: Path, name: str, overrides: dict[str, Any]) -> Path:
    config = project / "edgepack.yaml"
    data = yaml.safe_load(config.read_text())
    data["targets"] = [{"name": name, "overrides": overrides}]
    config.write_text(yaml.safe_dump(data))
    return config


def test_project_override_typo_names_the_project_file(sample_project: Path) -> None:
    config = _override(sample_project, "lambda-x86_64", {"runtime_settings": {"thread": 2}})
    with pytest.raises(ConfigError) as info:
        load_project(sample_project)
    assert info.value.hint() == (
        f"{config}: targets.lambda-x86_64.overrides.runtime_settings.thread: "
        "unknown field; did you mean 'threads'? (known: batching, threads)"
    )


def test_good_override_loads(sample_project: Path) -> None:
    _override(sample_project, "lambda-x86_64", {"runtime_settings": {"threads": 2}})
    assert load_project(sample_project).targets[0].runtime_settings["threads"] == 2


def test_a_bad_shipped_profile_names_the_profile_file(
    sample_project: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    targets = tmp_path / "targets"
    shutil.copytree(profile_path("lambda-x86_64").parent, targets)
    profile = targets / "lambda-x86_64.yaml"
    profile.write_text(
        profile.read_text().replace("runtime_settings:\n  threads: 1", "runtime_settings:\n  thread: 1")
    )
    monkeypatch.setattr("edgepack.targets.targets_dir", lambda: targets)
    _override(sample_project, "lambda-x86_64", {"runtime_settings": {"threads": 2}})  # valid on its own
    with pytest.raises(ConfigError) as info:
        load_project(sample_project)
    assert info.value.hint().startswith(f"{profile}: runtime_settings.thread: unknown field")


def test_cli_build_refuses_a_typo_in_one_line(sample_project: Path, tmp_path: Path) -> None:
    from edgepack.cli.main import cli

    config = _override(sample_project, "lambda-x86_64", {"runtime_settings": {"thread": 2}})
    out = tmp_path / "dist"
    result = CliRunner().invoke(cli, ["build", str(sample_project), "--out", str(out)])
    assert result.exit_code == 2
    lines = [line for line in result.output.splitlines() if line.startswith("edgepack: error:")]
    assert lines == [
        f"edgepack: error: {config}: targets.lambda-x86_64.overrides.runtime_settings.thread: "
        "unknown field; did you mean 'threads'? (known: batching, threads)"
    ]
    assert not out.exists() or not any(out.iterdir())
