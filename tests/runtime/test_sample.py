"""The health-check sample file: exact values, deterministic bytes, names in order."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from edgepack.runtime.sample import read_sample, write_sample


def test_round_trip_keeps_values_names_and_order(tmp_path: Path) -> None:
    inputs = {"pixels": np.arange(12, dtype=np.float32).reshape(1, 3, 4), "ids": np.array([[7, 9]])}
    outputs = {"z_scores": np.array([[0.25, -1.5]], dtype=np.float32), "a_label": np.array([3])}
    section = write_sample(tmp_path / "sample.npz", inputs, outputs)
    assert section == {"file": "sample.npz", "inputs": ["pixels", "ids"], "outputs": ["z_scores", "a_label"]}
    got_in, got_out = read_sample(tmp_path, section)
    assert list(got_in) == ["pixels", "ids"] and list(got_out) == ["z_scores", "a_label"]
    for name in inputs:
        np.testing.assert_array_equal(got_in[name], inputs[name])
        assert got_in[name].dtype == inputs[name].dtype
    np.testing.assert_array_equal(got_out["z_scores"], outputs["z_scores"])


def test_same_sample_same_bytes(tmp_path: Path) -> None:
    inputs = {"x": np.random.default_rng(0).random((1, 224, 224, 3), dtype=np.float32)}
    outputs = {"y": np.ones((1, 1000), dtype=np.float32)}
    write_sample(tmp_path / "a.npz", inputs, outputs)
    write_sample(tmp_path / "b.npz", inputs, outputs)
    assert (tmp_path / "a.npz").read_bytes() == (tmp_path / "b.npz").read_bytes()
