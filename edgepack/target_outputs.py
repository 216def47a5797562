"""What a target ships beside its verified artifact, made from that artifact after it is in place:
a container target's image, build context and Kubernetes manifests; a Lambda target's
``serverless.yml`` and SAM ``template.yaml`` (``<artifact stem>.deploy/``).

Everything here reads the final, verified artifact, never the staging tree, and is
redone on a cached rebuild (it is deterministic, so the bytes are the same).
"""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path
from typing import Any

from .artifact_files import read_artifact
from .runtime.manifest import MANIFEST_FILE

DEPLOY_DIR_SUFFIX = ".deploy"


def deploy_dir_for(artifact: Path) -> Path:
    stem = artifact.name.removesuffix(".zip").removesuffix(".tar.gz")
    return artifact.with_name(stem + DEPLOY_DIR_SUFFIX)


def with_outputs(result: Any, final: Path, shared: Any, profile: Any) -> Any:
    """``result`` with the outputs its target kind adds, written beside ``final``."""
    if profile.kind == "container":
        from .container_image import container_outputs_for

        outputs = container_outputs_for(final, shared, profile)
        shared.progress(f"[{profile.name}] {outputs.note}")
        return replace(result, image={**outputs.to_dict(), "note": outputs.note})
    if profile.packager == "lambda-image":
        from .container_image import lambda_image_for

        outputs = lambda_image_for(final, shared, profile)
        shared.progress(f"[{profile.name}] {outputs.note}")
        return replace(result, image={**outputs.to_dict(), "note": outputs.note})
    if profile.kind == "lambda":
        from .deploy_files import write_lambda_deploy_files

        _, files = read_artifact(final, lambda name: name == MANIFEST_FILE)
        dest = deploy_dir_for(final)
        write_lambda_deploy_files(final, json.loads(files[MANIFEST_FILE]), dest)
        shared.progress(f"[{profile.name}] deploy files: {dest}/serverless.yml, template.yaml")
        return replace(result, deploy=str(dest))
    return result
