"""Deployment files for one Lambda artifact: a Serverless Framework ``serverless.yml`` and an
AWS SAM ``template.yaml``, rendered from the ``lambda-deploy`` template set.

Every value comes from the artifact's manifest (``edgepack.json``), so the files cannot
disagree with what was built: the Lambda runtime and architecture of the target, the
handler, the ``function`` section (name, memory, timeout, environment, SnapStart,
function URL auth), telemetry names for Powertools, and the runtime layer when the build
split one off. The artifact is referenced as built (already signed), by a path relative to
the directory the files are written to; nothing is repackaged.

Two package types:

- Zip (the default): ``package.artifact`` / ``CodeUri`` point at the artifact zip;
- Image (``image_uri`` given): a Lambda container image already pushed to ECR
  (``image`` / ``PackageType: Image`` + ``ImageUri``); no runtime, handler or layers.

The rendering context is built and checked here (templates are glue only); the files are
rendered into a temporary directory beside ``dest`` and renamed into place, so ``dest``
holds either the previous complete set or the new one.
"""

from __future__ import annotations

import os
import re
import shutil
import tempfile
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from . import __version__
from .errors import PackagingError
from .render import render_template_set

TEMPLATE_SET = "lambda-deploy"
SERVERLESS_FILE = "serverless.yml"
SAM_FILE = "template.yaml"

# The alias SAM publishes SnapStart versions under (AutoPublishAlias); osls names its own
# alias "snapstart". Invocations of $LATEST never use a snapshot: call the alias.
SAM_ALIAS = "live"
LOG_RETENTION_DAYS = 14
# manifest target.arch (uname -m) -> Lambda's architecture name
LAMBDA_ARCHITECTURES = {"x86_64": "x86_64", "aarch64": "arm64"}
# SnapStart for Python starts with Lambda's python3.12 runtime.
SNAPSTART_MIN_PYTHON = (3, 12)
URL_AUTH_TYPES = ("AWS_IAM", "NONE")
# Lambda accepts only images in ECR: <account>.dkr.ecr.<region>.amazonaws.com/<repo>(:tag|@sha256:...)
_ECR_IMAGE = re.compile(
    r"^\d{12}\.dkr\.ecr\.[a-z0-9-]+\.amazonaws\.com(\.cn)?/[a-z0-9][a-z0-9._/-]*"
    r"(:[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}|@sha256:[0-9a-f]{64})$"
)
_FUNCTION_NAME = re.compile(r"^[A-Za-z0-9_-]{1,64}$")
_PYTHON_RUNTIME = re.compile(r"^python(\d+)\.(\d+)$")
_ENV_NAME = re.compile(r"^[A-Za-z][A-Za-z0-9_]*$")


def write_lambda_deploy_files(
    artifact: Path, manifest: Mapping[str, Any], dest: Path, *, image_uri: str | None = None
) -> list[Path]:
    """Render ``serverless.yml`` and ``template.yaml`` for ``artifact`` into ``dest``.

    ``manifest`` is the artifact's ``edgepack.json``. With ``image_uri`` the files deploy a
    container image from ECR instead of the zip. Returns the written paths, sorted. Raises
    ``PackagingError`` naming the manifest field for a value the files cannot carry; then
    ``dest`` is left as it was.
    """
    artifact = Path(artifact)
    dest = Path(dest)
    context = deploy_context(artifact, manifest, dest, image_uri=image_uri)
    dest.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{dest.name}.", suffix=".partial", dir=dest.parent))
    try:
        written = render_template_set(TEMPLATE_SET, tmp, context)
        for path in written:
            path.chmod(0o644)
        tmp.chmod(0o755)
        _replace_dir(tmp, dest)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return sorted(dest / p.relative_to(tmp) for p in written)


def deploy_context(
    artifact: Path, manifest: Mapping[str, Any], dest: Path, *, image_uri: str | None = None
) -> dict[str, Any]:
    """The render context of the ``lambda-deploy`` set, checked (no I/O)."""
    name = _text(manifest, "name")
    version = _text(manifest, "version")
    target = _section(manifest, "target")
    runtime_section = _section(manifest, "runtime")
    function = _section(manifest, "function")
    telemetry = manifest.get("telemetry") or {}
    if not isinstance(telemetry, Mapping):
        raise _bad("telemetry", "is not an object")

    function_name = function.get("name") or name
    if not isinstance(function_name, str) or not _FUNCTION_NAME.match(function_name):
        raise _bad("function.name", f"{function_name!r} is not a Lambda function name")
    arch = target.get("arch")
    if arch not in LAMBDA_ARCHITECTURES:
        raise _bad("target.arch", f"{arch!r} is not a Lambda architecture (x86_64 or aarch64)")
    url_auth = function.get("url_auth", "AWS_IAM")
    if url_auth not in URL_AUTH_TYPES:
        raise _bad("function.url_auth", f"{url_auth!r} is not one of {', '.join(URL_AUTH_TYPES)}")
    memory_mb = _integer(function, "memory_mb", 128, 10240)
    timeout_s = _integer(function, "timeout_s", 1, 900)
    snapstart = function.get("snapstart", False)
    if not isinstance(snapstart, bool):
        raise _bad("function.snapstart", "must be true or false")

    lambda_runtime = target.get("lambda_runtime")
    if image_uri is None:
        package_type = "Zip"
        if artifact.suffix != ".zip":
            raise PackagingError(
                f"{artifact.name}: a Lambda container image deploys from ECR: pass its image URI"
            )
        version_match = _PYTHON_RUNTIME.match(str(lambda_runtime))
        if not version_match:
            raise _bad("target.lambda_runtime", f"{lambda_runtime!r} is not a Lambda Python runtime")
        handler = runtime_section.get("entrypoint")
        if not isinstance(handler, str) or not handler:
            raise _bad("runtime.entrypoint", "a zip function needs a handler")
        if snapstart and tuple(map(int, version_match.groups())) < SNAPSTART_MIN_PYTHON:
            raise _bad(
                "function.snapstart", f"SnapStart for Python needs python3.12 or newer, not {lambda_runtime}"
            )
        code_path: str | None = _relative(artifact, dest)
        layer = _layer(artifact, dest, runtime_section.get("layer"))
    else:
        package_type = "Image"
        if not _ECR_IMAGE.match(image_uri):
            raise PackagingError(
                f"image URI {image_uri!r}: Lambda runs images from ECR "
                "(<account>.dkr.ecr.<region>.amazonaws.com/<repository>:<tag> or @sha256:<digest>)"
            )
        if snapstart:
            raise _bad("function.snapstart", "Lambda SnapStart does not support container images")
        if runtime_section.get("layer"):
            raise _bad("runtime.layer", "Lambda layers do not apply to container images")
        handler, code_path, layer, lambda_runtime = None, None, None, None

    service = str(telemetry.get("service") or name)
    namespace = str(telemetry.get("namespace") or f"edgepack/{name}")
    environment = _environment(
        function.get("environment") or {},
        {"POWERTOOLS_SERVICE_NAME": service, "POWERTOOLS_METRICS_NAMESPACE": namespace},
    )
    context = {
        "edgepack_version": __version__,
        "project_name": name,
        "project_version": version,
        "target_name": _text(target, "name", where="target.name"),
        "service": "edgepack-" + re.sub(r"[^A-Za-z0-9-]", "-", function_name),
        "function_name": function_name,
        "description": f"edgepack {name} {version} ({target['name']})",
        "package_type": package_type,
        "code_path": code_path,
        "image_uri": image_uri,
        "runtime": lambda_runtime,
        "handler": handler,
        "architecture": LAMBDA_ARCHITECTURES[arch],
        "memory_mb": memory_mb,
        "timeout_s": timeout_s,
        "environment": environment,
        "url_auth": url_auth,
        "snapstart": snapstart,
        "alias": SAM_ALIAS,
        "layer": layer,
        "log_group": f"/aws/lambda/{function_name}",
        "log_retention_days": LOG_RETENTION_DAYS,
    }
    _check_serverless_variables(context)
    return context


# -- helpers --------------------------------------------------------------------------


def _bad(field: str, why: str) -> PackagingError:
    return PackagingError(f"manifest {field}: {why}")


def _section(manifest: Mapping[str, Any], key: str) -> Mapping[str, Any]:
    value = manifest.get(key)
    if key == "function" and value is None:
        raise _bad(key, "missing: the artifact was not built for a Lambda target")
    if not isinstance(value, Mapping):
        raise _bad(key, "missing or not an object")
    return value


def _text(data: Mapping[str, Any], key: str, *, where: str | None = None) -> str:
    value = data.get(key)
    if not isinstance(value, str) or not value:
        raise _bad(where or key, "missing or not a string")
    return value


def _integer(function: Mapping[str, Any], key: str, low: int, high: int) -> int:
    value = function.get(key)
    if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
        raise _bad(f"function.{key}", f"{value!r} is not an integer in [{low}, {high}]")
    return value


def _relative(path: Path, dest: Path) -> str:
    """``path`` as the deploy files refer to it: relative to ``dest``, POSIX separators."""
    return Path(os.path.relpath(Path(path).absolute(), Path(dest).absolute())).as_posix()


def _layer(artifact: Path, dest: Path, section: Any) -> dict[str, str] | None:
    if not section:
        return None
    if not isinstance(section, Mapping):
        raise _bad("runtime.layer", "is not an object")
    file = _text(section, "file", where="runtime.layer.file")
    layer_name = _text(section, "name", where="runtime.layer.name")
    if Path(file).name != file:
        raise _bad("runtime.layer.file", f"{file!r} must be a file name beside the artifact")
    if not re.fullmatch(r"[A-Za-z0-9_-]{1,140}", layer_name):
        raise _bad("runtime.layer.name", f"{layer_name!r} is not a Lambda layer name")
    return {"path": _relative(artifact.parent / file, dest), "name": layer_name}


def _environment(user: Any, telemetry: Mapping[str, str]) -> dict[str, str]:
    if not isinstance(user, Mapping):
        raise _bad("function.environment", "is not an object")
    for key, value in user.items():
        if not isinstance(key, str) or not _ENV_NAME.match(key) or key.startswith("AWS_"):
            raise _bad(
                "function.environment", f"{key!r} is not a Lambda environment variable name you may set"
            )
        if not isinstance(value, str):
            raise _bad(f"function.environment.{key}", "values are strings")
    for key, value in telemetry.items():
        # The handler passes the telemetry names to Powertools explicitly; a different value
        # here would only mislead whoever reads the function's configuration.
        if key in user and user[key] != value:
            raise _bad(
                f"function.environment.{key}",
                f"{user[key]!r} contradicts the telemetry setting {value!r}; set it under telemetry",
            )
    return {**dict(user), **dict(telemetry)}


def _check_serverless_variables(context: Mapping[str, Any]) -> None:
    """The Serverless Framework resolves ``${...}`` anywhere in serverless.yml, with no escape."""
    for key, value in _strings(context):
        if "${" in value:
            raise PackagingError(
                f"deploy files: {key} contains '${{', which serverless.yml would resolve as a variable"
            )


def _strings(value: Any, path: str = "") -> list[tuple[str, str]]:
    if isinstance(value, str):
        return [(path, value)]
    if isinstance(value, Mapping):
        return [item for k, v in value.items() for item in _strings(v, f"{path}.{k}" if path else str(k))]
    return []


def _replace_dir(tmp: Path, dest: Path) -> None:
    from .packaging.oci import replace_dir  # the one directory-swap helper

    replace_dir(tmp, dest)
