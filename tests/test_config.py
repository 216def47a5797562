"""edgepack.yaml validation: every bad field is one ConfigError naming the field path."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml

from edgepack.config import (
    CalibrationSpec,
    Thresholds,
    load_project,
    merge_thresholds,
    parse_project_file,
    version_key,
)
from edgepack.errors import EXIT_BAD_INPUT, ConfigError

VALID = {
    "name": "digits",
    "version": "1.0.0",
    "model": {"path": "model/digits.keras"},
    "targets": ["lambda-x86_64"],
    "signing": {"key": "keys/dev.key"},
}


def _with(**changes: object) -> str:
    data = {**VALID, **changes}
    return yaml.safe_dump({k: v for k, v in data.items() if v is not None})


def test_sample_project_loads(sample_dir: Path) -> None:
    project = load_project(sample_dir)
    assert project.name == "digits"
    assert project.target_names == ("lambda-x86_64", "lambda-arm64")
    assert project.model_path == sample_dir / "model" / "digits.keras"
    assert project.file.validation is not None
    assert project.file.validation.thresholds.max_accuracy_drop == 0.01


@pytest.mark.parametrize(
    ("text", "where", "message"),
    [
        (_with(version="one"), "version", "numeric version"),
        (_with(version=1), "version", "valid string"),
        (_with(name="Bad Name"), "name", "pattern"),
        (_with(model={"path": "m.keras", "fromat": "keras"}), "model.fromat", "unknown field"),
        (_with(model={"path": "m.keras", "format": "pytorch"}), "model.format", "keras"),
        (_with(model=None), "model", "required field is missing"),
        (_with(targets=[]), "targets", "at least 1"),
        (_with(targets=[{"name": "lambda-x86_64", "overrides": 3}]), "targets.0.overrides", "dictionary"),
        (_with(calibration={}), "calibration", "exactly one of path or generator"),
        (_with(calibration={"generator": "not a ref"}), "calibration.generator", "module:function"),
        (
            _with(validation={"path": "v.npz", "thresholds": {"min_top1_agreement": 2}}),
            "validation.thresholds.min_top1_agreement",
            "less than or equal to 1",
        ),
        (_with(signing={"key": "a", "kms_key_id": "b"}), "signing", "exactly one of key or kms_key_id"),
        (_with(surprise=True), "surprise", "unknown field"),
    ],
)
def test_bad_field_names_the_path(text: str, where: str, message: str) -> None:
    with pytest.raises(ConfigError) as info:
        parse_project_file(text, "edgepack.yaml")
    hint = info.value.hint()
    assert hint.startswith(f"edgepack.yaml: {where}:"), hint
    assert message in hint
    assert "\n" not in hint
    assert info.value.exit_code == EXIT_BAD_INPUT


def test_not_yaml_names_the_line() -> None:
    with pytest.raises(ConfigError, match=r"edgepack.yaml: not valid YAML \(line 2\)"):
        parse_project_file("name: x\n  bad: [unclosed\n", "edgepack.yaml")


def test_top_level_must_be_mapping() -> None:
    with pytest.raises(ConfigError, match="mapping"):
        parse_project_file("- a\n- b\n", "edgepack.yaml")


def test_missing_model_file_is_named(tmp_path: Path) -> None:
    (tmp_path / "edgepack.yaml").write_text(_with())
    with pytest.raises(ConfigError, match=r"model.path: model file not found: .*digits.keras"):
        load_project(tmp_path)


def test_unknown_target_lists_available(sample_project: Path) -> None:
    config = sample_project / "edgepack.yaml"
    config.write_text(config.read_text().replace("lambda-arm64", "lambda-sparc"))
    with pytest.raises(ConfigError, match=r"unknown target 'lambda-sparc'; available: .*lambda-x86_64"):
        load_project(sample_project)


def test_duplicate_target(sample_project: Path) -> None:
    config = sample_project / "edgepack.yaml"
    config.write_text(config.read_text().replace("lambda-arm64", "lambda-x86_64"))
    with pytest.raises(ConfigError, match="targets.1: target 'lambda-x86_64' listed twice"):
        load_project(sample_project)


def test_only_targets_selects_and_keeps_overrides(sample_project: Path) -> None:
    project = load_project(sample_project, ["lambda-arm64"])
    assert project.target_names == ("lambda-arm64",)
    assert project.targets[0].lambda_runtime == "python3.13"  # the sample's override survives


def test_no_config_file(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="no edgepack.yaml found"):
        load_project(tmp_path)


def test_version_order() -> None:
    assert version_key("1.10.0") > version_key("1.9.0")
    assert version_key("2") > version_key("1.99.99")
    assert version_key("1.0") == version_key("1.0.0")


# -- model.classes --------------------------------------------------------------------


def test_classes_are_exposed_on_the_project(sample_project: Path) -> None:
    config = sample_project / "edgepack.yaml"
    data = yaml.safe_load(config.read_text())
    data["model"]["classes"] = [f"digit-{i}" for i in range(10)]
    config.write_text(yaml.safe_dump(data))
    project = load_project(sample_project)
    assert project.classes == tuple(f"digit-{i}" for i in range(10))


def test_no_classes_by_default(sample_dir: Path) -> None:
    assert load_project(sample_dir).classes is None


@pytest.mark.parametrize(
    ("classes", "message"),
    [
        ([], "at least 1"),
        (["cat", "dog", "cat"], "class names must be unique: 'cat' repeated"),
        (["cat", " "], "must not be empty"),
        ("cat", "valid list"),
    ],
)
def test_bad_classes(classes: object, message: str) -> None:
    with pytest.raises(ConfigError) as info:
        parse_project_file(_with(model={"path": "m.keras", "classes": classes}), "edgepack.yaml")
    assert info.value.hint().startswith("edgepack.yaml: model.classes")
    assert message in info.value.hint()


# -- calibration.allow_constant -------------------------------------------------------


def test_allow_constant_is_a_calibration_field() -> None:
    pf = parse_project_file(_with(calibration={"path": "c.npz", "allow_constant": True}), "edgepack.yaml")
    assert isinstance(pf.calibration, CalibrationSpec)
    assert pf.calibration.allow_constant is True
    default = parse_project_file(_with(calibration={"path": "c.npz"}), "edgepack.yaml")
    assert default.calibration is not None and default.calibration.allow_constant is False


def test_allow_constant_is_refused_under_validation() -> None:
    with pytest.raises(ConfigError, match=r"^edgepack.yaml: validation.allow_constant: unknown field$"):
        parse_project_file(_with(validation={"path": "v.npz", "allow_constant": True}), "edgepack.yaml")


# -- merge_thresholds -----------------------------------------------------------------

TW = "edgepack.yaml: targets.rpi-tflite.overrides.thresholds"


def test_merge_thresholds_replaces_only_what_is_given() -> None:
    base = Thresholds(min_top1_agreement=0.99, max_abs_error=0.5)
    merged = merge_thresholds(base, {"min_top1_agreement": 0.95, "max_accuracy_drop": None}, TW)
    assert merged.min_top1_agreement == 0.95
    assert merged.max_accuracy_drop is None  # null turns a threshold off
    assert merged.max_abs_error == 0.5
    assert merged.min_cosine_similarity == base.min_cosine_similarity
    assert base.min_top1_agreement == 0.99  # the project's own are untouched
    assert merge_thresholds(base, {}, TW) == base


@pytest.mark.parametrize(
    ("override", "where", "message"),
    [
        ({"min_top1_agreement": 1.5}, f"{TW}.min_top1_agreement", "less than or equal to 1"),
        ({"max_abs_error": "big"}, f"{TW}.max_abs_error", "valid number"),
        (
            {"min_top1_agrement": 0.9},
            f"{TW}.min_top1_agrement",
            "unknown field; did you mean 'min_top1_agreement'?",
        ),
        ([0.9], TW, "expected a mapping of thresholds"),
    ],
)
def test_merge_thresholds_names_the_bad_field(override: Any, where: str, message: str) -> None:
    with pytest.raises(ConfigError) as info:
        merge_thresholds(Thresholds(), override, TW)
    hint = info.value.hint()
    assert hint.startswith(f"{where}: "), hint
    assert message in hint
    assert info.value.exit_code == EXIT_BAD_INPUT
