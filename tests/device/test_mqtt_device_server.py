"""The device runtime as a local Open Inference Protocol server: ``predict.py serve`` runs the
container's server with the spool as one more telemetry sink; its events reach mosquitto.

The artifact is a real ONNX model (built with onnx.helper, run by ONNX Runtime) laid out as
a device bundle, with the bundle's own ``predict.py`` rendered from templates/device.
"""

from __future__ import annotations

import hashlib
import json
import shutil
import signal
import subprocess
import sys
import time
import urllib.request
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from edgepack.render import render_template_set
from edgepack.resources import runtime_package_dir
from edgepack.runtime.device.spool import Spool
from edgepack.runtime.device.uplink_mqtt import events_topic
from tests.device.mosquitto import Broker, Subscriber, mosquitto_fixture  # noqa: F401

W = np.array([[1.0, -1.0, 0.5], [0.5, 2.0, -1.0], [-0.5, 0.0, 1.0], [2.0, 1.0, 0.0]], np.float32)
DEVICE = "edge-7"


def _onnx_model(path: Path) -> None:
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    graph = helper.make_graph(
        [
            helper.make_node("MatMul", ["x", "w"], ["logits"]),
            helper.make_node("Softmax", ["logits"], ["probs"]),
        ],
        "linear",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["batch", 4])],
        [helper.make_tensor_value_info("probs", TensorProto.FLOAT, ["batch", 3])],
        initializer=[numpy_helper.from_array(W, "w")],
    )
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]), str(path))


@pytest.fixture(scope="module")
def bundle_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("device") / "bundle"
    (root / "model").mkdir(parents=True)
    _onnx_model(root / "model" / "model.onnx")
    shutil.copytree(
        runtime_package_dir(), root / "edgepack_runtime", ignore=shutil.ignore_patterns("__pycache__")
    )
    data = (root / "model" / "model.onnx").read_bytes()
    manifest = {
        "schema": "edgepack.manifest/v1",
        "name": "linear",
        "version": "2.1.0",
        "target": {"name": "intel-openvino", "kind": "device", "arch": "x86_64", "python": "3.12"},
        "model": {
            "file": "model/model.onnx",
            "format": "onnx",
            "sha256": hashlib.sha256(data).hexdigest(),
            "precision": "fp32",
            "signature": {
                "inputs": [{"name": "x", "dtype": "float32", "shape": [None, 4]}],
                "outputs": [{"name": "probs", "dtype": "float32", "shape": [None, 3]}],
            },
        },
        "runtime": {"backend": "onnxruntime", "settings": {}},
        "hooks": None,
        "build": {"built_at": "2026-11-27T00:00:00Z", "edgepack_version": "0.1.0"},
    }
    (root / "edgepack.json").write_text(json.dumps(manifest, indent=1))
    context = {
        "edgepack_version": "0.1.0",
        "project_name": "linear",
        "project_version": "2.1.0",
        "target_name": "intel-openvino",
    }
    render_template_set("device", root, context)
    assert (root / "predict.py").is_file()
    return root


def _digest(root: Path) -> str:
    return hashlib.sha256((root / "edgepack.json").read_bytes()).hexdigest()


class Served:
    """``python predict.py serve ...`` in a subprocess; its port read from the 'listening' log."""

    def __init__(self, root: Path, *args: str, log: Path) -> None:
        self.log = log
        self.process = subprocess.Popen(
            [sys.executable, str(root / "predict.py"), "serve", "--port", "0", "--workers", "1", *args],
            cwd=root,
            stdout=subprocess.DEVNULL,
            stderr=log.open("wb"),
        )
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            for record in self.records():
                if record.get("msg") == "listening":
                    self.port = int(record["port"])
                    assert record["host"] == "127.0.0.1"
                    return
            if self.process.poll() is not None:
                raise AssertionError(f"serve exited {self.process.returncode}: {log.read_text()}")
            time.sleep(0.05)
        self.process.kill()
        raise AssertionError(f"serve did not listen: {log.read_text()}")

    def records(self) -> list[dict[str, Any]]:
        out = []
        for line in self.log.read_text(errors="replace").splitlines():
            try:
                out.append(json.loads(line))
            except ValueError:
                continue
        return out

    def infer(self, rows: list[list[float]]) -> dict[str, Any]:
        body = json.dumps(
            {"inputs": [{"name": "x", "datatype": "FP32", "shape": [len(rows), 4], "data": rows}]}
        )
        request = urllib.request.Request(
            f"http://127.0.0.1:{self.port}/v2/models/linear/infer", data=body.encode(), method="POST"
        )
        with urllib.request.urlopen(request, timeout=30) as answer:
            result: dict[str, Any] = json.loads(answer.read())
            return result

    def stop(self) -> int:
        self.process.send_signal(signal.SIGTERM)
        return self.process.wait(60)


def _inference_events(messages: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [m for m in messages if m.get("event") == "inference"]


def test_the_server_spools_its_events_and_drains_them_to_mosquitto(
    bundle_root: Path, tmp_path: Path, mosquitto: Broker
) -> None:
    subscriber = Subscriber(mosquitto.port, events_topic(DEVICE))
    spool_dir = tmp_path / "spool"
    try:
        served = Served(
            bundle_root,
            "--spool", str(spool_dir), "--mqtt", f"127.0.0.1:{mosquitto.port}", "--device-id", DEVICE,
            log=tmp_path / "serve.log",
        )  # fmt: skip
        try:
            answer = served.infer([[1.0, 0.0, 0.0, 0.0], [0.0, 1.0, 0.0, 0.0]])
            probs = np.asarray(answer["outputs"][0]["data"], np.float32).reshape(2, 3)
            expected = np.exp(W[:2]) / np.exp(W[:2]).sum(axis=1, keepdims=True)
            np.testing.assert_allclose(probs, expected, rtol=1e-5)
            got = subscriber.wait_for(lambda m: {"inference", "request"} <= {e["event"] for e in m})
        finally:
            assert served.stop() == 0
    finally:
        subscriber.close()
    names = [m["event"] for m in got]
    assert names[0] == "model_loaded" and "inference" in names and "request" in names
    inference = _inference_events(got)[0]
    assert inference["batch_size"] == 2 and inference["backend"] == "onnxruntime"
    for m in got:
        assert m["artifact_digest"] == _digest(bundle_root) and m["version"] == "2.1.0"
    assert [m["seq"] for m in got] == list(range(1, len(got) + 1))


def test_events_wait_in_the_spool_until_telemetry_drain(
    bundle_root: Path, tmp_path: Path, mosquitto: Broker
) -> None:
    spool_dir = tmp_path / "spool"
    served = Served(bundle_root, "--spool", str(spool_dir), log=tmp_path / "serve.log")
    try:
        for _ in range(3):
            served.infer([[0.0, 0.0, 1.0, 0.0]])
    finally:
        assert served.stop() == 0
    with Spool(spool_dir) as spool:
        assert spool.pending() >= 7  # model_loaded + 3 x (inference, request)
        pending = spool.pending()
    subscriber = Subscriber(mosquitto.port, events_topic(DEVICE), client_id="drain-sub")
    try:
        drain = subprocess.run(
            [sys.executable, str(bundle_root / "predict.py"), "telemetry-drain", "--spool", str(spool_dir),
             "--mqtt", f"127.0.0.1:{mosquitto.port}", "--device-id", DEVICE],
            cwd=bundle_root, capture_output=True, text=True, timeout=60,
        )  # fmt: skip
        assert drain.returncode == 0, drain.stderr
        got = subscriber.wait_for(lambda m: len(m) >= pending)
    finally:
        subscriber.close()
    assert len(_inference_events(got)) == 3
    assert all(m["artifact_digest"] == _digest(bundle_root) and m["version"] == "2.1.0" for m in got)
    with Spool(spool_dir) as spool:
        assert spool.pending() == 0


def test_telemetry_drain_with_the_broker_down_keeps_the_events(bundle_root: Path, tmp_path: Path) -> None:
    spool_dir = tmp_path / "spool"
    with Spool(spool_dir) as spool:
        spool.append({"event": "inference"})
    from tests.device.mosquitto import free_port

    drain = subprocess.run(
        [sys.executable, str(bundle_root / "predict.py"), "telemetry-drain", "--spool", str(spool_dir),
         "--mqtt", f"127.0.0.1:{free_port()}"],
        cwd=bundle_root, capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert drain.returncode == 1
    assert "cannot connect to the MQTT broker" in drain.stderr
    with Spool(spool_dir) as spool:
        assert spool.pending() == 1


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["serve", "--mqtt", "127.0.0.1:1883"], "an uplink needs a spool"),
        (["serve", "--spool", "{tmp}/s", "--mqtt", "host:notaport"], "HOST:PORT"),
        (["serve", "--spool", "{tmp}/s", "--mqtt-cert", "c.pem", "--mqtt", "h"], "needs its key"),
        (["serve", "--spool", "{tmp}/s", "--http-url", "ftp://x"], "http:// or https://"),
        (["telemetry-drain", "--spool", "{tmp}/s"], "needs --spool DIR and --mqtt or --http-url"),
    ],
)
def test_bad_telemetry_settings_are_refused(
    bundle_root: Path, tmp_path: Path, args: list[str], message: str
) -> None:
    env = {"PATH": "/usr/bin:/bin"}
    run = subprocess.run(
        [sys.executable, str(bundle_root / "predict.py"), *(a.format(tmp=tmp_path) for a in args)],
        cwd=bundle_root, capture_output=True, text=True, timeout=60, env=env,
    )  # fmt: skip
    assert run.returncode == 2
    assert message in run.stderr
