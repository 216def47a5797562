"""Fixtures for deploy tests: a real moto server over HTTP, the sample built once, and a
recorder of every request edgepack's boto3 session sends (botocore event hooks)."""

from __future__ import annotations

import json
import os
import shutil
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import yaml

from edgepack.signing.keys import generate_keypair

EPOCH = 1_700_000_000
ROLE_POLICY = {
    "Version": "2012-10-17",
    "Statement": [
        {"Effect": "Allow", "Principal": {"Service": "lambda.amazonaws.com"}, "Action": "sts:AssumeRole"}
    ],
}


def boto(service: str) -> Any:
    """A plain boto3 client for the test's own reads, against the same moto."""
    import boto3

    return boto3.client(service, region_name="us-east-1")


@pytest.fixture
def role_arn(aws_env: str) -> str:
    role = boto("iam").create_role(RoleName="edgepack-test", AssumeRolePolicyDocument=json.dumps(ROLE_POLICY))
    return str(role["Role"]["Arn"])


# -- what edgepack sends -----------------------------------------------------------------


@dataclass
class Recorder:
    """Every request edgepack's sessions send: operation names, parameters, body bytes; and
    faults to inject (``before-send`` handlers that may answer instead of the server)."""

    calls: list[tuple[str, dict[str, Any]]] = field(default_factory=list)
    sent_bytes: int = 0
    faults: list[Callable[..., Any]] = field(default_factory=list)
    after: list[tuple[str, Callable[..., Any]]] = field(default_factory=list)

    def operations(self) -> list[str]:
        return [name for name, _ in self.calls]

    def params(self, operation: str) -> list[dict[str, Any]]:
        return [p for name, p in self.calls if name == operation]

    def _before_call(self, model: Any, params: dict[str, Any], **_: Any) -> None:  # the API params
        self.calls.append((model.name, dict(params)))

    def _before_send(self, request: Any, **kwargs: Any) -> Any:
        body = request.body
        self.sent_bytes += len(body) if isinstance(body, bytes | bytearray) else 0
        for fault in self.faults:
            answer = fault(request=request, **kwargs)
            if answer is not None:
                return answer
        return None

    def session(self, region: str | None) -> Any:
        import boto3

        session = boto3.session.Session(region_name=region)
        session.events.register("before-parameter-build", self._before_call)
        session.events.register("before-send", self._before_send)
        for event, handler in self.after:
            session.events.register(event, handler)
        return session


@pytest.fixture
def recorder(monkeypatch: pytest.MonkeyPatch) -> Recorder:
    """Patches ``edgepack.deploy.aws.new_session``: every session edgepack makes records here."""
    from edgepack.deploy import aws

    rec = Recorder()
    monkeypatch.setattr(aws, "new_session", rec.session)
    # No real waiting in tests: the retry policy's sleep is recorded instead.
    return rec


# -- the sample, built once ---------------------------------------------------------------


@dataclass(frozen=True)
class Built:
    v1: Path  # digits 1.0.0, lambda-x86_64, self-contained
    v2: Path  # digits 1.0.1: the same model and packages, another version
    split_v1: Path  # function.layer: true; the layer zip lies beside it
    split_v2: Path
    public_key: Path
    private_key: Path
    other_key: Path  # a public key that signed nothing here


def _build(project: Path, out: Path, version: str, *, layer: bool = False) -> Path:
    from edgepack.build import build

    config = project / "edgepack.yaml"
    data = yaml.safe_load(config.read_text())
    data["version"] = version
    data["function"] = {"layer": layer}
    config.write_text(yaml.safe_dump(data))
    result = build(project, out, ["lambda-x86_64"], epoch=EPOCH)
    assert result.ok, [r.error for r in result.results]
    return out / f"digits-{version}-lambda-x86_64.zip"


@pytest.fixture(scope="session")
def built(sample_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Built:
    """The sample built four times (about 2 minutes; the build cache makes the later ones faster)."""
    root = tmp_path_factory.mktemp("deploy")
    project = root / "digits"
    shutil.copytree(sample_dir, project, ignore=shutil.ignore_patterns("keys", "__pycache__"))
    generate_keypair(project / "keys" / "dev")
    generate_keypair(root / "other")
    return Built(
        v1=_build(project, root / "dist1", "1.0.0"),
        v2=_build(project, root / "dist2", "1.0.1"),
        split_v1=_build(project, root / "split1", "1.0.0", layer=True),
        split_v2=_build(project, root / "split2", "1.0.1", layer=True),
        public_key=project / "keys" / "dev.pub",
        private_key=project / "keys" / "dev.key",
        other_key=root / "other.pub",
    )


def python312_or_skip() -> None:
    from edgepack.errors import PlatformError
    from edgepack.invoke.lambda_base import find_python, host_arch

    if host_arch() != "x86_64":
        pytest.skip("the sample's lambda-x86_64 artifact runs on x86_64 only")
    try:
        find_python("python3.12", "x86_64")
    except PlatformError as e:
        pytest.skip(f"no CPython 3.12 on this host: {e.hint()}")


os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
