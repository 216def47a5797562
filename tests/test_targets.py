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
