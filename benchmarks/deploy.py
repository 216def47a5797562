"""Deploying the sample to Lambda: edgepack deploy vs the open-source Serverless CLI (osls).

Everything runs against moto's server on 127.0.0.1 (no AWS account), behind a small
counting proxy so that the bytes each client sends are measured the same way for both.
The sample is built four times: 1.0.0 and 1.0.1 (same model and packages, a version
bump: a "model-only" redeploy), each as a self-contained zip and with the layer split.

    python benchmarks/deploy.py [--runs 1]

Scenarios, each from a fresh moto state (its wall time and request bytes):
  edgepack: first deploy and model-only redeploy, inline, through S3 (--bucket) and with
  the layer split; a canary (10 %) then --promote; the local smoke test on its own.
  osls: `osls deploy` of the same zip (CloudFormation stack, S3 deployment bucket), then the
  1.0.1 zip (the closest osls has to a model-only redeploy).
Prints figures and ratios; asserts nothing. moto answers instantly, so wall times are
mostly the clients' own work and polling (osls polls CloudFormation every few seconds),
not AWS's; bytes are what would cross the network.
"""

from __future__ import annotations

import argparse
import http.client
import json
import os
import platform
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
SAMPLE = REPO / "samples" / "digits"
sys.path.insert(0, str(REPO))

EPOCH = 1_700_000_000
ACCOUNT = "123456789012"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class CountingProxy:
    """Forwards every request to moto and counts the request bytes (headers + body) per client."""

    def __init__(self, upstream_port: int) -> None:
        self.sent = 0
        self.requests = 0
        lock = threading.Lock()
        proxy = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args: Any) -> None:
                pass

            def _forward(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length) if length else b""
                if self.headers.get("Transfer-Encoding", "").lower() == "chunked":
                    chunks = []
                    while True:
                        size = int(self.rfile.readline().strip() or b"0", 16)
                        if size == 0:
                            self.rfile.readline()
                            break
                        chunks.append(self.rfile.read(size))
                        self.rfile.readline()
                    body = b"".join(chunks)
                headers = {k: v for k, v in self.headers.items() if k.lower() != "transfer-encoding"}
                headers["Content-Length"] = str(len(body))
                with lock:
                    proxy.sent += len(body) + sum(len(k) + len(v) + 4 for k, v in self.headers.items())
                    proxy.requests += 1
                conn = http.client.HTTPConnection("127.0.0.1", upstream_port, timeout=300)
                conn.request(self.command, self.path, body=body, headers=headers)
                answer = conn.getresponse()
                data = answer.read()
                self.send_response(answer.status)
                for k, v in answer.getheaders():
                    if k.lower() not in ("content-length", "transfer-encoding", "connection"):
                        self.send_header(k, v)
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)
                conn.close()

            do_GET = do_POST = do_PUT = do_DELETE = do_HEAD = do_PATCH = _forward

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def mark(self) -> tuple[int, int]:
        return self.sent, self.requests


def start_moto() -> tuple[subprocess.Popen[bytes], str]:
    port = free_port()
    exe = Path(sys.executable).parent / "moto_server"
    proc = subprocess.Popen(
        [str(exe) if exe.exists() else "moto_server", "-H", "127.0.0.1", "-p", str(port)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    url = f"http://127.0.0.1:{port}"
    for _ in range(300):
        try:
            urllib.request.urlopen(f"{url}/moto-api/", timeout=1).close()
            return proc, url
        except OSError:
            time.sleep(0.1)
    raise SystemExit("moto_server did not start")


def reset(moto: str) -> str:
    """Fresh moto state and the execution role; returns the role ARN."""
    import boto3

    urllib.request.urlopen(urllib.request.Request(f"{moto}/moto-api/reset", method="POST")).close()
    iam = boto3.client("iam", endpoint_url=moto, region_name="us-east-1")
    policy = {
        "Version": "2012-10-17",
        "Statement": [
            {"Effect": "Allow", "Principal": {"Service": "lambda.amazonaws.com"}, "Action": "sts:AssumeRole"}
        ],
    }
    role = iam.create_role(RoleName="edgepack-bench", AssumeRolePolicyDocument=json.dumps(policy))
    return str(role["Role"]["Arn"])


def build_all(root: Path) -> dict[str, Path]:
    import yaml

    from edgepack.build import build
    from edgepack.signing.keys import generate_keypair

    project = root / "digits"
    shutil.copytree(SAMPLE, project, ignore=shutil.ignore_patterns("keys", "__pycache__"))
    generate_keypair(project / "keys" / "dev")
    out: dict[str, Path] = {"key": project / "keys" / "dev.pub"}
    for label, version, layer in (
        ("v1", "1.0.0", False),
        ("v2", "1.0.1", False),
        ("split_v1", "1.0.0", True),
        ("split_v2", "1.0.1", True),
    ):
        data = yaml.safe_load((project / "edgepack.yaml").read_text())
        data["version"] = version
        data["function"] = {"layer": layer}
        data["targets"] = ["lambda-x86_64"]
        (project / "edgepack.yaml").write_text(yaml.safe_dump(data))
        dist = root / label
        result = build(project, dist, ["lambda-x86_64"], epoch=EPOCH)
        if not result.ok:
            raise SystemExit(f"build {label} failed: {[r.error for r in result.results]}")
        out[label] = dist / f"digits-{version}-lambda-x86_64.zip"
        print(
            f"built {label}: {out[label].name} {out[label].stat().st_size:,} bytes"
            + (
                f" + layer {sum(p.stat().st_size for p in dist.glob('*.layer.zip')):,} bytes" if layer else ""
            ),
            file=sys.stderr,
        )
    return out


def measure(proxy: CountingProxy, action: Callable[[], Any]) -> tuple[float, int, int, Any]:
    sent0, req0 = proxy.mark()
    start = time.perf_counter()
    value = action()
    elapsed = time.perf_counter() - start
    sent1, req1 = proxy.mark()
    return elapsed, sent1 - sent0, req1 - req0, value


def find_osls() -> Path | None:
    for candidate in (REPO / "node_modules" / ".bin" / "osls", Path("/tmp/osls-h1/node_modules/.bin/osls")):
        if candidate.exists():
            return candidate
    found = shutil.which("osls")
    return Path(found) if found else None


def osls_deploy(osls: Path, workdir: Path, artifact: Path, endpoint: str) -> None:
    env = {
        **os.environ,
        "AWS_ENDPOINT_URL": endpoint,
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_DEFAULT_REGION": "us-east-1",
        "SLS_TELEMETRY_DISABLED": "1",
        "SLS_NOTIFICATIONS_MODE": "off",
    }
    shutil.copy(artifact, workdir / "artifact.zip")
    proc = subprocess.run(
        [str(osls), "deploy", "--param=artifact=artifact.zip"],
        cwd=workdir,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )
    if proc.returncode != 0:
        raise RuntimeError(f"osls deploy failed: {proc.stdout[-800:]} {proc.stderr[-800:]}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--runs", type=int, default=1, help="repeat each scenario (medians are printed)")
    args = parser.parse_args()

    import boto3
    import botocore

    from edgepack.deploy.artifact import open_verified
    from edgepack.deploy.pipeline import LambdaOptions, change_alias, deploy_lambda
    from edgepack.deploy.smoke import smoke_test
    from edgepack.signing.keys import load_public_keys

    tmp = Path(tempfile.mkdtemp(prefix="edgepack-bench-deploy-"))
    moto_proc, moto = start_moto()
    proxy = CountingProxy(int(moto.rsplit(":", 1)[1]))
    for name, value in {
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_DEFAULT_REGION": "us-east-1",
    }.items():
        os.environ[name] = value
    os.environ.pop("AWS_PROFILE", None)
    try:
        built = build_all(tmp / "build")
        keys = load_public_keys([built["key"]])
        rows: dict[str, list[tuple[float, int, int]]] = {}

        def record(label: str, figures: tuple[float, int, int, Any]) -> None:
            rows.setdefault(label, []).append(figures[:3])

        def ep(artifact: Path, role: str | None = None, **kw: Any) -> Callable[[], Any]:
            options = LambdaOptions(alias="live", function="digits", role=role, smoke=False, **kw)
            return lambda: deploy_lambda(artifact, keys, options, endpoint_url=proxy.url)

        osls = find_osls()
        verified_v1 = open_verified(built["v1"], keys)
        work = tmp / "osls"
        work.mkdir()
        shutil.copy(REPO / "serverless.yml", work / "serverless.yml")
        for _ in range(args.runs):
            role = reset(moto)
            record("edgepack: first deploy (self-contained zip)", measure(proxy, ep(built["v1"], role)))
            record("edgepack: model-only redeploy (self-contained zip)", measure(proxy, ep(built["v2"])))
            role = reset(moto)
            record(
                "edgepack: first deploy via S3 (--bucket)",
                measure(proxy, ep(built["v1"], role, bucket="edgepack-bench")),
            )
            record(
                "edgepack: model-only redeploy via S3 (--bucket)",
                measure(proxy, ep(built["v2"], bucket="edgepack-bench")),
            )
            role = reset(moto)
            record(
                "edgepack: first deploy (layer split: function + layer)",
                measure(proxy, ep(built["split_v1"], role)),
            )
            record(
                "edgepack: model-only redeploy (layer split, layer reused)",
                measure(proxy, ep(built["split_v2"])),
            )
            role = reset(moto)
            measure(proxy, ep(built["v1"], role))
            record(
                "edgepack: canary 10% (1.0.1 beside 1.0.0)",
                measure(proxy, ep(built["v2"], canary_percent=10.0)),
            )
            record(
                "edgepack: --promote",
                measure(proxy, lambda: change_alias("promote", "digits", "live", endpoint_url=proxy.url)),
            )
            record(
                "edgepack: smoke test (local invoke of the zip, no AWS)",
                (*measure(proxy, lambda: smoke_test(verified_v1))[:1], 0, 0, None),
            )
            if osls is not None:
                reset(moto)
                record(
                    "osls deploy: first deploy (same zip)",
                    measure(proxy, lambda: osls_deploy(osls, work, built["v1"], proxy.url)),
                )
                record(
                    "osls deploy: redeploy with the 1.0.1 zip",
                    measure(proxy, lambda: osls_deploy(osls, work, built["v2"], proxy.url)),
                )

        print(
            f"deploy of the sample digits model to Lambda (moto {__import__('moto').__version__} server on 127.0.0.1, "
            f"boto3 {boto3.__version__}/botocore {botocore.__version__}), {platform.processor() or platform.machine()}, "
            f"{os.cpu_count()} CPUs, Python {platform.python_version()}, runs={args.runs}"
        )
        print(
            f"zips: self-contained {built['v1'].stat().st_size:,} bytes; layer split: function {built['split_v1'].stat().st_size:,} "
            f"+ layer {sum(p.stat().st_size for p in built['split_v1'].parent.glob('*.layer.zip')):,} bytes"
        )
        print(f"osls: {osls or 'not found (npm install osls in the repo root, or /tmp/osls-h1)'}")
        print()
        print("| scenario | wall s (median) | bytes sent | requests |")
        print("|---|---:|---:|---:|")
        med: dict[str, tuple[float, int, int]] = {}
        for label, figures in rows.items():
            med[label] = (
                statistics.median(f[0] for f in figures),
                int(statistics.median(f[1] for f in figures)),
                int(statistics.median(f[2] for f in figures)),
            )
            print(f"| {label} | {med[label][0]:.2f} | {med[label][1]:,} | {med[label][2]} |")
        print()

        def ratio(a: str, b: str, i: int, what: str) -> None:
            if a in med and b in med and med[b][i]:
                print(f"{what}: {med[a][i] / med[b][i]:.3f}  ({a} / {b})")

        ratio(
            "edgepack: model-only redeploy (layer split, layer reused)",
            "edgepack: model-only redeploy (self-contained zip)",
            1,
            "bytes, model-only redeploy, layer split vs self-contained",
        )
        ratio(
            "edgepack: model-only redeploy (layer split, layer reused)",
            "edgepack: model-only redeploy (self-contained zip)",
            0,
            "time, model-only redeploy, layer split vs self-contained",
        )
        ratio(
            "edgepack: first deploy (self-contained zip)",
            "osls deploy: first deploy (same zip)",
            1,
            "bytes, first deploy, edgepack vs osls",
        )
        ratio(
            "edgepack: first deploy (self-contained zip)",
            "osls deploy: first deploy (same zip)",
            0,
            "time, first deploy, edgepack vs osls",
        )
        ratio(
            "edgepack: model-only redeploy (self-contained zip)",
            "osls deploy: redeploy with the 1.0.1 zip",
            1,
            "bytes, redeploy, edgepack (self-contained) vs osls",
        )
        ratio(
            "edgepack: model-only redeploy (layer split, layer reused)",
            "osls deploy: redeploy with the 1.0.1 zip",
            1,
            "bytes, redeploy, edgepack (layer split) vs osls",
        )
        ratio(
            "edgepack: first deploy via S3 (--bucket)",
            "osls deploy: first deploy (same zip)",
            1,
            "bytes, first deploy via S3, edgepack vs osls",
        )
        ratio(
            "edgepack: model-only redeploy (self-contained zip)",
            "osls deploy: redeploy with the 1.0.1 zip",
            0,
            "time, redeploy, edgepack (self-contained) vs osls",
        )
    finally:
        proxy.server.shutdown()
        moto_proc.terminate()
        moto_proc.wait(10)
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
