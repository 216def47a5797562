"""Issue 12 end to end: the container-cpu target builds an OCI image without a daemon, real tools
check it (skopeo copies every blob, umoci unpacks it), podman runs it, and tritonclient gets the
predictor's answers from it; the Dockerfile builds the same image; a model-only change replaces
one layer."""

from __future__ import annotations

import contextlib
import json
import shutil
import signal
import socket
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import yaml

from edgepack.build import BuildResult, build
from edgepack.container_image import IMAGE_ATTESTATION, write_container_outputs
from edgepack.packaging.oci import manifest_digest, read_blob_json
from edgepack.signing.dsse import open_envelope
from edgepack.signing.keys import Ed25519FileSigner, generate_keypair, load_public_keys
from edgepack.signing.verify import verify_and_extract, verify_tree

pytestmark = pytest.mark.slow

EPOCH = 1_700_000_000
TARGET = "container-cpu"


@dataclass(frozen=True)
class Built:
    project: Path
    out: Path
    result: BuildResult

    @property
    def bundle(self) -> Path:
        return self.out / f"digits-1.0.0-{TARGET}.tar.gz"

    @property
    def outputs(self) -> Path:
        return self.out / f"digits-1.0.0-{TARGET}"

    @property
    def layout(self) -> Path:
        return self.outputs / "oci"

    @property
    def keys(self) -> list[Any]:
        return load_public_keys([self.project / "keys" / "dev.pub"])

    @property
    def signer(self) -> Ed25519FileSigner:
        return Ed25519FileSigner.from_file(self.project / "keys" / "dev.key")


def _project(sample_dir: Path, dest: Path) -> Path:
    shutil.copytree(sample_dir, dest, ignore=shutil.ignore_patterns("keys", "__pycache__"))
    generate_keypair(dest / "keys" / "dev")
    return dest


@pytest.fixture(scope="module")
def built(sample_dir: Path, tmp_path_factory: pytest.TempPathFactory, debian_base_image: Any) -> Built:
    root = tmp_path_factory.mktemp("container")
    project = _project(sample_dir, root / "digits")
    out = root / "dist"
    result = build(project, out, [TARGET], epoch=EPOCH, base_image=debian_base_image.layout)
    assert result.ok, result.results[0].error
    return Built(project, out, result)


def _layers(layout: Path, tag: str = "1.0.0") -> dict[str, str]:
    """Layer name (from its annotation) -> blob digest, for the layers edgepack wrote."""
    manifest = read_blob_json(layout, manifest_digest(layout, tag))
    named = {}
    for desc in manifest["layers"]:
        name = (desc.get("annotations") or {}).get("dev.edgepack.layer")
        if name:
            named[name] = desc["digest"]
    return named


def test_build_writes_the_bundle_the_image_and_the_docker_context(built: Built) -> None:
    result = built.result.results[0]
    assert result.image is not None and result.image["manifest_digest"].startswith("sha256:")
    assert "image oci:" in result.image["note"]
    assert built.bundle.is_file()
    for name in (
        "Dockerfile",
        ".dockerignore",
        IMAGE_ATTESTATION,
        "kubernetes/inferenceservice.yaml",
        "kubernetes/deployment.yaml",
        built.bundle.name,
        "oci/index.json",
        "oci/oci-layout",
    ):
        assert (built.outputs / name).is_file(), name
    assert (built.outputs / built.bundle.name).read_bytes() == built.bundle.read_bytes()
    assert sorted(_layers(built.layout)) == ["digits/app", "digits/deps", "digits/model"]


def test_the_bundle_in_the_image_carries_a_signed_sbom(built: Built) -> None:
    from tests.sbom_checks import check_artifact_sbom

    check_artifact_sbom(built.bundle, built.keys)


def test_skopeo_copy_checks_every_blob_and_refuses_a_corrupt_one(built: Built, tmp_path: Path) -> None:
    copied = subprocess.run(
        ["skopeo", "copy", f"oci:{built.layout}:1.0.0", f"oci:{tmp_path / 'copy'}:1.0.0"],
        capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert copied.returncode == 0, copied.stderr
    assert manifest_digest(tmp_path / "copy", "1.0.0") == manifest_digest(built.layout, "1.0.0")

    broken = tmp_path / "broken"
    shutil.copytree(built.layout, broken)
    model_blob = broken / "blobs" / "sha256" / _layers(broken)["digits/model"].removeprefix("sha256:")
    data = bytearray(model_blob.read_bytes())
    data[len(data) // 2] ^= 0xFF
    model_blob.write_bytes(bytes(data))
    refused = subprocess.run(
        ["skopeo", "copy", f"oci:{broken}:1.0.0", f"oci:{tmp_path / 'copy2'}:1.0.0"],
        capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert refused.returncode != 0
    assert "digest" in refused.stderr.lower() or "checksum" in refused.stderr.lower()


def test_umoci_unpacks_a_root_holding_exactly_the_signed_tree(built: Built, tmp_path: Path) -> None:
    unpacked = tmp_path / "bundle"
    run = subprocess.run(
        ["umoci", "unpack", "--image", f"{built.layout}:1.0.0", str(unpacked)],
        capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert run.returncode == 0, run.stderr
    app = unpacked / "rootfs" / "app" / "models" / "digits"
    verified = verify_tree(app, built.keys)  # every file's digest, no file the statement lacks
    assert verified.manifest["target"]["name"] == TARGET
    assert (unpacked / "rootfs" / "usr" / "bin" / "python3.11").exists()
    modes = {p.stat().st_mode & 0o7777 for p in app.rglob("*") if p.is_file()}
    assert modes <= {0o644, 0o755}
    config = json.loads((unpacked / "config.json").read_text())
    assert config["process"]["args"][:4] == [
        "/usr/bin/python3.11",
        "-S",
        "-m",
        "edgepack_runtime.http_server",
    ]
    assert config["process"]["cwd"] == "/app/models/digits"


def test_the_image_statement_is_signed_and_names_the_manifest(built: Built) -> None:
    envelope = json.loads((built.outputs / IMAGE_ATTESTATION).read_text())
    statement = json.loads(open_envelope(envelope, built.keys).payload)
    subjects = {s["name"]: s["digest"]["sha256"] for s in statement["subject"]}
    assert subjects["oci-image:1.0.0"] == manifest_digest(built.layout, "1.0.0").removeprefix("sha256:")
    import hashlib

    assert subjects[built.bundle.name] == hashlib.sha256(built.bundle.read_bytes()).hexdigest()
    config = read_blob_json(
        built.layout, read_blob_json(built.layout, manifest_digest(built.layout, "1.0.0"))["config"]["digest"]
    )
    assert config["config"]["Labels"]["dev.edgepack.artifact.sha256"] == subjects[built.bundle.name]
    other = tmp_key = built.project / "keys" / "other"
    generate_keypair(tmp_key)
    with pytest.raises(Exception, match="signature"):
        open_envelope(envelope, load_public_keys([Path(f"{other}.pub")]))


def test_same_inputs_give_the_same_manifest_digest(
    built: Built, tmp_path: Path, debian_base_image: Any
) -> None:
    again = write_container_outputs(
        [built.bundle], tmp_path / "again", keys=built.keys, signer=built.signer, base=debian_base_image,
        port=8080, user="10001:10001", resources={"requests": {"cpu": "1", "memory": "512Mi"},
        "limits": {"cpu": "2", "memory": "1Gi"}}, tag="1.0.0", epoch=EPOCH,
    )  # fmt: skip
    assert again.manifest_digest == built.result.results[0].image["manifest_digest"]


def test_a_model_only_change_replaces_only_the_model_layer(
    built: Built, tmp_path: Path, debian_base_image: Any
) -> None:
    import keras

    project = tmp_path / "digits"
    shutil.copytree(built.project, project)
    model_path = project / "model" / "digits.keras"
    model = keras.models.load_model(model_path)
    kernel, bias = model.layers[-1].get_weights()
    model.layers[-1].set_weights([kernel * 1.001, bias])  # retrained weights, same everything else
    model.save(model_path)
    out = tmp_path / "dist"
    result = build(project, out, [TARGET], epoch=EPOCH, base_image=debian_base_image.layout)
    assert result.ok, result.results[0].error
    before, after = _layers(built.layout), _layers(out / f"digits-1.0.0-{TARGET}" / "oci")
    assert after["digits/deps"] == before["digits/deps"]
    assert after["digits/app"] == before["digits/app"]
    assert after["digits/model"] != before["digits/model"]


def test_without_a_base_image_the_build_writes_the_docker_context_and_says_so(
    built: Built, tmp_path: Path
) -> None:
    result = build(built.project, tmp_path / "dist", [TARGET], epoch=EPOCH)
    assert result.ok, result.results[0].error
    image = result.results[0].image
    assert image is not None and image["layout"] is None and image["manifest_digest"] is None
    assert "no base image" in image["note"] and "Dockerfile" in image["note"]
    outputs = tmp_path / "dist" / f"digits-1.0.0-{TARGET}"
    assert (outputs / "Dockerfile").is_file() and not (outputs / "oci").exists()


def test_a_base_of_another_architecture_is_refused_before_any_work(built: Built, tmp_path: Path) -> None:
    from edgepack.errors import EdgepackError

    layout = tmp_path / "arm"
    shutil.copytree(built.layout, layout)
    # Rewrite the platform the way an arm64 base would declare it.
    index = json.loads((layout / "index.json").read_text())
    digest = index["manifests"][0]["digest"]
    manifest = read_blob_json(layout, digest)
    config = read_blob_json(layout, manifest["config"]["digest"])
    config["architecture"] = "arm64"
    import hashlib

    def put(value: dict[str, Any]) -> tuple[str, int]:
        data = json.dumps(value, sort_keys=True, separators=(",", ":")).encode()
        d = hashlib.sha256(data).hexdigest()
        (layout / "blobs" / "sha256" / d).write_bytes(data)
        return f"sha256:{d}", len(data)

    manifest["config"]["digest"], manifest["config"]["size"] = put(config)
    index["manifests"][0]["digest"], index["manifests"][0]["size"] = put(manifest)
    index["manifests"][0].pop("platform", None)
    (layout / "index.json").write_text(json.dumps(index))
    out = tmp_path / "dist"
    with pytest.raises(EdgepackError, match="aarch64") as excinfo:
        build(built.project, out, [TARGET], epoch=EPOCH, base_image=layout)
    assert excinfo.value.exit_code == 2
    assert not out.exists()


# -- the image runs -------------------------------------------------------------------------


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@contextlib.contextmanager
def _running(podman: Any, image: str, port: int, name: str) -> Iterator[subprocess.Popen[str]]:
    cmd = podman.run_args(
        image, env={"EDGEPACK_HOST": "127.0.0.1", "EDGEPACK_PORT": str(port)}, options=["--name", name]
    )
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        deadline = time.monotonic() + 180
        while time.monotonic() < deadline:
            if proc.poll() is not None:
                pytest.fail(
                    f"the container exited {proc.returncode}: {proc.stdout.read() if proc.stdout else ''}"
                )
            with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), timeout=1):
                break
            time.sleep(0.5)
        yield proc
    finally:
        if proc.poll() is None:
            subprocess.run([*podman.command(), "stop", "-t", "30", name], capture_output=True, timeout=120)
            proc.wait(timeout=60)


def _expected(built: Built, tmp_path: Path, x: np.ndarray) -> dict[str, np.ndarray]:
    from edgepack.runtime.predictor import Predictor

    root = tmp_path / "tree"
    verify_and_extract(built.bundle, root, built.keys)
    return Predictor.from_artifact(root).predict({"image": x})


def test_the_image_runs_answers_tritonclient_and_stops_on_sigterm(
    built: Built, podman: Any, tmp_path: Path, validation_npz: Path
) -> None:
    import tritonclient.http as httpclient

    x = np.load(validation_npz)["image"][:4].astype(np.float32)
    expected = _expected(built, tmp_path, x)["probabilities"]
    port = _free_port()
    with _running(podman, f"oci:{built.layout}:1.0.0", port, "edgepack-e2e-digits") as proc:
        client = httpclient.InferenceServerClient(f"127.0.0.1:{port}")
        assert client.is_server_live() and client.is_server_ready() and client.is_model_ready("digits")
        metadata = client.get_model_metadata("digits")
        assert metadata["inputs"][0]["name"] == "image"
        for binary in (False, True):
            tensor = httpclient.InferInput("image", list(x.shape), "FP32")
            tensor.set_data_from_numpy(x, binary_data=binary)
            wanted = httpclient.InferRequestedOutput("probabilities", binary_data=binary)
            got = client.infer("digits", [tensor], outputs=[wanted]).as_numpy("probabilities")
            np.testing.assert_array_equal(got, expected)
        # The probes the Kubernetes manifests name are real routes of the running image.
        import urllib.request

        for manifest in ("inferenceservice.yaml", "deployment.yaml"):
            for path in _probe_paths(built.outputs / "kubernetes" / manifest):
                with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=10) as response:
                    assert response.status == 200, path
        client.close()
        subprocess.run([*podman.command(), "kill", "--signal", "TERM", "edgepack-e2e-digits"], timeout=60)
        assert proc.wait(timeout=60) == 0  # PID 1 handled SIGTERM: a SIGKILL would give 137
        logs = proc.stdout.read() if proc.stdout else ""
    assert '"msg":"stopped"' in logs.replace(" ", "")


def _probe_paths(path: Path) -> list[str]:
    paths = []
    for doc in yaml.safe_load_all(path.read_text()):
        spec = doc.get("spec", {})
        pod = spec.get("predictor") or spec.get("template", {}).get("spec") or {}
        for container in pod.get("containers", []):
            for probe in ("readinessProbe", "livenessProbe"):
                paths.append(container[probe]["httpGet"]["path"])
    return paths


def test_the_dockerfile_builds_the_same_image(built: Built, podman: Any, debian_base_image: Any) -> None:
    tag = "localhost/edgepack-e2e-dockerfile:1.0.0"
    run = subprocess.run(
        [*podman.command(), "build", "--layers=false", "--network=host", "--format", "docker",
         "--build-arg", f"BASE_IMAGE=oci:{debian_base_image.layout}:{debian_base_image.tag}",
         "-t", tag, str(built.outputs)],
        capture_output=True, text=True, timeout=600,
    )  # fmt: skip
    assert run.returncode == 0, run.stderr[-2000:]
    image = json.loads(
        subprocess.run(
            [*podman.command(), "image", "inspect", tag], capture_output=True, text=True, check=True
        ).stdout
    )[0]
    inspected = image["Config"]
    ours = read_blob_json(
        built.layout, read_blob_json(built.layout, manifest_digest(built.layout, "1.0.0"))["config"]["digest"]
    )["config"]
    for key in ("Entrypoint", "Cmd", "WorkingDir", "User", "ExposedPorts", "StopSignal"):
        assert inspected.get(key) == ours.get(key), key
    assert set(ours["Env"]) - {"LANG=C.UTF-8"} <= set(inspected["Env"])
    assert {
        k: v for k, v in ours["Labels"].items() if not k.startswith("dev.edgepack.base")
    }.items() <= inspected["Labels"].items()
    # podman's inspect does not show a HEALTHCHECK: compare the Dockerfile's with the image's.
    dockerfile = (built.outputs / "Dockerfile").read_text()
    assert f"CMD {json.dumps(ours['Healthcheck']['Test'][1:])}" in dockerfile
    # Same files: the tree inside the Docker-built image verifies against the bundle's statement.
    listing = subprocess.run(
        podman.run_args(
            tag, ["-S", "-c", _HASH_TREE], options=["--entrypoint", "/usr/bin/python3.11", "--no-healthcheck"]
        ),
        capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert listing.returncode == 0, listing.stderr
    inside = json.loads(listing.stdout)
    envelope = json.loads(
        inside.pop("attestation.dsse.json") and (built.outputs / "oci").exists() and _attestation_of(built)
    )
    statement = json.loads(open_envelope(envelope, built.keys).payload)
    assert inside == {s["name"]: s["digest"]["sha256"] for s in statement["subject"]}


_HASH_TREE = (
    "import hashlib,os,json;r='/app/models/digits';print(json.dumps({os.path.relpath(os.path.join(d,f),r):"
    "hashlib.sha256(open(os.path.join(d,f),'rb').read()).hexdigest() for d,_,fs in os.walk(r) for f in fs}))"
)


def _attestation_of(built: Built) -> str:
    import tarfile

    with tarfile.open(built.bundle) as t:
        member = t.extractfile("attestation.dsse.json")
        assert member is not None
        return member.read().decode()


def test_the_kubernetes_manifests_are_well_formed(built: Built) -> None:
    isvc = yaml.safe_load((built.outputs / "kubernetes" / "inferenceservice.yaml").read_text())
    assert isvc["apiVersion"] == "serving.kserve.io/v1beta1" and isvc["kind"] == "InferenceService"
    container = isvc["spec"]["predictor"]["containers"][0]
    assert container["ports"][0]["containerPort"] == 8080
    assert container["resources"]["limits"] == {"cpu": "2", "memory": "1Gi"}
    docs = list(yaml.safe_load_all((built.outputs / "kubernetes" / "deployment.yaml").read_text()))
    assert [d["kind"] for d in docs] == ["Deployment", "Service"]
    deployment, service = docs
    labels = deployment["spec"]["template"]["metadata"]["labels"]
    assert deployment["spec"]["selector"]["matchLabels"].items() <= labels.items()
    assert service["spec"]["selector"].items() <= labels.items()
    assert isvc["metadata"]["annotations"]["edgepack.dev/image-manifest-digest"] == manifest_digest(
        built.layout, "1.0.0"
    )


# -- edgepack serve and edgepack image: several models --------------------------------------


@pytest.fixture(scope="module")
def second(built: Built, tmp_path_factory: pytest.TempPathFactory, debian_base_image: Any) -> Path:
    """A second container bundle (another model name), signed by the same key."""
    root = tmp_path_factory.mktemp("second")
    project = root / "digits-b"
    shutil.copytree(built.project, project)
    config = project / "edgepack.yaml"
    config.write_text(config.read_text().replace("name: digits\n", "name: digits-b\n", 1))
    result = build(project, root / "dist", [TARGET], epoch=EPOCH, base_image=debian_base_image.layout)
    assert result.ok, result.results[0].error
    return root / "dist" / f"digits-b-1.0.0-{TARGET}.tar.gz"


def _edgepack(*args: str) -> list[str]:
    import sys

    return [sys.executable, "-m", "edgepack", *args]


@contextlib.contextmanager
def _serving(*args: str) -> Iterator[tuple[subprocess.Popen[str], int]]:
    port = _free_port()
    proc = subprocess.Popen(
        _edgepack("serve", *args, "--port", str(port)),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline and proc.poll() is None:
            with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), timeout=1):
                break
            time.sleep(0.2)
        yield proc, port
    finally:
        if proc.poll() is None:
            proc.terminate()
            proc.wait(timeout=60)


def test_edgepack_serve_runs_two_verified_models_and_stops_on_sigterm(
    built: Built, second: Path, tmp_path: Path, validation_npz: Path
) -> None:
    import tritonclient.http as httpclient

    x = np.load(validation_npz)["image"][:3].astype(np.float32)
    expected = _expected(built, tmp_path, x)["probabilities"]
    key = str(built.project / "keys" / "dev.pub")
    with _serving(str(built.bundle), str(second), "--key", key) as (proc, port):
        client = httpclient.InferenceServerClient(f"127.0.0.1:{port}")
        assert client.is_server_ready(), proc.stderr
        for model in ("digits", "digits-b"):
            assert client.is_model_ready(model, "1.0.0")
            tensor = httpclient.InferInput("image", list(x.shape), "FP32")
            tensor.set_data_from_numpy(x, binary_data=True)
            got = client.infer(model, [tensor], model_version="1.0.0").as_numpy("probabilities")
            np.testing.assert_array_equal(got, expected)
        client.close()
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=60) == 0
        stderr = proc.stderr.read() if proc.stderr else ""
    assert "WARNING" not in stderr and "UNVERIFIED" not in stderr


def test_edgepack_serve_refuses_a_tampered_artifact_with_exit_4(built: Built, tmp_path: Path) -> None:
    tampered = tmp_path / built.bundle.name
    data = bytearray(built.bundle.read_bytes())
    data[len(data) // 3] ^= 0x01
    tampered.write_bytes(bytes(data))
    run = subprocess.run(
        _edgepack("serve", str(tampered), "--key", str(built.project / "keys" / "dev.pub"), "--port", "0"),
        capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert run.returncode == 4, run.stderr
    errors = [line for line in run.stderr.splitlines() if line.startswith("edgepack: error:")]
    assert len(errors) == 1 and str(tampered) in errors[0]


def test_edgepack_serve_without_a_key_says_it_runs_unverified_code(built: Built) -> None:
    with _serving(str(built.bundle)) as (proc, port):
        with socket.create_connection(("127.0.0.1", port), timeout=5):
            pass
        proc.terminate()
        assert proc.wait(timeout=60) == 0
        stderr = proc.stderr.read() if proc.stderr else ""
    assert "WARNING: no --key given: serving UNVERIFIED artifacts" in stderr


def test_edgepack_serve_refuses_the_same_model_twice_with_exit_2(built: Built, tmp_path: Path) -> None:
    copy = tmp_path / "again.tar.gz"
    shutil.copyfile(built.bundle, copy)
    run = subprocess.run(
        _edgepack("serve", str(built.bundle), str(copy), "--port", "0"),
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert run.returncode == 2
    assert "a second artifact of model 'digits'" in run.stderr


def test_edgepack_image_holds_several_models_each_verifiable(
    built: Built, second: Path, tmp_path: Path, debian_base_image: Any
) -> None:
    out = tmp_path / "both"
    run = subprocess.run(
        _edgepack("image", str(built.bundle), str(second), "--out", str(out), "--base-image",
                  str(debian_base_image.layout), "--signing-key", str(built.project / "keys" / "dev.key")),
        capture_output=True, text=True, timeout=600,
    )  # fmt: skip
    assert run.returncode == 0, run.stderr
    layers = _layers(out / "oci")
    assert sorted(layers) == sorted(
        f"{m}/{k}" for m in ("digits", "digits-b") for k in ("app", "deps", "model")
    )
    unpacked = tmp_path / "unpacked"
    umoci = subprocess.run(
        ["umoci", "unpack", "--image", f"{out / 'oci'}:1.0.0", str(unpacked)], capture_output=True, text=True
    )
    assert umoci.returncode == 0, umoci.stderr
    for model in ("digits", "digits-b"):
        assert (
            verify_tree(unpacked / "rootfs" / "app" / "models" / model, built.keys).manifest["name"] == model
        )
    config = json.loads((unpacked / "config.json").read_text())
    assert config["process"]["args"][4:] == ["/app/models/digits", "/app/models/digits-b"]


def test_edgepack_image_refuses_what_is_not_a_signed_bundle(built: Built, tmp_path: Path) -> None:
    not_a_bundle = tmp_path / "x.tar.gz"
    not_a_bundle.write_bytes(b"not an archive")
    run = subprocess.run(
        _edgepack("image", str(not_a_bundle), "--out", str(tmp_path / "o"),
                  "--signing-key", str(built.project / "keys" / "dev.key")),
        capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert run.returncode == 4, run.stderr
    assert not (tmp_path / "o").exists()


def _verify(path: Path, key: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        _edgepack("verify", str(path), "--key", str(key)), capture_output=True, text=True, timeout=300
    )


def test_edgepack_verify_checks_the_image_down_to_every_blob(built: Built, tmp_path: Path) -> None:
    key = built.project / "keys" / "dev.pub"
    ok = _verify(built.outputs, key)
    assert ok.returncode == 0, ok.stderr
    assert built.result.results[0].image["manifest_digest"] in ok.stdout

    def tampered(name: str) -> Path:
        copy = tmp_path / name
        shutil.copytree(built.outputs, copy)
        return copy

    layer = tampered("layer")
    blob = layer / "oci" / "blobs" / "sha256" / _layers(layer / "oci")["digits/app"].removeprefix("sha256:")
    blob.write_bytes(blob.read_bytes()[:-1] + bytes([blob.read_bytes()[-1] ^ 1]))
    other_tag = tampered("retagged")
    index = json.loads((other_tag / "oci" / "index.json").read_text())
    index["manifests"][0]["annotations"]["org.opencontainers.image.ref.name"] = "2.0.0"
    (other_tag / "oci" / "index.json").write_text(json.dumps(index))
    bundle = tampered("bundle")
    (bundle / built.bundle.name).unlink()
    unsigned = tampered("unsigned")
    (unsigned / IMAGE_ATTESTATION).unlink()
    for case, expected in ((layer, "does not match"), (other_tag, "no image tagged"),
                           (bundle, "no signed bundle"), (unsigned, "no signed statement")):  # fmt: skip
        refused = _verify(case, key)
        assert refused.returncode == 4, (case.name, refused.stdout, refused.stderr)
        assert expected in refused.stderr, (case.name, refused.stderr)


def test_the_base_images_python_decides_the_wheel_tags(built: Built, tmp_path: Path) -> None:
    from edgepack.container_base import cached_base_image

    trixie = cached_base_image(suite="trixie")
    assert trixie.python == "3.13"
    out = tmp_path / "dist"
    result = build(built.project, out, [TARGET], epoch=EPOCH, base_image=trixie.layout)
    assert result.ok, result.results[0].error
    bundle = out / f"digits-1.0.0-{TARGET}.tar.gz"
    import tarfile

    with tarfile.open(bundle) as t:
        names = t.getnames()
        manifest_member = t.extractfile("edgepack.json")
        assert manifest_member is not None
        manifest = json.loads(manifest_member.read())
    assert manifest["target"]["python"] == "3.13"
    assert any(n.startswith("numpy/_core/_multiarray_umath.cpython-313-x86_64-linux-gnu") for n in names)
    config = read_blob_json(
        out / f"digits-1.0.0-{TARGET}" / "oci",
        read_blob_json(
            out / f"digits-1.0.0-{TARGET}" / "oci", manifest_digest(out / f"digits-1.0.0-{TARGET}" / "oci")
        )["config"]["digest"],
    )
    assert config["config"]["Entrypoint"][0] == "/usr/bin/python3.13"


def _load_with_the_sdks(*manifests: Path) -> subprocess.CompletedProcess[str]:
    """tests/e2e/k8s_validate.py under the KServe venv scripts/setup.sh makes."""
    repo = Path(__file__).resolve().parents[2]
    python = repo / ".venv-kserve" / "bin" / "python"
    assert python.is_file(), "the KServe venv is missing: run scripts/setup.sh"
    return subprocess.run(
        [str(python), str(Path(__file__).with_name("k8s_validate.py")), *map(str, manifests)],
        capture_output=True, text=True, timeout=120,
    )  # fmt: skip


def test_the_kubernetes_manifests_load_into_the_kserve_and_kubernetes_models(
    built: Built, tmp_path: Path
) -> None:
    manifests = sorted((built.outputs / "kubernetes").glob("*.yaml"))
    loaded = _load_with_the_sdks(*manifests)
    assert loaded.returncode == 0, loaded.stderr
    kinds = sorted(json.loads(line)["kind"] for line in loaded.stdout.splitlines())
    assert kinds == ["Deployment", "InferenceService", "Service"]
    # The check can fail: a misspelt probe and a port that is not a number are refused.
    isvc = (built.outputs / "kubernetes" / "inferenceservice.yaml").read_text()
    typo = tmp_path / "typo.yaml"
    typo.write_text(isvc.replace("readinessProbe", "readinesProbe"))
    refused = _load_with_the_sdks(typo)
    assert refused.returncode == 1 and "readinesProbe: unknown field" in refused.stderr
    bad_port = tmp_path / "port.yaml"
    bad_port.write_text(
        (built.outputs / "kubernetes" / "deployment.yaml")
        .read_text()
        .replace("containerPort: 8080", "containerPort: web")
    )
    refused = _load_with_the_sdks(bad_port)
    assert refused.returncode == 1 and "containerPort" in refused.stderr
