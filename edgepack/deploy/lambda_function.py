"""The Lambda function side of a deploy: create or update, wait, publish a version, route the alias.

``plan_function`` turns a verified artifact and the command's options into every value
that will be sent, each one checked (``checks``) before any call. ``apply_function``
then creates the function (or updates its configuration and code, skipping the upload
when Lambda already holds these bytes), waits until Lambda reports the update
``Successful`` (``Failed`` is a ``FunctionStateError``), publishes a version pinned to the
artifact's digest, tags the function, and moves the alias: all at once, or as a canary
(the alias stays on its version and sends ``weight`` of the traffic to the new one).
``promote`` finishes a canary; ``rollback`` aborts one, or returns the alias to the version
it pointed at before the last switch, recorded in the alias description
(``edgepack previous=<version>``).
"""

from __future__ import annotations

import re
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from .artifact import VerifiedZip
from .aws import Aws
from .checks import (
    DIRECT_UPLOAD_LIMIT,
    canary_weight,
    check_alias_name,
    check_description,
    check_environment,
    check_function_name,
    check_handler,
    check_layer_arns,
    check_memory,
    check_role_arn,
    check_runtime,
    check_snapstart,
    check_tags,
    check_timeout,
    check_unzipped_size,
    check_version,
    lambda_architecture,
)
from .errors import DeployRequestError, FunctionStateError
from .layer import LayerResult
from .upload import Code, check_code_route, stage_code

Step = Callable[[str], None]

# How long to wait for Lambda to finish an update or a version, and how often to look.
SETTLE_TIMEOUT_S = 600.0
POLL_S = 1.0

TAG_PREFIX = "edgepack:"
_PREVIOUS = re.compile(r"\bprevious=(\d+)\b")


@dataclass(frozen=True)
class FunctionPlan:
    """Every value a deploy sends for the function, checked."""

    name: str
    alias: str
    runtime: str
    architecture: str  # x86_64 | arm64
    handler: str
    memory_mb: int
    timeout_s: int
    environment: dict[str, str]
    role: str | None
    snapstart: bool
    description: str
    tags: dict[str, str]
    canary_weight: float | None  # None: move the alias all at once
    layer_arns: tuple[str, ...] | None  # --layer: attach these instead of publishing the layer zip
    bucket: str | None
    direct_limit: int = DIRECT_UPLOAD_LIMIT


@dataclass(frozen=True)
class AliasState:
    function_arn: str
    alias: str
    version: str  # where the alias points
    weights: dict[str, float] = field(default_factory=dict)  # canary: version -> share of traffic
    previous: str | None = None  # recorded for --rollback

    def routing(self) -> str:
        if not self.weights:
            return f"{self.alias} -> {self.version} (100%)"
        rest = 1.0 - sum(self.weights.values())
        canary = ", ".join(f"{v} ({w:.4g}%)" for v, w in ((v, w * 100) for v, w in self.weights.items()))
        return f"{self.alias} -> {self.version} ({rest * 100:.4g}%), {canary}"


@dataclass(frozen=True)
class FunctionResult:
    function_arn: str
    version: str
    created: bool
    code: Code | None  # None when Lambda already held these bytes
    alias: AliasState
    layer: LayerResult | None = None

    @property
    def uploaded(self) -> int:
        return (self.code.uploaded if self.code else 0) + (self.layer.uploaded if self.layer else 0)


def artifact_tags(artifact: VerifiedZip, layer: VerifiedZip | None = None) -> dict[str, str]:
    tags = {
        f"{TAG_PREFIX}name": artifact.name,
        f"{TAG_PREFIX}version": artifact.version,
        f"{TAG_PREFIX}target": str(artifact.target.get("name", "")),
        f"{TAG_PREFIX}artifact-sha256": artifact.sha256,
        f"{TAG_PREFIX}signed-by": artifact.keyid,
    }
    if layer is not None:
        tags[f"{TAG_PREFIX}layer-sha256"] = layer.sha256
    return tags


def function_environment(manifest: Mapping[str, Any]) -> dict[str, str]:
    """Powertools' service and namespace from the manifest's telemetry, then the project's variables."""
    telemetry = manifest.get("telemetry") or {}
    name = str(manifest.get("name", ""))
    env = {
        "POWERTOOLS_SERVICE_NAME": str(telemetry.get("service") or name),
        "POWERTOOLS_METRICS_NAMESPACE": str(telemetry.get("namespace") or f"edgepack/{name}"),
    }
    function = manifest.get("function") or {}
    env.update({str(k): v for k, v in (function.get("environment") or {}).items()})
    return env


def plan_function(
    artifact: VerifiedZip,
    *,
    function_name: str | None,
    alias: str,
    role: str | None = None,
    bucket: str | None = None,
    canary_percent: float | None = None,
    layer_arns: tuple[str, ...] | None = None,
    layer: VerifiedZip | None = None,
    direct_limit: int = DIRECT_UPLOAD_LIMIT,
) -> FunctionPlan:
    """Check every value before anything is sent; raises ``DeployRequestError`` (exit 2)."""
    manifest = artifact.manifest
    target = artifact.target
    if manifest.get("layer") is True:
        raise DeployRequestError(
            f"{artifact.path.name} is a layer zip: deploy it with `edgepack deploy layer`"
        )
    if target.get("kind", "lambda") != "lambda":
        raise DeployRequestError(f"{artifact.path.name}: target.kind {target.get('kind')!r} is not lambda")
    function = manifest.get("function") or {}
    name = function_name or function.get("name") or artifact.name
    check_function_name(name)
    check_alias_name(alias)
    runtime = str(target.get("lambda_runtime"))
    check_runtime(runtime)
    architecture = lambda_architecture(str(target.get("arch")))
    handler = str((manifest.get("runtime") or {}).get("entrypoint") or "")
    check_handler(handler)
    memory_mb = function.get("memory_mb", 1024)
    timeout_s = function.get("timeout_s", 10)
    check_memory(memory_mb)
    check_timeout(timeout_s)
    environment = function_environment(manifest)
    check_environment(environment)
    if role is not None:
        check_role_arn(role)
    snapstart = bool(function.get("snapstart", False))
    if snapstart:
        check_snapstart(runtime)
    weight = canary_weight(canary_percent) if canary_percent is not None else None
    if layer_arns is not None:
        check_layer_arns(layer_arns)
    description = f"edgepack {artifact.name} {artifact.version} sha256:{artifact.sha256}"
    check_description(description)
    tags = artifact_tags(artifact, layer if layer_arns is None else None)
    check_tags(tags)
    check_code_route(artifact, bucket, direct_limit)
    check_unzipped_size(artifact.unzipped_size + (layer.unzipped_size if layer and layer_arns is None else 0))
    return FunctionPlan(
        name=name,
        alias=alias,
        runtime=runtime,
        architecture=architecture,
        handler=handler,
        memory_mb=memory_mb,
        timeout_s=timeout_s,
        environment=environment,
        role=role,
        snapstart=snapstart,
        description=description,
        tags=tags,
        canary_weight=weight,
        layer_arns=layer_arns,
        bucket=bucket,
        direct_limit=direct_limit,
    )


# -- waiting ---------------------------------------------------------------------------


def wait_settled(
    aws: Aws, name: str, qualifier: str | None = None, *, timeout_s: float = SETTLE_TIMEOUT_S
) -> dict[str, Any]:
    """Poll until the function (or version) is no longer Pending / InProgress; raise on Failed."""
    where = f"{name}:{qualifier}" if qualifier else name
    params: dict[str, Any] = {"FunctionName": name}
    if qualifier:
        params["Qualifier"] = qualifier
    deadline = time.monotonic() + timeout_s
    while True:
        config: dict[str, Any] = aws.call("lambda", "GetFunctionConfiguration", **params)
        state, update = config.get("State"), config.get("LastUpdateStatus")
        if state == "Failed":
            raise FunctionStateError(
                f"function {where} is in state Failed: {config.get('StateReasonCode', '')} "
                f"{config.get('StateReason', '')}".rstrip()
            )
        if update == "Failed":
            raise FunctionStateError(
                f"the update of function {where} failed: {config.get('LastUpdateStatusReasonCode', '')} "
                f"{config.get('LastUpdateStatusReason', '')}".rstrip()
            )
        if state != "Pending" and update != "InProgress":
            return config
        if time.monotonic() > deadline:
            raise FunctionStateError(
                f"function {where} still {state}/{update} after {timeout_s:.0f} s; see the Lambda console"
            )
        aws.retry.sleep(POLL_S)


# -- the function ----------------------------------------------------------------------


def _config_params(plan: FunctionPlan, layers: list[str], snapstart_was_on: bool) -> dict[str, Any]:
    params: dict[str, Any] = {
        "FunctionName": plan.name,
        "Runtime": plan.runtime,
        "Handler": plan.handler,
        "Description": plan.description,
        "MemorySize": plan.memory_mb,
        "Timeout": plan.timeout_s,
        "Environment": {"Variables": dict(plan.environment)},
        "Layers": layers,
    }
    if plan.role is not None:
        params["Role"] = plan.role
    if plan.snapstart or snapstart_was_on:
        params["SnapStart"] = {"ApplyOn": "PublishedVersions" if plan.snapstart else "None"}
    return params


def preflight(aws: Aws, plan: FunctionPlan) -> dict[str, Any] | None:
    """Read-only checks against AWS before anything changes: the function as it is (None
    when missing; a missing one needs ``--role``), and every ``--layer`` version exists."""
    existing: dict[str, Any] | None = aws.call(
        "lambda", "GetFunction", FunctionName=plan.name, missing_ok=True
    )
    if existing is None and plan.role is None:
        raise DeployRequestError(
            f"function {plan.name} does not exist in {aws.region}: "
            "pass --role ARN (its execution role) to create it"
        )
    for arn in plan.layer_arns or ():
        layer, _, number = arn.rpartition(":")
        if (
            aws.call("lambda", "GetLayerVersion", LayerName=layer, VersionNumber=int(number), missing_ok=True)
            is None
        ):
            raise DeployRequestError(f"layer {arn} does not exist (or is not shared with this account)")
    return existing


def apply_function(
    aws: Aws,
    artifact: VerifiedZip,
    plan: FunctionPlan,
    *,
    layer_result: LayerResult | None = None,
    step: Step = lambda _: None,
) -> FunctionResult:
    """Create or update the function from ``artifact``, publish a version and move the alias."""
    existing = preflight(aws, plan)
    if plan.layer_arns is not None:
        layers = list(plan.layer_arns)
    else:
        layers = [layer_result.arn] if layer_result else []
    code: Code | None
    if existing is None:
        code = stage_code(aws, artifact, plan.bucket, limit=plan.direct_limit)
        params = _config_params(plan, layers, snapstart_was_on=False)
        params.update(
            Code=code.params,
            Architectures=[plan.architecture],
            PackageType="Zip",
            Publish=False,
            Tags=dict(plan.tags),
        )
        created = aws.call("lambda", "CreateFunction", **params)
        function_arn = created["FunctionArn"]
        step(f"created function {plan.name} ({code.uploaded:,} bytes, {code.via})")
        wait_settled(aws, plan.name)
    else:
        current = wait_settled(aws, plan.name)
        function_arn = current["FunctionArn"]
        was_on = (current.get("SnapStart") or {}).get("ApplyOn") == "PublishedVersions"
        aws.call("lambda", "UpdateFunctionConfiguration", **_config_params(plan, layers, was_on))
        wait_settled(aws, plan.name)
        step(f"updated the configuration of {plan.name}")
        same_code = current.get("CodeSha256") == artifact.code_sha256 and (
            current.get("Architectures") or ["x86_64"]
        ) == [plan.architecture]
        if same_code:
            code = None
            step(f"code of {plan.name} unchanged (CodeSha256 {artifact.code_sha256}), not uploaded")
        else:
            code = stage_code(aws, artifact, plan.bucket, limit=plan.direct_limit)
            aws.call(
                "lambda",
                "UpdateFunctionCode",
                FunctionName=plan.name,
                Architectures=[plan.architecture],
                Publish=False,
                **code.params,
            )
            wait_settled(aws, plan.name)
            step(f"updated the code of {plan.name} ({code.uploaded:,} bytes, {code.via})")
        aws.call("lambda", "TagResource", Resource=function_arn, Tags=dict(plan.tags))
    published = aws.call(
        "lambda",
        "PublishVersion",
        FunctionName=plan.name,
        CodeSha256=artifact.code_sha256,  # refused if someone changed $LATEST meanwhile
        Description=plan.description,
    )
    version = str(published["Version"])
    if published.get("CodeSha256") not in (None, artifact.code_sha256):
        raise FunctionStateError(
            f"version {version} of {plan.name} holds CodeSha256 {published['CodeSha256']}, "
            f"not this artifact's {artifact.code_sha256}"
        )
    wait_settled(aws, plan.name, version)
    step(f"published version {version} of {plan.name}")
    alias = route_alias(aws, plan, function_arn, version, step=step)
    return FunctionResult(function_arn, version, existing is None, code, alias, layer_result)


# -- the alias -------------------------------------------------------------------------


def _alias_state(function_arn: str, alias: Mapping[str, Any]) -> AliasState:
    weights = (alias.get("RoutingConfig") or {}).get("AdditionalVersionWeights") or {}
    found = _PREVIOUS.search(str(alias.get("Description") or ""))
    return AliasState(
        function_arn,
        str(alias["Name"]),
        str(alias["FunctionVersion"]),
        {str(k): float(v) for k, v in weights.items()},
        found.group(1) if found else None,
    )


def _description(previous: str | None) -> str:
    text = f"edgepack previous={previous}" if previous else "edgepack"
    check_description(text)
    return text


def _update_alias(
    aws: Aws, function: str, alias: str, version: str, weights: Mapping[str, float], previous: str | None
) -> dict[str, Any]:
    check_version(version)
    for v, w in weights.items():
        check_version(v)
        if v == version or not 0.0 < w < 1.0:
            raise DeployRequestError(f"alias {alias}: routing weight {w!r} for version {v!r} is invalid")
    updated: dict[str, Any] = aws.call(
        "lambda",
        "UpdateAlias",
        FunctionName=function,
        Name=alias,
        FunctionVersion=version,
        Description=_description(previous),
        RoutingConfig={"AdditionalVersionWeights": dict(weights)},
    )
    return updated


def get_alias(aws: Aws, function: str, alias: str) -> AliasState | None:
    check_function_name(function)
    check_alias_name(alias)
    found = aws.call("lambda", "GetAlias", FunctionName=function, Name=alias, missing_ok=True)
    if found is None:
        return None
    arn = str(found["AliasArn"]).rsplit(":", 1)[0]
    return _alias_state(arn, found)


def route_alias(aws: Aws, plan: FunctionPlan, function_arn: str, version: str, *, step: Step) -> AliasState:
    """Point the alias at ``version``, all at once or as a canary beside its current version."""
    current = get_alias(aws, plan.name, plan.alias)
    if current is None:
        check_version(version)
        created = aws.call(
            "lambda",
            "CreateAlias",
            FunctionName=plan.name,
            Name=plan.alias,
            FunctionVersion=version,
            Description=_description(None),
        )
        if plan.canary_weight is not None:
            step(
                f"alias {plan.alias} is new: all traffic to version {version} (no version to canary against)"
            )
        else:
            step(f"created alias {plan.alias} -> version {version}")
        return _alias_state(function_arn, created)
    if current.version == version and not current.weights:
        step(f"alias {plan.alias} already routes all traffic to version {version}")
        return current
    if plan.canary_weight is not None:
        if current.version == version:  # Lambda gave back the stable version: same code and config
            step(f"alias {plan.alias} already points at version {version}: no canary needed")
            return current
        updated = _update_alias(
            aws, plan.name, plan.alias, current.version, {version: plan.canary_weight}, current.previous
        )
        step(
            f"alias {plan.alias}: canary, {plan.canary_weight * 100:.4g}% to version {version}, "
            f"the rest to {current.version}"
        )
    else:
        updated = _update_alias(aws, plan.name, plan.alias, version, {}, current.version)
        step(f"alias {plan.alias} -> version {version} (was {current.version})")
    return _alias_state(function_arn, updated)


def promote(
    aws: Aws, function: str, alias: str, *, code_sha256: str | None = None, step: Step = lambda _: None
) -> AliasState:
    """Finish a canary: the alias points at the canary version, weights cleared. With
    ``code_sha256``, only when the canary version holds that code."""
    current = get_alias(aws, function, alias)
    if current is None:
        raise DeployRequestError(f"alias {alias} of function {function} does not exist: nothing to promote")
    if len(current.weights) != 1:
        raise DeployRequestError(
            f"alias {alias} has no canary to promote: it routes all traffic to version {current.version}"
            if not current.weights
            else f"alias {alias} routes to several versions ({sorted(current.weights)}): promote one by hand"
        )
    (canary,) = current.weights
    if code_sha256 is not None:
        config = aws.call("lambda", "GetFunctionConfiguration", FunctionName=function, Qualifier=canary)
        if config.get("CodeSha256") != code_sha256:
            raise DeployRequestError(
                f"the canary of alias {alias} is version {canary}, which is not this artifact "
                f"(CodeSha256 {config.get('CodeSha256')}, the artifact's {code_sha256})"
            )
    updated = _update_alias(aws, function, alias, canary, {}, current.version)
    step(f"alias {alias} -> version {canary} (promoted; was {current.version})")
    return _alias_state(current.function_arn, updated)


def rollback(aws: Aws, function: str, alias: str, *, step: Step = lambda _: None) -> AliasState:
    """Abort a canary in progress, or return the alias to the version recorded as previous."""
    current = get_alias(aws, function, alias)
    if current is None:
        raise DeployRequestError(f"alias {alias} of function {function} does not exist: nothing to roll back")
    if current.weights:
        updated = _update_alias(aws, function, alias, current.version, {}, current.previous)
        step(
            f"alias {alias}: canary of version {', '.join(current.weights)} aborted, "
            f"all traffic to {current.version}"
        )
        return _alias_state(current.function_arn, updated)
    if current.previous is None:
        raise DeployRequestError(f"alias {alias} records no previous version to roll back to")
    check_version(current.previous)
    found = aws.call(
        "lambda",
        "GetFunctionConfiguration",
        FunctionName=function,
        Qualifier=current.previous,
        missing_ok=True,
    )
    if found is None:
        raise DeployRequestError(
            f"alias {alias}: the previous version {current.previous} no longer exists in function {function}"
        )
    updated = _update_alias(aws, function, alias, current.previous, {}, current.version)
    step(f"alias {alias} -> version {current.previous} (rolled back from {current.version})")
    return _alias_state(current.function_arn, updated)
