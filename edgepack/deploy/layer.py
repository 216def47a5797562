"""Lambda layer versions from signed layer zips: publish, or reuse the latest when its bytes match.

Lambda reports a layer version's ``CodeSha256`` (base64 of the zip's sha256); when the
newest version of the layer has the local zip's digest, or the same packages (the
``python/`` tree's digest from the signed manifest, verified against the files and
recorded in the version's description: a version bump changes the layer's manifest,
not its packages), and the same compatible runtime and architecture, it is reused and
nothing is uploaded. So a model-only redeploy of a
layer-split function sends only the small function zip.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from ..errors import DeployError
from .artifact import VerifiedZip, layer_content_sha256
from .aws import Aws
from .checks import (
    DIRECT_UPLOAD_LIMIT,
    check_description,
    check_layer_name,
    check_runtime,
    lambda_architecture,
)
from .errors import DeployRequestError
from .upload import check_code_route, stage_code

Step = Callable[[str], None]

_CONTENT = re.compile(r"content-sha256:([0-9a-f]{64})")


@dataclass(frozen=True)
class LayerPlan:
    """What will be sent for a layer, every value checked."""

    name: str
    runtime: str
    architecture: str  # Lambda's spelling
    description: str
    content_sha256: str | None  # of the python/ tree, verified; recorded in the description


@dataclass(frozen=True)
class LayerResult:
    arn: str  # the layer version's ARN, as attached to functions
    name: str
    version: int
    reused: bool
    uploaded: int  # bytes sent for it (0 when reused)


def default_layer_name(layer: VerifiedZip) -> str:
    """The layer's own name when its manifest gives one, else ``<project>-<target>-deps``."""
    for section in (layer.manifest.get("layer"), (layer.manifest.get("runtime") or {}).get("layer")):
        if isinstance(section, dict) and isinstance(section.get("name"), str):
            return section["name"]
    raw = f"{layer.name}-{layer.target.get('name', 'lambda')}-deps"
    return re.sub(r"[^A-Za-z0-9_-]", "-", raw)[:64]


def plan_layer(
    layer: VerifiedZip,
    name: str | None,
    *,
    like: VerifiedZip | None = None,
    bucket: str | None = None,
    limit: int = DIRECT_UPLOAD_LIMIT,
) -> LayerPlan:
    """Check every value of the publish request; ``like`` (the function) fills what the layer's
    manifest leaves out and must agree with what it says."""
    if layer.manifest.get("layer") is not True:
        raise DeployRequestError(f'{layer.path.name} is not a layer zip (its manifest lacks "layer": true)')
    target = dict(layer.target)
    if like is not None:
        for key in ("lambda_runtime", "arch"):
            mine, theirs = target.get(key), like.target.get(key)
            if mine is None:
                target[key] = theirs
            elif theirs is not None and mine != theirs:
                raise DeployRequestError(
                    f"layer {layer.path.name} is built for target.{key} {mine!r}, the function for {theirs!r}"
                )
    runtime, arch = target.get("lambda_runtime"), target.get("arch")
    if not isinstance(runtime, str) or not isinstance(arch, str):
        raise DeployRequestError(
            f"layer {layer.path.name}: its manifest names no target.lambda_runtime and target.arch"
        )
    check_runtime(runtime)
    architecture = lambda_architecture(arch)
    name = name or default_layer_name(layer)
    check_layer_name(name)
    content = layer_content_sha256(layer)
    description = f"edgepack {layer.name} {layer.version}" + (f" content-sha256:{content}" if content else "")
    check_description(description)
    check_code_route(layer, bucket, limit)
    return LayerPlan(name, runtime, architecture, description, content)


def latest_version(aws: Aws, name: str) -> dict[str, Any] | None:
    """The newest version of layer ``name`` with its content, or None."""
    listed = aws.call("lambda", "ListLayerVersions", LayerName=name, missing_ok=True) or {}
    versions = listed.get("LayerVersions") or []
    if not versions:
        return None
    newest = max(versions, key=lambda v: int(v["Version"]))
    found: dict[str, Any] | None = aws.call(
        "lambda", "GetLayerVersion", LayerName=name, VersionNumber=int(newest["Version"]), missing_ok=True
    )
    return found


def publish_layer(
    aws: Aws,
    layer: VerifiedZip,
    plan: LayerPlan,
    *,
    bucket: str | None = None,
    limit: int = DIRECT_UPLOAD_LIMIT,
    step: Step = lambda _: None,
) -> LayerResult:
    """Reuse the latest version of ``plan.name`` when it holds these bytes, else publish one."""
    latest = latest_version(aws, plan.name)
    if latest is not None:
        same_bytes = latest.get("Content", {}).get("CodeSha256") == layer.code_sha256
        # A version bump rewrites the layer's manifest, not its packages: same content, reuse.
        same_content = plan.content_sha256 is not None and plan.content_sha256 in _CONTENT.findall(
            str(latest.get("Description") or "")
        )
        fits = plan.runtime in (latest.get("CompatibleRuntimes") or [plan.runtime]) and plan.architecture in (
            latest.get("CompatibleArchitectures") or [plan.architecture]
        )
        if (same_bytes or same_content) and fits:
            what = "bytes" if same_bytes else "packages (content-sha256)"
            step(f"layer {plan.name}: version {latest['Version']} has the same {what}, reused")
            return LayerResult(latest["LayerVersionArn"], plan.name, int(latest["Version"]), True, 0)
    code = stage_code(aws, layer, bucket, limit=limit)
    published = aws.call(
        "lambda",
        "PublishLayerVersion",
        LayerName=plan.name,
        Description=plan.description,
        Content=code.params,
        CompatibleRuntimes=[plan.runtime],
        CompatibleArchitectures=[plan.architecture],
    )
    got = published.get("Content", {}).get("CodeSha256")
    if got is not None and got != layer.code_sha256:
        raise DeployError(
            f"layer {plan.name} version {published['Version']}: Lambda stored CodeSha256 {got}, "
            f"expected {layer.code_sha256}"
        )
    step(f"layer {plan.name}: published version {published['Version']} ({code.uploaded:,} bytes, {code.via})")
    return LayerResult(
        published["LayerVersionArn"], plan.name, int(published["Version"]), False, code.uploaded
    )
