"""The deploy commands, in the order they must happen.

``deploy_lambda``: verify the zip (and its layer zip) offline -> check every value of every
request -> find credentials -> smoke-test the exact zip locally -> publish or reuse the
layer -> create/update the function, publish a version, move the alias. Nothing reaches
AWS until the artifact verified (exit 4 otherwise), the values checked (exit 2) and the
smoke test passed (exit 1).

``change_alias``: ``--promote`` / ``--rollback``, with the artifact optional (when given,
it is verified and a promote only finishes a canary that runs this artifact's code).

``deploy_layer``: verify a layer zip, then publish it or reuse the identical latest version.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from ..signing.keys import PublicKey
from .artifact import VerifiedZip, open_layer, open_verified
from .aws import Aws
from .checks import DIRECT_UPLOAD_LIMIT, check_alias_name, check_function_name
from .lambda_function import (
    AliasState,
    FunctionResult,
    apply_function,
    plan_function,
    preflight,
    promote,
    rollback,
)
from .layer import LayerResult, plan_layer, publish_layer

Step = Callable[[str], None]


@dataclass(frozen=True)
class LambdaOptions:
    """What ``edgepack deploy lambda`` takes beside the artifact and the keys."""

    alias: str
    function: str | None = None  # default: manifest function.name, else the project name
    role: str | None = None  # required to create the function
    bucket: str | None = None  # required above the direct-upload limit
    canary_percent: float | None = None
    layer_arns: tuple[str, ...] | None = None  # override the layer-split's own layer
    smoke: bool = True
    direct_limit: int = DIRECT_UPLOAD_LIMIT


def _connect(aws: Aws | None, region: str | None, endpoint_url: str | None) -> Aws:
    aws = aws or Aws(region, endpoint_url=endpoint_url)
    aws.check_credentials()
    return aws


def deploy_lambda(
    artifact_path: Path,
    keys: Sequence[PublicKey],
    options: LambdaOptions,
    *,
    region: str | None = None,
    endpoint_url: str | None = None,
    aws: Aws | None = None,
    step: Step = lambda _: None,
) -> FunctionResult:
    """Verify, check, smoke-test, then deploy ``artifact_path`` to Lambda (see the module doc)."""
    from .smoke import smoke_test

    artifact = open_verified(artifact_path, keys)
    layer: VerifiedZip | None = None
    layer_name: str | None = None
    if options.layer_arns is None:  # --layer overrides the layer split's own layer zip
        opened = open_layer(artifact, keys)
        if opened is not None:
            layer_name, layer = opened[0].name, opened[1]
    step(
        f"verified {artifact.path.name}: {artifact.name} {artifact.version}, sha256 {artifact.sha256[:16]}, "
        f"signed by {artifact.keyid[:16]}" + (f"; layer {layer.path.name} verified" if layer else "")
    )
    plan = plan_function(
        artifact,
        function_name=options.function,
        alias=options.alias,
        role=options.role,
        bucket=options.bucket,
        canary_percent=options.canary_percent,
        layer_arns=options.layer_arns,
        layer=layer,
        direct_limit=options.direct_limit,
    )
    layer_plan = None
    if layer is not None:
        layer_plan = plan_layer(
            layer, layer_name, like=artifact, bucket=options.bucket, limit=options.direct_limit
        )
    aws = _connect(aws, region, endpoint_url)
    preflight(aws, plan)  # a missing --role fails before the (slow) smoke test
    if options.smoke:
        report = smoke_test(artifact, keys=keys)
        step(
            f"smoke test passed: {', '.join(report.outputs)} within {report.max_abs_error:.2g} of the "
            f"recorded sample (init {report.init_ms or 0:.0f} ms, {report.duration_ms:.1f} ms)"
        )
    else:
        step("smoke test skipped (--skip-smoke)")
    layer_result: LayerResult | None = None
    if layer is not None and layer_plan is not None:
        layer_result = publish_layer(
            aws, layer, layer_plan, bucket=options.bucket, limit=options.direct_limit, step=step
        )
    return apply_function(aws, artifact, plan, layer_result=layer_result, step=step)


def change_alias(
    action: Literal["promote", "rollback"],
    function: str | None,
    alias: str,
    *,
    artifact_path: Path | None = None,
    keys: Sequence[PublicKey] = (),
    region: str | None = None,
    endpoint_url: str | None = None,
    aws: Aws | None = None,
    step: Step = lambda _: None,
) -> AliasState:
    """Promote the alias's canary, or roll the alias back (see ``lambda_function``)."""
    artifact: VerifiedZip | None = None
    if artifact_path is not None:
        artifact = open_verified(artifact_path, keys)
        step(f"verified {artifact.path.name}: {artifact.name} {artifact.version}")
        function = function or (artifact.manifest.get("function") or {}).get("name") or artifact.name
    if function is None:
        from .errors import DeployRequestError

        raise DeployRequestError("no function: pass --function (or the artifact)")
    check_function_name(function)
    check_alias_name(alias)
    aws = _connect(aws, region, endpoint_url)
    if action == "promote":
        return promote(
            aws, function, alias, code_sha256=artifact.code_sha256 if artifact else None, step=step
        )
    return rollback(aws, function, alias, step=step)


def deploy_layer(
    layer_path: Path,
    keys: Sequence[PublicKey],
    *,
    name: str | None = None,
    bucket: str | None = None,
    region: str | None = None,
    endpoint_url: str | None = None,
    direct_limit: int = DIRECT_UPLOAD_LIMIT,
    aws: Aws | None = None,
    step: Step = lambda _: None,
) -> LayerResult:
    """Verify ``layer_path``, then publish it as a layer version or reuse the identical latest one."""
    layer = open_verified(layer_path, keys)
    step(f"verified {layer.path.name}: {layer.name} {layer.version}, sha256 {layer.sha256[:16]}")
    plan = plan_layer(layer, name, bucket=bucket, limit=direct_limit)
    aws = _connect(aws, region, endpoint_url)
    return publish_layer(aws, layer, plan, bucket=bucket, limit=direct_limit, step=step)
