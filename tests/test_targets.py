"""Target profiles: shipped data validates; Lambda's runtime decides Python and glibc."""

from __future__ import annotations

import pytest

from edgepack.errors import ConfigError
from edgepack.targets import LAMBDA_RUNTIMES, available_targets, load_target


@pytest.mark.parametrize("name", available_targets())
def test_every_shipped_profile_validates(name: str) -> None:
    profile = load_target(name)
    assert profile.name == name
    assert profile.variants
    assert profile.platform_tags[-1] == f"manylinux2014_{profile.arch}"


def test_required_profiles_ship() -> None:
    assert {"lambda-x86_64", "lambda-arm64"} <= set(available_targets())


@pytest.mark.parametrize(("runtime", "glibc"), sorted(LAMBDA_RUNTIMES.items()))
def test_lambda_runtime_fixes_python_and_glibc(runtime: str, glibc: str) -> None:
    profile = load_target("lambda-arm64", {"lambda_runtime": runtime})
    assert profile.python == runtime.removeprefix("python")
    assert profile.glibc == glibc
    assert profile.platform_tags[0] == f"manylinux_2_{glibc.split('.')[1]}_aarch64"


def test_python_override_cannot_contradict_lambda_runtime() -> None:
    profile = load_target("lambda-x86_64", {"python": "3.11"})  # the runtime (python3.12) wins
    assert profile.python == "3.12"


def test_platform_tags_cover_every_glibc_up_to_the_ceiling() -> None:
    tags = load_target("lambda-x86_64").platform_tags
    assert tags[0] == "manylinux_2_34_x86_64"
    assert "manylinux_2_27_x86_64" in tags  # ai-edge-litert's only tag
    assert "manylinux_2_17_x86_64" in tags
    assert "manylinux_2_35_x86_64" not in tags


def test_unsupported_lambda_runtime() -> None:
    with pytest.raises(ConfigError, match="'python9.9' is not a Python runtime Lambda offers"):
        load_target("lambda-x86_64", {"lambda_runtime": "python9.9"}, where="edgepack.yaml: targets.0")


def test_identity_fields_cannot_be_overridden() -> None:
    with pytest.raises(ConfigError, match="field 'arch' cannot be overridden"):
        load_target("lambda-x86_64", {"arch": "aarch64"})


def test_unknown_and_invalid_names() -> None:
    with pytest.raises(ConfigError, match="unknown target"):
        load_target("nope")
    with pytest.raises(ConfigError, match="invalid target name"):
        load_target("../etc/passwd")


# -- per-source-format plans, variant references, per-target thresholds -----------------


@pytest.mark.parametrize("target", ["lambda-x86_64", "lambda-arm64", "rpi-tflite"])
def test_an_onnx_model_takes_the_onnx_runtime_plan(target: str) -> None:
    profile = load_target(target, source_format="onnx")
    assert profile.backend == "onnxruntime" and profile.plan == "sources.onnx"
    assert [v.name for v in profile.variants] == ["int8", "int8-mixed", "fp32"]
    assert any(p.startswith("onnxruntime==") for p in profile.runtime_packages)
    assert not any(p.startswith("ai-edge-litert") for p in profile.runtime_packages)
    keras = load_target(target, source_format="keras")
    assert keras.backend == "litert" and keras.plan == "default"
    assert [v.name for v in keras.variants][-1] == "fp32"


def test_a_tflite_model_ships_as_it_is_on_litert() -> None:
    profile = load_target("rpi-tflite", source_format="tflite")
    assert profile.backend == "litert"
    assert [(v.name, v.passes) for v in profile.variants] == [("as-is", [])]


@pytest.mark.parametrize("target", ["lambda-x86_64", "rpi-tflite", "intel-openvino", "jetson-trt"])
def test_every_default_chain_ends_with_the_unquantized_model(target: str) -> None:
    for fmt in ("keras", "onnx"):
        assert load_target(target, source_format=fmt).variants[-1].name == "fp32"


def test_variants_by_name_reorder_and_extend_the_plan() -> None:
    extra = {"name": "int8-pt", "passes": [{"name": "tflite-convert", "config": {"per_channel": False}}]}
    profile = load_target("rpi-tflite", {"variants": ["fp16", extra, "int8"]}, "edgepack.yaml: t")
    assert [v.name for v in profile.variants] == ["fp16", "int8-pt", "int8"]
    assert profile.variants[0].passes[0].config == {"mode": "fp16"}
    onnx = load_target("lambda-x86_64", {"variants": ["fp32", "int8"]}, "edgepack.yaml: t", "onnx")
    assert [v.passes[-1].name for v in onnx.variants] == ["onnx-convert", "onnx-quantize"]


def test_an_unknown_variant_name_is_refused_naming_the_entry() -> None:
    with pytest.raises(ConfigError) as caught:
        load_target(
            "rpi-tflite", {"variants": ["int8", "int4"]}, "edgepack.yaml: targets.rpi-tflite.overrides"
        )
    assert caught.value.hint().startswith(
        "edgepack.yaml: targets.rpi-tflite.overrides.variants.1: no variant 'int4'"
    )
    assert caught.value.exit_code == 2


def test_a_project_can_override_a_source_plan() -> None:
    profile = load_target(
        "lambda-x86_64", {"sources": {"onnx": {"runtime_settings": {"threads": 2}}}}, "e", "onnx"
    )
    assert profile.backend == "onnxruntime" and profile.runtime_settings == {"threads": 2}
    assert [v.name for v in profile.variants] == ["int8", "int8-mixed", "fp32"]
