"""TensorRT engine cache key: one directory per model, TensorRT version, GPU and precision."""

from __future__ import annotations

import hashlib
import json
import re
from pathlib import Path

import pytest

from edgepack.runtime.trt_cache import (
    CACHE_KEY_SCHEMA,
    NONE,
    describe_cache_key,
    detect_compute_capability,
    detect_tensorrt_version,
    engine_cache_dir,
    engine_cache_key,
    precision_from_trt_options,
)

SHA_A = hashlib.sha256(b"model a").hexdigest()
SHA_B = hashlib.sha256(b"model b").hexdigest()
BASE = (SHA_A, "10.3.0", "8.7", "int8")


def test_key_is_stable_and_a_full_sha256() -> None:
    key = engine_cache_key(*BASE)
    assert re.fullmatch(r"[0-9a-f]{64}", key)
    assert engine_cache_key(*BASE) == key
    canonical = json.dumps(
        {
            "compute_capability": "8.7",
            "model_sha256": SHA_A,
            "precision": "int8",
            "schema": CACHE_KEY_SCHEMA,
            "trt_version": "10.3.0",
        },
        separators=(",", ":"),
    )
    assert key == hashlib.sha256(canonical.encode()).hexdigest()


@pytest.mark.parametrize(
    ("field", "value"),
    [(0, SHA_B), (1, "10.4.0"), (1, "8.6.2"), (2, "8.6"), (2, "9.0"), (3, "fp16"), (3, "fp16+int8")],
)
def test_key_differs_when_any_input_differs(field: int, value: str) -> None:
    changed = list(BASE)
    changed[field] = value
    assert engine_cache_key(*changed) != engine_cache_key(*BASE)


def test_equivalent_spellings_give_the_same_key() -> None:
    key = engine_cache_key(*BASE)
    assert engine_cache_key(SHA_A.upper(), " 10.3.0 ", "sm_87", "INT8") == key
    assert engine_cache_key(SHA_A, "10.3.0", "87", "int8") == key


@pytest.mark.parametrize(
    "args",
    [
        ("abc", "10.3.0", "8.7", "int8"),  # not a sha256
        (SHA_A, "", "8.7", "int8"),
        (SHA_A, "10.3.0", "Orin", "int8"),
        (SHA_A, "10.3.0", "8.7", ""),
    ],
)
def test_bad_inputs_are_refused(args: tuple[str, str, str, str]) -> None:
    with pytest.raises(ValueError):
        engine_cache_key(*args)


def test_cache_dir_is_base_slash_key(tmp_path: Path) -> None:
    path = engine_cache_dir(tmp_path, *BASE)
    assert path == tmp_path / engine_cache_key(*BASE)
    assert not path.exists()  # computing a path creates nothing
    assert engine_cache_dir(tmp_path, SHA_B, *BASE[1:]) != path


def test_describe_gives_the_inputs_and_the_key() -> None:
    info = describe_cache_key(SHA_A, "10.3.0", "sm_87", "INT8")
    assert info == {
        "schema": CACHE_KEY_SCHEMA,
        "model_sha256": SHA_A,
        "trt_version": "10.3.0",
        "compute_capability": "8.7",
        "precision": "int8",
        "key": engine_cache_key(*BASE),
    }


def test_precision_from_trt_flags() -> None:
    assert precision_from_trt_options({}) == "fp32"
    assert precision_from_trt_options({"trt_fp16_enable": True}) == "fp16"
    assert precision_from_trt_options({"trt_fp16_enable": "True", "trt_int8_enable": "1"}) == "fp16+int8"
    assert precision_from_trt_options({"trt_int8_enable": "false"}) == "fp32"


def test_detection_answers_a_version_or_none() -> None:
    version = detect_tensorrt_version()
    assert version == NONE or re.fullmatch(r"\d+\.\d+(\.\d+)*", version)
    cc = detect_compute_capability()
    assert cc == NONE or re.fullmatch(r"\d+\.\d+", cc)
    # A key can still be computed on a host with neither (the build machine).
    assert re.fullmatch(r"[0-9a-f]{64}", engine_cache_key(SHA_A, version, cc, "fp16"))
