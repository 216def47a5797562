#!/usr/bin/env python
"""Benchmark: edgepack's HTTP server against KServe's Python ModelServer, same model, same client.

Both servers answer the Open Inference Protocol (KServe v2) over HTTP/1.1 on 127.0.0.1,
and both run the same ONNX model through the same code: edgepack's ``Predictor`` on ONNX
Runtime (CPU execution provider, one intra-op thread per session). Our server loads the
artifact root; the KServe peer is a ``kserve.Model`` subclass whose ``predict`` calls the
``edgepack_runtime`` package copied into that root, so the only difference measured is the
serving layer. The client is tritonclient.http (sync, keep-alive, one client per thread),
the same for both. Two models:

- the sample digits model (Keras -> ONNX by edgepack's ``onnx-convert`` pass; cached under
  ``~/.cache/edgepack/bench-server`` by the Keras file's sha256, since TensorFlow's import
  is slow), input (1, 8, 8, 1), tens of microseconds per call;
- a random-weight convolutional net built here with ``onnx.helper``, input (1, 3, 32, 32),
  its depth calibrated on this machine so one ``Predictor.predict`` takes about 6 ms.

Measured in one run:

1. per-request overhead at concurrency 1, JSON and binary tensors: each request alternates
   with a bare ``Predictor.predict`` on the same input in this process (same artifact,
   same settings), so both see the same host; overhead = p50 of the requests minus p50
   of the bare calls, in microseconds and as a share of the model's own time. Beside it:
   the client floor (a server that only replays the recorded response: the client's and
   the loopback's own cost, inside every server's figure) and each server's CPU time per
   request (``/proc/PID/stat``) minus a bare predict's CPU time, which other load on
   the host hardly moves;
2. throughput (requests/s, closed loop) at concurrency 2 and 8, binary tensors, for our
   server without and with dynamic batching, and for KServe;
3. bytes on the wire per request (request + response, headers included), counted by a TCP
   relay between client and server;
4. a soak run (``--duration``, default 60 s) at concurrency 16 on each server (sample model,
   ours with batching; threads alternate JSON and binary): errors, and the server process's
   RSS (``/proc/PID/status`` VmRSS) before warm-up, after warm-up and at the end.

Then it prints the targets: overhead <= 0.35x KServe's and <= 3 % of the ~6 ms model with
binary tensors (judged on the client p50, and again on server CPU time), throughput at
concurrency 8 >= 3x KServe's, no errors, RSS growth < 5 %.

The KServe peer gets its own virtual environment (``python3.11 -m venv``, ``pip install kserve
onnxruntime numpy``), made once under ``~/.cache/edgepack/kserve-bench-venv`` and reused.
KServe 0.21's REST server binds 0.0.0.0 with no option to change it, so the peer script
wraps ``uvicorn.Config`` to bind 127.0.0.1; it also turns off KServe's per-request latency
log and uvicorn's access log (ours logs no request either), and disables gRPC. Our
batched server runs with ``--workers 64``: the server's ``--workers`` bounds the requests
inside the data plane at once, a request queued in the batcher included, and requests
must be able to queue for batches to form.

    .venv/bin/python benchmarks/server.py [--duration 60] [--quick] [--json out.json]

Progress goes to stderr; the report to stdout. About 4 minutes on a 2-core machine
(``--quick``: under a minute, figures too short to quote).
"""

from __future__ import annotations

import argparse
import contextlib
import datetime
import hashlib
import importlib.metadata
import json
import os
import platform
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import textwrap
import threading
import time
import urllib.request
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))  # benchmark this checkout, whatever is installed

from edgepack.resources import runtime_package_dir  # noqa: E402
from edgepack.runtime.predictor import Predictor  # noqa: E402

CACHE = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "edgepack"
# scripts/setup.sh makes it (KServe pins protobuf below what TensorFlow takes: a venv of its own).
KSERVE_VENV = Path(__file__).resolve().parent.parent / ".venv-kserve"
SAMPLE_KERAS = REPO / "samples" / "digits" / "model" / "digits.keras"

# Every session: the CPU provider, one intra-op thread (both servers, and the baseline).
ORT_SETTINGS: dict[str, Any] = {"providers": ["CPUExecutionProvider"], "threads": 1}
# Dynamic batching as the batched artifacts declare it. Delay 0: a batch is whatever queued
# while the model was busy (up to 16 rows), so a lone request never waits; one model call
# per CPU at a time, each on one intra-op thread.
BATCHING = {
    "max_batch_size": 16,
    "max_queue_delay_ms": 0,
    "max_concurrent_batches": len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else 1,
}
# Our server's --workers bounds requests inside the data plane at once; with batching the
# batcher runs one model call at a time itself, and the bound must let requests queue.
BATCHED_WORKERS = 64
TARGET_MODEL_MS = 6.0
THROUGHPUT_CONCURRENCY = (2, 8)
SOAK_CONCURRENCY = 16

# Targets (the issue's).
MAX_OVERHEAD_VS_KSERVE = 0.35
MAX_OVERHEAD_SHARE = 0.03
MIN_THROUGHPUT_VS_KSERVE = 3.0
MAX_RSS_GROWTH = 0.05


def log(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


# -- models -----------------------------------------------------------------------------


@dataclass(frozen=True)
class BenchModel:
    key: str  # "sample" | "conv6ms"
    label: str
    path: Path
    input_name: str
    input_shape: tuple[int, ...]  # one request, batch 1
    output_names: tuple[str, ...]
    signature: dict[str, Any]  # public IO signature, as the manifest has it


_CONVERT = textwrap.dedent(
    """
    import contextlib, shutil, sys, tempfile
    from pathlib import Path
    from edgepack.config import load_project
    from edgepack.model.loader import load_model
    from edgepack.passes import PassContext, get_pass

    project = load_project(Path(sys.argv[1]))
    pf = project.file
    source = load_model(project.model_path, pf.model.format, pf.model.inputs, pf.model.outputs)
    onnx_pass = get_pass("onnx-convert")
    config = onnx_pass.parse_config({"opset": 17}, "benchmark onnx-convert")
    with tempfile.TemporaryDirectory() as work:
        ctx = PassContext(work_dir=Path(work), target="benchmark", calibration=lambda: iter(()),
                          progress=lambda m: None)
        with contextlib.redirect_stdout(sys.stderr):
            model = onnx_pass.run(source.artifact, config, ctx)
        assert not model.native_inputs and not model.native_outputs, "public names = ONNX names"
        shutil.copyfile(model.path, sys.argv[2])
    """
)


def sample_model(cache: Path) -> BenchModel:
    """The sample's Keras model as ONNX, converted once per Keras file (in a subprocess)."""
    digest = hashlib.sha256(SAMPLE_KERAS.read_bytes()).hexdigest()
    path = cache / f"digits-{digest}.onnx"
    if not path.is_file():
        log("converting the sample model to ONNX (edgepack onnx-convert; imports TensorFlow, once)")
        cache.mkdir(parents=True, exist_ok=True)
        partial = path.with_suffix(".partial")
        subprocess.run(
            [sys.executable, "-c", _CONVERT, str(SAMPLE_KERAS.parents[1]), str(partial)],
            cwd=REPO,
            check=True,
            stdout=subprocess.DEVNULL,
            env={**os.environ, "PYTHONPATH": str(REPO), "TF_CPP_MIN_LOG_LEVEL": "3"},
        )
        os.replace(partial, path)
    return BenchModel(
        key="sample",
        label="sample digits",
        path=path,
        input_name="image",
        input_shape=(1, 8, 8, 1),
        output_names=("probabilities",),
        signature={
            "inputs": [{"name": "image", "dtype": "float32", "shape": [None, 8, 8, 1]}],
            "outputs": [{"name": "probabilities", "dtype": "float32", "shape": [None, 10]}],
        },
    )


def conv_net(path: Path, layers: int, channels: int = 64) -> Path:
    """image (N, 3, 32, 32) -> ``layers`` 3x3 convolutions + ReLU -> average pool -> logits (N, 10)."""
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    rng = np.random.default_rng(0)
    nodes, init = [], []
    prev, cin = "image", 3
    for i in range(layers):
        w = (rng.standard_normal((channels, cin, 3, 3)) * np.sqrt(2.0 / (9 * cin))).astype(np.float32)
        init += [
            numpy_helper.from_array(w, f"w{i}"),
            numpy_helper.from_array(np.zeros(channels, np.float32), f"b{i}"),
        ]
        nodes += [
            helper.make_node(
                "Conv", [prev, f"w{i}", f"b{i}"], [f"c{i}"], kernel_shape=[3, 3], pads=[1, 1, 1, 1]
            ),
            helper.make_node("Relu", [f"c{i}"], [f"r{i}"]),
        ]
        prev, cin = f"r{i}", channels
    fc = (rng.standard_normal((channels, 10)) / np.sqrt(channels)).astype(np.float32)
    init += [numpy_helper.from_array(fc, "fc"), numpy_helper.from_array(np.zeros(10, np.float32), "fc_b")]
    nodes += [
        helper.make_node("GlobalAveragePool", [prev], ["pooled"]),
        helper.make_node("Flatten", ["pooled"], ["flat"]),
        helper.make_node("Gemm", ["flat", "fc", "fc_b"], ["logits"]),
    ]
    graph = helper.make_graph(
        nodes,
        "conv6ms",
        [helper.make_tensor_value_info("image", TensorProto.FLOAT, ["batch", 3, 32, 32])],
        [helper.make_tensor_value_info("logits", TensorProto.FLOAT, ["batch", 10])],
        initializer=init,
    )
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]), str(path))
    return path


def _predict_ms(path: Path, shape: tuple[int, ...], input_name: str, runs: int) -> float:
    """p50 ms of a bare ``Predictor.predict`` on ``path`` (ONNX Runtime, one thread)."""
    from edgepack.runtime.backends import load_backend

    backend = load_backend("onnxruntime", path, ORT_SETTINGS)
    predictor = Predictor(backend, backend.signature)
    x = {input_name: np.random.default_rng(0).standard_normal(shape).astype(np.float32)}
    for _ in range(3):
        predictor.predict(x)
    samples = []
    for _ in range(runs):
        start = time.perf_counter()
        predictor.predict(x)
        samples.append((time.perf_counter() - start) * 1e3)
    return statistics.median(samples)


def six_ms_model(work: Path) -> tuple[BenchModel, int]:
    """The conv net, as deep as makes one predict take about ``TARGET_MODEL_MS`` here."""
    shape = (1, 3, 32, 32)
    t2 = _predict_ms(conv_net(work / "conv2.onnx", 2), shape, "image", 30)
    t6 = _predict_ms(conv_net(work / "conv6.onnx", 6), shape, "image", 20)
    per_layer = max((t6 - t2) / 4, 1e-3)
    layers = max(1, round(2 + (TARGET_MODEL_MS - t2) / per_layer))
    path = conv_net(work / "conv.onnx", layers)
    model = BenchModel(
        key="conv6ms",
        label="conv net (~6 ms)",
        path=path,
        input_name="image",
        input_shape=shape,
        output_names=("logits",),
        signature={
            "inputs": [{"name": "image", "dtype": "float32", "shape": [None, 3, 32, 32]}],
            "outputs": [{"name": "logits", "dtype": "float32", "shape": [None, 10]}],
        },
    )
    return model, layers


def write_root(dest: Path, model: BenchModel, name: str, batching: dict[str, Any] | None) -> Path:
    """An artifact root: edgepack.json, model/model.onnx and the runtime as ``edgepack_runtime``."""
    (dest / "model").mkdir(parents=True)
    shutil.copyfile(model.path, dest / "model" / "model.onnx")
    shutil.copytree(
        runtime_package_dir(), dest / "edgepack_runtime", ignore=shutil.ignore_patterns("__pycache__")
    )
    data = (dest / "model" / "model.onnx").read_bytes()
    settings = dict(ORT_SETTINGS)
    if batching is not None:
        settings["batching"] = batching
    manifest = {
        "schema": "edgepack.manifest/v1",
        "name": name,
        "version": "1",
        "target": {"name": "benchmark", "kind": "container", "arch": platform.machine(), "python": "3.11"},
        "model": {
            "file": "model/model.onnx",
            "format": "onnx",
            "sha256": hashlib.sha256(data).hexdigest(),
            "precision": "fp32",
            "signature": model.signature,
            "native_inputs": [],
            "native_outputs": [],
            "size_bytes": len(data),
        },
        "runtime": {"backend": "onnxruntime", "settings": settings},
        "hooks": None,
        "telemetry": {"enabled": False},
        "build": {"built_at": "2026-01-01T00:00:00Z", "edgepack_version": "benchmark"},
    }
    (dest / "edgepack.json").write_text(json.dumps(manifest, indent=1))
    return dest


# -- servers ----------------------------------------------------------------------------


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def rss_kib(pid: int) -> int:
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    raise RuntimeError(f"no VmRSS for pid {pid}")


class Server:
    """A server process, its stderr drained (kept for errors), stopped with SIGTERM."""

    def __init__(self, label: str, argv: list[str], env: dict[str, str] | None = None) -> None:
        self.label = label
        self.argv = argv
        self.proc = subprocess.Popen(
            argv, cwd=REPO, env=env, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE, text=True,
        )  # fmt: skip
        self.lines: list[str] = []
        self._port: int | None = None
        self._ready = threading.Event()
        threading.Thread(target=self._drain, daemon=True).start()

    def _drain(self) -> None:
        assert self.proc.stderr is not None
        for line in self.proc.stderr:
            if len(self.lines) < 2000:
                self.lines.append(line.rstrip())
            if self._port is None and line.startswith("{"):
                with contextlib.suppress(ValueError):
                    record = json.loads(line)
                    if record.get("msg") == "listening":
                        self._port = int(record["port"])
                        self._ready.set()
        self._ready.set()

    @property
    def pid(self) -> int:
        return self.proc.pid

    def wait_listening(self, timeout: float = 120) -> int:
        """Our server: the port from its "listening" log line."""
        if not self._ready.wait(timeout) or self._port is None:
            raise RuntimeError(f"{self.label} did not start:\n" + "\n".join(self.lines[-30:]))
        return self._port

    def wait_ready(self, url: str, timeout: float = 120) -> None:
        """Poll ``url`` until it answers 200."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                break
            with contextlib.suppress(OSError), urllib.request.urlopen(url, timeout=2) as answer:
                if answer.status == 200:
                    return
            time.sleep(0.2)
        raise RuntimeError(f"{self.label} did not become ready:\n" + "\n".join(self.lines[-30:]))

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)


def start_ours(roots: Sequence[Path], workers: int | None, label: str) -> tuple[Server, str]:
    argv = [
        sys.executable,
        "-m",
        "edgepack.runtime.http_server",
        *map(str, roots),
        "--host",
        "127.0.0.1",
        "--port",
        "0",
    ]
    if workers is not None:
        argv += ["--workers", str(workers)]
    server = Server(label, argv, env={**os.environ, "PYTHONPATH": str(REPO)})
    port = server.wait_listening()
    return server, f"127.0.0.1:{port}"


KSERVE_PEER = textwrap.dedent(
    '''
    """KServe peer: a kserve.Model running the artifact's edgepack_runtime Predictor."""
    import argparse
    import logging
    from pathlib import Path

    import uvicorn

    _Config = uvicorn.Config


    class _LoopbackConfig(_Config):
        # kserve's RESTServer hard-codes host="0.0.0.0"; bind the loopback interface only.
        # No access log (edgepack's server logs no request by default either).
        def __init__(self, *args, **kwargs):
            kwargs["host"] = "127.0.0.1"
            kwargs["access_log"] = False
            super().__init__(*args, **kwargs)


    uvicorn.Config = _LoopbackConfig

    import kserve  # noqa: E402
    from kserve import InferOutput, InferRequest, InferResponse, Model, ModelServer  # noqa: E402
    from edgepack_runtime.predictor import Predictor  # noqa: E402
    from edgepack_runtime.signature import OIP_DATATYPES  # noqa: E402
    from kserve.utils.utils import generate_uuid  # noqa: E402


    class EdgepackModel(Model):
        def __init__(self, root: str) -> None:
            self.predictor = Predictor.from_artifact(Path(root))
            super().__init__(self.predictor.manifest.name)
            self.ready = True

        def predict(self, payload: InferRequest, headers=None, response_headers=None) -> InferResponse:
            outputs = self.predictor.predict({i.name: i.as_numpy() for i in payload.inputs})
            binary = bool(payload.use_binary_outputs)
            infer_outputs = []
            for name, array in outputs.items():
                out = InferOutput(name=name, shape=list(array.shape), datatype=OIP_DATATYPES[array.dtype.name])
                out.set_data_from_numpy(array, binary_data=binary)
                infer_outputs.append(out)
            return InferResponse(
                # tritonclient sends no id; KServe's response model requires one.
                response_id=payload.id or generate_uuid(), model_name=self.name, infer_outputs=infer_outputs,
                use_binary_outputs=binary,
            )


    if __name__ == "__main__":
        parser = argparse.ArgumentParser()
        parser.add_argument("--root", action="append", required=True)
        parser.add_argument("--port", type=int, required=True)
        ours, _ = parser.parse_known_args()
        logging.getLogger("uvicorn.access").disabled = True
        models = [EdgepackModel(root) for root in ours.root]
        ModelServer(
            http_port=ours.port, enable_grpc=False, enable_latency_logging=False, workers=1
        ).start(models)
    '''
)


def ensure_kserve_venv(venv: Path) -> Path:
    """The KServe peer's interpreter: ``venv`` made once (python3.11 -m venv + pip install)."""
    python = venv / "bin" / "python"
    probe = [str(python), "-c", "import kserve, onnxruntime, numpy"]
    if python.is_file() and subprocess.run(probe, capture_output=True).returncode == 0:
        return python
    log(f"creating the KServe venv at {venv} (once)")
    base = shutil.which("python3.11") or sys.executable
    subprocess.run([base, "-m", "venv", str(venv)], check=True)
    subprocess.run(
        [str(python), "-m", "pip", "install", "-q", *KSERVE_PACKAGES],
        check=True, stdout=sys.stderr,
    )  # fmt: skip
    return python


KSERVE_PACKAGES = ("kserve==0.21.0", "onnxruntime==1.32.0", "numpy>=2.0,<2.5")


def start_kserve(python: Path, roots: Sequence[Path], work: Path) -> tuple[Server, str]:
    script = work / "kserve_peer.py"
    script.write_text(KSERVE_PEER)
    port = free_port()
    argv = [str(python), str(script), "--port", str(port)]
    for root in roots:
        argv += ["--root", str(root)]
    # edgepack_runtime is imported from the first artifact root (they all carry the same copy).
    env = {**os.environ, "PYTHONPATH": str(roots[0])}
    server = Server("KServe", argv, env=env)
    server.wait_ready(f"http://127.0.0.1:{port}/v2/health/ready")
    return server, f"127.0.0.1:{port}"


# -- client and load ----------------------------------------------------------------------


class Client:
    """One tritonclient.http client (one keep-alive connection) sending one prepared request."""

    def __init__(self, url: str, model_name: str, model: BenchModel, binary: bool, x: np.ndarray) -> None:
        import tritonclient.http as httpclient

        self.client = httpclient.InferenceServerClient(
            url, concurrency=1, connection_timeout=60, network_timeout=120
        )
        self.model_name = model_name
        self.model = model
        self.binary = binary
        inp = httpclient.InferInput(model.input_name, list(x.shape), "FP32")
        inp.set_data_from_numpy(x, binary_data=binary)
        self.inputs = [inp]
        self.outputs = [httpclient.InferRequestedOutput(n, binary_data=binary) for n in model.output_names]
        # tritonclient's sync client sends no Content-Type; KServe's FastAPI route wants one for JSON.
        self.headers = None if binary else {"Content-Type": "application/json"}

    def infer(self) -> dict[str, np.ndarray]:
        result = self.client.infer(self.model_name, self.inputs, outputs=self.outputs, headers=self.headers)
        return {n: result.as_numpy(n) for n in self.model.output_names}

    def close(self) -> None:
        self.client.close()


@dataclass
class LoadResult:
    concurrency: int
    seconds: float
    completed: int
    errors: int
    latencies_ms: list[float] = field(repr=False)
    error_samples: list[str] = field(default_factory=list)
    client_cpu_share: float = 0.0  # this process's CPU time / (wall time x usable CPUs)

    @property
    def throughput(self) -> float:
        return self.completed / self.seconds if self.seconds else 0.0

    def p(self, q: float) -> float:
        return float(np.percentile(self.latencies_ms, q)) if self.latencies_ms else float("nan")


def run_load(
    make_client: Callable[[int], Client], concurrency: int, seconds: float, warmup: float
) -> LoadResult:
    """``concurrency`` threads, each its own client, back to back for ``warmup + seconds``."""
    clients = [make_client(i) for i in range(concurrency)]
    start_barrier = threading.Barrier(concurrency + 1)
    lock = threading.Lock()
    latencies: list[float] = []
    errors: list[str] = []
    completed = 0
    t_measure = t_end = 0.0

    def worker(client: Client) -> None:
        nonlocal completed
        mine: list[float] = []
        mine_errors: list[str] = []
        done = 0
        start_barrier.wait()
        while True:
            t0 = time.perf_counter()
            if t0 >= t_end:
                break
            try:
                client.infer()
            except Exception as e:
                if t0 >= t_measure:
                    mine_errors.append(f"{type(e).__name__}: {e}"[:200])
                continue
            if t0 >= t_measure:
                mine.append((time.perf_counter() - t0) * 1e3)
                done += 1
        with lock:
            latencies.extend(mine)
            errors.extend(mine_errors)
            completed += done

    threads = [threading.Thread(target=worker, args=(c,), daemon=True) for c in clients]
    for t in threads:
        t.start()
    now = time.perf_counter()
    t_measure, t_end = now + warmup, now + warmup + seconds
    start_barrier.wait()
    cpu0 = time.process_time()
    for t in threads:
        t.join()
    cpu = time.process_time() - cpu0
    for c in clients:
        c.close()
    return LoadResult(
        concurrency=concurrency,
        seconds=seconds,
        completed=completed,
        errors=len(errors),
        latencies_ms=latencies,
        error_samples=errors[:5],
        client_cpu_share=cpu / ((warmup + seconds) * usable_cpus()),
    )


class ByteCounter:
    """A TCP relay 127.0.0.1:port -> target counting the bytes each way."""

    def __init__(self, target: str) -> None:
        host, port = target.rsplit(":", 1)
        self.target = (host, int(port))
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.url = f"127.0.0.1:{self.listener.getsockname()[1]}"
        self.up = self.down = 0
        self.recorded: bytearray | None = None  # when set, the server's bytes are appended
        self._lock = threading.Lock()
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while True:
            try:
                conn, _ = self.listener.accept()
            except OSError:
                return
            upstream = socket.create_connection(self.target)
            for s in (conn, upstream):
                s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            threading.Thread(target=self._pump, args=(conn, upstream, "up"), daemon=True).start()
            threading.Thread(target=self._pump, args=(upstream, conn, "down"), daemon=True).start()

    def _pump(self, src: socket.socket, dst: socket.socket, direction: str) -> None:
        with contextlib.suppress(OSError):
            while data := src.recv(1 << 16):
                with self._lock:
                    if direction == "up":
                        self.up += len(data)
                    else:
                        self.down += len(data)
                        if self.recorded is not None:
                            self.recorded += data
                dst.sendall(data)
        with contextlib.suppress(OSError):
            dst.shutdown(socket.SHUT_WR)

    def close(self) -> None:
        self.listener.close()


def wire_bytes(
    target: str, make_client: Callable[[str], Client], requests: int
) -> tuple[float, float, bytes]:
    """Mean request and response bytes (HTTP headers included) over ``requests`` calls, and
    the raw bytes of one whole response (replayed by the client-floor server)."""
    relay = ByteCounter(target)
    try:
        client = make_client(relay.url)
        client.infer()  # connection set up
        time.sleep(0.05)
        with relay._lock:
            relay.recorded = bytearray()
        client.infer()
        time.sleep(0.05)  # let the relay finish forwarding the response
        with relay._lock:
            response = bytes(relay.recorded or b"")
            relay.recorded = None
            relay.up = relay.down = 0
        for _ in range(requests):
            client.infer()
        time.sleep(0.05)
        client.close()
        with relay._lock:
            return relay.up / requests, relay.down / requests, response
    finally:
        relay.close()


FLOOR_SERVER = textwrap.dedent(
    r"""
    # Replays a recorded HTTP response per (model, encoding) and does nothing else: what is
    # left of a request's latency here is the client's and the loopback's own cost.
    import base64, json, socket, sys, threading

    canned = {k: base64.b64decode(v) for k, v in json.load(open(sys.argv[1])).items()}
    listener = socket.create_server(("127.0.0.1", 0))
    print(listener.getsockname()[1], flush=True)

    def serve(conn):
        conn.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        buf = b""
        while True:
            while b"\r\n\r\n" not in buf:
                data = conn.recv(1 << 16)
                if not data:
                    return
                buf += data
            head, _, rest = buf.partition(b"\r\n\r\n")
            lines = head.split(b"\r\n")
            headers = {k.strip().lower(): v.strip() for k, _, v in (ln.partition(b":") for ln in lines[1:])}
            length = int(headers.get(b"content-length", b"0"))
            while len(rest) < length:
                data = conn.recv(1 << 16)
                if not data:
                    return
                rest += data
            buf = rest[length:]
            model = lines[0].split()[1].decode().split("/")[3]
            encoding = "binary" if b"inference-header-content-length" in headers else "json"
            conn.sendall(canned[model + "|" + encoding])

    while True:
        conn, _ = listener.accept()
        threading.Thread(target=serve, args=(conn,), daemon=True).start()
    """
)


def start_floor(canned: dict[str, bytes], work: Path) -> tuple[subprocess.Popen[str], str]:
    import base64

    table = work / "canned.json"
    table.write_text(json.dumps({k: base64.b64encode(v).decode() for k, v in canned.items()}))
    proc = subprocess.Popen(
        [sys.executable, "-c", FLOOR_SERVER, str(table)], stdout=subprocess.PIPE, text=True
    )
    assert proc.stdout is not None
    return proc, f"127.0.0.1:{int(proc.stdout.readline())}"


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of process ``pid``, all its threads (``/proc/PID/stat``, clock ticks)."""
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


@dataclass
class Interleaved:
    served_us: list[float]  # wall time of each request, client side
    bare_us: list[float]  # wall time of each bare predict beside it
    bare_cpu_us: float  # mean thread CPU time of a bare predict
    server_cpu_us: float  # the server process's CPU time per request (its model call included)
    errors: int


def interleaved(
    client: Client,
    server_pid: int,
    predictor: Predictor,
    feed: dict[str, np.ndarray],
    seconds: float,
    warmup: float,
) -> Interleaved:
    """Alternate a bare ``predictor.predict`` and a request, after ``warmup`` seconds of the same.

    Alternating puts both under the same machine conditions (other load, CPU frequency).
    CPU times, unlike wall times, hardly move with the load other processes put on the host.
    """
    served: list[float] = []
    bare: list[float] = []
    bare_cpu = 0.0
    errors = 0
    start = time.perf_counter()
    measuring = False
    cpu0 = 0.0
    while (now := time.perf_counter()) < start + warmup + seconds:
        if not measuring and now >= start + warmup:
            measuring, cpu0 = True, cpu_seconds(server_pid)
        c0 = time.thread_time()
        t0 = time.perf_counter()
        predictor.predict(feed)
        t1 = time.perf_counter()
        c1 = time.thread_time()
        try:
            client.infer()
        except Exception:
            errors += 1
            continue
        t2 = time.perf_counter()
        if measuring:
            bare.append((t1 - t0) * 1e6)
            served.append((t2 - t1) * 1e6)
            bare_cpu += c1 - c0
    server_cpu = cpu_seconds(server_pid) - cpu0
    client.close()
    n = max(len(served), 1)
    return Interleaved(served, bare, bare_cpu / n * 1e6, server_cpu / n * 1e6, errors)


# -- the benchmark ----------------------------------------------------------------------


def usable_cpus() -> int:
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1


@dataclass
class Durations:
    latency: float
    throughput: float
    warmup: float
    soak: float
    soak_warmup: float
    wire_requests: int


def _versions() -> dict[str, str]:
    out = {"python": platform.python_version()}
    for dist in ("onnxruntime", "onnx", "numpy", "tritonclient", "geventhttpclient"):
        with contextlib.suppress(importlib.metadata.PackageNotFoundError):
            out[dist] = importlib.metadata.version(dist)
    return out


def _kserve_versions(python: Path) -> dict[str, str]:
    code = (
        "import importlib.metadata as m, json, platform; print(json.dumps({'python': platform.python_version(), "
        "**{d: m.version(d) for d in ('kserve', 'fastapi', 'uvicorn', 'onnxruntime', 'numpy')}}))"
    )
    result = subprocess.run([str(python), "-c", code], capture_output=True, text=True, check=True)
    versions: dict[str, str] = json.loads(result.stdout)
    return versions


def _cpu() -> str:
    with contextlib.suppress(OSError), open("/proc/cpuinfo") as f:
        for line in f:
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    return platform.processor() or "unknown"


def _loadavg() -> str:
    try:
        return " ".join(f"{v:.2f}" for v in os.getloadavg())
    except OSError:
        return "?"


@contextlib.contextmanager
def servers_stopped(servers: list[Server]) -> Iterator[list[Server]]:
    try:
        yield servers
    finally:
        for s in servers:
            s.stop()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--duration", type=float, default=60.0, help="soak run seconds per server (default 60)"
    )
    parser.add_argument("--quick", action="store_true", help="short smoke run: every phase, seconds each")
    parser.add_argument("--json", type=Path, help="also write the figures to this JSON file")
    parser.add_argument("--kserve-venv", type=Path, default=KSERVE_VENV, help=f"default {KSERVE_VENV}")
    args = parser.parse_args(argv)
    if args.duration <= 0:
        parser.error("--duration must be positive")
    d = (
        Durations(
            latency=0.6,
            throughput=0.6,
            warmup=0.2,
            soak=min(args.duration, 3.0),
            soak_warmup=0.5,
            wire_requests=5,
        )
        if args.quick
        else Durations(
            latency=3.0,
            throughput=3.0,
            warmup=0.5,
            soak=args.duration,
            soak_warmup=3.0,
            wire_requests=20,
        )
    )
    started = time.perf_counter()
    when = datetime.datetime.now(datetime.UTC)
    load_before = _loadavg()
    kserve_python = ensure_kserve_venv(args.kserve_venv)
    kserve_versions = _kserve_versions(kserve_python)

    report: dict[str, Any] = {"overhead": [], "throughput": [], "wire": [], "soak": [], "checks": []}
    with tempfile.TemporaryDirectory(prefix="edgepack-bench-server-") as tmp:
        work = Path(tmp)
        log("building models")
        sample = sample_model(CACHE / "bench-server")
        conv, layers = six_ms_model(work)
        models = {"sample": sample, "conv6ms": conv}
        inputs = {
            k: np.random.default_rng(1).standard_normal(m.input_shape).astype(np.float32)
            for k, m in models.items()
        }
        roots: dict[tuple[str, bool], Path] = {}
        for key, m in models.items():
            roots[key, False] = write_root(work / f"{key}-plain", m, key, None)
            roots[key, True] = write_root(work / f"{key}-batched", m, f"{key}-batched", BATCHING)
        log("starting servers")
        ours_plain, ours_plain_url = start_ours(
            [roots["sample", False], roots["conv6ms", False]], None, "edgepack"
        )
        ours_batched, ours_batched_url = start_ours(
            [roots["sample", True], roots["conv6ms", True]], BATCHED_WORKERS, "edgepack (batching)"
        )
        kserve, kserve_url = start_kserve(
            kserve_python, [roots["sample", False], roots["conv6ms", False]], work
        )
        with servers_stopped([ours_plain, ours_batched, kserve]):
            peers = {
                "ours": (ours_plain_url, ""),
                "ours-batched": (ours_batched_url, "-batched"),
                "kserve": (kserve_url, ""),
            }

            def client_factory(peer: str, key: str, binary: bool) -> Callable[[Any], Client]:
                url, suffix = peers[peer]
                return lambda _i: Client(url, key + suffix, models[key], binary, inputs[key])

            # Correctness first: every server answers what the bare predictor answers.
            for key, m in models.items():
                want = Predictor.from_artifact(roots[key, False]).predict({m.input_name: inputs[key]})
                for peer in peers:
                    for binary in (False, True):
                        c = client_factory(peer, key, binary)(0)
                        got = c.infer()
                        c.close()
                        diff = max(float(np.max(np.abs(got[n] - want[n]))) for n in m.output_names)
                        report["checks"].append(
                            {"model": key, "server": peer, "binary": binary, "max_abs_diff": diff}
                        )

            # RSS before any warm-up (after loading and the one correctness call each).
            rss0 = {"ours-batched": rss_kib(ours_batched.pid), "kserve": rss_kib(kserve.pid)}

            log("bytes on the wire")
            canned: dict[str, bytes] = {}
            for key in models:
                for binary in (False, True):
                    for peer in ("ours", "kserve"):
                        url, suffix = peers[peer]
                        m = models[key]
                        up, down, response = wire_bytes(
                            url,
                            lambda u, m=m, k=key, s=suffix, b=binary: Client(u, k + s, m, b, inputs[k]),
                            d.wire_requests,
                        )
                        if peer == "ours":
                            canned[f"{key}|{'binary' if binary else 'json'}"] = response
                        report["wire"].append({"model": key, "encoding": "binary" if binary else "JSON",
                                               "server": peer, "request": up, "response": down})  # fmt: skip

            log("overhead at concurrency 1 (interleaved with bare Predictor.predict calls)")
            floor_proc, floor_url = start_floor(canned, work)
            try:
                for key, m in models.items():
                    predictor = Predictor.from_artifact(roots[key, False])
                    feed = {m.input_name: inputs[key]}
                    for binary in (False, True):
                        row: dict[str, Any] = {"model": key, "encoding": "binary" if binary else "JSON"}
                        for peer, url, pid in (
                            ("ours", peers["ours"][0], ours_plain.pid),
                            ("kserve", kserve_url, kserve.pid),
                            ("floor", floor_url, floor_proc.pid),
                        ):
                            r = interleaved(
                                Client(url, key, m, binary, inputs[key]),
                                pid,
                                predictor,
                                feed,
                                d.latency,
                                d.warmup,
                            )
                            row[f"{peer}_p50_us"] = statistics.median(r.served_us)
                            row[f"{peer}_bare_p50_us"] = statistics.median(r.bare_us)
                            row[f"{peer}_errors"] = r.errors
                            row[f"{peer}_overhead_us"] = row[f"{peer}_p50_us"] - row[f"{peer}_bare_p50_us"]
                            row[f"{peer}_server_cpu_us"] = r.server_cpu_us
                            row[f"{peer}_bare_cpu_us"] = r.bare_cpu_us
                            log(f"  {key} {row['encoding']} {peer}: p50 {row[f'{peer}_p50_us']:.0f} us, "
                                f"bare {row[f'{peer}_bare_p50_us']:.0f} us, server CPU {r.server_cpu_us:.0f} us/request, "
                                f"bare CPU {r.bare_cpu_us:.0f} us ({len(r.served_us)} pairs)")  # fmt: skip
                        # The floor replays a response without running the model: its latency is all overhead.
                        row["floor_overhead_us"] = row["floor_p50_us"]
                        row["bare_p50_us"] = statistics.median(
                            [row["ours_bare_p50_us"], row["kserve_bare_p50_us"]]
                        )
                        report["overhead"].append(row)
            finally:
                floor_proc.kill()
                floor_proc.wait()

            log("throughput")
            for key in models:
                for conc in THROUGHPUT_CONCURRENCY:
                    row = {"model": key, "concurrency": conc, "encoding": "binary"}
                    for peer in peers:
                        r = run_load(client_factory(peer, key, True), conc, d.throughput, d.warmup)
                        row[f"{peer}_rps"] = r.throughput
                        row[f"{peer}_p50_ms"] = r.p(50)
                        row[f"{peer}_errors"] = r.errors
                        row[f"{peer}_client_cpu"] = r.client_cpu_share
                        log(f"  {key} c={conc} {peer}: {r.throughput:,.0f} req/s, errors {r.errors}")
                    report["throughput"].append(row)

            for peer, server in (("ours-batched", ours_batched), ("kserve", kserve)):
                log(f"soak: {peer}, concurrency {SOAK_CONCURRENCY}, {d.soak:.0f} s")
                url, suffix = peers[peer]
                warm = run_load(lambda i, u=url, s=suffix: Client(u, "sample" + s, sample, bool(i % 2), inputs["sample"]),
                                SOAK_CONCURRENCY, d.soak_warmup, 0.0)  # fmt: skip
                rss1 = rss_kib(server.pid)
                r = run_load(
                    lambda i, u=url, s=suffix: Client(u, "sample" + s, sample, bool(i % 2), inputs["sample"]),
                    SOAK_CONCURRENCY, d.soak, 0.0,
                )  # fmt: skip
                rss2 = rss_kib(server.pid)
                report["soak"].append({
                    "server": peer, "seconds": d.soak, "concurrency": SOAK_CONCURRENCY,
                    "requests": r.completed, "rps": r.throughput, "errors": r.errors + warm.errors,
                    "error_samples": r.error_samples or warm.error_samples,
                    "p50_ms": r.p(50), "p99_ms": r.p(99),
                    "rss_before_warmup_kib": rss0[peer], "rss_after_warmup_kib": rss1, "rss_end_kib": rss2,
                    "rss_growth": (rss2 - rss1) / rss1, "alive": server.proc.poll() is None,
                })  # fmt: skip
            server_errors = {
                s.label: [ln for ln in s.lines if '"level": "error"' in ln or "Traceback" in ln][:5]
                for s in (ours_plain, ours_batched, kserve)
            }

    total = time.perf_counter() - started
    info = {
        "when": when.strftime("%Y-%m-%d %H:%M UTC"),
        "cpu": _cpu(),
        "usable_cpus": usable_cpus(),
        "load_before": load_before,
        "load_after": _loadavg(),
        "seconds": round(total, 1),
        "versions": _versions(),
        "kserve_versions": kserve_versions,
        "conv_layers": layers,
        "batching": BATCHING,
        "batched_workers": BATCHED_WORKERS,
        "quick": args.quick,
        "server_errors": server_errors,
    }
    report["info"] = info
    report["targets"] = targets(report)
    print_report(report)
    if args.json:
        args.json.write_text(json.dumps(report, indent=1, default=str))
    return 0


def targets(report: dict[str, Any]) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    for row in report["overhead"]:
        if row["encoding"] != "binary":
            continue
        ratio = (
            row["ours_overhead_us"] / row["kserve_overhead_us"]
            if row["kserve_overhead_us"] > 0
            else float("nan")
        )
        out.append({"target": f"overhead <= {MAX_OVERHEAD_VS_KSERVE}x KServe's ({row['model']}, binary; client p50)",
                    "value": f"{ratio:.3f}x ({row['ours_overhead_us']:.0f} vs {row['kserve_overhead_us']:.0f} us)",
                    "met": ratio <= MAX_OVERHEAD_VS_KSERVE})  # fmt: skip
        if row["model"] == "conv6ms":
            share = row["ours_overhead_us"] / row["ours_bare_p50_us"]
            out.append({"target": f"overhead <= {MAX_OVERHEAD_SHARE:.0%} of the ~6 ms model (binary; client p50)",
                        "value": f"{share:.2%} ({row['ours_overhead_us']:.0f} us of {row['ours_bare_p50_us']:.0f} us)",
                        "met": share <= MAX_OVERHEAD_SHARE})  # fmt: skip
    # The same two overhead targets on server CPU time, which other load on the host hardly moves.
    for row in report["overhead"]:
        if row["encoding"] != "binary":
            continue
        ours = row["ours_server_cpu_us"] - row["ours_bare_cpu_us"]
        theirs = row["kserve_server_cpu_us"] - row["kserve_bare_cpu_us"]
        ratio = ours / theirs if theirs > 0 else float("nan")
        out.append({"target": f"overhead <= {MAX_OVERHEAD_VS_KSERVE}x KServe's ({row['model']}, binary; server CPU time)",
                    "value": f"{ratio:.3f}x ({ours:.0f} vs {theirs:.0f} CPU us)", "met": ratio <= MAX_OVERHEAD_VS_KSERVE})  # fmt: skip
        if row["model"] == "conv6ms":
            share = ours / row["ours_bare_cpu_us"]
            out.append({"target": f"overhead <= {MAX_OVERHEAD_SHARE:.0%} of the ~6 ms model (binary; server CPU time)",
                        "value": f"{share:.2%} ({ours:.0f} of {row['ours_bare_cpu_us']:.0f} CPU us)",
                        "met": share <= MAX_OVERHEAD_SHARE})  # fmt: skip
    for row in report["throughput"]:
        if row["concurrency"] != 8:
            continue
        best = max(row["ours_rps"], row["ours-batched_rps"])
        ratio = best / row["kserve_rps"] if row["kserve_rps"] else float("nan")
        out.append({"target": f"throughput at concurrency 8 >= {MIN_THROUGHPUT_VS_KSERVE:g}x KServe's ({row['model']})",
                    "value": f"{ratio:.2f}x ({best:,.0f} vs {row['kserve_rps']:,.0f} req/s; "
                             f"without batching {row['ours_rps'] / row['kserve_rps']:.2f}x)",
                    "met": ratio >= MIN_THROUGHPUT_VS_KSERVE})  # fmt: skip
    errors = sum(s["errors"] for s in report["soak"] if s["server"] == "ours-batched")
    errors += sum(
        row.get("ours_errors", 0) + row.get("ours-batched_errors", 0) for row in report["throughput"]
    )
    errors += sum(row["ours_errors"] for row in report["overhead"])
    out.append({"target": "0 errors (edgepack, every phase)", "value": str(errors), "met": errors == 0})
    for s in report["soak"]:
        if s["server"] == "ours-batched":
            out.append({"target": f"RSS growth < {MAX_RSS_GROWTH:.0%} over the soak run (edgepack)",
                        "value": f"{s['rss_growth']:+.2%}", "met": s["rss_growth"] < MAX_RSS_GROWTH})  # fmt: skip
    return out


def print_report(report: dict[str, Any]) -> None:
    info = report["info"]
    v, kv = info["versions"], info["kserve_versions"]
    print(f"edgepack HTTP server vs KServe ModelServer — {info['when']}, {info['cpu']}, {info['usable_cpus']} CPUs, "
          f"load average {info['load_before']} before, {info['load_after']} after, {info['seconds']:.0f} s"
          + ("  [--quick: too short to quote]" if info["quick"] else ""))  # fmt: skip
    print(f"client: tritonclient {v.get('tritonclient')} (sync, keep-alive, one client per thread), python {v['python']}; "
          f"edgepack: python {v['python']}, onnxruntime {v.get('onnxruntime')}, numpy {v.get('numpy')}; "
          f"KServe {kv['kserve']} (fastapi {kv['fastapi']}, uvicorn {kv['uvicorn']}, onnxruntime {kv['onnxruntime']}, "
          f"python {kv['python']})")  # fmt: skip
    print(f"both servers: edgepack Predictor on ONNX Runtime, CPUExecutionProvider, 1 intra-op thread per session; "
          f"ours: default --workers without batching, --workers {info['batched_workers']} with batching {info['batching']}; "
          f"conv net: {info['conv_layers']} conv layers (64 ch, 32x32)")  # fmt: skip
    print()
    print("## Per-request overhead at concurrency 1")
    print()
    print(
        "Each request alternates with a bare Predictor.predict call in the client process; overhead = p50 of the"
    )
    print(
        "requests minus p50 of the bare calls beside them. The client floor is a server that only replays the"
    )
    print("recorded response: the client's and the loopback's own cost, part of every server's overhead.")
    print()
    print(
        "| model | tensors | bare predict p50 µs | edgepack p50 µs | edgepack overhead µs | % of model | KServe p50 µs | KServe overhead µs | % of model | overhead ours/KServe | client floor µs | above floor ours/KServe |"
    )
    print("|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
    for r in report["overhead"]:
        ratio = (
            r["ours_overhead_us"] / r["kserve_overhead_us"] if r["kserve_overhead_us"] > 0 else float("nan")
        )
        floor = r["floor_overhead_us"]
        above = (
            (r["ours_overhead_us"] - floor) / (r["kserve_overhead_us"] - floor)
            if r["kserve_overhead_us"] > floor
            else float("nan")
        )
        print(f"| {r['model']} | {r['encoding']} | {r['ours_bare_p50_us']:.0f} | {r['ours_p50_us']:.0f} | {r['ours_overhead_us']:.0f} "
              f"| {r['ours_overhead_us'] / r['ours_bare_p50_us']:.1%} | {r['kserve_p50_us']:.0f} | {r['kserve_overhead_us']:.0f} "
              f"| {r['kserve_overhead_us'] / r['kserve_bare_p50_us']:.1%} | {ratio:.3f}x | {floor:.0f} | {above:.3f}x |")  # fmt: skip
    print()
    print("## Throughput, binary tensors, closed loop (requests/s)")
    print()
    print(
        "| model | concurrency | edgepack | edgepack + batching | KServe | edgepack/KServe | batching/KServe | p50 ms (ours, batched, KServe) | client CPU share |"
    )
    print("|---|---:|---:|---:|---:|---:|---:|---|---|")
    for r in report["throughput"]:
        k = r["kserve_rps"] or float("nan")
        print(f"| {r['model']} | {r['concurrency']} | {r['ours_rps']:,.0f} | {r['ours-batched_rps']:,.0f} | {r['kserve_rps']:,.0f} "
              f"| {r['ours_rps'] / k:.2f}x | {r['ours-batched_rps'] / k:.2f}x "
              f"| {r['ours_p50_ms']:.2f}, {r['ours-batched_p50_ms']:.2f}, {r['kserve_p50_ms']:.2f} "
              f"| {r['ours_client_cpu']:.0%}, {r['ours-batched_client_cpu']:.0%}, {r['kserve_client_cpu']:.0%} |")  # fmt: skip
    print()
    print(
        "Server CPU time per request at concurrency 1 (/proc/PID/stat, all threads; robust to other load on the host),"
    )
    print("and the same minus a bare predict's CPU time (thread time in the client process):")
    print()
    print(
        "| model | tensors | bare predict CPU µs | edgepack CPU µs/req | edgepack minus predict | KServe CPU µs/req | KServe minus predict | ours/KServe (minus predict) | floor server CPU µs/req |"
    )
    print("|---|---|---:|---:|---:|---:|---:|---:|---:|")
    for r in report["overhead"]:
        bare_cpu = r["ours_bare_cpu_us"]
        ours, ks = r["ours_server_cpu_us"] - bare_cpu, r["kserve_server_cpu_us"] - r["kserve_bare_cpu_us"]
        print(f"| {r['model']} | {r['encoding']} | {bare_cpu:.0f} | {r['ours_server_cpu_us']:.0f} | {ours:.0f} "
              f"| {r['kserve_server_cpu_us']:.0f} | {ks:.0f} | {ours / ks if ks > 0 else float('nan'):.3f}x "
              f"| {r['floor_server_cpu_us']:.0f} |")  # fmt: skip
    conv = [r for r in report["overhead"] if r["model"] == "conv6ms"]
    if conv:
        model_ms = statistics.median(r["ours_bare_p50_us"] for r in conv) / 1e3
        print()
        print(f"The conv net is compute-bound: {info['usable_cpus']} CPUs / {model_ms:.1f} ms = at most "
              f"{info['usable_cpus'] * 1e3 / model_ms:,.0f} req/s for any server here (one intra-op thread per call, "
              f"the client sharing the CPUs); KServe calls a synchronous predict on its event loop, one at a time: "
              f"at most {1e3 / model_ms:,.0f} req/s.")  # fmt: skip
    print()
    print("## Bytes on the wire per request (HTTP headers included)")
    print()
    print("| model | tensors | server | request | response | total |")
    print("|---|---|---|---:|---:|---:|")
    for r in report["wire"]:
        print(f"| {r['model']} | {r['encoding']} | {'edgepack' if r['server'] == 'ours' else 'KServe'} "
              f"| {r['request']:,.0f} | {r['response']:,.0f} | {r['request'] + r['response']:,.0f} |")  # fmt: skip
    print()
    print(f"## Soak: sample model, concurrency {SOAK_CONCURRENCY}, threads alternating JSON and binary")
    print()
    print(
        "| server | seconds | requests | req/s | p50 ms | p99 ms | errors | RSS MiB before warm-up | after warm-up | end | growth |"
    )
    print("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
    for s in report["soak"]:
        name = "edgepack + batching" if s["server"] == "ours-batched" else "KServe"
        print(f"| {name} | {s['seconds']:.0f} | {s['requests']:,} | {s['rps']:,.0f} | {s['p50_ms']:.2f} | {s['p99_ms']:.2f} "
              f"| {s['errors']} | {s['rss_before_warmup_kib'] / 1024:.1f} | {s['rss_after_warmup_kib'] / 1024:.1f} "
              f"| {s['rss_end_kib'] / 1024:.1f} | {s['rss_growth']:+.2%} |")  # fmt: skip
        for e in s["error_samples"]:
            print(f"    error: {e}")
    print()
    worst = max(report["checks"], key=lambda c: c["max_abs_diff"])
    print(f"answers vs bare Predictor: max abs difference {worst['max_abs_diff']:.3g} over {len(report['checks'])} "
          "checks (every server, model and encoding)")  # fmt: skip
    for label, lines in info["server_errors"].items():
        for line in lines:
            print(f"  {label} logged: {line[:200]}")
    print()
    print("Targets:")
    for t in report["targets"]:
        print(f"- {t['target']}: {'met' if t['met'] else 'NOT MET'}, {t['value']}")


if __name__ == "__main__":
    sys.exit(main())
