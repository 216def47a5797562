"""``/metrics``: what it counts after real traffic, and that promtool accepts it."""

from __future__ import annotations

import hashlib
import http.client
import json
import re
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest
from http_helpers import RawClient, http_request, run_server
from runtime_helpers import Models, write_artifact

from edgepack.runtime.metrics import Counter, Gauge, Histogram, ServerMetrics
from edgepack.runtime.telemetry import Telemetry

EVENT_HOOKS = """
import json, os

def on_event(event):
    with open(os.path.join(os.path.dirname(__file__), "events.jsonl"), "a") as f:
        f.write(json.dumps({"event": event.name}) + "\\n")

def postprocess(outputs):
    if float(outputs["probabilities"].ravel()[0]) < 0:
        raise ValueError("never")
    return outputs
"""


def _scrape(port: int) -> tuple[str, str]:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    conn.request("GET", "/metrics")
    answer = conn.getresponse()
    text = answer.read().decode()
    conn.close()
    return answer.getheader("Content-Type") or "", text


def _value(text: str, sample: str) -> float:
    match = re.search(r"^" + re.escape(sample) + r" (\S+)$", text, re.MULTILINE)
    assert match, f"no sample {sample} in\n{text}"
    return float(match.group(1))


@pytest.fixture(scope="module")
def scraped(tmp_path_factory: pytest.TempPathFactory, tflite_models: Models) -> tuple[str, Path, str]:
    """Metrics text after 5 good and 3 bad inference requests, and the hooks' event log."""
    tmp = tmp_path_factory.mktemp("metrics")
    hooks = tmp / "hooks.py"
    hooks.write_text(EVENT_HOOKS)
    root = write_artifact(tmp / "artifact", tflite_models.fp32, precision="fp32", hooks=hooks)
    (root / "attestation.dsse.json").write_text('{"payloadType": "application/vnd.in-toto+json"}')
    images = tflite_models.images[:2]
    good = json.dumps(
        {
            "inputs": [
                {"name": "image", "shape": [2, 8, 8, 1], "datatype": "FP32", "data": images.ravel().tolist()}
            ]
        }
    ).encode()
    with run_server(str(root), log_path=tmp / "log") as proc:
        client = RawClient(proc.port)
        for _ in range(5):
            assert client.request(http_request("POST", "/v2/models/digits/infer", good)).status == 200
        for bad in (b"{", b'{"inputs": [{"name": "x"}]}', b"[]"):
            assert client.request(http_request("POST", "/v2/models/digits/infer", bad)).status == 400
        assert client.request(http_request("GET", "/v2/models/nope")).status == 404
        content_type, text = _scrape(proc.port)
    return text, root, content_type


def test_promtool_accepts_the_exposition(scraped: tuple[str, Path, str], tmp_path: Path) -> None:
    promtool = shutil.which("promtool")
    if promtool is None:
        pytest.skip("promtool is not installed")
    text, _, content_type = scraped
    assert content_type.startswith("text/plain; version=0.0.4")
    result = subprocess.run([promtool, "check", "metrics"], input=text, capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr


def test_metrics_count_the_traffic(scraped: tuple[str, Path, str]) -> None:
    text, root, _ = scraped
    assert _value(text, 'edgepack_requests_total{model="digits",encoding="json",status="200"}') == 5
    assert _value(text, 'edgepack_requests_total{model="digits",encoding="json",status="400"}') == 3
    assert _value(text, 'edgepack_errors_total{model="digits",reason="bad_request"}') == 3
    assert _value(text, 'edgepack_errors_total{model="",reason="model_not_found"}') == 1
    assert _value(text, 'edgepack_request_duration_seconds_count{model="digits"}') == 8
    assert _value(text, 'edgepack_request_duration_seconds_bucket{model="digits",le="+Inf"}') == 8
    # One inference event per model run; the sample's 2 images are one batch of 2.
    assert _value(text, 'edgepack_inference_duration_seconds_count{model="digits",backend="litert"}') == 5
    assert _value(text, 'edgepack_inference_batch_size_bucket{model="digits",le="2"}') == 5
    assert _value(text, 'edgepack_inference_batch_size_bucket{model="digits",le="1"}') == 0
    assert _value(text, "edgepack_in_flight_requests") == 0
    assert _value(text, "edgepack_open_connections") >= 1
    assert _value(text, 'edgepack_model_load_seconds{model="digits"}') > 0
    assert _value(text, 'edgepack_telemetry_sink_errors_total{model="digits"}') == 0
    manifest = json.loads((root / "edgepack.json").read_text())
    attestation = hashlib.sha256((root / "attestation.dsse.json").read_bytes()).hexdigest()
    info = re.search(r"^edgepack_model_info\{(.*)\} 1$", text, re.MULTILINE)
    assert info
    assert f'artifact_sha256="{attestation}"' in info.group(1)
    assert f'model_sha256="{manifest["model"]["sha256"]}"' in info.group(1)
    assert 'model="digits",version="1.0.0",backend="litert",precision="fp32"' in info.group(1)
    for name in re.findall(r"^# TYPE (\S+) (\S+)$", text, re.MULTILINE):
        assert (name[1] == "counter") == name[0].endswith("_total"), name


def test_the_users_on_event_hook_still_gets_every_event(scraped: tuple[str, Path, str]) -> None:
    _, root, _ = scraped
    events = [json.loads(line)["event"] for line in (root / "events.jsonl").read_text().splitlines()]
    assert events[0] == "model_loaded"
    assert events.count("inference") == 5 and events.count("request") == 5
    assert events.count("error") >= 1  # the bad tensor fails in the data plane's decode stage


def test_histogram_buckets_are_cumulative_and_inclusive() -> None:
    h = Histogram("x_seconds", "help", ("m",), buckets=(0.1, 1.0))
    for v in (0.05, 0.1, 0.5, 2.0):
        h.observe(v, "a")
    assert h.samples() == [
        'x_seconds_bucket{m="a",le="0.1"} 2',
        'x_seconds_bucket{m="a",le="1"} 3',
        'x_seconds_bucket{m="a",le="+Inf"} 4',
        'x_seconds_sum{m="a"} 2.65',
        'x_seconds_count{m="a"} 4',
    ]


def test_label_values_are_escaped_and_names_checked() -> None:
    c = Counter("odd_total", "help", ("v",))
    c.inc('a"b\\c\nd')
    assert c.samples() == ['odd_total{v="a\\"b\\\\c\\nd"} 1']
    with pytest.raises(ValueError):
        Counter("no_suffix", "help")
    with pytest.raises(ValueError):
        Gauge("bad_total", "help")


def test_sink_counts_inference_events_and_dropped_sink_calls() -> None:
    metrics = ServerMetrics()
    telemetry = Telemetry()
    telemetry.add_sink(metrics.sink("m", telemetry))
    telemetry.add_sink(lambda event: 1 / 0)
    telemetry.emit("inference", latency_ms=2.0, run_ms=1.0, batch_size=4, backend="onnxruntime")
    assert metrics.inference_seconds.count("m", "onnxruntime") == 1
    assert metrics.batch_size.count("m") == 1
    assert 'edgepack_telemetry_sink_errors_total{model="m"} 1' in metrics.render()
    total = _value(
        metrics.render(), 'edgepack_inference_duration_seconds_sum{model="m",backend="onnxruntime"}'
    )
    assert np.isclose(total, 0.002)
